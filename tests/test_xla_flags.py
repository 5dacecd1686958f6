"""train/xla_flags.py: the project's CPU flags join XLA_FLAGS without clobbering it, and
libtpu stays quiet on a host without TPUs."""

import functools
import importlib.util
import os
import subprocess
import sys

import chex
import jax
import pytest

from cli_runs import ROOT, one_line
from configs import tiny_hybrid
from model import lm
from model import tpu_host
from train import config as run_config
from train import xla_flags


@pytest.fixture
def env(monkeypatch):
  monkeypatch.delenv(xla_flags.SWITCH, raising=False)
  monkeypatch.setattr(xla_flags, "_jaxlib_release", lambda: xla_flags.MEASURED_JAXLIB[0])
  return monkeypatch


def test_flags_are_appended_once_after_the_users(env):
  env.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
  xla_flags.apply()
  xla_flags.apply()
  flags = os.environ["XLA_FLAGS"].split()
  assert flags[0] == "--xla_cpu_max_isa=AVX2"
  assert sorted(flags[1:]) == sorted(f"--{k}={v}" for k, v in xla_flags.CPU_FLAGS.items())


def test_a_flag_the_user_set_wins(env):
  name = next(iter(xla_flags.CPU_FLAGS))
  env.setenv("XLA_FLAGS", f"--{name}=USER_VALUE")
  xla_flags.apply()
  assert os.environ["XLA_FLAGS"].count(f"--{name}=") == 1


@pytest.mark.parametrize("switch, release", [("0", None), (None, (9, 9))])
def test_switched_off_or_unmeasured_jaxlib_adds_nothing(env, switch, release):
  env.delenv("XLA_FLAGS", raising=False)
  if switch is not None:
    env.setenv(xla_flags.SWITCH, switch)
  if release is not None:
    env.setattr(xla_flags, "_jaxlib_release", lambda: release)
  xla_flags.apply()
  assert "XLA_FLAGS" not in os.environ


def test_describe_names_cpu_isa_and_flags(env):
  env.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
  line = xla_flags.describe()
  assert line.startswith("CPU ") and "max isa AVX2" in line and "XLA_FLAGS --xla_cpu" in line


def test_run_once_options_compile_the_same_initial_weights(env):
  """The options the driver compiles weight init with (on the CPU backend): the same
  weights as XLA's default level 3 (which the suite's XLA_FLAGS lower, tests/conftest.py),
  to float tolerance (measured here: the same bits)."""
  init = functools.partial(lm.init, cfg=run_config.model_config(tiny_hybrid.get_config().model))
  options = xla_flags.run_once_options()
  assert options == xla_flags.RUN_ONCE_OPTIONS
  key = jax.random.PRNGKey(3)
  default = jax.jit(init, compiler_options={"xla_backend_optimization_level": 3})
  chex.assert_trees_all_close(jax.jit(init, compiler_options=options)(key), default(key),
                              rtol=1e-6, atol=1e-7)
  env.setenv(xla_flags.SWITCH, "0")
  assert xla_flags.run_once_options() is None


# What libtpu prints on a host without TPUs when nothing tells it about the host.
TPU_PROBING = ("Failed to find host bounds", "unexpected worker hostname",
               "Source Location Trace")


def _run_without_tpu_host_env(*argv):
  """``python *argv`` as a user starts it: no JAX_PLATFORMS, no TPU host description.
  (ALLOW_MULTIPLE_LIBTPU_LOAD: libtpu takes a per-machine lock, and a process that does
  not get it, here one of the test's neighbours, gives up quietly before probing.)"""
  unset = {"JAX_PLATFORMS", *tpu_host.NO_TPU_HOST_ENV}
  env = {name: value for name, value in os.environ.items() if name not in unset}
  env.update(PYTHONPATH=ROOT, ALLOW_MULTIPLE_LIBTPU_LOAD="1")
  return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=180)


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="no libtpu")
@pytest.mark.skipif(tpu_host.has_tpu_chips(), reason="a TPU host")
def test_no_libtpu_probing_lines_on_a_host_without_tpus():
  """A bare JAX process prints libtpu's probing; one that imports our models first prints
  nothing, and the entry points, through JAX's CPU backend (train.main) and libtpu's
  topologies (train.aot), print only their one line."""
  bare = _run_without_tpu_host_env("-c", "import jax; jax.devices()")
  assert bare.returncode == 0 and any(line in bare.stderr for line in TPU_PROBING), bare.stderr
  library = _run_without_tpu_host_env("-c", "import model, jax; jax.devices()")
  assert library.returncode == 0 and not library.stderr.strip(), library.stderr
  overrides = ["--config=configs/tiny_hybrid.py", "--config.optimizer.learning_rate=-1"]
  for command in (["-m", "train.main", "--workdir=/nonexistent/run", *overrides],
                  ["-m", "train.aot", "--topology=v5e:2x2", *overrides]):
    line = one_line(_run_without_tpu_host_env(*command))
    assert line == "error: optimizer.learning_rate=-1.0 must be in [0, inf]", command
