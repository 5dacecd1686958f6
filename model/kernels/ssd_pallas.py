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
  * ``None`` (the model's ``ssm_impl='pallas'``): chosen by the compile target with
    ``jax.lax.platform_dependent`` — Mosaic for TPU, Triton for CUDA/ROCm, and the
    Triton kernel in interpret mode on CPU — so a CPU host can compile the real kernels
    for a TPU topology it does not have.
  * ``interpret=True`` runs the chosen kernel in interpret mode everywhere ('gpu' with
    interpret=True, 'tpu' with ``pltpu.InterpretParams()``; ``None`` means 'gpu').

On JAX's current mesh (``jax.set_mesh``; ``model.partitioning``) both entry points run
under ``shard_map`` over the batch and head axes the rules give ``('batch', ..,
'ssm_heads')``: Mosaic kernels cannot be partitioned automatically, and the scan needs
the whole sequence of each (row, head) anyway. Heads are split only where the B/C groups
split the same way (a shard's heads must keep their groups).
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

from model import partitioning
from model.kernels import ssd_decode, ssd_gpu, ssd_tpu
from model.kernels.ssd_io import ScanInputs

BACKENDS = ("gpu", "tpu")
# backend=None: compile-target platform → (kernel, interpret); 'default' = any other.
_BY_PLATFORM = (("tpu", ("tpu", False)), ("cuda", ("gpu", False)),
                ("rocm", ("gpu", False)), ("default", ("gpu", True)))


@dataclasses.dataclass(frozen=True)
class _Lowering:
  """One kernel lowering with its tile sizes: the chunk, head dim p and state size n it
  runs at (at least the model's; ``tile_sizes``)."""
  backend: str
  interpret: bool
  chunk: int
  block_q: int      # rows per tile within a chunk
  block_p: int      # head-dim tile of the GPU forward grid
  num_warps: int    # Triton only
  num_stages: int   # Triton only
  p: int = 0
  n: int = 0


def _next_power_of_two(size: int) -> int:
  return 1 << max(0, size - 1).bit_length()


def _round_up(size: int, multiple: int) -> int:
  return -(-size // multiple) * multiple


def tile_sizes(kernel: str, chunk: int, p: int, n: int) -> tuple[int, int, int]:
  """(chunk, p, n) the hardware lowering of ``kernel`` runs a scan of chunk ``chunk``,
  head dim ``p`` and state ``n`` at: the smallest legal sizes at least these.

  Mosaic (TPU) blocks end in (8k, 128k) or the whole array: the chunk, a block of every
  per-position row vector, becomes a multiple of 128; p and n are whole blocks. Triton
  (GPU) arrays have power-of-two sizes of at least 16 (``tl.dot``): the chunk and p up to
  their 64-row tiles and n (whole in a block) become powers of two, larger chunks and p
  multiples of 64. The scan is exact at any of them: a longer chunk only regroups the
  same sum (the sequence is padded with dt = 0 either way), and zero head-dim channels
  (x = 0) and state channels (B = C = 0) neither reach the output nor the real state.
  """
  if kernel == "tpu":
    return _round_up(chunk, 128), p, n
  tile = lambda size: (max(16, _next_power_of_two(size)) if size <= 64
                       else _round_up(size, 64))
  return tile(chunk), tile(p), max(16, _next_power_of_two(n))


# (platform, _Lowering) pairs; one 'default' pair when the lowering is fixed.
_Lowerings = tuple[tuple[str, _Lowering], ...]


def _platform_backends(backend: Optional[str], interpret: bool
                       ) -> tuple[tuple[str, tuple[str, bool]], ...]:
  if backend is not None and backend not in BACKENDS:
    raise ValueError(f"backend={backend!r}: must be one of {BACKENDS} or None")
  if interpret or backend is not None:
    return (("default", (backend or "gpu", bool(interpret))),)
  return _BY_PLATFORM


def _per_platform(lowerings: _Lowerings, fn, *args):
  """``fn(lowering, *args)`` with the lowering of the platform compiled for. JAX traces
  every branch; platforms with equal lowerings (cuda, rocm) share one, traced once."""
  by_lowering = {}
  branches = {platform: by_lowering.setdefault(lowering, functools.partial(fn, lowering))
              for platform, lowering in lowerings}
  default = branches.pop("default")
  if not branches:
    return default(*args)
  return jax.lax.platform_dependent(*args, default=default, **branches)


def _on_mesh(fn, args, in_layouts: tuple[str, ...], out_layouts: tuple[str, ...], *,
             heads: int, groups: int):
  """``fn(*args)``, under ``shard_map`` over rows (b) and heads (h, and their groups g)
  on the active mesh (``model.partitioning``); plain outside one."""
  if partitioning.mesh_rules() is None:
    return fn(*args)
  rows = partitioning.mesh_axes("batch", args[0].shape[0])
  head_axes = partitioning.mesh_axes("ssm_heads", heads)
  if (head_axes != partitioning.mesh_axes("ssm_groups", groups)
      or set(partitioning.as_tuple(head_axes)) & set(partitioning.as_tuple(rows))):
    head_axes = None  # a shard's heads must keep their B/C groups
  return partitioning.shard_map_layouts(fn, args, in_layouts, out_layouts,
                                        {"b": rows, "h": head_axes, "g": head_axes})


def _check_divides(name: str, block: int, size: int, what: str):
  if block <= 0 or size % block:
    raise ValueError(f"{name}={block} must divide {what}={size}")


def ssd(x, dt, A, B, C, D=None, *, chunk_size: int, initial_state=None,
        segment_ids=None, interpret: bool = False, backend: Optional[str] = None,
        block_q: Optional[int] = None, block_p: Optional[int] = None,
        num_warps: int = 4, num_stages: int = 2, tile_legal: bool = False):
  """Chunked SSD scan in Pallas. Same contract as ``model.ssd.ssd_reference``.

  Args:
    x: (b l h p); dt: (b l h) softplus-ed; A: (h,) negative; B, C: (b l g n);
      D: (h,) or None; initial_state: (b h p n) or None; segment_ids: (b l) int32.
    chunk_size: chunk Q; the sequence is padded to a multiple of it with dt = 0. A
      hardware lowering runs at its legal tile sizes (``tile_sizes``: a longer chunk,
      zero-padded p and n where the model's are not legal), exactly the same scan.
    interpret: run the kernel in Pallas interpret mode (CPU), at the model's sizes
      unless ``tile_legal`` (at the hardware's, as the compiled kernel would).
    backend: 'gpu' (Triton), 'tpu' (Mosaic) or None for the compile target's.
    block_q: rows per tile within a chunk (default: the chunk's largest divisor of at
      most 64 on GPU, the chunk on TPU).
    block_p: head-dim tile of the GPU forward grid (default min(p, 64)).
    num_warps, num_stages: Triton launch parameters.

  Returns:
    y (b l h p) in x.dtype and the final state (b h p n) in fp32.
  """
  b, length, h, p = x.shape
  g, n = B.shape[2:]
  if h % g:
    raise ValueError(f"B/C groups {g} must divide the heads {h}")
  lowerings = []
  for platform, (kernel, kernel_interpret) in _platform_backends(backend, interpret):
    chunk, p_tile, n_tile = ((chunk_size, p, n) if kernel_interpret and not tile_legal
                             else tile_sizes(kernel, chunk_size, p, n))
    bp = block_p or min(p_tile, 64)
    _check_divides("block_p", bp, p_tile, "head dim p")
    q = block_q or (math.gcd(chunk, 64) if kernel == "gpu" else chunk)
    _check_divides("block_q", q, chunk, "chunk_size")
    lowerings.append((platform, _Lowering(kernel, kernel_interpret, chunk, q, bp,
                                          num_warps, num_stages, p_tile, n_tile)))
  acc = jnp.promote_types(x.dtype, jnp.float32)
  seg = (jnp.zeros((b, length), jnp.int32) if segment_ids is None
         else segment_ids.astype(jnp.int32))
  D = jnp.zeros((h,), acc) if D is None else D.astype(acc)
  state0 = (jnp.zeros((b, h, p, n), acc) if initial_state is None
            else initial_state.astype(acc))
  return _on_mesh(functools.partial(_per_platform, tuple(lowerings), _padded_scan),
                  (x, dt, A, B, C, D, state0, seg),
                  ("b l h p", "b l h", "h", "b l g n", "b l g n", "h", "b h p n", "b l"),
                  ("b l h p", "b h p n"), heads=h, groups=g)


def _padded_scan(cfg: _Lowering, x, dt, A, B, C, D, state0, seg):
  """The scan of one shard by one lowering: the sequence padded to whole chunks (dt = 0),
  p and n to the lowering's tile sizes (zeros), the log-decay, then ``_scan``."""
  length, p = x.shape[1], x.shape[3]
  n = B.shape[3]
  acc = state0.dtype
  pad = (-length) % cfg.chunk
  pad_seq = lambda v, **kw: jnp.pad(v, [(0, 0), (0, pad)] + [(0, 0)] * (v.ndim - 2), **kw)
  pad_last = lambda v, size: jnp.pad(v, [(0, 0)] * (v.ndim - 1) + [(0, size - v.shape[-1])])
  dt = pad_seq(dt.astype(acc))  # dt = 0 padding neither decays nor feeds the state.
  dt_A = dt * A.astype(acc)[None, None, :]
  a = einops.rearrange(
      jnp.cumsum(einops.rearrange(dt_A, "b (c q) h -> b c q h", q=cfg.chunk), axis=2),
      "b c q h -> b (c q) h")
  state0 = jnp.pad(state0, [(0, 0), (0, 0), (0, cfg.p - p), (0, cfg.n - n)])
  y, final_state = _scan(cfg, pad_last(pad_seq(x), cfg.p),
                         pad_last(pad_seq(B.astype(x.dtype)), cfg.n),
                         pad_last(pad_seq(C.astype(x.dtype)), cfg.n), dt, a,
                         pad_seq(seg, mode="edge"), D, state0)
  return y[:, :length, :, :p], final_state[:, :, :p, :n]


def _scan_inputs(chunk: int, x, B, C, dt, a, seg, D, state0) -> ScanInputs:
  """Adds the per-chunk segment masks (no gradient) to the scan's inputs."""
  seg_chunks = einops.rearrange(seg, "b (c q) -> b c q", q=chunk)
  last = seg_chunks[:, :, -1]
  entering = jnp.concatenate([seg[:, :1], last[:, :-1]], axis=1)
  mask = lambda ids: einops.rearrange((seg_chunks == ids[:, :, None]).astype(dt.dtype),
                                      "b c q -> b (c q)")
  return ScanInputs(x=x, B=B, C=C, dt=dt, a=a, seg=seg, from_start=mask(entering),
                    to_end=mask(last), D=D, state0=state0)


def _forward_kernel(store_states: bool, cfg: _Lowering, inputs: ScanInputs):
  if cfg.backend == "tpu":
    return ssd_tpu.forward(inputs, chunk=cfg.chunk, block_q=cfg.block_q,
                           interpret=cfg.interpret, store_states=store_states)
  return ssd_gpu.forward(inputs, chunk=cfg.chunk, block_q=cfg.block_q,
                         block_p=cfg.block_p, num_warps=cfg.num_warps,
                         num_stages=cfg.num_stages, interpret=cfg.interpret,
                         store_states=store_states)


def _backward_kernel(cfg: _Lowering, inputs: ScanInputs, states, dy, dstate_final):
  if cfg.backend == "tpu":
    return ssd_tpu.backward(inputs, states, dy, dstate_final, chunk=cfg.chunk,
                            block_q=cfg.block_q, interpret=cfg.interpret)
  return ssd_gpu.backward(inputs, states, dy, dstate_final, chunk=cfg.chunk,
                          block_q=cfg.block_q, num_warps=cfg.num_warps,
                          num_stages=cfg.num_stages, interpret=cfg.interpret)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(cfg: _Lowering, x, B, C, dt, a, seg, D, state0):
  inputs = _scan_inputs(cfg.chunk, x, B, C, dt, a, seg, D, state0)
  y, final_state, _ = _forward_kernel(False, cfg, inputs)
  return y, final_state


def _scan_fwd(cfg: _Lowering, x, B, C, dt, a, seg, D, state0):
  inputs = _scan_inputs(cfg.chunk, x, B, C, dt, a, seg, D, state0)
  y, final_state, states = _forward_kernel(True, cfg, inputs)
  return (y, final_state), (inputs, states)


def _scan_bwd(cfg: _Lowering, residuals, cotangents):
  inputs, states = residuals
  dy, dstate_final = cotangents
  grads = _backward_kernel(cfg, inputs, states, dy, dstate_final)
  groups = inputs.B.shape[2]
  group_sum = lambda v: einops.reduce(v, "b l (g r) n -> b l g n", "sum",
                                      g=groups).astype(inputs.B.dtype)
  return (grads.dx, group_sum(grads.dB), group_sum(grads.dC), grads.ddt, grads.da,
          None, grads.dD, grads.dstate0)


_scan.defvjp(_scan_fwd, _scan_bwd)


def ssd_step(state, x, dt, A, B, C, D=None, *, interpret: bool = False,
             backend: Optional[str] = None, block_h: Optional[int] = None,
             num_warps: int = 4, tile_legal: bool = False):
  """One decode step; same contract as ``model.ssd.ssd_step``.

  state (b h p n); x (b h p); dt (b h); A (h,); B, C (b g n); D (h,) or None.
  backend, interpret, tile_legal: as in ``ssd`` (p and n zero-padded to the hardware's
  tile sizes). block_h: heads per program (default the largest power of two <= 8
  dividing the heads of a shard).
  Returns (y (b h p) in x.dtype, new state (b h p n) fp32).
  """
  h = x.shape[1]
  g = B.shape[1]
  if h % g:
    raise ValueError(f"B/C groups {g} must divide the heads {h}")
  acc = jnp.promote_types(x.dtype, jnp.float32)
  D = jnp.zeros((h,), acc) if D is None else D.astype(acc)
  platforms = _platform_backends(backend, interpret)

  def local_step(state, x, dt, A, B, C, D):
    heads = x.shape[1]
    rows = block_h or math.gcd(heads, 8)
    _check_divides("block_h", rows, heads, "heads h")
    dt = dt.astype(acc)
    decay = jnp.exp(dt * A.astype(acc)[None, :])
    to_heads = lambda v: jnp.repeat(v, heads // v.shape[1], axis=1)

    def kernel(lowering, state, x, dt, decay, B_heads, C_heads):
      backend, kernel_interpret = lowering
      p, n = x.shape[2], B_heads.shape[2]
      p_tile, n_tile = p, n   # the hardware's tile sizes (``tile_sizes``), zero-padded
      if not kernel_interpret or tile_legal:
        _, p_tile, n_tile = tile_sizes(backend, 1, p, n)
      pad = lambda v, *sizes: jnp.pad(v, [(0, 0)] * (v.ndim - len(sizes)) + [
          (0, size - have) for size, have in zip(sizes, v.shape[-len(sizes):])])
      y, new_state = ssd_decode.step(
          pad(state, p_tile, n_tile), pad(x, p_tile), dt, decay, pad(B_heads, n_tile),
          pad(C_heads, n_tile), backend=backend, block_h=rows, num_warps=num_warps,
          interpret=kernel_interpret)
      return y[:, :, :p], new_state[:, :, :p, :n]

    y, new_state = _per_platform(platforms, kernel, state.astype(acc), x, dt, decay,
                                 to_heads(B), to_heads(C))
    y = y + D[None, :, None] * x.astype(acc)
    return y.astype(x.dtype), new_state

  return _on_mesh(local_step, (state, x, dt, A, B, C, D),
                  ("b h p n", "b h p", "b h", "h", "b g n", "b g n", "h"),
                  ("b h p", "b h p n"), heads=h, groups=g)
