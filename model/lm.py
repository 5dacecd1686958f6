"""The language model: embeddings, a pattern of residual layers, final norm, LM head.

    params = init(rng, cfg)                       # pytree of arrays (param_dtype)
    axes = logical_axes(cfg)                      # same tree, PartitionSpec leaves
    logits, cache = forward(params, tokens, cfg)  # tokens (b l) → logits (b l vocab) fp32

Layer i is ``x + mixer_i(rms_norm(x))`` with the mixer named by ``cfg.pattern[i]`` and
its sizes by ``cfg.layer_config(i)``. ``params['layers']`` is a list, one dict per layer.

Caches (``init_cache``): ``index`` (slots filled so far), ``segment_ids`` (b s) of every
slot (0 = empty or padding) and one entry per layer: a KV cache for attention, conv
windows and an fp32 SSM state for Mamba, nothing for MLP and linear layers. ``forward`` with a cache
writes the l new tokens at slots [index, index + l): a prefill when l > 1, a decode
step when l == 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from model import layers
from model import mamba as mamba_lib
from model import params as P
from model.partitioning import constrain
from model.config import ModelConfig

# Logical axes of the residual stream between layers: under a mesh whose rules map
# 'length' (e.g. to 'tensor'), the saved layer inputs are split along the sequence too.
RESIDUAL = ("batch", "length", "embed")

_LAYER_SPECS = {
    "attention": layers.attention_specs,
    "mlp": layers.mlp_specs,
    "mamba": mamba_lib.mamba_specs,
    "linear": layers.linear_specs,
}


def param_specs(cfg: ModelConfig) -> dict:
  """The ParamSpec tree: the one declaration of every parameter."""
  specs = {
      "embed": P.ParamSpec((cfg.vocab_size, cfg.d_model), ("vocab", "embed"),
                           P.normal(cfg.init_std)),
      "layers": [_LAYER_SPECS[kind](cfg.layer_config(i))
                 for i, kind in enumerate(cfg.layer_kinds)],
      "final_norm": P.ParamSpec((cfg.d_model,), ("embed",), P.constant(1.0)),
  }
  if not cfg.tie_embeddings:
    specs["lm_head"] = P.ParamSpec((cfg.d_model, cfg.vocab_size), ("embed", "vocab"),
                                   P.normal(cfg.init_std))
  return specs


def init(rng: jax.Array, cfg: ModelConfig) -> dict:
  return P.initialize(param_specs(cfg), rng, jnp.dtype(cfg.param_dtype))


def logical_axes(cfg: ModelConfig) -> dict:
  return P.axes_of(param_specs(cfg))


def abstract_params(cfg: ModelConfig) -> dict:
  return P.abstract(param_specs(cfg), jnp.dtype(cfg.param_dtype))


def count_params(cfg: ModelConfig, *, include_embeddings: bool = True) -> int:
  specs = param_specs(cfg)
  if not include_embeddings:
    specs = {k: v for k, v in specs.items() if k not in ("embed", "lm_head")}
  return sum(math.prod(s.shape) for s in jax.tree.leaves(specs, is_leaf=P.is_spec))


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
  """Training FLOPs per token (forward + backward = 3 × forward).

  Matmuls: 2 per weight per token (the LM head included, the embedding lookup not).
  Causal attention scores and values: 2 · 2 · heads · head_dim · seq_len / 2.
  SSD: intra-chunk C·Bᵀ and its product with x, plus chunk-state in and out.
  """
  matmul_params = count_params(cfg, include_embeddings=False) + cfg.d_model * cfg.vocab_size
  forward = 2.0 * matmul_params
  n_attention = cfg.pattern.count("*")
  forward += n_attention * 2.0 * cfg.n_heads * cfg.head_dim * seq_len
  q = min(cfg.chunk_size, seq_len)
  ssd_flops = (q * cfg.ssm_groups * cfg.ssm_state + q * cfg.ssm_inner
               + 2 * 2 * cfg.ssm_inner * cfg.ssm_state)
  forward += cfg.pattern.count("M") * ssd_flops
  return 3.0 * forward


def check_length(length: int, cfg: ModelConfig, *, what: str) -> None:
  """ValueError if ``length`` positions exceed ``cfg.max_seq_len`` (0: no limit)."""
  if cfg.max_seq_len and length > cfg.max_seq_len:
    raise ValueError(f"{what}: {length} positions exceed model.max_seq_len="
                     f"{cfg.max_seq_len}; cut the input or raise the limit")


def init_cache(cfg: ModelConfig, batch: int, max_len: int, dtype=None) -> dict:
  check_length(max_len, cfg, what=f"a cache of {max_len} slots")
  dtype = jnp.dtype(dtype or cfg.dtype)
  def layer_cache(kind, layer_cfg):
    if kind == "attention":
      return layers.attention_cache(layer_cfg, batch, max_len, dtype)
    if kind == "mamba":
      return mamba_lib.mamba_cache(layer_cfg, batch, dtype)
    return {}
  return {
      "index": jnp.zeros((), jnp.int32),
      "segment_ids": jnp.zeros((batch, max_len), jnp.int32),
      "layers": [layer_cache(kind, cfg.layer_config(i))
                 for i, kind in enumerate(cfg.layer_kinds)],
  }


def keep_rows(new_cache: dict, old_cache: dict, update_B: jax.Array,
              cfg: ModelConfig) -> dict:
  """``new_cache`` where ``update_B``, else the old recurrent state: a decode step in
  which some rows wait. Only Mamba layers are selected (conv windows, SSM state); the KV
  slot a waiting row wrote this step stays, and the caller gives it segment id 0, which no
  real token's query sees."""
  def select(new, old):
    return jnp.where(update_B.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
  layer_caches = [jax.tree.map(select, new, old) if kind == "mamba" else new
                  for kind, new, old in zip(cfg.layer_kinds, new_cache["layers"],
                                            old_cache["layers"])]
  return {**new_cache, "layers": layer_caches}


def _remat(fn, policy: str):
  if policy == "none":
    return fn
  if policy == "full":
    return jax.checkpoint(fn)
  return jax.checkpoint(fn, policy=jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims)


def apply_layer(kind, p, x, cfg, positions, segment_ids, cache=None, cache_index=None,
                cache_segments=None):
  """One residual layer ``x + mixer(rms_norm(x))`` of ``kind`` with the layer's own
  config (``cfg.layer_config(i)``). Returns (x (b l d), the layer's cache or None)."""
  h = layers.rms_norm(x, p["norm"], cfg.norm_eps)
  if kind == "attention":
    out, cache = layers.attention(p, h, cfg, positions=positions, segment_ids=segment_ids,
                                  cache=cache, cache_index=cache_index,
                                  cache_segment_ids=cache_segments)
  elif kind == "mamba":
    out, cache = mamba_lib.mamba(p, h, cfg, segment_ids=segment_ids, cache=cache)
  elif kind == "mlp":
    out = layers.mlp(p, h, cfg)
  else:
    out = layers.linear(p, h, cfg)
  return x + out, cache


def forward(params: dict, tokens: jax.Array, cfg: ModelConfig, *, positions=None,
            segment_ids=None, cache=None, return_hidden: bool = False):
  """Logits for ``tokens`` (b l) int32.

  positions (b l): RoPE positions; default 0..l-1, or continuing the cache index.
  segment_ids (b l): packed-document ids; 0 marks padding; default all ones.
  cache: from ``init_cache``; when given the updated cache is returned, else None.
  return_hidden: also return the final-normed hidden states (b l d).
  """
  b, l = tokens.shape
  dtype = jnp.dtype(cfg.dtype)
  check_length(l if cache is None else cache["segment_ids"].shape[1], cfg,
               what=f"tokens {tokens.shape}" if cache is None else "the cache's slots")
  if segment_ids is None:
    segment_ids = jnp.ones((b, l), jnp.int32)
  if positions is None:
    start = 0 if cache is None else cache["index"]
    positions = jnp.broadcast_to(start + jnp.arange(l, dtype=jnp.int32), (b, l))

  cache_index = cache_segments = None
  if cache is not None:
    cache_index = cache["index"]
    cache_segments = jax.lax.dynamic_update_slice(
        cache["segment_ids"], segment_ids.astype(jnp.int32), (0, cache_index))

  x = constrain(jnp.take(params["embed"], tokens, axis=0).astype(dtype), RESIDUAL)
  new_layer_caches = []
  for i, kind in enumerate(cfg.layer_kinds):
    layer_fn = _remat(
        lambda p, x, c, kind=kind, layer_cfg=cfg.layer_config(i): apply_layer(
            kind, p, x, layer_cfg, positions, segment_ids, c, cache_index, cache_segments),
        cfg.remat)
    x, layer_cache = layer_fn(params["layers"][i], x,
                              None if cache is None else cache["layers"][i])
    x = constrain(x, RESIDUAL)
    new_layer_caches.append(layer_cache if layer_cache is not None else {})

  hidden = layers.rms_norm(x, params["final_norm"], cfg.norm_eps)
  head = params["embed"].T if cfg.tie_embeddings else params["lm_head"]
  logits = layers.dense(hidden, head.astype(dtype), preferred_element_type=jnp.float32)
  logits = constrain(logits, ("batch", None, "vocab"))
  new_cache = None
  if cache is not None:
    new_cache = {"index": cache_index + l, "segment_ids": cache_segments,
                 "layers": new_layer_caches}
  if return_hidden:
    return logits, new_cache, hidden
  return logits, new_cache
