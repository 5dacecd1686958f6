"""Transformer pieces: RMSNorm, rotary embeddings, GQA attention with a KV cache, MLPs.

Every function is pure: ``f(params, x, cfg, ...)``. Shapes use einops letters:
b batch, l query length, s key length, d model width, h query heads, k kv heads,
g query heads per kv head, e head dim, f MLP width.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from model import attention as attention_lib
from model import blockwise
from model import params as P
from model.partitioning import constrain
from model.config import ModelConfig


def dense(x, w, *, contract: int = 1, preferred_element_type=None):
  """``x (... i) · w (i o)``: the last ``contract`` dims of x against the first of w.

  The leading dims of x (batch, length) are flattened into one token dim and both sides
  into matrices, so XLA sees one 2-D dot with a single contracting dim. Its weight
  gradient, x^T · dy over the tokens, then runs as a transposed-operand matmul; an einsum
  over (b l) contracts two dims and makes XLA:CPU copy a transposed activation first,
  which is slower (bench/RESULTS.md).
  """
  lead, inner = x.shape[:x.ndim - contract], w.shape[:contract]
  if x.shape[x.ndim - contract:] != inner:
    raise ValueError(f"dense: x {x.shape} does not end with w's input dims {inner}")
  out = jnp.matmul(x.reshape(math.prod(lead), math.prod(inner)),
                   w.reshape(math.prod(inner), -1),
                   preferred_element_type=preferred_element_type)
  return out.reshape(lead + w.shape[contract:])


def rms_norm(x, weight, eps):
  """RMSNorm in fp32, output in x's dtype. x (... d), weight (d)."""
  x32 = x.astype(jnp.float32)
  x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
  weight = weight.astype(jnp.float32).reshape((1,) * (x.ndim - 1) + (-1,))
  return (weight * x32).astype(x.dtype)


# ---------------------------------------------------------------------------- rotary


def rope_inverse_frequencies(cfg: ModelConfig) -> jax.Array:
  """(e/2,) inverse frequencies, with Llama-3 long-context scaling when configured."""
  e = cfg.head_dim
  inv_freq = 1.0 / (cfg.rope_theta ** (jnp.arange(0, e, 2, dtype=jnp.float32) / e))
  if cfg.rope_llama3_scaling is None:
    return inv_freq
  factor, low_ff, high_ff, old_context = cfg.rope_llama3_scaling
  wavelen = 2 * math.pi / inv_freq
  low_freq_wavelen = old_context / low_ff
  high_freq_wavelen = old_context / high_ff
  scaled = jnp.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
  smooth = (old_context / wavelen - low_ff) / (high_ff - low_ff)
  smoothed = (1 - smooth) * scaled / factor + smooth * scaled
  is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
  return jnp.where(is_medium, smoothed, scaled)


def apply_rope(x, positions, inv_freq):
  """Rotate-half RoPE (the Hugging Face Llama convention). x (b l h e), positions (b l)."""
  angles = positions.astype(jnp.float32)[:, :, None] * inv_freq[None, None, :]  # b l e/2
  angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]   # b l 1 e
  x32 = x.astype(jnp.float32)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
  cos, sin = jnp.cos(angles), jnp.sin(angles)
  return (x32 * cos + rotated * sin).astype(x.dtype)


# ------------------------------------------------------------------------- attention


def attention_specs(cfg: ModelConfig) -> dict:
  d, h, k, e = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
  std = P.normal(cfg.init_std)
  specs = {
      "norm": P.ParamSpec((d,), ("embed",), P.constant(1.0)),
      "q": P.ParamSpec((d, h, e), ("embed", "q_heads", "head_dim"), std),
      "k": P.ParamSpec((d, k, e), ("embed", "kv_heads", "head_dim"), std),
      "v": P.ParamSpec((d, k, e), ("embed", "kv_heads", "head_dim"), std),
      "o": P.ParamSpec((h, e, d), ("q_heads", "head_dim", "embed"), std),
  }
  if cfg.qkv_bias:
    specs["q_bias"] = P.ParamSpec((h, e), ("q_heads", "head_dim"), P.constant(0.0))
    specs["k_bias"] = P.ParamSpec((k, e), ("kv_heads", "head_dim"), P.constant(0.0))
    specs["v_bias"] = P.ParamSpec((k, e), ("kv_heads", "head_dim"), P.constant(0.0))
  return specs


def attention_cache(cfg: ModelConfig, batch: int, max_len: int, dtype) -> dict:
  """Keys and values (b k s e), heads first as the attention cores read them (no copy per
  decoded token); a pooled layer's summaries besides (``blockwise.pooled_cache``)."""
  shape = (batch, cfg.n_kv_heads, max_len, cfg.head_dim)
  cache = {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
  if cfg.attention == "pooled":
    cache.update(blockwise.pooled_cache(cfg, batch, max_len, dtype))
  return cache


def attention(p, x, cfg: ModelConfig, *, positions, segment_ids, cache=None,
              cache_index=None, cache_segment_ids=None):
  """Causal GQA self-attention over packed segments, optionally through a KV cache:
  ``attention_heads`` then the output projection. Returns (out (b l d), cache or None)."""
  heads_BLHE, cache = attention_heads(p, x, cfg, positions=positions,
                                      segment_ids=segment_ids, cache=cache,
                                      cache_index=cache_index,
                                      cache_segment_ids=cache_segment_ids)
  return dense(heads_BLHE, p["o"].astype(x.dtype), contract=2), cache


def attention_heads(p, x, cfg: ModelConfig, *, positions, segment_ids, cache=None,
                    cache_index=None, cache_segment_ids=None):
  """Each query head's attention output before the output projection.

  x (b l d); positions, segment_ids (b l). Without a cache, query i sees key j iff
  j <= i and both carry the same segment id. With a cache, the l new keys are written at
  slots [cache_index, cache_index + l) and ``cache_segment_ids`` (b s) holds every
  slot's segment id (0 for empty slots), already updated with the new tokens.
  Returns (heads (b l h e), updated cache or None).
  """
  dtype = x.dtype
  b, l = x.shape[:2]
  w = lambda name: p[name].astype(dtype)
  q = constrain(dense(x, w("q")), ("batch", None, "q_heads", None))           # b l h e
  k = constrain(dense(x, w("k")), ("batch", None, "kv_heads", None))          # b l k e
  v = constrain(dense(x, w("v")), ("batch", None, "kv_heads", None))
  if cfg.qkv_bias:
    q, k, v = (q + w("q_bias")[None, None], k + w("k_bias")[None, None],
               v + w("v_bias")[None, None])
  if cfg.use_rope:
    inv_freq = rope_inverse_frequencies(cfg)
    q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
  k, v = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)                  # b k l e
  q = q.reshape(b, l, cfg.n_kv_heads, cfg.n_heads // cfg.n_kv_heads, cfg.head_dim)

  if cache is None:
    core = causal_core(cfg)
    if cfg.attention == "full":
      out = core(q, k, v, segment_ids)
    else:
      out = blockwise.sequence_attention(q, k, v, segment_ids, cfg, core)
  else:
    cache = {**cache,
             "k": jax.lax.dynamic_update_slice(cache["k"], k.astype(cache["k"].dtype),
                                               (0, 0, cache_index, 0)),
             "v": jax.lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype),
                                               (0, 0, cache_index, 0))}
    query_slots = cache_index + jnp.arange(l)
    if cfg.attention == "full":
      visible = attention_lib.visibility(query_slots, jnp.arange(cache["k"].shape[2]),
                                         segment_ids, cache_segment_ids)
      out = attention_lib.einsum_attention(q, cache["k"], cache["v"], visible)
    else:
      out, cache = blockwise.cache_attention(
          q, cache, slots=query_slots, positions=positions, segment_ids=segment_ids,
          cache_segments=cache_segment_ids, cfg=cfg)
  return out.reshape(b, l, cfg.n_heads, cfg.head_dim), cache


def causal_core(cfg: ModelConfig):
  """``core(q, k, v, segment_ids)``: causal self-attention over slots 0..l-1 by
  ``cfg.attention_impl``."""
  if cfg.attention_impl == "einsum":
    def core(q, k, v, segment_ids):
      slots = jnp.arange(q.shape[1])
      return attention_lib.einsum_attention(
          q, k, v, attention_lib.visibility(slots, slots, segment_ids, segment_ids))
    return core
  impl = {"chunked": attention_lib.chunked_attention,
          "flash": attention_lib.flash_attention}[cfg.attention_impl]
  return functools.partial(impl, block=cfg.attention_block)


# ------------------------------------------------------------------------------- MLP


def mlp_specs(cfg: ModelConfig) -> dict:
  d, f = cfg.d_model, cfg.mlp_dim
  std = P.normal(cfg.init_std)
  specs = {
      "norm": P.ParamSpec((d,), ("embed",), P.constant(1.0)),
      "up": P.ParamSpec((d, f), ("embed", "mlp"), std),
      "down": P.ParamSpec((f, d), ("mlp", "embed"), std),
  }
  if cfg.mlp_activation == "swiglu":
    specs["gate"] = P.ParamSpec((d, f), ("embed", "mlp"), std)
  return specs


def mlp(p, x, cfg: ModelConfig):
  """SwiGLU ``down(silu(gate x) * up x)`` or squared ReLU ``down(relu(up x)^2)``."""
  return dense(mlp_hidden(p, x, cfg), p["down"].astype(x.dtype))


def mlp_hidden(p, x, cfg: ModelConfig):
  """The activations the down projection reads (b l f)."""
  w = lambda name: p[name].astype(x.dtype)
  up = dense(x, w("up"))                                                       # b l f
  if cfg.mlp_activation == "swiglu":
    hidden = jax.nn.silu(dense(x, w("gate"))) * up
  else:
    hidden = jnp.square(jax.nn.relu(up))
  return constrain(hidden, ("batch", None, "mlp"))


# ---------------------------------------------------------------------------- linear


def linear_specs(cfg: ModelConfig) -> dict:
  """A layer whose mixer is one d × d matrix: attention or an MLP replaced by a linear
  map (Llama-Nemotron's Puzzle, arXiv 2505.00949). Both dims are the model width."""
  d = cfg.d_model
  return {"norm": P.ParamSpec((d,), ("embed",), P.constant(1.0)),
          "w": P.ParamSpec((d, d), ("embed", "embed"), P.normal(cfg.init_std))}


def linear(p, x, cfg: ModelConfig):
  del cfg
  return dense(x, p["w"].astype(x.dtype))
