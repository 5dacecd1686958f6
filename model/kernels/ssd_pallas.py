"""Pallas SSD scan and decode step: entry points, custom_vjp and backend dispatch.

``ssd`` and ``ssd_step`` keep the contract of ``model.ssd.ssd_reference`` / ``ssd_step``
(shapes, segment ids, initial and final state); ``model.ssd.ssd`` calls them for
``impl in ('pallas', 'pallas_interpret')``.

Lowerings (``backend=``):
  * 'gpu' — Pallas **Triton** (``ssd_gpu``). Triton rather than Mosaic GPU: the
    fused scan is a register-resident loop over chunks with small (64-row) tiles,
    which Triton schedules well on both Ampere and Hopper; Mosaic GPU targets Hopper+
    warpgroup/TMA programming, and a public Mosaic-GPU port of the mamba_ssm kernels
    measured 1.1–1.4x slower than Triton. The win here is fusion, not the backend.
  * 'tpu' — Pallas Mosaic TPU (``ssd_tpu``), grid (b, h, chunk), state in VMEM.
  * CPU has no Pallas lowering: ``interpret=True`` runs either kernel in interpret
    mode ('gpu' with interpret=True, 'tpu' with ``pltpu.InterpretParams()``).
  ``None`` picks the kernel of ``jax.default_backend()`` ('gpu' on CPU).
Both scan kernels run the same per-chunk code (``ssd_chunk``), so the CPU tests of
either one cover the math that the hardware lowerings compile.

Gradients (``jax.custom_vjp``): the forward stores the fp32 state entering every chunk;
the backward kernel walks the chunks in reverse carrying dstate and recomputes the
intra-chunk products. The cumulative log-decay a = cumsum(dt·A) per chunk, the padding
and the dtype casts are plain JAX outside the custom_vjp, so their gradients (to dt, A)
come from autodiff. Segment ids get no gradient. ``ssd_step`` is inference-only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import einops
import jax
import jax.numpy as jnp

from model.kernels import ssd_decode, ssd_gpu, ssd_tpu
from model.kernels.ssd_io import ScanInputs

BACKENDS = ("gpu", "tpu")


@dataclasses.dataclass(frozen=True)
class _ScanConfig:
  backend: str
  interpret: bool
  chunk: int
  block_q: int      # rows per tile within a chunk
  block_p: int      # head-dim tile of the GPU forward grid
  num_warps: int    # Triton only
  num_stages: int   # Triton only


def _resolve_backend(backend: Optional[str], interpret: bool) -> str:
  if backend is None:
    platform = jax.default_backend()
    if platform == "cpu" and not interpret:
      raise ValueError("Pallas SSD kernels run on CPU only in interpret mode: use "
                       "ssm_impl='pallas_interpret' (or 'xla').")
    backend = "tpu" if platform == "tpu" else "gpu"
  if backend not in BACKENDS:
    raise ValueError(f"backend={backend!r}: must be one of {BACKENDS} or None")
  return backend


def _check_divides(name: str, block: int, size: int, what: str):
  if block <= 0 or size % block:
    raise ValueError(f"{name}={block} must divide {what}={size}")


def ssd(x, dt, A, B, C, D=None, *, chunk_size: int, initial_state=None,
        segment_ids=None, interpret: bool = False, backend: Optional[str] = None,
        block_q: Optional[int] = None, block_p: Optional[int] = None,
        num_warps: int = 4, num_stages: int = 2):
  """Chunked SSD scan in Pallas. Same contract as ``model.ssd.ssd_reference``.

  Args:
    x: (b l h p); dt: (b l h) softplus-ed; A: (h,) negative; B, C: (b l g n);
      D: (h,) or None; initial_state: (b h p n) or None; segment_ids: (b l) int32.
    chunk_size: chunk Q; the sequence is padded to a multiple of it with dt = 0.
    interpret: run the kernel in Pallas interpret mode (CPU).
    backend: 'gpu' (Triton), 'tpu' (Mosaic) or None for the default device's.
    block_q: rows per tile within a chunk (default: 64 on GPU, the chunk on TPU).
    block_p: head-dim tile of the GPU forward grid (default min(p, 64)).
    num_warps, num_stages: Triton launch parameters.

  Returns:
    y (b l h p) in x.dtype and the final state (b h p n) in fp32.
  """
  b, length, h, p = x.shape
  g = B.shape[2]
  if h % g:
    raise ValueError(f"B/C groups {g} must divide the heads {h}")
  backend = _resolve_backend(backend, interpret)
  if block_q is None:
    block_q = min(chunk_size, 64) if backend == "gpu" else chunk_size
  block_p = min(p, 64) if block_p is None else block_p
  _check_divides("block_q", block_q, chunk_size, "chunk_size")
  _check_divides("block_p", block_p, p, "head dim p")
  cfg = _ScanConfig(backend, bool(interpret), chunk_size, block_q, block_p,
                    num_warps, num_stages)

  acc = jnp.promote_types(x.dtype, jnp.float32)
  seg = (jnp.zeros((b, length), jnp.int32) if segment_ids is None
         else segment_ids.astype(jnp.int32))
  pad = (-length) % chunk_size
  pad_seq = lambda v, **kw: jnp.pad(v, [(0, 0), (0, pad)] + [(0, 0)] * (v.ndim - 2), **kw)
  dt = pad_seq(dt.astype(acc))  # dt = 0 padding neither decays nor feeds the state.
  dt_A = dt * A.astype(acc)[None, None, :]
  a = einops.rearrange(
      jnp.cumsum(einops.rearrange(dt_A, "b (c q) h -> b c q h", q=chunk_size), axis=2),
      "b c q h -> b (c q) h")
  D = jnp.zeros((h,), acc) if D is None else D.astype(acc)
  state0 = (jnp.zeros((b, h, p, B.shape[3]), acc) if initial_state is None
            else initial_state.astype(acc))
  y, final_state = _scan(cfg, pad_seq(x), pad_seq(B.astype(x.dtype)),
                         pad_seq(C.astype(x.dtype)), dt, a, pad_seq(seg, mode="edge"),
                         D, state0)
  return y[:, :length], final_state


def _scan_inputs(cfg: _ScanConfig, x, B, C, dt, a, seg, D, state0) -> ScanInputs:
  """Adds the per-chunk segment masks (no gradient) to the scan's inputs."""
  seg_chunks = einops.rearrange(seg, "b (c q) -> b c q", q=cfg.chunk)
  last = seg_chunks[:, :, -1]
  entering = jnp.concatenate([seg[:, :1], last[:, :-1]], axis=1)
  mask = lambda ids: einops.rearrange((seg_chunks == ids[:, :, None]).astype(dt.dtype),
                                      "b c q -> b (c q)")
  return ScanInputs(x=x, B=B, C=C, dt=dt, a=a, seg=seg, from_start=mask(entering),
                    to_end=mask(last), D=D, state0=state0)


def _forward(cfg: _ScanConfig, inputs: ScanInputs, store_states: bool):
  if cfg.backend == "tpu":
    return ssd_tpu.forward(inputs, chunk=cfg.chunk, block_q=cfg.block_q,
                           interpret=cfg.interpret, store_states=store_states)
  return ssd_gpu.forward(inputs, chunk=cfg.chunk, block_q=cfg.block_q,
                         block_p=cfg.block_p, num_warps=cfg.num_warps,
                         num_stages=cfg.num_stages, interpret=cfg.interpret,
                         store_states=store_states)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(cfg, x, B, C, dt, a, seg, D, state0):
  y, final_state, _ = _forward(cfg, _scan_inputs(cfg, x, B, C, dt, a, seg, D, state0),
                               store_states=False)
  return y, final_state


def _scan_fwd(cfg, x, B, C, dt, a, seg, D, state0):
  inputs = _scan_inputs(cfg, x, B, C, dt, a, seg, D, state0)
  y, final_state, states = _forward(cfg, inputs, store_states=True)
  return (y, final_state), (inputs, states)


def _scan_bwd(cfg, residuals, cotangents):
  inputs, states = residuals
  dy, dstate_final = cotangents
  if cfg.backend == "tpu":
    grads = ssd_tpu.backward(inputs, states, dy, dstate_final, chunk=cfg.chunk,
                             block_q=cfg.block_q, interpret=cfg.interpret)
  else:
    grads = ssd_gpu.backward(inputs, states, dy, dstate_final, chunk=cfg.chunk,
                             block_q=cfg.block_q, num_warps=cfg.num_warps,
                             num_stages=cfg.num_stages, interpret=cfg.interpret)
  groups = inputs.B.shape[2]
  group_sum = lambda v: einops.reduce(v, "b l (g r) n -> b l g n", "sum",
                                      g=groups).astype(inputs.B.dtype)
  return (grads.dx, group_sum(grads.dB), group_sum(grads.dC), grads.ddt, grads.da,
          None, grads.dD, grads.dstate0)


_scan.defvjp(_scan_fwd, _scan_bwd)


def ssd_step(state, x, dt, A, B, C, D=None, *, interpret: bool = False,
             backend: Optional[str] = None, block_h: Optional[int] = None,
             num_warps: int = 4):
  """One decode step; same contract as ``model.ssd.ssd_step``.

  state (b h p n); x (b h p); dt (b h); A (h,); B, C (b g n); D (h,) or None.
  block_h: heads per program (default the largest power of two <= 8 dividing h).
  Returns (y (b h p) in x.dtype, new state (b h p n) fp32).
  """
  b, h, p = x.shape
  g = B.shape[1]
  if h % g:
    raise ValueError(f"B/C groups {g} must divide the heads {h}")
  backend = _resolve_backend(backend, interpret)
  block_h = math.gcd(h, 8) if block_h is None else block_h
  _check_divides("block_h", block_h, h, "heads h")
  acc = jnp.promote_types(x.dtype, jnp.float32)
  dt = dt.astype(acc)
  decay = jnp.exp(dt * A.astype(acc)[None, :])
  heads = lambda v: jnp.repeat(v, h // g, axis=1)
  y, new_state = ssd_decode.step(state.astype(acc), x, dt, decay, heads(B), heads(C),
                                 backend=backend, block_h=block_h,
                                 num_warps=num_warps, interpret=interpret)
  if D is not None:
    y = y + D.astype(acc)[None, :, None] * x.astype(acc)
  return y.astype(x.dtype), new_state
