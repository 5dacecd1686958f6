"""Generation inside a run: one sharded computation over the mesh, each process its rows.

RL rollouts, teacher samples and evaluation all continue a global list of prompts with
the run's (sharded) weights. Every process calls ``generate_rows`` with the same list;
each supplies and reads back only its rows (``Context.process_rows``), so a multi-host
job samples every prompt exactly once and the result does not depend on how many
processes share the work (sampling keys are split per row, not per process).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Optional

import jax
import numpy as np
from jax.experimental import multihost_utils

from model import generate as generate_lib
from model import partitioning
from model.config import ModelConfig
from train import sharding
from train.loops import Context


@dataclasses.dataclass(frozen=True)
class LocalGeneration:
  """This process's rows of a generation: the global prompt indices ``rows`` (real
  prompts only), their left-padded prompts (r p) and what was generated (r n)."""
  rows: range
  prompt: np.ndarray
  prompt_mask: np.ndarray
  tokens: np.ndarray
  log_probs: np.ndarray
  mask: np.ndarray

  def completions(self) -> list[np.ndarray]:
    """The generated ids of each row, up to and including its stop token."""
    return [tokens[mask > 0] for tokens, mask in zip(self.tokens, self.mask)]


@functools.lru_cache(maxsize=32)
def _jitted_sample(model_cfg: ModelConfig, sampling: generate_lib.SamplingConfig,
                   rows_sharding: jax.sharding.NamedSharding, rules: tuple):
  out = generate_lib.Generation(tokens=rows_sharding, log_probs=rows_sharding,
                                mask=rows_sharding)
  sample = functools.partial(generate_lib.sample, model_cfg=model_cfg, sampling=sampling)
  return jax.jit(partitioning.on_mesh(sample, rows_sharding.mesh, rules), out_shardings=out)


def generate_rows(ctx: Context, params, prompts: Sequence[Sequence[int]], rng: jax.Array, *,
                  sampling: generate_lib.SamplingConfig, model_cfg: Optional[ModelConfig] = None,
                  width: Optional[int] = None, pad_to: int = 0, row_multiple: int = 1,
                  all_rows: bool = False) -> LocalGeneration:
  """Continues every prompt (a collective: all processes pass the same list).

  width: prompt slots (default: the longest prompt); a longer prompt is an error.
  pad_to: generate at least this many rows: a shorter list is padded with copies of its
  last prompt (dropped again), so that the short last chunk of a long list reuses the
  program compiled for the full ones. A row's sampling noise does not depend on the row
  count (JAX's threefry draws each element's bits from its index), so the real rows get
  the tokens they get unpadded.
  row_multiple: rows that must stay on one process (e.g. a group of samples of one
  prompt): the list is padded (with copies of its last prompt, dropped again) so that
  every process's share is a multiple of it.
  all_rows: every process gets every row (for a few prompts: the generation is gathered).
  """
  if not prompts:
    raise ValueError("generation needs at least one prompt")
  unit = ctx.row_unit(row_multiple)
  padded = list(prompts) + [prompts[-1]] * max(0, pad_to - len(prompts))
  padded += [prompts[-1]] * (-len(padded) % unit)
  rows = ctx.process_rows(len(padded))
  prompt, prompt_mask = generate_lib.left_pad(padded[rows], pad_id=ctx.tokenizer.pad_id,
                                              width=width or max(map(len, padded)))
  generate_lib.check_prompts(prompt_mask, max_new_tokens=sampling.max_new_tokens,
                             cache_len=None)
  inputs = ctx.to_global({"prompt": prompt, "mask": prompt_mask}, len(padded))
  sample = _jitted_sample(model_cfg or ctx.model_cfg, sampling, ctx.row_sharding(2),
                          tuple(map(tuple, ctx.rules)))
  generation = sample(params, inputs["prompt"], inputs["mask"], rng)
  if all_rows:
    rows = slice(0, len(padded))
    prompt, prompt_mask = generate_lib.left_pad(padded, pad_id=ctx.tokenizer.pad_id,
                                                width=prompt.shape[1])
    read = lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True))
  else:
    read = sharding.local_rows
  real = slice(0, max(0, min(rows.stop, len(prompts)) - rows.start))
  return LocalGeneration(
      rows=range(rows.start, min(rows.stop, len(prompts))), prompt=prompt[real],
      prompt_mask=prompt_mask[real], tokens=read(generation.tokens)[real],
      log_probs=read(generation.log_probs)[real], mask=read(generation.mask)[real])


def generate_in_chunks(ctx: Context, params, prompts: Sequence[Sequence[int]],
                       indices: Sequence[int], rng: jax.Array, *,
                       sampling: generate_lib.SamplingConfig, chunk_rows: int,
                       row_multiple: int = 1, all_rows: bool = False
                       ) -> list[tuple[int, np.ndarray]]:
  """``generate_rows`` over the rows ``prompts[i] for i in indices``, ``chunk_rows`` at a
  time (the last chunk padded to the same program; chunk k's key ``fold_in(rng, k's first
  row)``): (prompt index, completion ids) of the rows this process reads (every row with
  ``all_rows``)."""
  width = max(len(prompts[i]) for i in indices)
  chunk_rows = min(chunk_rows, len(indices))
  out = []
  for start in range(0, len(indices), chunk_rows):
    chunk = indices[start:start + chunk_rows]
    local = generate_rows(ctx, params, [prompts[i] for i in chunk], jax.random.fold_in(
        rng, start), sampling=sampling, width=width, pad_to=chunk_rows,
        row_multiple=row_multiple, all_rows=all_rows)
    out += [(chunk[row], ids) for row, ids in zip(local.rows, local.completions())]
  return out
