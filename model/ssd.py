"""Mamba-2 state-space duality (SSD) scan: references and the dispatch the model calls.

The scan computes, per head h with A_h < 0 and group g(h) sharing B and C,

    state_l = exp(dt_l A) state_{l-1} + dt_l x_l ⊗ B_l        (P × N, fp32)
    y_l     = state_l · C_l + D x_l

Shapes (einops letters): x (b l h p), dt (b l h) already softplus-ed and clamped,
A (h), B and C (b l g n), D (h), state (b h p n).

Packed documents: ``segment_ids`` (b l) int32 mark contiguous runs; the state resets
where the id changes, so a position only sees earlier positions of its own run. An
``initial_state`` belongs to the segment of the first position.

Three implementations share this contract:
  * ``ssd_naive``      sequential recurrence, the test oracle;
  * ``ssd_reference``  chunked jax.numpy (the XLA path), per-chunk masked C·Bᵀ products,
                       chunk states and a scan over chunks;
  * Pallas kernels in ``model.kernels`` selected by ``impl``.
Decay factors are always formed as exp(a_m − a_k) with a_m − a_k ≤ 0, never as
exp(a_m)·exp(−a_k), which overflows fp32 within long chunks.
"""

from __future__ import annotations

from typing import Optional

import einops
import jax
import jax.numpy as jnp

Array = jax.Array


def _default_segments(x: Array, segment_ids: Optional[Array]) -> Array:
  if segment_ids is None:
    return jnp.ones(x.shape[:2], jnp.int32)
  return segment_ids.astype(jnp.int32)


def _heads_per_group(B: Array, n_heads: int) -> int:
  n_groups = B.shape[2]
  if n_heads % n_groups:
    raise ValueError(f"B/C groups {n_groups} must divide the heads {n_heads}")
  return n_heads // n_groups


def ssd_naive(x, dt, A, B, C, D=None, *, initial_state=None, segment_ids=None):
  """Sequential recurrence, one position at a time. Returns (y (b l h p), state (b h p n))."""
  b, l, h, p = x.shape
  n = B.shape[-1]
  r = _heads_per_group(B, h)
  seg = _default_segments(x, segment_ids)
  f32 = jnp.promote_types(x.dtype, jnp.float32)
  state0 = (jnp.zeros((b, h, p, n), f32) if initial_state is None
            else initial_state.astype(f32))
  Bh = jnp.repeat(B, r, axis=2).astype(f32)  # (b l h n)
  Ch = jnp.repeat(C, r, axis=2).astype(f32)

  def step(carry, inputs):
    state, prev_seg = carry
    x_t, dt_t, B_t, C_t, seg_t = inputs
    keep = (seg_t == prev_seg).astype(f32)[:, None, None, None]
    decay = jnp.exp(dt_t * A.astype(f32)[None])[:, :, None, None]
    state = state * decay * keep + (dt_t[:, :, None, None] * x_t[..., None]
                                    * B_t[:, :, None, :])
    y_t = jnp.einsum("bhpn,bhn->bhp", state, C_t)
    return (state, seg_t), y_t

  xs = (x.astype(f32), dt.astype(f32), Bh, Ch, seg)
  xs = jax.tree.map(lambda a: jnp.moveaxis(a, 1, 0), xs)
  (state, _), y = jax.lax.scan(step, (state0, seg[:, 0]), xs)
  y = jnp.moveaxis(y, 0, 1)
  if D is not None:
    y = y + D.astype(f32)[None, None, :, None] * x.astype(f32)
  return y.astype(x.dtype), state


def ssd_reference(x, dt, A, B, C, D=None, *, chunk_size, initial_state=None,
                  segment_ids=None):
  """Chunked SSD in jax.numpy. Same contract and results as ``ssd_naive``."""
  b, l, h, p = x.shape
  g, n = B.shape[-2:]
  r = _heads_per_group(B, h)
  q = chunk_size
  seg = _default_segments(x, segment_ids)
  f32 = jnp.promote_types(x.dtype, jnp.float32)

  pad = (-l) % q
  if pad:  # dt = 0 padding neither decays nor feeds the state.
    zeros = lambda a: jnp.pad(a, [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2))
    x_, dt_, B_, C_ = map(zeros, (x, dt, B, C))
    seg_ = jnp.pad(seg, [(0, 0), (0, pad)], mode="edge")
  else:
    x_, dt_, B_, C_, seg_ = x, dt, B, C, seg

  chunks = lambda a: einops.rearrange(a, "b (c q) ... -> b c q ...", q=q)
  xc = chunks(x_.astype(f32))                                       # b c q h p
  dtc = chunks(dt_.astype(f32))                                     # b c q h
  Bc = einops.rearrange(chunks(B_.astype(f32)), "b c q g n -> b c q g n")
  Cc = chunks(C_.astype(f32))
  segc = chunks(seg_)                                               # b c q
  a = jnp.cumsum(dtc * A.astype(f32)[None, None, None], axis=2)                       # b c q h
  a_last = a[:, :, -1]                                              # b c h
  seg_last = segc[:, :, -1]                                         # b c
  seg_entering = jnp.concatenate([seg[:, :1], seg_last[:, :-1]], axis=1)  # b c

  # 1. Intra-chunk: y_m += Σ_{k≤m, same segment} (C_m·B_k) exp(a_m − a_k) dt_k x_k.
  CB = jnp.einsum("bcmgn,bckgn->bcgmk", Cc, Bc)
  CB = jnp.repeat(CB, r, axis=2)                                    # b c h m k
  a_h = einops.rearrange(a, "b c q h -> b c h q")
  causal = jnp.tril(jnp.ones((q, q), bool))
  same = segc[:, :, :, None] == segc[:, :, None, :]                 # b c m k
  visible = (causal[None, None] & same)[:, :, None]                 # b c 1 m k
  log_decay = jnp.where(visible, a_h[..., :, None] - a_h[..., None, :], -jnp.inf)
  weights = CB * jnp.exp(log_decay) * einops.rearrange(dtc, "b c k h -> b c h 1 k")
  y = jnp.einsum("bchmk,bckhp->bcmhp", weights, xc)

  # 2. Chunk states: Σ_k exp(a_last − a_k) dt_k x_k ⊗ B_k over the chunk's last segment.
  to_end = jnp.where((segc == seg_last[:, :, None])[..., None],
                     jnp.exp(a_last[:, :, None] - a), 0.0) * dtc    # b c q h
  Bh = jnp.repeat(Bc, r, axis=3)                                    # b c q h n
  states = jnp.einsum("bcqh,bcqhp,bcqhn->bchpn", to_end, xc, Bh)

  # 3. Pass states across chunks; a chunk whose last segment differs from the one
  #    entering it contains a boundary and drops the incoming state.
  state0 = (jnp.zeros((b, h, p, n), f32) if initial_state is None
            else initial_state.astype(f32))
  carry_ok = (seg_last == seg_entering).astype(f32)                 # b c

  def pass_state(state, inputs):
    decay_c, ok_c, new_c = inputs
    entering = state
    state = state * (jnp.exp(decay_c) * ok_c[:, None])[:, :, None, None] + new_c
    return state, entering

  move = lambda t: jnp.moveaxis(t, 1, 0)
  final_state, entering = jax.lax.scan(
      pass_state, state0, (move(a_last), move(carry_ok), move(states)))
  entering = move(entering)                                         # b c h p n

  # 4. Contribution of the entering state: exp(a_m) (C_m · S) where m continues it.
  Ch = jnp.repeat(Cc, r, axis=3)                                    # b c q h n
  continues = (segc == seg_entering[:, :, None])[..., None]         # b c q 1
  y = y + jnp.einsum("bcqhn,bchpn->bcqhp", Ch, entering) * (
      jnp.where(continues, jnp.exp(a), 0.0)[..., None])

  y = einops.rearrange(y, "b c q h p -> b (c q) h p")[:, :l]
  if D is not None:
    y = y + D.astype(f32)[None, None, :, None] * x.astype(f32)
  return y.astype(x.dtype), final_state


def ssd_step(state, x, dt, A, B, C, D=None):
  """One decode step. state (b h p n) fp32, x (b h p), dt (b h), B, C (b g n).

  Returns (y (b h p), new state).
  """
  h = x.shape[1]
  r = _heads_per_group(B[:, None], h)
  f32 = jnp.float32
  Bh = jnp.repeat(B, r, axis=1).astype(f32)
  Ch = jnp.repeat(C, r, axis=1).astype(f32)
  dt = dt.astype(f32)
  decay = jnp.exp(dt * A.astype(f32)[None])[:, :, None, None]
  state = state.astype(f32) * decay + (dt[:, :, None, None] * x.astype(f32)[..., None]
                                       * Bh[:, :, None, :])
  y = jnp.einsum("bhpn,bhn->bhp", state, Ch)
  if D is not None:
    y = y + D.astype(f32)[None, :, None] * x.astype(f32)
  return y.astype(x.dtype), state


def ssd(x, dt, A, B, C, D=None, *, chunk_size, initial_state=None, segment_ids=None,
        impl: str = "xla"):
  """The scan the model calls; ``impl`` is ``ModelConfig.ssm_impl``."""
  if impl == "xla":
    return ssd_reference(x, dt, A, B, C, D, chunk_size=chunk_size,
                         initial_state=initial_state, segment_ids=segment_ids)
  from model.kernels import ssd_pallas  # pylint: disable=g-import-not-at-top
  return ssd_pallas.ssd(x, dt, A, B, C, D, chunk_size=chunk_size,
                        initial_state=initial_state, segment_ids=segment_ids,
                        interpret=impl == "pallas_interpret")


def ssd_decode(state, x, dt, A, B, C, D=None, *, impl: str = "xla"):
  """One-token state update the generation loop calls; ``impl`` as in ``ssd``."""
  if impl == "xla":
    return ssd_step(state, x, dt, A, B, C, D)
  from model.kernels import ssd_pallas  # pylint: disable=g-import-not-at-top
  return ssd_pallas.ssd_step(state, x, dt, A, B, C, D,
                             interpret=impl == "pallas_interpret")
