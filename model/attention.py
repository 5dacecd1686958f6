"""Attention cores: softmax(q·kᵀ/√e + mask)·v over packed segments, grouped queries.

Shapes (einops letters): q (b l k g e) with k kv heads and g query heads per kv head,
keys and values (b k s e) heads first (the KV cache's layout), segment ids (b l) / (b s). Query slot i sees key slot j iff
j <= i and both carry the same segment id.

  * ``einsum_attention``  the reference: materialises the (l × s) scores of every head.
    Used with a KV cache (prefill and decode, where s is the cache) and as the oracle.
  * ``chunked_attention`` online softmax over key blocks (Rabe & Staats, arXiv
    2112.05682; FlashAttention, arXiv 2205.14135) in plain XLA, with a custom VJP that
    recomputes each block's probabilities from the saved log-sum-exp: memory
    O(l · block) per head instead of O(l · s), forward and backward. Every platform.
"""

from __future__ import annotations

import functools
import math

import einops
import jax
import jax.numpy as jnp

_MASKED = jnp.finfo(jnp.float32).min


def _acc(q):
  """The accumulation dtype: fp32 (fp64 for fp64 inputs)."""
  return jnp.promote_types(q.dtype, jnp.float32)


def visibility(query_slots, key_slots, query_segments, key_segments):
  """(b l s) bool: causal by slot and within a segment."""
  return ((key_slots[None, None, :] <= query_slots[None, :, None])
          & (query_segments[:, :, None] == key_segments[:, None, :]))


def einsum_attention(q, k, v, visible):
  """q (b l k g e), k, v (b k s e) heads first, visible (b l s) → (b l k g e).

  Each kv head's g query heads merge with the query positions into one dim m = l·g, so
  the scores and all four products are batched matmuls with a single contracting dim,
  which XLA:CPU runs without transposed copies of the scores.
  """
  g = q.shape[3]
  q_heads_first = einops.rearrange(q, "b l k g e -> b k (l g) e")
  visible = einops.repeat(visible, "b l s -> b 1 (l g) s", g=g)
  out = _masked_softmax(q_heads_first, k.astype(q.dtype), v.astype(q.dtype), visible)
  return einops.rearrange(out, "b k (l g) e -> b l k g e", g=g)


@jax.custom_vjp
def _masked_softmax(q, k, v, visible):
  """softmax(q·kᵀ/√e where visible) · v. q (b k m e), k and v (b k s e), visible (b 1 m s).

  Scores and probabilities in the accumulation dtype. The backward is the closed form
  (dS = P ∘ (dP − rowsum(dO ∘ O))) in one elementwise pass over the scores, instead of
  the differentiated max, exp, sum and division of the softmax.
  """
  return _masked_softmax_fwd(q, k, v, visible)[0]


def _masked_softmax_fwd(q, k, v, visible):
  scores = jnp.einsum("bkme,bkse->bkms", q, k,
                      preferred_element_type=_acc(q)) / math.sqrt(q.shape[-1])
  probs = jax.nn.softmax(jnp.where(visible, scores, _MASKED), axis=-1)
  out = jnp.einsum("bkms,bkse->bkme", probs.astype(q.dtype), v)
  return out, (q, k, v, visible, probs, out)


def _masked_softmax_bwd(residuals, d_out):
  q, k, v, visible, probs, out = residuals
  d_probs = jnp.einsum("bkme,bkse->bkms", d_out, v, preferred_element_type=_acc(q))
  row = jnp.sum(d_out.astype(_acc(q)) * out.astype(_acc(q)), axis=-1, keepdims=True)
  d_scores = jnp.where(visible, probs * (d_probs - row), 0.0) / math.sqrt(q.shape[-1])
  d_scores = d_scores.astype(q.dtype)
  d_q = jnp.einsum("bkms,bkse->bkme", d_scores, k)
  d_k = jnp.einsum("bkms,bkme->bkse", d_scores, q)
  d_v = jnp.einsum("bkms,bkme->bkse", probs.astype(v.dtype), d_out)
  return d_q, d_k, d_v, None


_masked_softmax.defvjp(_masked_softmax_fwd, _masked_softmax_bwd)


def chunked_attention(q, k, v, segment_ids, *, block: int):
  """Causal self-attention (l == s, slots 0..l-1) in key blocks of ``block``; the same
  result as ``einsum_attention`` with ``visibility(arange, arange, seg, seg)``. k, v
  (b k s e) heads first, as ``einsum_attention`` takes them."""
  keys_last = lambda a: jnp.swapaxes(a, 1, 2).astype(q.dtype)                # b s k e
  return _chunked(q, keys_last(k), keys_last(v), segment_ids.astype(jnp.int32),
                  min(block, q.shape[1]))


def _key_blocks(k, v, segment_ids, block):
  """Keys, values, segment ids and first slots per block, padded with unseen keys."""
  pad = (-k.shape[1]) % block
  pad_seq = lambda a, value=0: jnp.pad(a, [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2),
                                       constant_values=value)
  blocks = lambda a: einops.rearrange(a, "b (n c) ... -> n b c ...", c=block)
  n = (k.shape[1] + pad) // block
  return (blocks(pad_seq(k)), blocks(pad_seq(v)), blocks(pad_seq(segment_ids, -1)),
          jnp.arange(n) * block)


def _block_scores(q, k_block, seg_block, start, segment_ids):
  """(scores (b l k g c) fp32 with masked entries at _MASKED, visible (b l 1 1 c))."""
  block = k_block.shape[1]
  scores = jnp.einsum("blkge,bcke->blkgc", q, k_block,
                      preferred_element_type=_acc(q)) / math.sqrt(q.shape[-1])
  visible = visibility(jnp.arange(q.shape[1]), start + jnp.arange(block), segment_ids,
                       seg_block)[:, :, None, None, :]
  return jnp.where(visible, scores, _MASKED), visible


def _forward(q, k, v, segment_ids, block):
  """(out (b l k g e), log-sum-exp (b l k g) in the accumulation dtype)."""
  acc_dtype = _acc(q)
  def step(carry, inputs):
    acc, running_max, denominator = carry
    k_block, v_block, seg_block, start = inputs
    scores, visible = _block_scores(q, k_block, seg_block, start, segment_ids)
    new_max = jnp.maximum(running_max, jnp.max(scores, axis=-1))
    probs = jnp.where(visible, jnp.exp(scores - new_max[..., None]), 0.0)
    correction = jnp.exp(running_max - new_max)
    denominator = denominator * correction + jnp.sum(probs, axis=-1)
    acc = acc * correction[..., None] + jnp.einsum(
        "blkgc,bcke->blkge", probs.astype(v.dtype), v_block,
        preferred_element_type=acc_dtype)
    return (acc, new_max, denominator), None

  stats = q.shape[:-1]
  init = (jnp.zeros(q.shape, acc_dtype), jnp.full(stats, _MASKED, acc_dtype),
          jnp.zeros(stats, acc_dtype))
  (acc, running_max, denominator), _ = jax.lax.scan(
      step, init, _key_blocks(k, v, segment_ids, block))
  # Every query sees at least its own key, so the denominator is positive.
  out = (acc / denominator[..., None]).astype(q.dtype)
  return out, running_max + jnp.log(denominator)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _chunked(q, k, v, segment_ids, block):
  return _forward(q, k, v, segment_ids, block)[0]


def _chunked_fwd(q, k, v, segment_ids, block):
  out, lse = _forward(q, k, v, segment_ids, block)
  return out, (q, k, v, segment_ids, out, lse)


def _chunked_bwd(block, residuals, d_out):
  q, k, v, segment_ids, out, lse = residuals
  scale = 1.0 / math.sqrt(q.shape[-1])
  acc_dtype = _acc(q)
  delta = jnp.sum(d_out.astype(acc_dtype) * out.astype(acc_dtype), axis=-1)  # b l k g

  def step(dq, inputs):
    k_block, v_block, seg_block, start = inputs
    scores, visible = _block_scores(q, k_block, seg_block, start, segment_ids)
    probs = jnp.where(visible, jnp.exp(scores - lse[..., None]), 0.0)    # b l k g c
    dv = jnp.einsum("blkgc,blkge->bcke", probs.astype(d_out.dtype), d_out,
                    preferred_element_type=acc_dtype)
    d_probs = jnp.einsum("blkge,bcke->blkgc", d_out, v_block,
                         preferred_element_type=acc_dtype)
    d_scores = probs * (d_probs - delta[..., None]) * scale
    dq = dq + jnp.einsum("blkgc,bcke->blkge", d_scores.astype(q.dtype), k_block,
                         preferred_element_type=acc_dtype)
    dk = jnp.einsum("blkgc,blkge->bcke", d_scores.astype(q.dtype), q,
                    preferred_element_type=acc_dtype)
    return dq, (dk, dv)

  dq, (dk, dv) = jax.lax.scan(step, jnp.zeros(q.shape, acc_dtype),
                              _key_blocks(k, v, segment_ids, block))
  unblock = lambda a: einops.rearrange(a, "n b c ... -> b (n c) ...")[:, :k.shape[1]]
  return (dq.astype(q.dtype), unblock(dk).astype(k.dtype), unblock(dv).astype(v.dtype),
          None)


_chunked.defvjp(_chunked_fwd, _chunked_bwd)
