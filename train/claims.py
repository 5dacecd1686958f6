r"""Claims: a paper's comparison reproduced in miniature, one command each.

  python -m train.main --config=configs/claims/<name>.py --workdir=DIR \
      [--config.fast=True] [--config.cache_dir=CACHE]

A claim config (``loop='claim'``) holds:

  claim       name; seeds (the headline comparison's, at least 5 for a verdict worth
              reading); fast_seeds; metric (the eval figure compared, e.g. 'pass@1');
              comparisons: ((better arm, worse arm[, margin]), ...) that the papers
              report (a margin: "equal or better", below); gate (below); chance (the
              metric of guessing, None for an open answer)
  stages      {name: ``train.stages.stage(...)``}: the pipeline every arm runs through
  arms        {arm: stage}: the stage whose final weights are that arm's model
  eval        the one eval section (``train/evaluate.py``) every arm is evaluated with:
              the same held-out records and checker
  arm_eval    {arm: {field: value}}: what differs for an arm (e.g. the prompt template
              of a model before and after chat SFT); never the records
  arm_metric  {arm: figure}: the eval figure compared for an arm instead of
              ``claim.metric`` (e.g. 'genselect@8' against 'maj@8': two ways of
              judging the same samples of one model, two arms on one stage)
  routers     (optional) {arm: router}: the arm is a query-level router (FusionFactory,
              arXiv 2507.10540; ``train.fusion.evaluate_router``) over the final weights of
              ``router.stages``, embedding queries with its own stage's; its tokens are
              every stage it uses, each once
  datasets    (optional) {name: {build: 'module:function', args: {...}}}: files the claim
              makes before its stages (e.g. a curated corpus, a searched mixture), built
              once per content into the cache (``train.stages.build_dataset``); any config
              string 'dataset:<name>/<file>' names a file of it; the figures the build
              returns go to the summary's ``datasets``; ``fast_args`` (optional) update
              ``args`` in a fast run (e.g. a smaller search)
  fast        run the reduced version: ``fast_seeds`` and every stage's ``fast_steps``
  cache_dir   the stage cache (``train/stages.py``; '': $REASONAX_STAGE_CACHE, else
              ~/.cache/reasonax/stages)

The competence gate (``claim.gate``: stages, metric, threshold, skill, eval): the skill
the arms start from. Each gate stage's final weights are evaluated with the gate's eval
section (None: the claim's) in every seed (a shared stage once); if ``metric`` is below
``threshold`` in any of them the claim is ``untestable``: its arms never had the skill
the method works on.

Each stage trains once per content in the stage cache and is read back by reruns, other
seeds with the same inputs (``shared`` stages) and other claims (``train/stages.py``);
``DIR/seed<k>/<stage>`` links to its entry. Evaluations are cached there too. Then
``DIR/summary.json``::

  {"claim", "metric", "arm_metric": {arm: its figure compared}, "seeds", "fast",
   "statistic": "paired Student t, 95%, over seeds",
   "arms": {arm: {figure: {"mean", "std", "values"}, "tokens_seen": int}},
   "comparisons": [{"better", "worse", "metrics": [better's, worse's figure], "margin",
                    "differences": [per seed], "difference": mean,
                    "interval": [lo, hi] or null (one seed), "wins", "verdict"}],
   "verdict": "holds" | "contradicted" | "not shown" | "untestable", "holds": bool,
   "gate": {"skill", "stages", "metric", "threshold", "values": {stage: [per seed]},
            "passed"},
   "baselines": {"chance", "most_frequent": {"answer", "accuracy"},
                 "untrained": {"metric", "arms": {arm: value}, "gate"}},
   "stages": {stage: {"shared", "runs": [{"seed", "key", "train_s"}]}},
   "code_version", "cache_dir", "datasets": {name: {"directory", "figures"}},
   "times": {"shared_s", "per_seed_s": {seed: s}, "baselines_s", "total_s"}}

A comparison's verdict: the 95% paired Student t interval of better − worse over seeds
lies above −margin ('holds'), below −margin ('contradicted'), or covers −margin or there
is one seed ('not shown'). The margin is 0 unless the comparison gives one: then it is a
non-inferiority test ("at equal or higher accuracy": no worse by more than the margin,
declared before the run). A held-out loss (``loss/<name>``) and a completion length
('length', 'correct_length') are better when lower: the difference is worse − better,
and a gate on such a figure passes at or below its threshold; 'untestable' if the gate
failed. The claim's verdict: 'untestable' if the gate failed, else 'holds' if every comparison holds, 'contradicted' if any is contradicted,
else 'not shown'. Baselines: ``chance`` as the config declares it, ``most_frequent`` the
share of eval records whose answer is the most common one, ``untrained`` each arm's
metric of the randomly initialised model (evaluated like the arms). Times: wall seconds of the
stages trained and evaluated (read back: 0), shared stages apart from each seed's.
``DIR/<name>.png`` shows each seed's point per arm with the mean and its 95% interval,
the baselines and the gate. Arms compared must have seen the same number of tokens
(checked before anything runs).
"""

from __future__ import annotations

import collections
import copy
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import jax
import ml_collections
import numpy as np
from scipy import stats

from data import answers
from data import sources
from train import config as config_lib
from train import fusion
from train import stages as stages_lib
from train import workdir as workdir_lib

LOOP = "claim"
SECTIONS = ("loop", "claim", "stages", "arms", "eval", "arm_eval", "arm_metric", "fast",
            "cache_dir")
# Read when there: {arm: router section} (``train.fusion.evaluate_router``).
OPTIONAL_SECTIONS = ("routers", "datasets")
STATISTIC = "paired Student t, 95%, over seeds"
CONFIDENCE = 0.95
VERDICTS = ("holds", "contradicted", "not shown", "untestable")


def is_claim(config: ml_collections.ConfigDict) -> bool:
  return config.get("loop", "") == LOOP


def _sampled(metric: str) -> bool:
  return metric == "sample_accuracy" or (
      metric.startswith(("pass@", "maj@", "genselect")) and metric.split("/")[0] != "pass@1")


# Figures better when lower: held-out losses ('loss/<name>') and completion lengths
# (mean tokens of every completion, of the right ones).
LOWER_IS_BETTER = ("loss", "length", "correct_length")


def lower_is_better(metric: str) -> bool:
  """A held-out loss ('loss/<name>') or a completion length; every other figure is
  better when higher."""
  return metric.split("/")[0] in LOWER_IS_BETTER


def comparison_parts(comparison: Sequence[Any]) -> tuple[str, str, float]:
  """(better arm, worse arm, non-inferiority margin) of a ``claim.comparisons`` entry:
  ``(better, worse)`` (margin 0: better must win) or ``(better, worse, margin)``."""
  if len(comparison) not in (2, 3):
    raise config_lib.ConfigError(f"claim.comparisons entry {tuple(comparison)!r}: want "
                                 "(better, worse) or (better, worse, margin)")
  better, worse, *rest = comparison
  margin = float(rest[0]) if rest else 0.0
  if margin < 0 or not math.isfinite(margin):
    raise config_lib.ConfigError(f"claim.comparisons {better!r} vs {worse!r}: margin "
                                 f"{rest[0]!r} must be a finite number >= 0")
  return better, worse, margin


def arm_metric(config: ml_collections.ConfigDict, arm: str) -> str:
  """The figure compared for ``arm``: its ``arm_metric``, else ``claim.metric``."""
  return config.arm_metric.get(arm, config.claim.metric)


def _check_metric(field: str, metric: str, section: ml_collections.ConfigDict,
                  where: str) -> None:
  """ConfigError when the eval section ``section`` (the config's ``where``) cannot give
  the figure ``metric`` (set in ``field``): a sampled figure needs samples, k of them for
  an '@k' one, and a GenSelect one its selection."""
  name = metric.split("/")[0]
  if name == "loss" and metric.split("/", 1)[-1] not in section.text_files:
    raise config_lib.ConfigError(f"{field}={metric!r} needs {where}.text_files to name "
                                 f"{metric.split('/', 1)[-1]!r}")
  if _sampled(metric) and not section.samples:
    raise config_lib.ConfigError(f"{field}={metric!r} needs {where}.samples > 0")
  if _sampled(metric) and "@" in name and name.split("@")[1] != str(section.samples):
    raise config_lib.ConfigError(f"{field}={metric!r} needs {where}.samples="
                                 f"{name.split('@')[1]}, not {section.samples}")
  if name.startswith("genselect") and not section.get("genselect", 0):
    raise config_lib.ConfigError(f"{field}={metric!r} needs {where}.genselect > 0")


def check(config: ml_collections.ConfigDict) -> None:
  """The claim's sections, arms, comparisons, gate and equal compute; a ConfigError
  names the field."""
  if not is_claim(config):
    raise config_lib.ConfigError(f"loop={config.get('loop', 'pretrain')!r}: not a claim "
                                 "config (run it with train.driver.run)")
  for section in SECTIONS:
    if section not in config:
      raise config_lib.ConfigError(f"a claim config needs the section {section!r}")
  for section in config:
    if section not in SECTIONS + OPTIONAL_SECTIONS:
      raise config_lib.ConfigError(f"config section {section!r} is not read by a claim "
                                   f"(it reads {list(SECTIONS)})")
  if not config.eval.records:
    raise config_lib.ConfigError("eval.records: a claim evaluates its arms on records")
  claim = config.claim
  if not claim.seeds or not claim.fast_seeds:
    raise config_lib.ConfigError("claim.seeds and claim.fast_seeds must not be empty")
  stages_lib.check_shared(config.stages)
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
  for name in ("arm_eval", "arm_metric"):
    for arm in config[name]:
      if arm not in config.arms:
        raise config_lib.ConfigError(f"{name}.{arm}: no such arm; arms: "
                                     f"{sorted(config.arms)}")
  for arm in config.arms:
    field = f"arm_metric.{arm}" if arm in config.arm_metric else "claim.metric"
    if not arm_metric(config, arm):
      raise config_lib.ConfigError(f"{field}: name the eval figure compared")
    _check_metric(field, arm_metric(config, arm), arm_eval(config, arm), "eval")
  for arm, router in config.get("routers", {}).items():
    if arm not in config.arms:
      raise config_lib.ConfigError(f"routers.{arm}: no such arm; arms: {sorted(config.arms)}")
    fusion.check_router(arm, router, config.stages, arm_eval(config, arm))
  _check_gate(config)
  for fast in (False, True):
    tokens = arm_tokens(config, fast)
    for comparison in claim.comparisons:
      better, worse, _ = comparison_parts(comparison)
      for arm in (better, worse):
        if arm not in config.arms:
          raise config_lib.ConfigError(f"claim.comparisons names arm {arm!r}; arms: "
                                       f"{sorted(config.arms)}")
      if lower_is_better(arm_metric(config, better)) != lower_is_better(
          arm_metric(config, worse)):
        raise config_lib.ConfigError(
            f"claim.comparisons: {better!r} and {worse!r} are compared by a loss and a "
            "score, one better when lower and one when higher")
      if tokens[better] != tokens[worse]:
        raise config_lib.ConfigError(
            f"arms {better!r} and {worse!r} see {tokens[better]:,} and {tokens[worse]:,} "
            f"tokens{' (fast)' if fast else ''}: a comparison needs equal compute")


def _check_gate(config: ml_collections.ConfigDict) -> None:
  if "gate" not in config.claim or "chance" not in config.claim:
    raise config_lib.ConfigError("claim.gate and claim.chance: a claim declares the skill "
                                 "its arms start from (common.gate(...)) and the metric of "
                                 "guessing (None for an open answer)")
  gate = config.claim.gate
  if not gate.stages:
    raise config_lib.ConfigError("claim.gate.stages: name the stages whose skill is gated")
  for stage in gate.stages:
    if stage not in config.stages:
      raise config_lib.ConfigError(f"claim.gate.stages names {stage!r}, not a stage; known: "
                                   f"{sorted(config.stages)}")
  if not gate.metric or not isinstance(gate.threshold, (int, float)):
    raise config_lib.ConfigError(f"claim.gate: metric={gate.metric!r} and threshold="
                                 f"{gate.threshold!r} must both be given")
  section = gate_eval(config)
  if not section.records:
    raise config_lib.ConfigError("claim.gate.eval.records: the gate evaluates records")
  _check_metric("claim.gate.metric", gate.metric, section, "claim.gate.eval")


def arm_eval(config: ml_collections.ConfigDict, arm: str) -> ml_collections.ConfigDict:
  """The eval section of ``arm``: the claim's, with the arm's ``arm_eval`` fields."""
  section = copy.deepcopy(config.eval)
  with section.unlocked():
    section.update(dict(config.arm_eval.get(arm, {})))
  return section


def gate_eval(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The gate's eval section: its own, or the claim's."""
  gate = config.claim.gate
  return config.eval if gate.eval is None else gate.eval


def arm_stages(config: ml_collections.ConfigDict, arm: str) -> list[str]:
  """The stages whose final weights ``arm`` uses: its stage, and a router arm's
  candidates (``routers.<arm>.stages``)."""
  router = config.get("routers", {}).get(arm)
  return list(dict.fromkeys([config.arms[arm], *(router.stages if router else ())]))


def _arm_chain(config: ml_collections.ConfigDict, arm: str) -> list[str]:
  """Every stage ``arm``'s weights come from, each once (a shared base once)."""
  return list(dict.fromkeys(name for stage in arm_stages(config, arm)
                            for name in stages_lib.chain(config.stages, stage)))


def arm_tokens(config: ml_collections.ConfigDict, fast: bool) -> dict[str, int]:
  """Global tokens each arm's pipeline reads (``train.stages.stage_tokens``)."""
  out = {}
  for arm in config.arms:
    out[arm] = sum(stages_lib.stage_tokens(stages_lib.run_config(
        config.stages[name], seed=0, fast=fast)) for name in _arm_chain(config, arm))
  return out


# --------------------------------------------------------------------------- statistics


def aggregate(per_seed: Sequence[Mapping[str, float]]) -> dict[str, dict[str, Any]]:
  """{figure: {'mean', 'std', 'values'}} over seeds, for the figures every seed has."""
  names = [name for name in per_seed[0] if all(name in figures for figures in per_seed)]
  out = {}
  for name in names:
    values = [float(figures[name]) for figures in per_seed]
    out[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                 "values": values}
  return out


def t_interval(values: Sequence[float]) -> Optional[list[float]]:
  """The 95% Student t interval of the mean of ``values``: [lo, hi]; the point itself
  when they do not vary; None for fewer than two values (no interval)."""
  n = len(values)
  if n < 2:
    return None
  mean = float(np.mean(values))
  half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * np.std(values, ddof=1)
               / math.sqrt(n))
  return [mean - half, mean + half]


def verdict_of(interval: Optional[Sequence[float]], margin: float = 0.0) -> str:
  """'holds' if the interval of better − worse lies above −margin, 'contradicted' if
  below, else 'not shown' (also without an interval). Margin 0: better must win; a
  margin > 0 is a non-inferiority test (better is no worse than worse by more than
  ``margin``)."""
  if interval is None:
    return "not shown"
  if interval[0] > -margin:
    return "holds"
  return "contradicted" if interval[1] < -margin else "not shown"


def compare(arms: Mapping[str, Mapping[str, Any]], metric: str,
            comparisons: Sequence[tuple[str, str]], gate_passed: bool = True,
            metrics: Optional[Mapping[str, str]] = None) -> list[dict]:
  """Per comparison: the per-seed differences better − worse of ``metric`` (an arm's
  own in ``metrics``, {arm: figure}, if there; worse − better for a loss), paired by
  seed; their mean and 95% t interval, the seeds the better arm wins, the verdict
  ('untestable' whatever the numbers if the gate failed, else ``verdict_of`` with the
  comparison's margin)."""
  out = []
  for comparison in comparisons:
    better, worse, margin = comparison_parts(comparison)
    figures = [(metrics or {}).get(arm, metric) for arm in (better, worse)]
    sign = -1.0 if lower_is_better(figures[0]) else 1.0
    differences = [sign * float(a - b) for a, b in zip(arms[better][figures[0]]["values"],
                                                       arms[worse][figures[1]]["values"])]
    interval = t_interval(differences)
    out.append({"better": better, "worse": worse, "metrics": figures, "margin": margin,
                "differences": differences,
                "difference": float(np.mean(differences)), "interval": interval,
                "wins": sum(d > 0 for d in differences),
                "verdict": verdict_of(interval, margin) if gate_passed else "untestable"})
  return out


def claim_verdict(comparisons: Sequence[Mapping[str, Any]], gate_passed: bool) -> str:
  """'untestable' if the gate failed; else 'holds' if every comparison holds,
  'contradicted' if any is contradicted, else 'not shown'."""
  verdicts = [c["verdict"] for c in comparisons]
  if not gate_passed:
    return "untestable"
  if all(v == "holds" for v in verdicts):
    return "holds"
  return "contradicted" if "contradicted" in verdicts else "not shown"


def answer_key(record: Mapping[str, Any]) -> str:
  """A record's answer as guessing it would be checked: the letter of a multiple-choice
  record, normalised text of an open one, the answer without spaces otherwise."""
  kind, answer = answers.record_kind(record), str(record["answer"])
  if kind == "mcq":
    return answer.strip()
  return answers.normalize_text(answer) if kind == "open" else "".join(answer.split())


def most_frequent(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """The most common answer of ``records`` and the share of them it answers."""
  counts = collections.Counter(answer_key(r) for r in records)
  answer, count = counts.most_common(1)[0]
  return {"answer": answer, "accuracy": count / len(records)}


def gate_summary(gate: ml_collections.ConfigDict, values: Mapping[str, Sequence[float]]
                 ) -> dict[str, Any]:
  """The gate's record: its settings, the gated figure {stage: [per seed]}, passed if
  every value reaches the threshold (at or below it for a loss)."""
  sign = -1.0 if lower_is_better(gate.metric) else 1.0
  return {"skill": gate.skill, "stages": list(gate.stages), "metric": gate.metric,
          "threshold": gate.threshold, "values": {s: list(v) for s, v in values.items()},
          "passed": all(sign * (v - gate.threshold) >= 0
                        for vs in values.values() for v in vs)}


# -------------------------------------------------------------------------------- plot


def plot(summary: Mapping[str, Any], path: str) -> None:
  """Each seed's point per arm with the mean and its 95% interval; chance, the most
  frequent answer and the untrained model as lines; the gate stages' values beside,
  with the threshold; the verdict in the title."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  arms, gate, baselines = summary["arms"], summary["gate"], summary["baselines"]
  metrics = summary["arm_metric"]
  names = list(arms)
  figure, axes = pyplot.subplots(figsize=(2.6 + 1.3 * (len(names) + len(gate["values"])),
                                          3.8))
  for x, arm in enumerate(names):
    values = arms[arm][metrics[arm]]["values"]
    interval = t_interval(values)
    axes.scatter([x] * len(values), values, color="black", s=10, zorder=3,
                 label="seed" if x == 0 else None)
    axes.errorbar([x + 0.15], [np.mean(values)], fmt="o", color="#2a6f97", capsize=4,
                  yerr=None if interval is None else [[np.mean(values) - interval[0]],
                                                      [interval[1] - np.mean(values)]],
                  label="mean, 95% interval" if x == 0 else None)
    axes.hlines(baselines["untrained"]["arms"][arm], x - 0.3, x + 0.3, colors="#c1121f",
                linestyles="dotted", label="untrained" if x == 0 else None)
  lines = (("chance", baselines["chance"], "gray", "dashed"),
           ("most frequent answer", baselines["most_frequent"]["accuracy"], "#e09f3e",
            "dashdot"))
  for label, value, color, style in lines:
    if value is not None:
      axes.axhline(value, color=color, linestyle=style, linewidth=1, label=label)
  for x, (stage, values) in enumerate(gate["values"].items(), start=len(names)):
    axes.scatter([x] * len(values), values, color="#588157", s=14, marker="s", zorder=3,
                 label=f"gate: {gate['metric']}" if x == len(names) else None)
    axes.hlines(gate["threshold"], x - 0.3, x + 0.3, colors="#588157",
                label="gate threshold" if x == len(names) else None)
  labels = [arm if metrics[arm] == summary["metric"] else f"{arm} ({metrics[arm]})"
            for arm in names] + [f"gate: {stage}" for stage in gate["values"]]
  axes.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
  axes.set_ylabel(" / ".join(dict.fromkeys(metrics.values())))
  axes.legend(fontsize=7, loc="best")
  seeds = len(summary["seeds"])
  axes.set_title(f"{summary['claim']}: {summary['verdict']} ({seeds} seed"
                 f"{'s' if seeds > 1 else ''}{', fast' if summary['fast'] else ''})")
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  pyplot.close(figure)


# --------------------------------------------------------------------------------- run


def _cache_compilations(directory: str) -> None:
  """Arms, seeds and claims compile the same programs: keep them in a persistent cache,
  unless the user set one."""
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _untrained(config: ml_collections.ConfigDict, cache: str,
               pipeline: Mapping[str, stages_lib.Stage], report: Callable[[str], None]
               ) -> tuple[dict[str, Any], float]:
  """The untrained baseline (each arm's metric, the gate's metric) and the seconds its
  evaluations took; ``pipeline``: resolved stages (a student's teacher)."""
  claim = config.claim
  model = stages_lib.untrained(config.stages, next(iter(config.arms.values())), cache,
                               pipeline)
  seconds, per_arm = 0.0, {}
  for arm in config.arms:
    figures, spent = stages_lib.evaluate(model, arm_eval(config, arm), report)
    per_arm[arm], seconds = figures[arm_metric(config, arm)], seconds + spent
  figures, spent = stages_lib.evaluate(model, gate_eval(config), report)
  return ({"metric": claim.metric, "arms": per_arm, "gate": figures[claim.gate.metric]},
          seconds + spent)


def _report_lines(summary: Mapping[str, Any]) -> list[str]:
  """The end of a claim's log: arms, comparisons, gate, baselines, verdict."""
  gate, baselines = summary["gate"], summary["baselines"]
  lines = []
  for arm, figures in summary["arms"].items():
    metric = summary["arm_metric"][arm]
    lines.append(f"{arm}: {metric} {figures[metric]['mean']:.3f} ± "
                 f"{figures[metric]['std']:.3f} "
                 f"({', '.join(f'{v:.3f}' for v in figures[metric]['values'])})")
  for c in summary["comparisons"]:
    interval = ("no interval (one seed)" if c["interval"] is None else
                f"95% interval [{c['interval'][0]:+.3f}, {c['interval'][1]:+.3f}]")
    margin = f" (margin {c['margin']:.3f})" if c.get("margin") else ""
    lines.append(f"{c['better']} - {c['worse']} = {c['difference']:+.3f}, {interval}{margin}, "
                 f"wins {c['wins']}/{len(c['differences'])}: {c['verdict']}")
  values = "; ".join(f"{stage} {', '.join(f'{v:.3f}' for v in vs)}"
                     for stage, vs in gate["values"].items())
  lines.append(f"gate ({gate['skill']}): {gate['metric']} {values} vs threshold "
               f"{gate['threshold']:.3f}: {'passed' if gate['passed'] else 'FAILED'}")
  chance = baselines["chance"]
  untrained = baselines["untrained"]
  lines.append(
      f"baselines: chance {'-' if chance is None else f'{chance:.3f}'}, most frequent "
      f"answer {baselines['most_frequent']['answer']!r} "
      f"{baselines['most_frequent']['accuracy']:.3f}, untrained "
      + ", ".join(f"{arm} {v:.3f}" for arm, v in untrained["arms"].items())
      + f" (gate {gate['metric']} {untrained['gate']:.3f})")
  times = summary["times"]
  lines.append(f"times: shared stages {times['shared_s']:.0f} s, per seed "
               + ", ".join(f"{seed}: {s:.0f} s" for seed, s in times["per_seed_s"].items())
               + f", baselines {times['baselines_s']:.0f} s, total {times['total_s']:.0f} s")
  seeds = len(summary["seeds"])
  lines.append(f"claim {summary['claim']}: {summary['verdict']} ({STATISTIC}, {seeds} "
               f"seed{'s' if seeds > 1 else ''})")
  return lines


def _dataset_section(section: ml_collections.ConfigDict, fast: bool
                     ) -> ml_collections.ConfigDict:
  """A ``datasets`` entry as built: {build, args}, its ``fast_args`` over ``args`` when
  ``fast``."""
  args = section.get("args", ml_collections.ConfigDict()).to_dict()
  if fast:
    args.update(section.get("fast_args", ml_collections.ConfigDict()).to_dict())
  return ml_collections.ConfigDict(dict(build=section.build, args=args))


def _with_datasets(config: ml_collections.ConfigDict, cache: str,
                   report: Callable[[str], None]) -> tuple[ml_collections.ConfigDict, dict]:
  """The config with its 'dataset:' paths resolved (the datasets built first) and
  {dataset: {"directory", "figures"}}."""
  built = {name: stages_lib.build_dataset(name, _dataset_section(section, config.fast),
                                         cache, report)
           for name, section in config.get("datasets", {}).items()}
  if not built:
    return config, {}
  plain = stages_lib.with_datasets(config.to_dict(), {n: d for n, (d, _) in built.items()})
  return (ml_collections.ConfigDict(plain),
          {n: {"directory": d, "figures": f} for n, (d, f) in built.items()})


def run(config: ml_collections.ConfigDict, workdir: str,
        report: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs every arm and gate stage for every seed (through the stage cache), evaluates
  them alike, writes ``summary.json`` and the plot into ``workdir``; returns the
  summary."""
  started = time.time()
  cache = stages_lib.cache_root(config.cache_dir)
  config, datasets = _with_datasets(config, cache, report)
  check(config)
  claim = config.claim
  _cache_compilations(os.path.join(cache, "jit"))
  seeds = list(claim.fast_seeds if config.fast else claim.seeds)
  targets = list(dict.fromkeys([*(stage for arm in config.arms
                                   for stage in arm_stages(config, arm)),
                                 *claim.gate.stages]))
  per_seed = {arm: [] for arm in config.arms}
  gate_values = {stage: [] for stage in claim.gate.stages}
  stage_runs = collections.defaultdict(list)
  shared_s, per_seed_s, tokens = 0.0, {}, {}
  for seed in seeds:
    pipeline = stages_lib.resolve(config.stages, targets, cache, seed=seed, fast=config.fast)
    spent = collections.Counter()
    for name, stage in pipeline.items():
      seconds = stages_lib.train(stage, report)
      spent[stage.shared] += seconds
      stage_runs[name].append({"seed": seed, "key": stage.key, "train_s": seconds})
      if jax.process_index() == 0:
        stages_lib.link(stage, os.path.join(workdir, f"seed{seed}", name))
    for arm, name in config.arms.items():
      if arm in config.get("routers", {}):
        figures, seconds = fusion.evaluate_router(pipeline, pipeline[name],
                                                  config.routers[arm], arm_eval(config, arm),
                                                  report)
      else:
        figures, seconds = stages_lib.evaluate(pipeline[name], arm_eval(config, arm), report)
      spent[pipeline[name].shared] += seconds
      per_seed[arm].append(figures)
      tokens[arm] = sum(stages_lib.stage_tokens(pipeline[stage].run)
                        for stage in _arm_chain(config, arm))
    for name in claim.gate.stages:
      if pipeline[name].shared and gate_values[name]:
        continue  # one model for every seed: gated once
      # Read back if an arm on this stage is evaluated with the same section.
      figures, seconds = stages_lib.evaluate(pipeline[name], gate_eval(config), report)
      spent[pipeline[name].shared] += seconds
      gate_values[name].append(figures[claim.gate.metric])
    shared_s += spent[True]
    per_seed_s[str(seed)] = spent[False]
  untrained, baselines_s = _untrained(config, cache, pipeline, report)
  gate = gate_summary(claim.gate, gate_values)
  arms = {arm: {**aggregate(figures), "tokens_seen": tokens[arm]}
          for arm, figures in per_seed.items()}
  metrics = {arm: arm_metric(config, arm) for arm in config.arms}
  comparisons = compare(arms, claim.metric, claim.comparisons, gate["passed"], metrics)
  verdict = claim_verdict(comparisons, gate["passed"])
  records = sources.read_records(config.eval.records, required=("question", "answer"))
  summary = {
      "claim": claim.name, "metric": claim.metric, "arm_metric": metrics, "seeds": seeds,
      "fast": bool(config.fast),
      "statistic": STATISTIC, "arms": arms, "comparisons": comparisons, "verdict": verdict,
      "holds": verdict == "holds", "gate": gate,
      "baselines": {"chance": claim.chance,
                    "most_frequent": most_frequent(records[:config.eval.max_records or None]),
                    "untrained": untrained},
      "stages": {name: {"shared": bool(config.stages[name].shared), "runs": runs}
                 for name, runs in stage_runs.items()},
      "code_version": stages_lib.code_version(), "cache_dir": cache, "datasets": datasets,
      "times": {"shared_s": shared_s, "per_seed_s": per_seed_s, "baselines_s": baselines_s,
                "total_s": time.time() - started}}
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    workdir_lib.write_json(os.path.join(workdir, "summary.json"), summary)
    plot(summary, os.path.join(workdir, f"{claim.name}.png"))
  for line in _report_lines(summary):
    report(line)
  return summary
