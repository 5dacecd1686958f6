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
    Self-attention by default; given ``key_slots`` and ``key_segments`` any keys that
    "query slot i sees key j iff key_slots[j] <= i and the segments agree" describes
    (the pooled summaries of ``model/blockwise.py``). A query that sees no key gets 0.
  * ``flash_attention``   the fused kernel of the compile target, chosen with
    ``jax.lax.platform_dependent``: on TPU the Pallas splash attention kernel (Mosaic;
    block-sparse causal mask plus segment ids), on CUDA cuDNN's fused attention through
    ``jax.nn.dot_product_attention`` (causal, segments as a (b 1 l s) mask) for the
    head sizes it takes (``cudnn_head_dim``), elsewhere ``chunked_attention``. A CPU
    host compiles the TPU kernel for a topology it does not have. On JAX's current mesh
    (``jax.set_mesh``) it runs under ``shard_map`` over rows and kv heads.
"""

from __future__ import annotations

import functools
import math

import einops
import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu.splash_attention import (
    splash_attention_kernel as splash, splash_attention_mask as splash_mask)

from model import partitioning

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
  if q.shape[1] == 1:
    return _single_query_attention(q, k, v, visible)
  g = q.shape[3]
  q_heads_first = einops.rearrange(q, "b l k g e -> b k (l g) e")
  visible = einops.repeat(visible, "b l s -> b 1 (l g) s", g=g)
  out = _masked_softmax(q_heads_first, k.astype(q.dtype), v.astype(q.dtype), visible)
  return einops.rearrange(out, "b k (l g) e -> b l k g e", g=g)


def _single_query_attention(q, k, v, visible):
  """``einsum_attention`` for one query per row (a decode step): q (b 1 k g e).

  The scores are an elementwise product reduced over e instead of b·k batched matmuls
  of g rows each, which XLA:CPU runs at several times their FLOP cost; the product
  fuses into one reduction loop (bench/RESULTS.md).
  The output stays a batched matmul: as a product reduced over s it was slower.
  """
  acc = _acc(q)
  q_bkg1e = einops.rearrange(q, "b 1 k g e -> b k g 1 e").astype(acc)
  scores_bkgs = jnp.sum(q_bkg1e * k[:, :, None].astype(acc), axis=-1) / math.sqrt(q.shape[-1])
  visible_b11s = einops.rearrange(visible, "b 1 s -> b 1 1 s")
  probs_bkgs = jax.nn.softmax(jnp.where(visible_b11s, scores_bkgs, _MASKED), axis=-1)
  out_bkge = jnp.einsum("bkgs,bkse->bkge", probs_bkgs.astype(q.dtype), v.astype(q.dtype))
  return einops.rearrange(out_bkge, "b k g e -> b 1 k g e")


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


def chunked_attention(q, k, v, segment_ids, *, block: int, key_slots=None,
                      key_segments=None):
  """Attention of the queries at slots 0..l-1 in key blocks of ``block``; the same
  result as ``einsum_attention`` with ``visibility(arange(l), key_slots, segment_ids,
  key_segments)``. k, v (b k s e) heads first, as ``einsum_attention`` takes them.
  Default: causal self-attention (l == s, key_slots 0..s-1, key_segments the queries').
  key_slots (s) int: the first query slot that may see each key; key_segments (b s)."""
  keys_last = lambda a: jnp.swapaxes(a, 1, 2).astype(q.dtype)                # b s k e
  s = k.shape[2]
  key_slots = jnp.arange(s) if key_slots is None else key_slots
  key_segments = segment_ids if key_segments is None else key_segments
  return _chunked(q, keys_last(k), keys_last(v), segment_ids.astype(jnp.int32),
                  key_slots.astype(jnp.int32), key_segments.astype(jnp.int32),
                  max(1, min(block, s)))


_UNSEEN_SLOT = jnp.iinfo(jnp.int32).max   # the slot of a padding key: no query sees it


def _key_blocks(k, v, key_slots, key_segments, block):
  """Keys, values, slots and segment ids per block, padded with unseen keys."""
  pad = (-k.shape[1]) % block
  pad_seq = lambda a, value=0: jnp.pad(a, [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2),
                                       constant_values=value)
  blocks = lambda a: einops.rearrange(a, "b (n c) ... -> n b c ...", c=block)
  slots = jnp.pad(key_slots, (0, pad), constant_values=_UNSEEN_SLOT)
  return (blocks(pad_seq(k)), blocks(pad_seq(v)),
          einops.rearrange(slots, "(n c) -> n c", c=block),
          blocks(pad_seq(key_segments, -1)))


def _block_scores(q, k_block, slot_block, seg_block, segment_ids):
  """(scores (b l k g c) fp32 with masked entries at _MASKED, visible (b l 1 1 c))."""
  scores = jnp.einsum("blkge,bcke->blkgc", q, k_block,
                      preferred_element_type=_acc(q)) / math.sqrt(q.shape[-1])
  visible = visibility(jnp.arange(q.shape[1]), slot_block, segment_ids,
                       seg_block)[:, :, None, None, :]
  return jnp.where(visible, scores, _MASKED), visible


def _forward(q, k, v, segment_ids, key_slots, key_segments, block):
  """(out (b l k g e), log-sum-exp (b l k g) in the accumulation dtype; 0 and 0 for a
  query that sees no key)."""
  acc_dtype = _acc(q)
  def step(carry, inputs):
    acc, running_max, denominator = carry
    k_block, v_block, slot_block, seg_block = inputs
    scores, visible = _block_scores(q, k_block, slot_block, seg_block, segment_ids)
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
      step, init, _key_blocks(k, v, key_slots, key_segments, block))
  seen = denominator > 0
  safe = jnp.where(seen, denominator, 1.0)
  out = jnp.where(seen[..., None], acc / safe[..., None], 0.0).astype(q.dtype)
  return out, jnp.where(seen, running_max + jnp.log(safe), 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def _chunked(q, k, v, segment_ids, key_slots, key_segments, block):
  return _forward(q, k, v, segment_ids, key_slots, key_segments, block)[0]


def _chunked_fwd(q, k, v, segment_ids, key_slots, key_segments, block):
  out, lse = _forward(q, k, v, segment_ids, key_slots, key_segments, block)
  return out, (q, k, v, segment_ids, key_slots, key_segments, out, lse)


def _chunked_bwd(block, residuals, d_out):
  q, k, v, segment_ids, key_slots, key_segments, out, lse = residuals
  scale = 1.0 / math.sqrt(q.shape[-1])
  acc_dtype = _acc(q)
  delta = jnp.sum(d_out.astype(acc_dtype) * out.astype(acc_dtype), axis=-1)  # b l k g

  def step(dq, inputs):
    k_block, v_block, slot_block, seg_block = inputs
    scores, visible = _block_scores(q, k_block, slot_block, seg_block, segment_ids)
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
                              _key_blocks(k, v, key_slots, key_segments, block))
  unblock = lambda a: einops.rearrange(a, "n b c ... -> b (n c) ...")[:, :k.shape[1]]
  return (dq.astype(q.dtype), unblock(dk).astype(k.dtype), unblock(dv).astype(v.dtype),
          None, None, None)


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


# -------------------------------------------------------------- fused kernels per platform


def flash_attention(q, k, v, segment_ids, *, block: int, interpret: bool = False):
  """Causal self-attention by the compile target's fused kernel; the contract of
  ``chunked_attention``. ``interpret=True`` runs the TPU kernel in Pallas interpret mode
  on any platform (tests)."""
  def local(q, k, v, segment_ids):
    segment_ids = segment_ids.astype(jnp.int32)
    if interpret:
      return splash_attention(q, k, v, segment_ids, block=block, interpret=True)
    # cuDNN's call checks for cuDNN when traced, so CUDA is a target only where present,
    # and for head sizes its fused kernel takes (else CUDA runs the chunked kernel).
    cuda = ({"cuda": functools.partial(cudnn_attention, implementation="cudnn")}
            if _has_cuda() and cudnn_head_dim(q.shape[-1]) else {})
    return jax.lax.platform_dependent(
        q, k, v, segment_ids, tpu=functools.partial(splash_attention, block=block),
        default=functools.partial(chunked_attention, block=block), **cuda)

  if partitioning.mesh_rules() is None:
    return local(q, k, v, segment_ids)
  rows = partitioning.mesh_axes("batch", q.shape[0])
  heads = partitioning.mesh_axes("kv_heads", k.shape[1])
  if set(partitioning.as_tuple(heads)) & set(partitioning.as_tuple(rows)):
    heads = None
  return partitioning.shard_map_layouts(
      lambda *args: (local(*args),), (q, k, v, segment_ids),
      ("b l k g e", "b k s e", "b k s e", "b l"), ("b l k g e",), {"b": rows, "k": heads})[0]


def cudnn_head_dim(head_dim: int) -> bool:
  """Whether cuDNN's fused attention takes heads of ``head_dim`` on every GPU it runs
  on: a multiple of 8, at most 128 (256 from Hopper on)."""
  return head_dim % 8 == 0 and head_dim <= 128


@functools.cache
def _has_cuda() -> bool:
  try:
    return bool(jax.devices("cuda"))
  except RuntimeError:
    return False


def splash_attention(q, k, v, segment_ids, *, block: int, interpret: bool = False):
  """The TPU Pallas splash attention kernel: one multi-query kernel (the g query heads
  of a kv head against its keys) mapped over rows and kv heads. Queries and keys are
  tiled by ``block`` (a multiple of 128, TPU lanes; at most the length rounded up to
  128); a ragged end is padded with a segment of its own that no real query sees."""
  _, length, _, g, e = q.shape
  if block % 128:
    raise ValueError(f"attention_block={block} must be a multiple of 128 for the TPU "
                     "splash attention kernel")
  block = min(block, -(-length // 128) * 128)
  pad = -length % block
  padded = length + pad
  sizes = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block,
                            block_q_dkv=block, block_kv_dkv=block,
                            block_kv_dkv_compute=block, block_q_dq=block, block_kv_dq=block)
  causal = splash_mask.MultiHeadMask([splash_mask.CausalMask((padded, padded))] * g)
  kernel = splash.make_splash_mqa_single_device(mask=causal, block_sizes=sizes,
                                                interpret=interpret)
  pad_length = lambda a, axis, value=0: jnp.pad(
      a, [(0, pad if i == axis else 0) for i in range(a.ndim)], constant_values=value)
  queries = einops.rearrange(pad_length(q, 1), "b l k g e -> b k g l e") / math.sqrt(e)
  keys, values = (pad_length(a, 2).astype(q.dtype) for a in (k, v))
  segments = pad_length(segment_ids, 1, jnp.iinfo(jnp.int32).min)

  def row(q_row, k_row, v_row, segments):               # (k g l e), (k s e), (k s e), (l)
    ids = splash.SegmentIds(q=segments, kv=segments)
    return jax.vmap(lambda qh, kh, vh: kernel(qh, kh, vh, segment_ids=ids))(
        q_row, k_row, v_row)

  out = jax.vmap(row)(queries, keys, values, segments)
  return einops.rearrange(out[..., :length, :], "b k g l e -> b l k g e").astype(q.dtype)


def cudnn_attention(q, k, v, segment_ids, *, implementation: str = "cudnn"):
  """``jax.nn.dot_product_attention`` (cuDNN's fused flash attention on CUDA; 'xla'
  gives the same call in plain XLA), causal, with packed segments as a boolean
  (b 1 l s) mask. The mask costs one byte per (query, key) pair and row, not per head."""
  g = q.shape[3]
  queries = einops.rearrange(q, "b l k g e -> b l (k g) e")
  keys, values = (einops.rearrange(a, "b k s e -> b s k e").astype(q.dtype) for a in (k, v))
  same_segment = (segment_ids[:, None, :, None] == segment_ids[:, None, None, :])
  out = jax.nn.dot_product_attention(queries, keys, values, mask=same_segment,
                                     is_causal=True, implementation=implementation)
  return einops.rearrange(out, "b l (k g) e -> b l k g e", g=g)
