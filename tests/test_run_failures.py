"""Bad input and failures end a run with one clear line and an intact workdir."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
       "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
# A short pretraining run with a tiny evaluation.
ARGS = ["--config.train.steps=4", "--config.train.seq_len=64",
        "--config.train.global_batch_size=8", "--config.train.log_every=1",
        "--config.optimizer.warmup_steps=1", "--config.checkpoint.every_steps=2",
        "--config.eval.max_text_rows=2", "--config.eval.records=",
        "--config.sample.max_new_tokens=2"]


def command(workdir, *extra, config="configs/tiny_hybrid.py"):
  return [sys.executable, "-m", "train.main", f"--config={config}", f"--workdir={workdir}",
          *ARGS, *extra]


def run(workdir, *extra, **kwargs):
  return subprocess.run(command(workdir, *extra, **kwargs), cwd=ROOT, env=ENV,
                        capture_output=True, text=True, timeout=300)


def failing_run(workdir, *extra, **kwargs):
  """The one line a failed run prints (asserting it is one line and no traceback)."""
  result = run(workdir, *extra, **kwargs)
  assert result.returncode != 0, result.stdout[-2000:]
  lines = result.stderr.strip().splitlines()
  assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith("error: "), lines
  return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("finished")
  result = run(workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def test_missing_and_empty_data_files_are_named(tmp_path):
  missing = tmp_path / "no_such_corpus.txt"
  line = failing_run(tmp_path / "a", f"--config.data.sources.web.path={missing}")
  assert str(missing) in line
  empty = tmp_path / "empty.jsonl"
  empty.write_text("")
  line = failing_run(tmp_path / "b", f"--config.data.sources.reasoning.path={empty}")
  assert str(empty) in line and "no records" in line
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_checkpoint_of_another_model_shape_is_named(finished_run):
  line = failing_run(finished_run, "--config.model.d_model=96")
  assert os.path.join(str(finished_run), "checkpoints", "4") in line
  assert "params/embed" in line and "(1024, 128)" in line and "(1024, 96)" in line


@pytest.mark.slow
def test_default_tiny_hybrid_run_learns_the_corpus(tmp_path):
  """The full CPU default (300 steps, ~1-2 minutes): loss from ~6.9 to below 1.5."""
  result = subprocess.run(
      [sys.executable, "-m", "train.main", "--config=configs/tiny_hybrid.py",
       f"--workdir={tmp_path}"], cwd=ROOT, env=ENV, capture_output=True, text=True,
      timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "metrics.jsonl") as f:
    losses = {r["step"]: r["loss"] for r in map(json.loads, f)}
  assert losses[1] > 6.0 and losses[300] < 1.5
