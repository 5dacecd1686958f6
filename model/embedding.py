"""Sentence embeddings from the language model: mean-pooled final hidden states, the
query embeddings FusionFactory's routers and template retrieval use (arXiv 2507.10540
embeds queries with a sentence encoder; here one of our own models is the encoder)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from model import lm
from model.config import ModelConfig


def mean_pooled(params: dict, tokens_BL: jax.Array, mask_BL: jax.Array,
                cfg: ModelConfig) -> jax.Array:
  """(B, D) fp32: the mean of the final-normed hidden states over each row's real tokens
  (``mask_BL`` 1; padding is its own segment, so it is never attended to)."""
  mask_BL = mask_BL.astype(jnp.int32)
  _, _, hidden_BLD = lm.forward(params, tokens_BL, cfg, segment_ids=mask_BL,
                                return_hidden=True)
  weights_BL = mask_BL.astype(jnp.float32)
  hidden_BLD = jnp.where(mask_BL[..., None] > 0, hidden_BLD.astype(jnp.float32), 0.0)
  total_BD = hidden_BLD.sum(axis=1)
  return total_BD / jnp.maximum(weights_BL.sum(axis=1, keepdims=True), 1.0)
