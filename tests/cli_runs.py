"""Command-line runs for the tests: short, identical settings everywhere, so the
persistent compilation cache (tests/conftest.py) compiles each program once a session."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 10
# Short runs: a checkpoint every 4 steps, every step logged, a small evaluation.
COMMON = [f"--config.train.steps={STEPS}", "--config.train.log_every=1",
          "--config.checkpoint.every_steps=4", "--config.optimizer.warmup_steps=1",
          "--config.eval.max_text_rows=4", "--config.sample.max_new_tokens=4",
          "--config.train.seq_len=64", "--config.train.global_batch_size=8"]
LOOPS = {
    "pretrain": ["--config=configs/tiny_hybrid.py", "--config.eval.records="],
    "sft": ["--config=configs/sft.py"],
    "distill": ["--config=configs/distill.py", "--config.distill.mode=sequence",
                "--config.distill.max_new_tokens=8"],
    "grpo": ["--config=configs/grpo.py", "--config.eval.max_records=8"],
    "rlp": ["--config=configs/rlp.py"],
}
# Timing figures differ between runs; everything else a step logs must not.
TIMING = {"step_time_s", "tokens_per_s", "mfu"}


def env(devices: int = 1) -> dict:
  """The test's environment for a run on ``devices`` CPU devices (other XLA flags, e.g.
  ``--xla_cpu_max_isa=AVX2``, are kept)."""
  flags = [flag for flag in os.environ.get("XLA_FLAGS", "").split()
           if not flag.startswith("--xla_force_host_platform_device_count")]
  flags.append(f"--xla_force_host_platform_device_count={devices}")
  return {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
          "XLA_FLAGS": " ".join(flags)}


def command(loop, workdir, *extra, fault=None) -> list[str]:
  """``python -m train.main`` for ``loop`` (or ``tests/faulty_run.py`` with a fault)."""
  entry = ["-m", "train.main"] if fault is None else [
      os.path.join(ROOT, "tests", "faulty_run.py"), *fault]
  return [sys.executable, *entry, *LOOPS[loop], f"--workdir={workdir}", *COMMON, *extra]


def run(loop, workdir, *extra, fault=None, devices=1, timeout=300):
  return subprocess.run(command(loop, workdir, *extra, fault=fault), cwd=ROOT,
                        env=env(devices), capture_output=True, text=True, timeout=timeout)


def records(workdir, kind="metrics") -> list[dict]:
  with open(os.path.join(workdir, f"{kind}.jsonl")) as f:
    return [json.loads(line) for line in f]


def by_step(workdir) -> dict[int, dict]:
  """{step: metrics without timing} of a run's log."""
  return {r["step"]: {k: v for k, v in r.items() if k not in TIMING} for r in records(workdir)}


def one_line(result, returncode=1) -> str:
  """The one line a failed run prints (asserting it is one line and no traceback)."""
  assert result.returncode == returncode, (result.returncode, result.stderr[-3000:])
  lines = result.stderr.strip().splitlines()
  assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith("error: "), lines
  return lines[0]
