"""A declarative stage pipeline: pretrain → RLP or continued pretraining → SFT → GRPO.

A stage (``stage(...)``) is a run config of the one driver (any loop, its own mixture in
``data.stages`` or records in its loop's section) plus:

  after       the stage whose final weights it starts from (its ``init_checkpoint``);
              '' keeps the run config's own ``init_checkpoint`` (or scratch)
  steps       its optimizer steps (``train.steps``)
  fast_steps  its steps in a reduced run (``fast=True``)

A pipeline is a ``{name: stage}`` mapping; the ``after`` links make a tree, so stages
that several branches share (one pretrained base for every arm) run once. Every stage is
an ordinary ``train.driver.run`` in ``<root>/<name>/``: an interrupted pipeline resumes
(a finished stage, whose ``summary.json`` records its last step, is read back and not
run again; a half-done one resumes from its newest checkpoint).

Tokens: a step of any loop reads ``train.global_batch_size × train.seq_len`` global
tokens (rows of text, SFT conversations or rollouts, padding included, as the data
budgets of ``data/config.py`` count them); ``tokens_seen`` of a stage is that times its
steps, plus what the stages it starts from saw.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from typing import Any, Optional

import ml_collections

from train import config as config_lib
from train import driver


def stage(run: ml_collections.ConfigDict, *, steps: int, fast_steps: Optional[int] = None,
          after: str = "") -> ml_collections.ConfigDict:
  """One stage: ``run`` (a run config) for ``steps`` steps (``fast_steps`` when fast,
  default ``steps``), starting from the stage ``after``."""
  return ml_collections.ConfigDict(dict(run=run, steps=steps, after=after,
                                        fast_steps=steps if fast_steps is None else fast_steps))


def chain(stages: Mapping[str, Any], name: str) -> list[str]:
  """The stages ``name`` runs after, first the root, ``name`` last; a ConfigError names
  an unknown stage or a cycle."""
  names = []
  while name:
    if name not in stages:
      raise config_lib.ConfigError(f"stages: {names[-1] if names else 'arms'} starts after "
                                   f"unknown stage {name!r}; known: {sorted(stages)}")
    if name in names:
      raise config_lib.ConfigError(f"stages: {' → '.join(reversed(names))} → {name} is a cycle")
    names.append(name)
    name = stages[name].after
  return names[::-1]


def stage_tokens(run: ml_collections.ConfigDict) -> int:
  """Global tokens one run reads: steps × batch rows × row length."""
  return run.train.steps * run.train.global_batch_size * run.train.seq_len


def resolve(stages: Mapping[str, Any], name: str, root: str, *, seed: int, fast: bool,
            eval_section: Optional[ml_collections.ConfigDict] = None
            ) -> ml_collections.ConfigDict:
  """The run config of stage ``name`` under ``root``: its steps, ``train.seed=seed``,
  ``init_checkpoint`` the workdir of the stage it starts after, and ``eval_section``
  (None: no evaluation, so shared stages cost nothing extra)."""
  spec = stages[name]
  run = copy.deepcopy(spec.run)
  with run.unlocked():
    run.train.steps = spec.fast_steps if fast else spec.steps
    run.train.seed = seed
    if spec.after:
      run.init_checkpoint = os.path.join(root, spec.after)
    if eval_section is None:
      run.eval.text_files = {}
      run.eval.records = ""
    else:
      run.eval = copy.deepcopy(eval_section)
  return run


def run_pipeline(stages: Mapping[str, Any], evals: Mapping[str, ml_collections.ConfigDict],
                 root: str, *, seed: int, fast: bool,
                 report: Callable[[str], None] = print) -> dict[str, dict]:
  """Runs every stage the stages of ``evals`` need, each once, parents first; those are
  evaluated with their eval section, the others not at all. Returns {stage: its summary
  (without the state), with 'tokens_seen' added}."""
  order = []
  for target in evals:
    order += [name for name in chain(stages, target) if name not in order]
  summaries, tokens = {}, {}
  for name in order:
    run = resolve(stages, name, root, seed=seed, fast=fast, eval_section=evals.get(name))
    workdir = os.path.join(root, name)
    summary = driver.finished_summary(run, workdir)
    if summary is None:
      report(f"stage {name} ({driver.loop_name(run)}, {run.train.steps} steps, seed {seed}) in {workdir}")
      summary = driver.run(run, workdir)
      summary.pop("state", None)
    after = stages[name].after
    tokens[name] = stage_tokens(run) + (tokens[after] if after else 0)
    summaries[name] = {**summary, "tokens_seen": tokens[name]}
  return summaries
