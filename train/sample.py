"""Continuations of a few prompts at the end of a run, through the cached generator.

Collective under multi-process meshes: every process gathers the parameters and runs the
same generation locally (a preview on a handful of prompts, not a serving path).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax.experimental import multihost_utils

from model.config import ModelConfig
from model import generate as generate_lib


def sample(params, cfg: ModelConfig, prompts: Sequence[Sequence[int]], *,
           max_new_tokens: int, temperature: float = 0.0, seed: int = 0,
           pad_id: int = 0) -> list[list[int]]:
  """The ``max_new_tokens`` ids continuing each non-empty prompt (greedy at temperature 0)."""
  if any(len(p) == 0 for p in prompts):
    raise ValueError("every prompt needs at least one token")
  if jax.process_count() > 1:
    params = multihost_utils.process_allgather(params, tiled=True)
  params = jax.device_get(params)
  tokens, mask = generate_lib.left_pad(prompts, pad_id=pad_id)
  sampling = generate_lib.SamplingConfig(max_new_tokens=max_new_tokens,
                                         temperature=temperature, pad_id=pad_id)
  out = generate_lib.generate(params, tokens, mask, jax.random.PRNGKey(seed),
                              model_cfg=cfg, sampling=sampling)
  return jax.device_get(out.tokens).tolist()
