"""Test-wide settings: the project's XLA CPU flags (train/xla_flags.py), XLA's backend
optimization level 1 (faster compiles), strict rank promotion, absl flags parsed for grain
workers, one persistent compilation cache and one claims' stage cache for the session (the
test process and the command-line runs it starts compile many identical programs); session
runs shared by test modules and by the pytest-xdist workers that pytest.ini starts (two:
the suite is mostly single-threaded XLA compiles)."""

import json
import os
import subprocess
import sys
import tempfile

from train import xla_flags

xla_flags.apply()
# The suite compiles far more than it runs: XLA's backend at optimization level 1 compiles
# about a third faster and runs steps ~6% slower (bench/RESULTS.md). The command-line runs
# the tests start inherit it.
xla_flags.add_unless_set({"xla_force_host_platform_device_count": 8,
                          "xla_backend_optimization_level": 1})
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="reasonax-jit-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The claims' stage cache (train/stages.py): one per session, not the user's.
os.environ.setdefault("REASONAX_STAGE_CACHE", tempfile.mkdtemp(prefix="reasonax-stages-"))

import jax  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

import cli_runs  # pylint: disable=g-import-not-at-top
import filelock  # pylint: disable=g-import-not-at-top

jax.config.update("jax_numpy_rank_promotion", "raise")
flags.FLAGS.mark_as_parsed()


def _once(tmp_path_factory, key: str, make):
  """(directory, make(directory)) with ``make`` run once per test session, also when
  pytest-xdist splits the tests over worker processes: the first worker to ask runs it
  under a file lock in the session's shared temporary directory and writes its
  JSON-able result there; the others wait, then read it back."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent                    # one directory per session, above the workers'
  directory, result = root / key, root / f"{key}.json"
  directory.parent.mkdir(parents=True, exist_ok=True)
  with filelock.FileLock(str(root / f"{key}.lock")):
    if not result.exists():
      if directory.exists():
        raise RuntimeError(f"{key}: an earlier attempt in this session failed; see its "
                           f"error in the worker that ran it ({directory})")
      directory.mkdir()
      value = make(directory)
      result.write_text(json.dumps(value))
    return directory, json.loads(result.read_text())


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
  """``reference_run(loop)``: (workdir, {"stdout"}) of one uninterrupted command-line run
  per loop, made on first use and shared by every test module and worker (copy the
  workdir before changing it)."""

  def make(loop, workdir):
    result = cli_runs.run(loop, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"stdout": result.stdout}
  return lambda loop: _once(tmp_path_factory, f"reference_{loop}",
                            lambda workdir: make(loop, workdir))


FAST_CLAIMS = ("long_cot", "rlp")   # the ones notebooks/claims.ipynb reads back


@pytest.fixture(scope="session")
def fast_claim(tmp_path_factory):
  """``fast_claim(name)``: (workdir, summary) of the fast claim ``name``, run once per
  session through the command line on one CPU device."""

  def make(name, workdir):
    result = subprocess.run(
        [sys.executable, "-m", "train.main", f"--config=configs/claims/{name}.py",
         f"--workdir={workdir}", "--config.fast=True"], cwd=cli_runs.ROOT,
        env=cli_runs.env(1), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(workdir / "summary.json") as f:
      return json.load(f)
  return lambda name: _once(tmp_path_factory, f"claims/{name}",
                            lambda workdir: make(name, workdir))


@pytest.fixture(scope="session")
def fast_claims(fast_claim):
  """{name: (workdir, summary)} of `FAST_CLAIMS`, in order; notebooks/claims.ipynb reads
  them back from ``os.path.dirname(workdir)``."""
  out = {}
  for name in FAST_CLAIMS:
    workdir, summary = fast_claim(name)
    out[name] = str(workdir), summary
  return out
