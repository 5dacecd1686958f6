"""Masked next-token cross-entropy, with an optional z-loss, as a step-ready loss_fn."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from model import lm
from model.config import ModelConfig

# (params, batch, rng) -> (loss, aux). ``loss`` is a mean over the batch; aux holds scalar
# metrics and may hold 'weight' (e.g. the token count), which weights this batch against
# the others when gradients are accumulated over micro-batches.
LossFn = Callable[[dict, dict, jax.Array], tuple[jax.Array, dict]]


def cross_entropy(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array,
                  z_loss: float = 0.0) -> tuple[jax.Array, dict]:
  """Masked mean token cross-entropy.

  logits (b l v) fp32, targets (b l) int32, loss_mask (b l) float32.
  z_loss adds ``z_loss * logsumexp(logits)^2`` (PaLM) to keep the softmax normaliser
  near 1. Returns (loss, {'cross_entropy', 'z_loss', 'accuracy', 'weight'}).
  """
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)                                     # b l
  target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  token_ce = log_z - target_logits
  weight = jnp.sum(loss_mask)
  denominator = jnp.maximum(weight, 1.0)
  mean = lambda x: jnp.sum(x * loss_mask) / denominator
  ce = mean(token_ce)
  z_term = z_loss * mean(jnp.square(log_z))
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  aux = {"cross_entropy": ce, "z_loss": z_term, "accuracy": mean(correct), "weight": weight}
  return ce + z_term, aux


def make_lm_loss(cfg: ModelConfig, z_loss: float = 0.0) -> LossFn:
  """Next-token loss over a packed batch.

  batch: tokens, targets, segment_ids, positions (b l) int32; loss_mask (b l) float32.
  """
  def loss_fn(params, batch, rng):
    del rng  # no dropout
    logits, _ = lm.forward(params, batch["tokens"], cfg, positions=batch["positions"],
                           segment_ids=batch["segment_ids"])
    return cross_entropy(logits, batch["targets"], batch["loss_mask"], z_loss)
  return loss_fn


def abstract_lm_batch(batch_size: int, seq_len: int, sharding=None) -> dict:
  """ShapeDtypeStructs of the batch ``make_lm_loss`` reads, e.g. for ahead-of-time lowering."""
  shape = (batch_size, seq_len)
  spec = lambda dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
  return {"tokens": spec(jnp.int32), "targets": spec(jnp.int32),
          "segment_ids": spec(jnp.int32), "positions": spec(jnp.int32),
          "loss_mask": spec(jnp.float32)}
