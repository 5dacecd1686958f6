"""The command line end to end on the shipped corpus: learning, logs, checkpoints, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from train import tensorboard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 40
# A short run of the CPU default config: ~1k tokens per step, a checkpoint every 10 steps.
ARGS = [f"--config.train.steps={STEPS}", "--config.train.seq_len=64",
        "--config.train.global_batch_size=8", "--config.train.log_every=1",
        "--config.optimizer.warmup_steps=5", "--config.checkpoint.every_steps=10",
        "--config.sample.max_new_tokens=16"]
ENV = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
       "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


def command(workdir, *extra):
  return [sys.executable, "-m", "train.main", "--config=configs/tiny_hybrid.py",
          f"--workdir={workdir}", *ARGS, *extra]


def train(workdir, *extra, timeout=240):
  result = subprocess.run(command(workdir, *extra), cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def logged_losses(workdir):
  """{step: loss} from metrics.jsonl; a step logged twice (after a resume) keeps the last."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {record["step"]: record["loss"] for record in map(json.loads, f)}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  return workdir, train(workdir)


def test_loss_drops_well_below_its_start(reference_run):
  workdir, _ = reference_run
  losses = logged_losses(workdir)
  assert sorted(losses) == list(range(1, STEPS + 1))
  start = losses[1]
  end = sum(losses[s] for s in range(STEPS - 4, STEPS + 1)) / 5
  assert start > 6.0  # ~ln(1024) at initialisation
  assert end < 0.6 * start, (start, end)


def test_run_writes_logs_checkpoints_and_samples(reference_run):
  workdir, result = reference_run
  records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  assert {"loss", "learning_rate", "grad_norm", "tokens_per_s"} <= set(records[-1])
  assert "mfu" not in records[-1]  # CPU: unknown peak FLOP/s
  (events,) = (workdir / "tensorboard").iterdir()
  assert (STEPS, "loss", pytest.approx(records[-1]["loss"])) in tensorboard.read_scalars(
      str(events))
  assert sorted(os.listdir(workdir / "checkpoints")) == ["30", "40"]
  assert "samples:" in result.stdout
  assert "'Once upon a time' → " in result.stdout
  assert f"step {STEPS}/{STEPS} | loss" in result.stdout


def test_sigkill_then_restart_resumes_and_matches_an_uninterrupted_run(reference_run,
                                                                       tmp_path):
  reference, _ = reference_run
  process = subprocess.Popen(command(tmp_path), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
      if os.path.exists(tmp_path / "metrics.jsonl") and max(logged_losses(tmp_path),
                                                            default=0) >= 25:
        break
      time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
  finally:
    if process.poll() is None:
      process.kill()
  killed_at = max(logged_losses(tmp_path))
  assert killed_at < STEPS

  result = train(tmp_path)
  resumed_from = int(result.stdout.split("resuming at step ")[1].split()[0])
  assert 10 <= resumed_from <= killed_at
  expected, got = logged_losses(reference), logged_losses(tmp_path)
  for step in range(resumed_from + 1, STEPS + 1):
    assert got[step] == pytest.approx(expected[step], rel=1e-6), step


def failing_run(workdir, *extra):
  result = subprocess.run(command(workdir, *extra), cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode != 0
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  return result.stderr


def test_missing_and_empty_data_files_are_named(tmp_path):
  missing = tmp_path / "no_such_corpus.txt"
  stderr = failing_run(tmp_path / "a", f"--config.data.sources.web.path={missing}")
  assert str(missing) in stderr
  empty = tmp_path / "empty.jsonl"
  empty.write_text("")
  stderr = failing_run(tmp_path / "b", f"--config.data.sources.reasoning.path={empty}")
  assert str(empty) in stderr and "no documents" in stderr


def test_checkpoint_of_another_model_shape_is_named(reference_run):
  workdir, _ = reference_run
  stderr = failing_run(workdir, "--config.model.d_model=96")
  assert os.path.join(str(workdir), "checkpoints", str(STEPS)) in stderr
  assert "params/embed" in stderr and "(1024, 128)" in stderr and "(1024, 96)" in stderr


@pytest.mark.slow
def test_default_tiny_hybrid_run_learns_the_corpus(tmp_path):
  """The full CPU default (300 steps, ~1-2 minutes): loss from ~6.9 to below 1.5."""
  result = subprocess.run(
      [sys.executable, "-m", "train.main", "--config=configs/tiny_hybrid.py",
       f"--workdir={tmp_path}"], cwd=ROOT, env=ENV, capture_output=True, text=True,
      timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  losses = logged_losses(tmp_path)
  assert losses[1] > 6.0 and losses[300] < 1.5
