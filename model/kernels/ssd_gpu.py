"""Pallas Triton lowering of the chunked SSD scan (GPU).

Forward: grid (b, h, P / block_p); each program loops over the chunks of its
sequence (``fori_loop``), keeping the (block_p × N) fp32 state in registers, and runs
``ssd_chunk.forward_chunk`` on refs that span the whole sequence, sliced with
``pl.ds`` at dynamic chunk offsets. Only the small per-position vectors (dt, a,
segment masks) are re-laid out head-major; x, B, C, y stay in (b l h p) and are read
with strided loads. When training, the state entering every chunk is written out for
the backward.

Backward: grid (b, h) (dB, dC, ddt, da sum over P, so P is not tiled); each program
walks the chunks in reverse carrying dstate, reads the stored entering state and
recomputes the intra-chunk products (``ssd_chunk.backward_chunk``).

Triton constraints this respects: tensor sizes are powers of two (block_q, block_p, N),
dots have all sizes >= 16 on hardware, no value slicing (masked reductions and reshapes
instead), no scan with extensive inputs (fori_loop over chunks, ref slicing).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import einops
import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from model.kernels import ssd_chunk
from model.kernels.ssd_io import ScanGrads, ScanInputs

_FORWARD_INPUTS = ("x", "B", "C", "dt", "a", "seg", "from_start", "to_end", "D",
                   "state0")
_BACKWARD_INPUTS = ("x", "B", "C", "dy", "dt", "a", "seg", "from_start", "to_end",
                    "D", "states", "dstate_final")
_BACKWARD_OUTPUTS = ("dx", "dB", "dC", "ddt", "da", "dD", "dstate0")


@dataclasses.dataclass(frozen=True)
class _SequenceView:
  """Chunk starting at ``start`` of refs that hold a whole (batch, head) sequence.

  Matrix refs are (L, width); vector refs are (L,).
  """
  refs: Mapping[str, Any]
  start: Any
  block_q: int
  n_tiles: int

  @property
  def compute_dtype(self):
    return self.refs["x"].dtype

  def _rows(self, t):
    return pl.ds(self.start + t * self.block_q, self.block_q)

  def tile(self, name, t):
    return self.refs[name][self._rows(t), :]

  def col(self, name, t):
    return self.refs[name][self._rows(t)][:, None]

  def row(self, name, t):
    return self.refs[name][self._rows(t)][None, :]

  def store(self, name, t, value):
    ref = self.refs[name]
    if len(ref.shape) == 1:
      ref[self._rows(t)] = value.reshape(self.block_q).astype(ref.dtype)
    else:
      ref[self._rows(t), :] = value.astype(ref.dtype)


def _forward_kernel(*refs, names, chunk, block_q, n_chunks):
  r = dict(zip(names, refs))

  def chunk_step(c, state):
    start = pl.multiple_of(c * chunk, chunk)
    if "states" in r:
      r["states"][c] = state
    view = _SequenceView(r, start, block_q, chunk // block_q)
    return ssd_chunk.forward_chunk(view, state, r["D"][...])

  r["state_final"][...] = lax.fori_loop(0, n_chunks, chunk_step, r["state0"][...])


def _backward_kernel(*refs, names, chunk, block_q, n_chunks):
  r = dict(zip(names, refs))

  def chunk_step(i, carry):
    dstate, dskip = carry
    c = n_chunks - 1 - i
    start = pl.multiple_of(c * chunk, chunk)
    view = _SequenceView(r, start, block_q, chunk // block_q)
    dstate, dskip_part = ssd_chunk.backward_chunk(view, r["states"][c], dstate,
                                                  r["D"][...])
    return dstate, dskip + dskip_part

  dskip0 = jnp.zeros(r["dD"].shape, r["dD"].dtype)
  dstate, dskip = lax.fori_loop(0, n_chunks, chunk_step,
                                (r["dstate_final"][...], dskip0))
  r["dstate0"][...] = dstate
  r["dD"][...] = dskip


def _div(index, divisor: int):
  """Grid-index division that lowers without sign handling (indices are >= 0)."""
  return lax.div(index, jnp.asarray(divisor, index.dtype))


def _head_major(v):
  return einops.rearrange(v, "b l h -> b h l")


def _sizes(inputs: ScanInputs):
  b, length, h, p = inputs.x.shape
  g, n = inputs.B.shape[2:]
  return b, length, h, p, g, n


def forward(inputs: ScanInputs, *, chunk: int, block_q: int, block_p: int,
            num_warps: int, num_stages: int, interpret: bool, store_states: bool):
  """Returns (y (b L h p), final state (b h p n), entering states (b h c p n) or None)."""
  b, length, h, p, g, n = _sizes(inputs)
  heads_per_group = h // g
  n_chunks = length // chunk
  acc = inputs.state0.dtype

  seq_p = pl.BlockSpec((None, length, None, block_p), lambda i, j, k: (i, 0, j, k))
  seq_n = pl.BlockSpec((None, length, None, n),
                       lambda i, j, k: (i, 0, _div(j, heads_per_group), 0))
  per_head = pl.BlockSpec((None, None, length), lambda i, j, k: (i, j, 0))
  per_batch = pl.BlockSpec((None, length), lambda i, j, k: (i, 0))
  skip = pl.BlockSpec((None, 1, block_p), lambda i, j, k: (j, 0, k))
  state = pl.BlockSpec((None, None, block_p, n), lambda i, j, k: (i, j, k, 0))
  in_specs = [seq_p, seq_n, seq_n, per_head, per_head, per_batch, per_batch,
              per_batch, skip, state]
  out_specs = [seq_p, state]
  out_shape = [jax.ShapeDtypeStruct(inputs.x.shape, inputs.x.dtype),
               jax.ShapeDtypeStruct(inputs.state0.shape, acc)]
  names = _FORWARD_INPUTS + ("y", "state_final")
  if store_states:
    out_specs.append(pl.BlockSpec((None, None, n_chunks, block_p, n),
                                  lambda i, j, k: (i, j, 0, k, 0)))
    out_shape.append(jax.ShapeDtypeStruct((b, h, n_chunks, p, n), acc))
    names += ("states",)

  kernel = functools.partial(_forward_kernel, names=names, chunk=chunk,
                             block_q=block_q, n_chunks=n_chunks)
  outs = pl.pallas_call(
      kernel, out_shape=out_shape, grid=(b, h, p // block_p), in_specs=in_specs,
      out_specs=out_specs, interpret=interpret, name="ssd_forward_gpu",
      compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=num_stages),
  )(inputs.x, inputs.B, inputs.C, _head_major(inputs.dt), _head_major(inputs.a),
    inputs.seg, inputs.from_start, inputs.to_end,
    jnp.broadcast_to(inputs.D[:, None, None], (h, 1, p)), inputs.state0)
  y, state_final = outs[:2]
  return y, state_final, (outs[2] if store_states else None)


def backward(inputs: ScanInputs, states, dy, dstate_final, *, chunk: int, block_q: int,
             num_warps: int, num_stages: int, interpret: bool) -> ScanGrads:
  """Gradients of the scan given the stored entering states (b h c p n)."""
  b, length, h, p, g, n = _sizes(inputs)
  heads_per_group = h // g
  n_chunks = length // chunk
  acc = inputs.state0.dtype

  seq = lambda width: pl.BlockSpec((None, length, None, width), lambda i, j: (i, 0, j, 0))
  seq_group = pl.BlockSpec((None, length, None, n),
                           lambda i, j: (i, 0, _div(j, heads_per_group), 0))
  per_head = pl.BlockSpec((None, None, length), lambda i, j: (i, j, 0))
  per_batch = pl.BlockSpec((None, length), lambda i, j: (i, 0))
  skip = pl.BlockSpec((None, 1, p), lambda i, j: (j, 0, 0))
  skip_grad = pl.BlockSpec((None, None, 1, p), lambda i, j: (i, j, 0, 0))
  state = pl.BlockSpec((None, None, p, n), lambda i, j: (i, j, 0, 0))
  chunk_states = pl.BlockSpec((None, None, n_chunks, p, n), lambda i, j: (i, j, 0, 0, 0))
  in_specs = [seq(p), seq_group, seq_group, seq(p), per_head, per_head, per_batch,
              per_batch, per_batch, skip, chunk_states, state]
  out_specs = [seq(p), seq(n), seq(n), per_head, per_head, skip_grad, state]
  out_shape = [
      jax.ShapeDtypeStruct(inputs.x.shape, inputs.x.dtype),
      jax.ShapeDtypeStruct((b, length, h, n), acc),
      jax.ShapeDtypeStruct((b, length, h, n), acc),
      jax.ShapeDtypeStruct((b, h, length), acc),
      jax.ShapeDtypeStruct((b, h, length), acc),
      jax.ShapeDtypeStruct((b, h, 1, p), acc),
      jax.ShapeDtypeStruct(inputs.state0.shape, acc),
  ]
  kernel = functools.partial(_backward_kernel, names=_BACKWARD_INPUTS + _BACKWARD_OUTPUTS,
                             chunk=chunk, block_q=block_q, n_chunks=n_chunks)
  dx, dB, dC, ddt, da, dD, dstate0 = pl.pallas_call(
      kernel, out_shape=out_shape, grid=(b, h), in_specs=in_specs,
      out_specs=out_specs, interpret=interpret, name="ssd_backward_gpu",
      compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=num_stages),
  )(inputs.x, inputs.B, inputs.C, dy.astype(inputs.x.dtype), _head_major(inputs.dt),
    _head_major(inputs.a), inputs.seg, inputs.from_start, inputs.to_end,
    jnp.broadcast_to(inputs.D[:, None, None], (h, 1, p)), states,
    dstate_final.astype(acc))
  to_seq = lambda v: einops.rearrange(v, "b h l -> b l h")
  return ScanGrads(dx=dx, dB=dB, dC=dC, ddt=to_seq(ddt), da=to_seq(da),
                   dD=jnp.sum(dD, axis=(0, 2, 3)), dstate0=dstate0)
