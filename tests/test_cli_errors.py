"""Errors on the command line (train/cli.py): our checks' errors as one line; errors a
library raises (JAX's ValueError for a shape or sharding bug) and any error under
--traceback or REASONAX_TRACEBACK=1 with their tracebacks, on every entry point."""

import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from absl.testing import flagsaver

from cli_runs import ROOT, env, one_line
from configs import tiny_hybrid
from train import cli
from train import config as run_config


def outcome(fail):
  """What ``errors_as_one_line`` makes of ``fail()``: ('exit', its message) or ('raised',
  the error)."""
  try:
    with cli.errors_as_one_line():
      fail()
  except SystemExit as e:
    return "exit", e.code
  except Exception as e:  # pylint: disable=broad-except
    return "raised", e
  raise AssertionError("fail() did not fail")


def our_check():
  config = tiny_hybrid.get_config()
  config.train.steps = 0
  run_config.check_ranges(config, run_config.RANGES)


def a_sharding_bug():
  mesh = jax.sharding.Mesh(jax.devices()[:1], ("x",))
  jax.device_put(jnp.ones(3), jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("x", "y")))


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
  """The process's sys.unraisablehook kept (errors_as_one_line sets it), and no
  REASONAX_TRACEBACK from the environment."""
  monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
  monkeypatch.delenv(cli.TRACEBACK_VARIABLE, raising=False)


def test_our_checks_are_one_line_and_library_errors_keep_their_traceback(tmp_path):
  assert outcome(our_check) == ("exit", "error: train.steps=0 must be in [1, inf]")
  kind, error = outcome(a_sharding_bug)
  assert kind == "raised" and isinstance(error, ValueError), (kind, error)
  missing = tmp_path / "missing.txt"   # an OSError names the file wherever it was asked
  kind, message = outcome(lambda: shutil.copy(missing, tmp_path / "copy.txt"))
  assert kind == "exit" and message.startswith("error: [Errno 2] No such file or "
                                               f"directory: '{missing}'")


def test_traceback_flag_and_variable_show_every_error(monkeypatch):
  with flagsaver.flagsaver(traceback=True):
    kind, error = outcome(our_check)
  assert kind == "raised" and isinstance(error, run_config.ConfigError)
  monkeypatch.setenv(cli.TRACEBACK_VARIABLE, "1")
  kind, error = outcome(our_check)
  assert kind == "raised" and isinstance(error, run_config.ConfigError)


@pytest.mark.parametrize("entry, args, last_line", [
    ("train.main", ["--config=configs/tiny_hybrid.py", "--workdir={tmp}/run",
                    "--config.optimizer.learning_rate=-1"],
     "train.config.ConfigError: optimizer.learning_rate=-1.0 must be in [0, inf]"),
    ("train.evaluate", ["--config=configs/tiny_hybrid.py", "--checkpoint={tmp}/none"],
     "FileNotFoundError: --checkpoint={tmp}/none: no such directory"),
    ("train.export", ["--workdir={tmp}/none", "--output={tmp}/out"],
     "FileNotFoundError: {tmp}/none/config.json not found: --workdir must be the workdir "
     "of a train.main run"),
    ("train.aot", ["--config=configs/tiny_hybrid.py"],
     "ValueError: no topology: pass --topology=<name> (e.g. v5p:4x4x4) or set "
     "mesh.topology in the config"),
])
def test_every_entry_point_takes_traceback(entry, args, last_line, tmp_path):
  args = [arg.format(tmp=tmp_path) for arg in args]
  result = subprocess.run([sys.executable, "-m", entry, *args, "--traceback"], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=120)
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback (most recent call last)" in result.stderr, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == last_line.format(tmp=tmp_path)


def test_an_entry_points_own_check_is_one_line(tmp_path):
  """Raised in train/main.py, run as __main__."""
  result = subprocess.run(
      [sys.executable, "-m", "train.main", "--config=configs/claims/long_cot.py",
       f"--workdir={tmp_path / 'claim'}", "--allow_config_changes"], cwd=ROOT, env=env(),
      capture_output=True, text=True, timeout=120)
  assert one_line(result) == ("error: --allow_config_changes resumes a run, not a claim's "
                              "stages; run a changed claim in a new --workdir")
