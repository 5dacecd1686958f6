"""Test-wide settings: the project's XLA CPU flags (train/xla_flags.py), strict rank
promotion, absl flags parsed for grain workers, and one persistent compilation cache for
the session (the test process and the command-line runs it starts compile many identical
programs); session runs shared by test modules."""

import json
import os
import subprocess
import sys
import tempfile

from train import xla_flags

xla_flags.apply()

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="reasonax-jit-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

import cli_runs  # pylint: disable=g-import-not-at-top

jax.config.update("jax_numpy_rank_promotion", "raise")
flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
  """``reference_run(loop)``: one uninterrupted command-line run per loop (made on first
  use, shared by every test module; copy it before changing it)."""
  runs = {}

  def get(loop):
    if loop not in runs:
      workdir = tmp_path_factory.mktemp(f"reference_{loop}")
      result = cli_runs.run(loop, workdir)
      assert result.returncode == 0, result.stderr[-3000:]
      runs[loop] = workdir, result
    return runs[loop]
  return get


FAST_CLAIMS = ("long_cot", "rlp")


@pytest.fixture(scope="session")
def fast_claims(tmp_path_factory):
  """The fast claims, each run once through the command line on one CPU device:
  {name: (workdir, summary)}; notebooks/claims.ipynb reads them back from
  ``os.path.dirname(workdir)``."""
  root = tmp_path_factory.mktemp("claims")
  out = {}
  for name in FAST_CLAIMS:
    workdir = root / name
    result = subprocess.run(
        [sys.executable, "-m", "train.main", f"--config=configs/claims/{name}.py",
         f"--workdir={workdir}", "--config.fast=True"], cwd=cli_runs.ROOT,
        env=cli_runs.env(1), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(workdir / "summary.json") as f:
      out[name] = str(workdir), json.load(f)
  return out
