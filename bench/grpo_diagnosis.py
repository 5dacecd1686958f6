"""Per-step view of GRPO runs (arXiv 2402.03300): one figure, a panel per quantity.

Reads each workdir's ``metrics.jsonl`` (the training figures of every logged step: run
with ``--config.train.log_every=1`` for every step) and ``eval.jsonl`` (held-out
figures every ``eval.every_steps`` steps), plus ``<workdir>/start/eval.jsonl`` if it
exists (the starting weights evaluated with the same eval section, drawn at step 0):

  python bench/grpo_diagnosis.py --out=/tmp/grpo/diagnosis.png WORKDIR [WORKDIR ...]

Panels: held-out greedy pass@1 and sampled accuracy (``sample_accuracy``), the
training reward, KL to the reference (logged when ``grpo.kl_coef`` > 0), the entropy of
the sampled tokens, the completion length, the share of truncated completions and the
share of groups with equal rewards (skipped with ``grpo.skip_uniform_groups``) and the
gradient norm. (The importance ratio is not drawn: one update per batch of rollouts is
on-policy, ρ = 1.)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

# (panel title, file, figure names drawn in it)
PANELS = (
    ("held-out accuracy", "eval", ("pass@1", "sample_accuracy")),
    ("training reward (mean)", "metrics", ("reward_mean",)),
    ("KL to the reference (k3)", "metrics", ("kl",)),
    ("entropy per sampled token (nats)", "metrics", ("entropy",)),
    ("completion length (tokens)", "metrics", ("completion_length",)),
    ("truncated share", "metrics", ("truncated",)),
    ("groups with equal rewards", "metrics", ("uniform_reward_groups",)),
    ("gradient norm (before clipping)", "metrics", ("grad_norm",)),
)


def read_jsonl(path: pathlib.Path) -> list[dict]:
  if not path.exists():
    return []
  with path.open(encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def series(records: list[dict], name: str) -> tuple[list[int], list[float]]:
  """(steps, values) of one figure, the last record of a step winning."""
  by_step = {r["step"]: r[name] for r in records if name in r}
  steps = sorted(by_step)
  return steps, [by_step[s] for s in steps]


def run_records(workdir: pathlib.Path) -> dict[str, list[dict]]:
  """{'metrics': training records, 'eval': held-out records, the start's at step 0}."""
  start = [dict(r, step=0) for r in read_jsonl(workdir / "start" / "eval.jsonl")]
  return {"metrics": read_jsonl(workdir / "metrics.jsonl"),
          "eval": start[-1:] + read_jsonl(workdir / "eval.jsonl")}


def plot(workdirs: list[pathlib.Path], out: str) -> None:
  columns = 4
  rows = -(-len(PANELS) // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows),
                              squeeze=False)
  for axis, (title, kind, names) in zip(axes.flat, PANELS):
    for index, workdir in enumerate(workdirs):
      records = run_records(workdir)[kind]
      for name, style in zip(names, ("-", "--")):
        steps, values = series(records, name)
        if steps:
          axis.plot(steps, values, style, color=f"C{index}", marker="." if kind == "eval" else None,
                    label=f"{workdir.name} {name}" if len(names) > 1 else workdir.name)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel("step")
    axis.grid(alpha=0.3)
  axes.flat[0].legend(fontsize=7)
  axes.flat[1].legend(fontsize=7)
  figure.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  figure.savefig(out, dpi=110)
  print(f"wrote {out}")


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("workdirs", nargs="+", type=pathlib.Path)
  parser.add_argument("--out", default="grpo_diagnosis.png")
  args = parser.parse_args(argv)
  plot(args.workdirs, args.out)


if __name__ == "__main__":
  main(sys.argv[1:])
