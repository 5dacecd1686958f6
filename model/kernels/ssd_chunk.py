"""Per-chunk SSD math shared by the GPU (Triton) and TPU (Mosaic) Pallas kernels.

Both kernels walk a (batch, head) sequence chunk by chunk, carrying the fp32 P × N
state, and hand each chunk to ``forward_chunk`` / ``backward_chunk`` through a
``ChunkView``: the GPU view slices refs that hold the whole sequence, the TPU view
slices one chunk's VMEM blocks. The math below is therefore the same code on both
lowerings, and the CPU interpret-mode tests cover it for both.

A chunk of Q positions is processed in tiles of ``block_q`` rows (Python-unrolled, so
every slice is static within the chunk); source tiles after the target tile are causally
empty and skipped. Per-position vectors come as columns (bq, 1) and rows (1, bq), so
all arithmetic is 2-D and both lowerings see the same shapes. Scalars are (1, 1).

Notation, within a chunk (positions m = target, k = source):
  a_m        cumulative log-decay Σ_{j≤m} dt_j A, fp32, ≤ 0
  seg_m      segment id; from_start_m = 1 where m continues the segment entering the
             chunk, to_end_k = 1 where k is in the chunk's last segment
  S          state entering the chunk (P × N)
  y_m  = from_start_m e^{a_m} C_m·Sᵀ + Σ_{k≤m, same seg} (C_m·B_k) e^{a_m−a_k} dt_k x_k
         + D x_m
  S'   = continues·e^{a_last} S + Σ_k to_end_k e^{a_last−a_k} dt_k x_kᵀ B_k
Every decay is exp of a non-positive difference; exp(a_m)·exp(−a_k) is never formed.
Matmul operands are cast to the compute dtype of x (bf16 in training, as mamba_ssm
does, including the state); products accumulate, and the state is carried, in fp32.
"""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

_NN = (((1,), (0,)), ((), ()))  # a @ b
_NT = (((1,), (1,)), ((), ()))  # a @ bᵀ
_TN = (((0,), (0,)), ((), ()))  # aᵀ @ b


class ChunkView(Protocol):
  """One chunk of one (batch, head), read and written in ``block_q``-row tiles.

  Matrix tiles: 'x', 'B', 'C', 'dy' (bq, width) in the compute dtype.
  Vectors: 'a', 'dt' (accumulation dtype), 'seg' (int32), and as columns only
  'from_start', 'to_end' (accumulation dtype).
  Outputs: 'y', 'dx', 'dB', 'dC' tiles; 'ddt', 'da' columns.
  """

  block_q: int
  n_tiles: int
  compute_dtype: jnp.dtype   # of x, B, C, dy: matmul operands are cast to it

  def tile(self, name: str, t: int) -> Array: ...            # (bq, width)
  def col(self, name: str, t: int) -> Array: ...             # (bq, 1)
  def row(self, name: str, t: int) -> Array: ...             # (1, bq)
  def store(self, name: str, t: int, value: Array) -> None: ...


def _mm(a, b, dims, acc_dtype):
  return lax.dot_general(a, b, dims, preferred_element_type=acc_dtype)


def _last(row: Array) -> Array:
  """(1, bq) -> (1, 1): the last entry, by a masked reduction (no value slicing)."""
  lane = lax.broadcasted_iota(jnp.int32, row.shape, 1)
  return jnp.sum(jnp.where(lane == row.shape[1] - 1, row, 0), axis=1, keepdims=True)


def _chunk_end(view: ChunkView) -> tuple[Array, Array]:
  """(a_last, carry) as (1, 1): the chunk's total log-decay, and the factor that
  carries the entering state across the chunk (0 if a segment starts inside it)."""
  a_last = _last(view.row("a", view.n_tiles - 1))
  continues = jnp.min(view.col("from_start", 0), axis=0, keepdims=True)
  for t in range(1, view.n_tiles):
    continues = jnp.minimum(
        continues, jnp.min(view.col("from_start", t), axis=0, keepdims=True))
  return a_last, continues * jnp.exp(a_last)


def _decay(view: ChunkView, m: int, k: int, *, source_major: bool) -> Array:
  """Masked exp(a_m − a_k) for target tile m and source tile k ≤ m.

  Target-major: (bq_m, bq_k). Source-major (the transpose): (bq_k, bq_m).
  Visible pairs have k ≤ m and the same segment; the exponent is clamped at 0 so
  masked-out pairs never overflow.
  """
  if source_major:
    log_decay = view.row("a", m) - view.col("a", k)
    visible = view.col("seg", k) == view.row("seg", m)
  else:
    log_decay = view.col("a", m) - view.row("a", k)
    visible = view.col("seg", m) == view.row("seg", k)
  if m == k:
    shape = (view.block_q, view.block_q)
    rows = lax.broadcasted_iota(jnp.int32, shape, 0)
    cols = lax.broadcasted_iota(jnp.int32, shape, 1)
    visible = visible & ((cols >= rows) if source_major else (rows >= cols))
  return jnp.where(visible, jnp.exp(jnp.minimum(log_decay, 0.0)), 0.0)


def forward_chunk(view: ChunkView, state: Array, d_skip: Array) -> Array:
  """Writes y for the chunk and returns the state leaving it.

  state: (P, N) entering state in the accumulation dtype; d_skip: (1, P).
  """
  acc = state.dtype
  a_last, carry = _chunk_end(view)
  state_in = state.astype(view.compute_dtype)

  for m in range(view.n_tiles):
    C_m = view.tile("C", m)
    from_start = jnp.exp(view.col("a", m)) * view.col("from_start", m)
    y = _mm(C_m, state_in, _NT, acc) * from_start
    for k in range(m + 1):
      scores = _mm(C_m, view.tile("B", k), _NT, acc)
      weights = scores * _decay(view, m, k, source_major=False) * view.row("dt", k)
      y = y + _mm(weights.astype(view.compute_dtype), view.tile("x", k), _NN, acc)
    view.store("y", m, y + view.tile("x", m).astype(acc) * d_skip)

  state_out = state * carry
  for k in range(view.n_tiles):
    x_k = view.tile("x", k)
    to_end = (jnp.exp(a_last - view.col("a", k)) * view.col("to_end", k)
              * view.col("dt", k))
    x_scaled = (x_k.astype(acc) * to_end).astype(view.compute_dtype)
    state_out = state_out + _mm(x_scaled, view.tile("B", k), _TN, acc)
  return state_out


def backward_chunk(view: ChunkView, state: Array, dstate: Array,
                   d_skip: Array) -> tuple[Array, Array]:
  """Writes dx, dB, dC, ddt, da for the chunk; returns (dstate entering, dD part).

  state: (P, N) state entering the chunk (stored by the forward); dstate: (P, N)
  gradient of the state leaving it; d_skip: (1, P). dB and dC are per head (the
  caller sums the heads of a group). ddt is the gradient through dt's explicit
  uses; da the gradient of the cumulative log-decay a (the caller maps it back to
  dt and A). Returns dstate for the state entering the chunk and Σ dy·x (1, P).
  """
  acc = state.dtype
  cd = view.compute_dtype
  a_last, carry = _chunk_end(view)
  state_in = state.astype(cd)
  dstate_cd = dstate.astype(cd)
  da_last = carry * jnp.sum(dstate * state, axis=(0, 1), keepdims=True)
  dskip_part = jnp.zeros(d_skip.shape, acc)

  # Source side (position k feeds later outputs and the leaving state).
  ddt_tiles = []
  for k in range(view.n_tiles):
    x_k, B_k, dy_k = view.tile("x", k), view.tile("B", k), view.tile("dy", k)
    dt_k = view.col("dt", k)
    to_end = jnp.exp(a_last - view.col("a", k)) * view.col("to_end", k)
    B_dstate = _mm(B_k, dstate_cd, _NT, acc)                           # (bq, P)
    x_B_dstate = jnp.sum(x_k.astype(acc) * B_dstate, axis=1, keepdims=True)
    dx = B_dstate * to_end
    dB = _mm(x_k, dstate_cd, _NN, acc) * to_end                        # (bq, N)
    ddt = x_B_dstate * to_end
    da_last = da_last + jnp.sum(dt_k * ddt, axis=0, keepdims=True)
    for m in range(k, view.n_tiles):
      dy_m, C_m = view.tile("dy", m), view.tile("C", m)
      decay = _decay(view, m, k, source_major=True)                    # (bq_k, bq_m)
      scores = _mm(B_k, C_m, _NT, acc)                                 # (C·Bᵀ)ᵀ
      x_dy = _mm(x_k, dy_m, _NT, acc) * decay
      dx = dx + _mm((scores * decay).astype(cd), dy_m, _NN, acc)
      dB = dB + _mm(x_dy.astype(cd), C_m, _NN, acc)
      ddt = ddt + jnp.sum(x_dy * scores, axis=1, keepdims=True)
    view.store("dx", k, dx * dt_k + dy_k.astype(acc) * d_skip)
    view.store("dB", k, dB * dt_k)
    view.store("ddt", k, ddt)
    ddt_tiles.append(ddt)
    dskip_part = dskip_part + jnp.sum(dy_k.astype(acc) * x_k.astype(acc), axis=0,
                                      keepdims=True)

  # Target side (position m reads the entering state and earlier positions).
  dstate_in = dstate * carry
  for m in range(view.n_tiles):
    dy_m, C_m = view.tile("dy", m), view.tile("C", m)
    from_start = jnp.exp(view.col("a", m)) * view.col("from_start", m)
    dy_state = _mm(dy_m, state_in, _NN, acc)                           # (bq, N)
    dC = dy_state * from_start
    da = from_start * jnp.sum(dy_state * C_m.astype(acc), axis=1, keepdims=True)
    dy_scaled = (dy_m.astype(acc) * from_start).astype(cd)
    dstate_in = dstate_in + _mm(dy_scaled, C_m, _TN, acc)
    for k in range(m + 1):
      B_k = view.tile("B", k)
      dy_x = (_mm(dy_m, view.tile("x", k), _NT, acc)
              * _decay(view, m, k, source_major=False) * view.row("dt", k))
      dC = dC + _mm(dy_x.astype(cd), B_k, _NN, acc)
      da = da + jnp.sum(dy_x * _mm(C_m, B_k, _NT, acc), axis=1, keepdims=True)
    da = da - view.col("dt", m) * ddt_tiles[m]
    if m == view.n_tiles - 1:
      rows = lax.broadcasted_iota(jnp.int32, da.shape, 0)
      da = da + jnp.where(rows == view.block_q - 1, da_last, 0.0)
    view.store("dC", m, dC)
    view.store("da", m, da)
  return dstate_in, dskip_part
