"""A tiny sampler for a quick look at a model after training.

It recomputes the whole forward pass for every new token (no cache, O(L²)); the
generation engine with caches lives elsewhere and can replace this.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from model import lm
from model.config import ModelConfig


@functools.partial(jax.jit, static_argnames=("cfg",))
def _generate(params, tokens, prompt_lengths, rng, temperature, *, cfg: ModelConfig):
  """Fills tokens (b L) int32 after each row's prompt_lengths (b,) one position at a time."""
  total = tokens.shape[1]

  def body(position, carry):
    tokens, rng = carry
    rng, step_rng = jax.random.split(rng)
    logits, _ = lm.forward(params, tokens, cfg)
    last = jax.lax.dynamic_index_in_dim(logits, position - 1, axis=1, keepdims=False)
    greedy = jnp.argmax(last, axis=-1)
    sampled = jax.random.categorical(step_rng, last / jnp.maximum(temperature, 1e-6))
    new = jnp.where(temperature > 0, sampled, greedy).astype(tokens.dtype)
    current = jax.lax.dynamic_index_in_dim(tokens, position, axis=1, keepdims=False)
    new = jnp.where(position >= prompt_lengths, new, current)
    return jax.lax.dynamic_update_index_in_dim(tokens, new, position, axis=1), rng

  start = jnp.maximum(jnp.min(prompt_lengths), 1)
  tokens, _ = jax.lax.fori_loop(start, total, body, (tokens, rng))
  return tokens


def sample(params, cfg: ModelConfig, prompts: Sequence[Sequence[int]], *,
           max_new_tokens: int, temperature: float = 0.0, seed: int = 0,
           pad_id: int = 0) -> list[list[int]]:
  """The ``max_new_tokens`` ids continuing each non-empty prompt (greedy at temperature 0).

  Collective under multi-process meshes: every process must call it with the same
  arguments.
  """
  if any(len(p) == 0 for p in prompts):
    raise ValueError("every prompt needs at least one token")
  lengths = np.array([len(p) for p in prompts], np.int32)
  tokens = np.full((len(prompts), int(lengths.max()) + max_new_tokens), pad_id, np.int32)
  for row, prompt in enumerate(prompts):
    tokens[row, :len(prompt)] = prompt
  out = _generate(params, tokens, lengths, jax.random.PRNGKey(seed),
                  jnp.float32(temperature), cfg=cfg)
  out = np.asarray(multihost_utils.process_allgather(out, tiled=True))
  return [out[row, n:n + max_new_tokens].tolist() for row, n in enumerate(lengths)]
