"""Local and pooling-augmented blockwise attention (Xiong et al., arXiv 2209.10052), causal.

The paper adapts a short-context model to long inputs by replacing full attention with
non-overlapping block attention and, in the top layers, a second branch over keys and
values average-pooled along the sequence; the branch's output is added to the block
attention's. Its model is an encoder; here the decoder version: a layer whose span
(``ModelConfig.attention`` / ``layer_attention``) is

  'local'   lets query slot i see the earlier keys of its block: slots
            [⌊i/B⌋·B, i], B = ``local_block``;
  'pooled'  adds the pooled branch: keys and values averaged over windows
            [t·S, t·S + K) (K = ``pool_kernel``, S = ``pool_stride``; the paper: 18 and
            12), of which query i sees the windows that end in completed blocks,
            t·S + K <= ⌊i/B⌋·B. Queries of the first block see no window: their branch
            adds 0. The branch shares the layer's projections (no new weights), so a
            checkpoint trained with full attention starts from its own weights.

Both branches respect packed segments (a window that spans two segments is seen by
neither). Shapes as in ``model/attention.py``: q (b l k g e), keys and values (b k s e).

Two paths, equal where they overlap (tests/test_blockwise.py):
  * ``sequence_attention`` the whole sequence (training, scoring): blocks and windows by
    slot. The local branch is the layer's causal attention core (einsum, chunked or the
    platform's fused kernel) run on rows of one block, O(l·B) work; the pooled branch
    is ``attention.chunked_attention`` over the ~l/S summaries, memory O(l · chunk) and
    work O(l²/S), 1/S of full attention's.
  * ``cache_attention`` through a decode cache: the raw keys and values of every slot
    (the local branch masks them to the query's block) and the summaries of completed
    windows (``pooled_k``, ``pooled_v``, ``pooled_segments``), each written once, when
    the token that ends its window arrives. Here blocks and windows follow each row's
    token positions, so a left-padded prompt decodes as it would alone. A row's tokens
    must fill consecutive slots (the generation loops do; paused rows do not, which is
    why tool decoding refuses these layers).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import einops

from model import attention as attention_lib
from model.config import ModelConfig


def sequence_attention(q, k, v, segment_ids, cfg: ModelConfig, core):
  """The layer's attention over a whole sequence (slots 0..l-1). ``core(q, k, v,
  segment_ids)`` is causal self-attention; returns (b l k g e)."""
  out = local_attention(q, k, v, segment_ids, block=cfg.local_block, core=core)
  if cfg.attention == "pooled":
    out = out + pooled_attention(q, k, v, segment_ids, cfg)
  return out


def local_attention(q, k, v, segment_ids, *, block: int, core):
  """Causal attention within blocks of ``block`` slots: ``core`` on the sequence cut into
  rows of one block each. A length that ``block`` does not divide is padded with a
  segment of its own (-1) whose outputs are dropped."""
  b, l = q.shape[:2]
  if l <= block:
    return core(q, k, v, segment_ids)
  pad = -l % block
  q = jnp.pad(q, [(0, 0), (0, pad)] + [(0, 0)] * 3)
  k, v = (jnp.pad(a, [(0, 0), (0, 0), (0, pad), (0, 0)]) for a in (k, v))
  segment_ids = jnp.pad(segment_ids, [(0, 0), (0, pad)], constant_values=-1)
  out = core(einops.rearrange(q, "b (n c) k g e -> (b n) c k g e", c=block),
             *(einops.rearrange(a, "b k (n c) e -> (b n) k c e", c=block) for a in (k, v)),
             einops.rearrange(segment_ids, "b (n c) -> (b n) c", c=block))
  return einops.rearrange(out, "(b n) c k g e -> b (n c) k g e", b=b)[:, :l]


def num_windows(length: int, cfg: ModelConfig) -> int:
  """Pooling windows that lie in a sequence of ``length`` slots."""
  return 0 if length < cfg.pool_kernel else (length - cfg.pool_kernel) // cfg.pool_stride + 1


def window_ends(count: int, cfg: ModelConfig) -> np.ndarray:
  """(count,) the slot after each window's last."""
  return np.arange(count) * cfg.pool_stride + cfg.pool_kernel


def pooled_summaries(k, v, segment_ids, cfg: ModelConfig):
  """The pooled branch's keys and values (b k w e), their segments (b w; -1 for a window
  that spans two) and key slots (w): a window is seen from the first slot of the block
  after the one it ends in."""
  count = num_windows(k.shape[2], cfg)
  def average(a):
    acc = jnp.promote_types(a.dtype, jnp.float32)
    total = jax.lax.reduce_window(a.astype(acc), np.zeros((), acc), jax.lax.add,
                                  (1, 1, cfg.pool_kernel, 1), (1, 1, cfg.pool_stride, 1),
                                  "VALID")
    return (total / cfg.pool_kernel).astype(a.dtype)
  ends = window_ends(count, cfg)
  first, last = segment_ids[:, ends - cfg.pool_kernel], segment_ids[:, ends - 1]
  segments = jnp.where(first == last, first, -1)
  seen_from = -(-ends // cfg.local_block) * cfg.local_block
  return average(k), average(v), segments, jnp.asarray(seen_from, jnp.int32)


def pooled_attention(q, k, v, segment_ids, cfg: ModelConfig):
  """The pooled branch over a whole sequence: chunked attention over the summaries."""
  if num_windows(k.shape[2], cfg) == 0:
    return jnp.zeros_like(q)
  pooled_k, pooled_v, segments, seen_from = pooled_summaries(k, v, segment_ids, cfg)
  return attention_lib.chunked_attention(q, pooled_k, pooled_v, segment_ids,
                                         block=cfg.attention_block, key_slots=seen_from,
                                         key_segments=segments)


# --------------------------------------------------------------------------- decode cache


def pooled_cache(cfg: ModelConfig, batch: int, max_len: int, dtype) -> dict:
  """Room for every window of ``max_len`` positions; segment 0 marks an unwritten one."""
  count = max(num_windows(max_len, cfg), 1)
  shape = (batch, cfg.n_kv_heads, count, cfg.head_dim)
  return {"pooled_k": jnp.zeros(shape, dtype), "pooled_v": jnp.zeros(shape, dtype),
          "pooled_segments": jnp.zeros((batch, count), jnp.int32)}


def _write_windows(cache: dict, slots, positions, segment_ids, cfg: ModelConfig) -> dict:
  """The summaries of the windows that the new tokens end, written into ``cache``.

  New token j of row b (slot ``slots[j]``, position ``positions[b, j]``) ends window t
  when position + 1 = t·S + K; its window is the K slots up to its own. Padding tokens
  (segment 0) end none.
  """
  count = cache["pooled_segments"].shape[1]
  ends_window = ((positions + 1 - cfg.pool_kernel) % cfg.pool_stride == 0) & (
      positions + 1 >= cfg.pool_kernel) & (segment_ids != 0)
  window_BL = jnp.where(ends_window, (positions + 1 - cfg.pool_kernel) // cfg.pool_stride,
                        count)                                  # count: dropped
  window_slots_LK = jnp.maximum(
      slots[:, None] - cfg.pool_kernel + 1 + jnp.arange(cfg.pool_kernel)[None, :], 0)
  def average(a):                                            # (b k s e) → (b k l e)
    acc = jnp.promote_types(a.dtype, jnp.float32)
    return jnp.mean(a[:, :, window_slots_LK].astype(acc), axis=3).astype(a.dtype)

  def write(pooled_KWE, window_L, value_KLE):
    return pooled_KWE.at[:, window_L].set(value_KLE.astype(pooled_KWE.dtype), mode="drop")

  return {
      "pooled_k": jax.vmap(write)(cache["pooled_k"], window_BL, average(cache["k"])),
      "pooled_v": jax.vmap(write)(cache["pooled_v"], window_BL, average(cache["v"])),
      "pooled_segments": jax.vmap(lambda s, w, g: s.at[w].set(g, mode="drop"))(
          cache["pooled_segments"], window_BL, segment_ids.astype(jnp.int32)),
  }


def cache_attention(q, cache: dict, *, slots, positions, segment_ids, cache_segments,
                    cfg: ModelConfig):
  """The layer's attention for l new tokens whose keys and values ``cache`` already holds
  at ``slots`` (l). positions, segment_ids (b l); cache_segments (b s) every slot's
  segment. Returns (out (b l k g e), the cache with the new windows' summaries)."""
  key_slots = jnp.arange(cache["k"].shape[2])
  block_start_BL1 = (slots[None, :] - positions % cfg.local_block)[..., None]
  local_visible = (attention_lib.visibility(slots, key_slots, segment_ids, cache_segments)
                   & (key_slots[None, None, :] >= block_start_BL1))
  out = attention_lib.einsum_attention(q, cache["k"], cache["v"], local_visible)
  if cfg.attention != "pooled":
    return out, cache
  cache = {**cache, **_write_windows(cache, slots, positions, segment_ids, cfg)}
  count = cache["pooled_segments"].shape[1]
  first_block_position_BL1 = (positions - positions % cfg.local_block)[..., None]
  pooled_visible = ((cache["pooled_segments"][:, None, :] == segment_ids[:, :, None])
                    & (jnp.asarray(window_ends(count, cfg))[None, None, :]
                       <= first_block_position_BL1))
  pooled = attention_lib.einsum_attention(q, cache["pooled_k"], cache["pooled_v"],
                                          pooled_visible)
  sees_any = jnp.any(pooled_visible, axis=-1)[:, :, None, None, None]
  return out + jnp.where(sees_any, pooled, 0.0).astype(out.dtype), cache
