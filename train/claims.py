r"""Claims: a paper's comparison reproduced in miniature, one command each.

  python -m train.main --config=configs/claims/<name>.py --workdir=DIR [--config.fast=True]

A claim config (``loop='claim'``) holds:

  claim       name; seeds (the headline comparison's); fast_seeds; metric (the eval
              figure compared, e.g. 'pass@1'); comparisons: ((better arm, worse arm), ...)
              that the papers report
  stages      {name: ``train.stages.stage(...)``}: the pipeline every arm runs through
  arms        {arm: stage}: the stage whose final weights are that arm's model
  eval        the one eval section (``train/evaluate.py``) every arm is evaluated with:
              the same held-out records and checker
  arm_eval    {arm: {field: value}}: what differs for an arm (e.g. the prompt template
              of a model before and after chat SFT); never the records
  fast        run the reduced version: ``fast_seeds`` and every stage's ``fast_steps``

For each seed the pipeline runs in ``DIR/seed<seed>/<stage>/`` (ordinary driver runs,
so an interrupted claim resumes). Then ``DIR/summary.json``::

  {"claim", "metric", "seeds", "fast",
   "arms": {arm: {figure: {"mean", "std", "values"}, "tokens_seen": int}},
   "comparisons": [{"better", "worse", "difference", "wins"}], "holds": bool}

``holds``: every comparison's mean difference over seeds is positive. ``DIR/<name>.png``
shows the arms side by side (mean ± std over seeds, each seed a dot). Arms compared
must have seen the same number of tokens (checked before anything runs).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from train import config as config_lib
from train import stages as stages_lib
from train import workdir as workdir_lib

LOOP = "claim"
SECTIONS = ("loop", "claim", "stages", "arms", "eval", "arm_eval", "fast")


def is_claim(config: ml_collections.ConfigDict) -> bool:
  return config.get("loop", "") == LOOP


def check(config: ml_collections.ConfigDict) -> None:
  """The claim's sections, arms, comparisons and equal compute; a ConfigError names the
  field."""
  if not is_claim(config):
    raise config_lib.ConfigError(f"loop={config.get('loop', 'pretrain')!r}: not a claim "
                                 "config (run it with train.driver.run)")
  for section in SECTIONS:
    if section not in config:
      raise config_lib.ConfigError(f"a claim config needs the section {section!r}")
  for section in config:
    if section not in SECTIONS:
      raise config_lib.ConfigError(f"config section {section!r} is not read by a claim "
                                   f"(it reads {list(SECTIONS)})")
  if not config.eval.records:
    raise config_lib.ConfigError("eval.records: a claim evaluates its arms on records")
  claim = config.claim
  if not claim.seeds or not claim.fast_seeds:
    raise config_lib.ConfigError("claim.seeds and claim.fast_seeds must not be empty")
  for arm, stage in config.arms.items():
    if stage not in config.stages:
      raise config_lib.ConfigError(f"arms.{arm}={stage!r} is not a stage; known: "
                                   f"{sorted(config.stages)}")
    stages_lib.chain(config.stages, stage)
  evals = {}
  for arm, stage in config.arms.items():
    if arm in config.arm_eval and "records" in config.arm_eval[arm]:
      raise config_lib.ConfigError(f"arm_eval.{arm}.records: every arm is evaluated on the "
                                   "same records (eval.records)")
    section = arm_eval(config, arm)
    if evals.setdefault(stage, section) != section:
      raise config_lib.ConfigError(f"arms on stage {stage!r} are evaluated differently")
  sampled = claim.metric == "sample_accuracy" or (
      claim.metric.startswith(("pass@", "maj@")) and claim.metric.split("/")[0] != "pass@1")
  if sampled and not all(section.samples for section in evals.values()):
    raise config_lib.ConfigError(f"claim.metric={claim.metric!r} needs eval.samples > 0")
  for arm in config.arm_eval:
    if arm not in config.arms:
      raise config_lib.ConfigError(f"arm_eval.{arm}: no such arm; arms: {sorted(config.arms)}")
  for fast in (False, True):
    tokens = arm_tokens(config, fast)
    for better, worse in claim.comparisons:
      for arm in (better, worse):
        if arm not in config.arms:
          raise config_lib.ConfigError(f"claim.comparisons names arm {arm!r}; arms: "
                                       f"{sorted(config.arms)}")
      if tokens[better] != tokens[worse]:
        raise config_lib.ConfigError(
            f"arms {better!r} and {worse!r} see {tokens[better]:,} and {tokens[worse]:,} "
            f"tokens{' (fast)' if fast else ''}: a comparison needs equal compute")


def arm_eval(config: ml_collections.ConfigDict, arm: str) -> ml_collections.ConfigDict:
  """The eval section of ``arm``: the claim's, with the arm's ``arm_eval`` fields."""
  section = copy.deepcopy(config.eval)
  with section.unlocked():
    section.update(dict(config.arm_eval.get(arm, {})))
  return section


def arm_tokens(config: ml_collections.ConfigDict, fast: bool) -> dict[str, int]:
  """Global tokens each arm's pipeline reads (``train.stages.stage_tokens``)."""
  out = {}
  for arm, stage in config.arms.items():
    out[arm] = sum(stages_lib.stage_tokens(stages_lib.resolve(
        config.stages, name, "", seed=0, fast=fast)) for name in
        stages_lib.chain(config.stages, stage))
  return out


def aggregate(per_seed: Sequence[Mapping[str, float]]) -> dict[str, dict[str, Any]]:
  """{figure: {'mean', 'std', 'values'}} over seeds, for the figures every seed has."""
  names = [name for name in per_seed[0] if all(name in figures for figures in per_seed)]
  out = {}
  for name in names:
    values = [float(figures[name]) for figures in per_seed]
    out[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                 "values": values}
  return out


def compare(arms: Mapping[str, Mapping[str, Any]], metric: str,
            comparisons: Sequence[tuple[str, str]]) -> tuple[list[dict], bool]:
  """Per comparison: the mean difference of ``metric`` and the seeds the better arm
  wins; holds if every mean difference is positive."""
  out = []
  for better, worse in comparisons:
    a = np.asarray(arms[better][metric]["values"])
    b = np.asarray(arms[worse][metric]["values"])
    out.append({"better": better, "worse": worse, "difference": float(np.mean(a - b)),
                "wins": int(np.sum(a > b))})
  return out, all(c["difference"] > 0 for c in out)


def plot(summary: Mapping[str, Any], path: str) -> None:
  """The arms side by side: the metric's mean ± std over seeds, each seed a dot."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  metric, arms = summary["metric"], summary["arms"]
  names = list(arms)
  means = [arms[a][metric]["mean"] for a in names]
  stds = [arms[a][metric]["std"] for a in names]
  figure, axes = pyplot.subplots(figsize=(1.6 + 1.3 * len(names), 3.6))
  axes.bar(range(len(names)), means, yerr=stds, capsize=4, color="#7aa6c2")
  for x, arm in enumerate(names):
    values = arms[arm][metric]["values"]
    axes.scatter([x] * len(values), values, color="black", s=10, zorder=3)
  axes.set_xticks(range(len(names)), names, rotation=20, ha="right")
  axes.set_ylabel(metric)
  verdict = "holds" if summary["holds"] else "does not hold"
  axes.set_title(f"{summary['claim']}: {verdict} ({len(summary['seeds'])} seeds"
                 f"{', fast' if summary['fast'] else ''})")
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  pyplot.close(figure)


def _cache_compilations(directory: str) -> None:
  """Arms and seeds compile the same programs: keep them in a persistent cache, unless
  the user set one."""
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def run(config: ml_collections.ConfigDict, workdir: str,
        report: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs every arm for every seed, evaluates them alike, writes ``summary.json`` and
  the plot into ``workdir``; returns the summary."""
  check(config)
  _cache_compilations(os.path.join(workdir, "jit_cache"))
  claim = config.claim
  seeds = list(claim.fast_seeds if config.fast else claim.seeds)
  evals = {stage: arm_eval(config, arm) for arm, stage in config.arms.items()}
  per_seed = {arm: [] for arm in config.arms}
  tokens = {}
  for seed in seeds:
    summaries = stages_lib.run_pipeline(
        config.stages, evals, os.path.join(workdir, f"seed{seed}"), seed=seed,
        fast=config.fast, report=report)
    for arm, stage in config.arms.items():
      per_seed[arm].append(summaries[stage]["eval"])
      tokens[arm] = summaries[stage]["tokens_seen"]
  arms = {arm: {**aggregate(figures), "tokens_seen": tokens[arm]}
          for arm, figures in per_seed.items()}
  comparisons, holds = compare(arms, claim.metric, claim.comparisons)
  summary = {"claim": claim.name, "metric": claim.metric, "seeds": seeds,
             "fast": bool(config.fast), "arms": arms, "comparisons": comparisons,
             "holds": holds}
  if jax.process_index() == 0:
    workdir_lib.write_json(os.path.join(workdir, "summary.json"), summary)
    plot(summary, os.path.join(workdir, f"{claim.name}.png"))
  for arm, figures in arms.items():
    report(f"{arm}: {claim.metric} {figures[claim.metric]['mean']:.3f} ± "
           f"{figures[claim.metric]['std']:.3f}")
  differences = ", ".join(f"{c['better']} - {c['worse']} = {c['difference']:+.3f}"
                          for c in comparisons)
  report(f"claim {claim.name}: {'holds' if holds else 'does not hold'} ({differences})")
  return summary
