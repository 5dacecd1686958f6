"""Next-token choice from logits: greedy, temperature, top-k and top-p (nucleus).

All functions are pure and jittable; the knobs are Python numbers (static), so a
disabled filter costs nothing. Shapes: b batch, v vocabulary.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_NEG_INF = -jnp.inf


def filter_top_k(logits_BV: jax.Array, top_k: int) -> jax.Array:
  """Sets every logit below the k-th largest of its row to -inf (ties are kept)."""
  kth_BV = jax.lax.top_k(logits_BV, top_k)[0][:, -1:]
  return jnp.where(logits_BV < kth_BV, _NEG_INF, logits_BV)


def filter_top_p(logits_BV: jax.Array, top_p: float) -> jax.Array:
  """Keeps the smallest set of most likely tokens whose probability reaches ``top_p``.

  A token is kept when the probability mass strictly above it is below ``top_p``, so
  the most likely token always survives.
  """
  sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
  probs_BV = jax.nn.softmax(sorted_BV, axis=-1)
  mass_above_BV = jnp.cumsum(probs_BV, axis=-1) - probs_BV
  kept_BV = mass_above_BV < top_p
  threshold_B1 = jnp.min(jnp.where(kept_BV, sorted_BV, jnp.inf), axis=-1, keepdims=True)
  return jnp.where(logits_BV < threshold_B1, _NEG_INF, logits_BV)


def sampling_logits(logits_BV: jax.Array, *, temperature: float, top_k: int = 0,
                    top_p: float = 1.0) -> jax.Array:
  """The logits whose softmax is the sampling distribution (temperature 0 = greedy)."""
  logits_BV = logits_BV.astype(jnp.float32)
  if temperature > 0:
    logits_BV = logits_BV / temperature
  if top_k > 0:
    logits_BV = filter_top_k(logits_BV, top_k)
  if top_p < 1.0:
    logits_BV = filter_top_p(logits_BV, top_p)
  return logits_BV


def greedy_tokens(logits_BV: jax.Array) -> jax.Array:
  """(b,) int32 argmax of each row: the first index holding the row's maximum (NaN
  counts as the maximum, as in ``jnp.argmax``).

  A max reduction, then the smallest index equal to it: two single-operand reductions,
  which XLA:CPU runs faster than argmax's (value, index) pair reduction
  (bench/RESULTS.md).
  """
  max_B1 = jnp.max(logits_BV, axis=-1, keepdims=True)
  is_max_BV = (logits_BV == max_B1) | jnp.isnan(logits_BV)
  index_1V = jnp.arange(logits_BV.shape[-1], dtype=jnp.int32)[None]
  return jnp.min(jnp.where(is_max_BV, index_1V, logits_BV.shape[-1]), axis=-1)


def choose_tokens(rng: jax.Array, logits_BV: jax.Array, *, temperature: float,
                  top_k: int = 0, top_p: float = 1.0) -> jax.Array:
  """(b,) int32 tokens: the argmax when ``temperature == 0``, else a filtered sample."""
  if temperature == 0:
    return greedy_tokens(logits_BV)
  filtered_BV = sampling_logits(logits_BV, temperature=temperature, top_k=top_k, top_p=top_p)
  return jax.random.categorical(rng, filtered_BV, axis=-1).astype(jnp.int32)


def policy_log_probs(logits: jax.Array, tokens: jax.Array, temperature: float) -> jax.Array:
  """log π(token) under the tempered, unfiltered policy softmax(logits / temperature).

  This is the policy whose ratios RL losses take: the same definition is used by the
  sampler (behaviour log-probs) and by the update (current log-probs). Temperature 0
  (greedy) scores with temperature 1. logits (... v), tokens (...) → (...) fp32.
  """
  logits = logits.astype(jnp.float32)
  if temperature > 0:
    logits = logits / temperature
  log_z = jax.nn.logsumexp(logits, axis=-1)
  return jnp.take_along_axis(logits, tokens[..., None], axis=-1)[..., 0] - log_z
