"""train/xla_flags.py: the project's CPU flags join XLA_FLAGS without clobbering it."""

import os

import pytest

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
