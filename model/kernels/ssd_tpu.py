"""Pallas Mosaic-TPU lowering of the chunked SSD scan.

Grid (b, h, chunk) with semantics ('parallel', 'parallel', 'arbitrary'): each grid
step gets one chunk's blocks in VMEM and runs ``ssd_chunk.forward_chunk`` /
``backward_chunk``; the fp32 (P × N) state (forward) or dstate (backward, chunks
visited in reverse by the index maps) lives in VMEM scratch, initialised under
``pl.when`` at the first chunk. N sits on the 128 lanes of the state.

Layout: Mosaic wants the last two block dims to be (8k, 128k) or the full array dims,
so x, B, C, y are re-laid out head-major (b h L p) and every per-position vector is
passed both as a column (…, L, 1) and a row (…, 1, L) — no in-kernel relayouts.
On hardware the chunk should be a multiple of 128 (row blocks) and block_q == chunk
(one tile, the MXU takes the whole chunk).
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
from jax.experimental.pallas import tpu as pltpu

from model.kernels import ssd_chunk
from model.kernels.ssd_io import ScanGrads, ScanInputs

_VECTOR_INPUTS = ("a_col", "a_row", "dt_col", "dt_row", "seg_col", "seg_row",
                  "from_start_col", "to_end_col")
_FORWARD_INPUTS = ("x", "B", "C") + _VECTOR_INPUTS + ("D", "state0")
_BACKWARD_INPUTS = ("x", "B", "C", "dy") + _VECTOR_INPUTS + ("D", "states",
                                                              "dstate_final")
_BACKWARD_OUTPUTS = ("dx", "dB", "dC", "ddt_col", "da_col", "dD", "dstate0")
_SEMANTICS = ("parallel", "parallel", "arbitrary")


@dataclasses.dataclass(frozen=True)
class _BlockView:
  """One chunk held in VMEM blocks: matrices (Q, width), columns (Q, 1), rows (1, Q)."""
  refs: Mapping[str, Any]
  block_q: int
  n_tiles: int

  @property
  def compute_dtype(self):
    return self.refs["x"].dtype

  def _rows(self, t):
    return pl.ds(t * self.block_q, self.block_q)

  def tile(self, name, t):
    return self.refs[name][self._rows(t), :]

  def col(self, name, t):
    return self.refs[name + "_col"][self._rows(t), :]

  def row(self, name, t):
    return self.refs[name + "_row"][:, self._rows(t)]

  def store(self, name, t, value):
    ref = self.refs[name] if name in self.refs else self.refs[name + "_col"]
    ref[self._rows(t), :] = value.astype(ref.dtype)


def _forward_kernel(*refs, names, block_q, n_tiles, n_chunks):
  r = dict(zip(names, refs))
  c = pl.program_id(2)

  @pl.when(c == 0)
  def _():
    r["state_scratch"][...] = r["state0"][...]

  state = r["state_scratch"][...]
  if "states" in r:
    r["states"][...] = state
  state = ssd_chunk.forward_chunk(_BlockView(r, block_q, n_tiles), state, r["D"][...])
  r["state_scratch"][...] = state

  @pl.when(c == n_chunks - 1)
  def _():
    r["state_final"][...] = state


def _backward_kernel(*refs, names, block_q, n_tiles, n_chunks):
  r = dict(zip(names, refs))
  step = pl.program_id(2)

  @pl.when(step == 0)
  def _():
    r["dstate_scratch"][...] = r["dstate_final"][...]
    r["dskip_scratch"][...] = jnp.zeros(r["dskip_scratch"].shape,
                                        r["dskip_scratch"].dtype)

  dstate, dskip_part = ssd_chunk.backward_chunk(
      _BlockView(r, block_q, n_tiles), r["states"][...], r["dstate_scratch"][...],
      r["D"][...])
  r["dstate_scratch"][...] = dstate
  r["dskip_scratch"][...] += dskip_part

  @pl.when(step == n_chunks - 1)
  def _():
    r["dstate0"][...] = dstate
    r["dD"][...] = r["dskip_scratch"][...]


class _Specs:
  """BlockSpecs over grid (b, h, step); chunk = step, or n_chunks − 1 − step."""

  def __init__(self, inputs: ScanInputs, chunk: int, reverse: bool):
    b, length, h, p = inputs.x.shape
    self.g, self.n = inputs.B.shape[2:]
    self.heads_per_group = h // self.g
    self.n_chunks = length // chunk
    self.chunk, self.p, self.reverse = chunk, p, reverse

  def _c(self, step):
    return self.n_chunks - 1 - step if self.reverse else step

  def head_seq(self, width):    # (b h L width)
    return pl.BlockSpec((None, None, self.chunk, width),
                        lambda i, j, s: (i, j, self._c(s), 0))

  def group_seq(self):          # (b g L n)
    group = lambda j: lax.div(j, jnp.asarray(self.heads_per_group, j.dtype))
    return pl.BlockSpec((None, None, self.chunk, self.n),
                        lambda i, j, s: (i, group(j), self._c(s), 0))

  def head_col(self):           # (b h L 1)
    return pl.BlockSpec((None, None, self.chunk, 1), lambda i, j, s: (i, j, self._c(s), 0))

  def head_row(self):           # (b h 1 L)
    return pl.BlockSpec((None, None, 1, self.chunk), lambda i, j, s: (i, j, 0, self._c(s)))

  def batch_col(self):          # (b L 1)
    return pl.BlockSpec((None, self.chunk, 1), lambda i, j, s: (i, self._c(s), 0))

  def batch_row(self):          # (b 1 L)
    return pl.BlockSpec((None, 1, self.chunk), lambda i, j, s: (i, 0, self._c(s)))

  def vectors(self):
    return [self.head_col(), self.head_row(), self.head_col(), self.head_row(),
            self.batch_col(), self.batch_row(), self.batch_col(), self.batch_col()]

  def skip(self):               # (h 1 p)
    return pl.BlockSpec((None, 1, self.p), lambda i, j, s: (j, 0, 0))

  def state(self):              # (b h p n)
    return pl.BlockSpec((None, None, self.p, self.n), lambda i, j, s: (i, j, 0, 0))

  def chunk_state(self):        # (b h c p n)
    return pl.BlockSpec((None, None, None, self.p, self.n),
                        lambda i, j, s: (i, j, self._c(s), 0, 0))


def _head_major_inputs(inputs: ScanInputs):
  h, p = inputs.x.shape[2:]
  col = lambda v: einops.rearrange(v, "b l h -> b h l 1")
  row = lambda v: einops.rearrange(v, "b l h -> b h 1 l")
  return [
      einops.rearrange(inputs.x, "b l h p -> b h l p"),
      einops.rearrange(inputs.B, "b l g n -> b g l n"),
      einops.rearrange(inputs.C, "b l g n -> b g l n"),
  ], [
      col(inputs.a), row(inputs.a), col(inputs.dt), row(inputs.dt),
      inputs.seg[:, :, None], inputs.seg[:, None, :],
      inputs.from_start[:, :, None], inputs.to_end[:, :, None],
      jnp.broadcast_to(inputs.D[:, None, None], (h, 1, p)),
  ]


def _interpret(interpret: bool):
  return pltpu.InterpretParams() if interpret else False


def forward(inputs: ScanInputs, *, chunk: int, block_q: int, interpret: bool,
            store_states: bool):
  """Returns (y (b L h p), final state (b h p n), entering states (b h c p n) or None)."""
  b, length, h, p = inputs.x.shape
  specs = _Specs(inputs, chunk, reverse=False)
  acc = inputs.state0.dtype
  in_specs = ([specs.head_seq(p), specs.group_seq(), specs.group_seq()]
              + specs.vectors() + [specs.skip(), specs.state()])
  out_specs = [specs.head_seq(p), specs.state()]
  out_shape = [jax.ShapeDtypeStruct((b, h, length, p), inputs.x.dtype),
               jax.ShapeDtypeStruct(inputs.state0.shape, acc)]
  names = _FORWARD_INPUTS + ("y", "state_final")
  if store_states:
    out_specs.append(specs.chunk_state())
    out_shape.append(jax.ShapeDtypeStruct((b, h, specs.n_chunks, p, specs.n), acc))
    names += ("states",)
  names += ("state_scratch",)

  matrices, vectors = _head_major_inputs(inputs)
  kernel = functools.partial(_forward_kernel, names=names, block_q=block_q,
                             n_tiles=chunk // block_q, n_chunks=specs.n_chunks)
  outs = pl.pallas_call(
      kernel, out_shape=out_shape, grid=(b, h, specs.n_chunks), in_specs=in_specs,
      out_specs=out_specs, scratch_shapes=[pltpu.VMEM((p, specs.n), acc)],
      interpret=_interpret(interpret), name="ssd_forward_tpu",
      compiler_params=pltpu.CompilerParams(dimension_semantics=_SEMANTICS),
  )(*matrices, *vectors, inputs.state0)
  y = einops.rearrange(outs[0], "b h l p -> b l h p")
  return y, outs[1], (outs[2] if store_states else None)


def backward(inputs: ScanInputs, states, dy, dstate_final, *, chunk: int, block_q: int,
             interpret: bool) -> ScanGrads:
  """Gradients of the scan given the stored entering states (b h c p n)."""
  b, length, h, p = inputs.x.shape
  specs = _Specs(inputs, chunk, reverse=True)
  n = specs.n
  acc = inputs.state0.dtype
  in_specs = ([specs.head_seq(p), specs.group_seq(), specs.group_seq(),
               specs.head_seq(p)] + specs.vectors()
              + [specs.skip(), specs.chunk_state(), specs.state()])
  out_specs = [specs.head_seq(p), specs.head_seq(n), specs.head_seq(n),
               specs.head_col(), specs.head_col(),
               pl.BlockSpec((None, None, 1, p), lambda i, j, s: (i, j, 0, 0)),
               specs.state()]
  out_shape = [
      jax.ShapeDtypeStruct((b, h, length, p), inputs.x.dtype),
      jax.ShapeDtypeStruct((b, h, length, n), acc),
      jax.ShapeDtypeStruct((b, h, length, n), acc),
      jax.ShapeDtypeStruct((b, h, length, 1), acc),
      jax.ShapeDtypeStruct((b, h, length, 1), acc),
      jax.ShapeDtypeStruct((b, h, 1, p), acc),
      jax.ShapeDtypeStruct(inputs.state0.shape, acc),
  ]
  names = (_BACKWARD_INPUTS + _BACKWARD_OUTPUTS + ("dstate_scratch", "dskip_scratch"))
  matrices, vectors = _head_major_inputs(inputs)
  dy_hm = einops.rearrange(dy.astype(inputs.x.dtype), "b l h p -> b h l p")
  kernel = functools.partial(_backward_kernel, names=names, block_q=block_q,
                             n_tiles=chunk // block_q, n_chunks=specs.n_chunks)
  dx, dB, dC, ddt, da, dD, dstate0 = pl.pallas_call(
      kernel, out_shape=out_shape, grid=(b, h, specs.n_chunks), in_specs=in_specs,
      out_specs=out_specs,
      scratch_shapes=[pltpu.VMEM((p, n), acc), pltpu.VMEM((1, p), acc)],
      interpret=_interpret(interpret), name="ssd_backward_tpu",
      compiler_params=pltpu.CompilerParams(dimension_semantics=_SEMANTICS),
  )(*matrices, dy_hm, *vectors, states, dstate_final.astype(acc))
  to_seq = lambda v: einops.rearrange(v, "b h l w -> b l h w")
  return ScanGrads(dx=to_seq(dx), dB=to_seq(dB), dC=to_seq(dC),
                   ddt=to_seq(ddt)[..., 0], da=to_seq(da)[..., 0],
                   dD=jnp.sum(dD, axis=(0, 2, 3)), dstate0=dstate0)
