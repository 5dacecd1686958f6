"""The XLA flags the project sets for its CPU runs, in one place.

``apply()`` adds them to ``XLA_FLAGS`` before JAX starts its backends (the entry points
call it at import: train/main.py, the bench scripts, tests/conftest.py). It never
overrides a flag the user already set in ``XLA_FLAGS``; ``REASONAX_XLA_FLAGS=0`` turns
the project's flags off. They are ``xla_cpu_*`` debug options, which GPU and TPU
compilers ignore, and they are only added for the jaxlib releases they were measured
on: XLA aborts at start on a flag it does not know, and experimental flags come and go.

``run_once_options()`` are per-program compiler options for the programs a run calls once
or a few times (weight init, state creation, checkpoint checksums, evaluation losses): on
CPU, XLA's backend optimization level 1 instead of its default, which compiles them faster
(the same initial weights, bit for bit); steps and samplers keep the default, which runs
them faster (bench/RESULTS.md). The switch turns these off too.

``describe()`` is the line benchmarks print: CPU model, ISA and the XLA flags in effect.
"""

from __future__ import annotations

import os
import platform

# Dots (with their fusible neighbours) as YNNPACK library fusions: bench/RESULTS.md has the
# measurements of this and the other library-fusion settings.
CPU_FLAGS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}
MEASURED_JAXLIB = ((0, 10),)  # (major, minor) releases whose XLA knows CPU_FLAGS
SWITCH = "REASONAX_XLA_FLAGS"
RUN_ONCE_OPTIONS = {"xla_backend_optimization_level": 1}


def _jaxlib_release() -> tuple[int, int]:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    major, minor = metadata.version("jaxlib").split(".")[:2]
    return int(major), int(minor)
  except (metadata.PackageNotFoundError, ValueError):
    return (0, 0)


def _switched_off() -> bool:
  return os.environ.get(SWITCH, "1") == "0"


def add_unless_set(flags: dict[str, object]) -> None:
  """Appends ``--name=value`` to XLA_FLAGS for each flag the environment does not set."""
  existing = os.environ.get("XLA_FLAGS", "")
  extra = [f"--{name}={value}" for name, value in flags.items()
           if f"--{name}=" not in existing]
  if extra:
    os.environ["XLA_FLAGS"] = " ".join([existing, *extra]).strip()


def apply() -> None:
  """Appends the project's CPU flags to XLA_FLAGS, keeping every flag already there."""
  if not _switched_off() and _jaxlib_release() in MEASURED_JAXLIB:
    add_unless_set(CPU_FLAGS)


def run_once_options() -> dict[str, int] | None:
  """``jax.jit(..., compiler_options=run_once_options())`` for a program run once or a few
  times per run: RUN_ONCE_OPTIONS on the CPU backend, None (XLA's defaults) elsewhere."""
  import jax  # pylint: disable=g-import-not-at-top
  if _switched_off() or jax.default_backend() != "cpu":
    return None
  return dict(RUN_ONCE_OPTIONS)


def _cpu_model_and_flags() -> tuple[str, set[str]]:
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
          model = value.strip()
        elif key.strip() == "flags":
          flags = set(value.split())
          break
  except OSError:
    pass
  return model, flags


def describe() -> str:
  """'CPU <model> (<n> cores); ISA <detected> (max isa <flag>); XLA_FLAGS <flags>'."""
  model, cpu_flags = _cpu_model_and_flags()
  isa = [name for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"),
                                 ("AVX512-BF16", "avx512_bf16"), ("AMX", "amx_tile"))
         if flag in cpu_flags]
  xla_flags = os.environ.get("XLA_FLAGS", "")
  max_isa = next((f.split("=", 1)[1] for f in xla_flags.split()
                  if f.startswith("--xla_cpu_max_isa=")), "default (all detected)")
  return (f"CPU {model} ({os.cpu_count()} cores); ISA detected {'+'.join(isa) or 'unknown'}, "
          f"XLA max isa {max_isa}; XLA_FLAGS {xla_flags or '(none)'}")
