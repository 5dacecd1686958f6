r"""Compile a config's step for a TPU topology we do not have, and report its memory.

  python -m train.aot --config=configs/nemotron_h_8b.py [--topology=v5p:4x4x4] \
      [--config.<section>.<field>=<value> ...]

With ``libtpu`` installed (``pip install -e ".[tpu]"``), ``get_topology_desc`` gives the
devices of a named slice ('v5e:2x2', 'v5p:4x4x4', ...) on any host, CPU included, and
``compile()`` runs the real TPU compiler (XLA:TPU, Mosaic for the Pallas kernels): the
memory it reports is what each chip of the pod would hold, and an over-full step fails
here with the error the pod would give. The step, state and shardings come from the
driver's ``build``, the code a real run uses, for any loop. ``--topology`` defaults to
the config's ``mesh.topology``. The command prints each phase (describing the topology,
building, lowering, compiling: minutes for a large model) with the time elapsed, then
the report; ``--print_config`` lists the config's fields.

``lower_train_step`` only lowers (no libtpu, no compiler) for an abstract mesh of any
size: a quick check that the shardings are consistent.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import jax
import ml_collections
from absl import app, flags
from ml_collections import config_flags

from model import lm
from train import cli, driver, sharding

GiB = 2 ** 30
# Usable HBM per device as the TPU compiler reports it ("exceeds available HBM (…G)").
HBM_BYTES = {
    "TPU v4": 15.25 * GiB,       # per TensorCore device of a v4 topology
    "TPU v5 lite": 15.75 * GiB,  # v5e
    "TPU v5": 95.74 * GiB,       # v5p
    "TPU v6 lite": 31.25 * GiB,  # v6e (Trillium)
}


def topology_devices(name: str) -> list:
  """The devices of TPU topology ``name`` (e.g. 'v5p:4x4x4'), without the hardware."""
  # libtpu takes a per-machine lock by default; several CPU-only compiles may share it.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  try:
    return list(topologies.get_topology_desc(platform="tpu", topology_name=name).devices)
  except (ImportError, RuntimeError) as e:
    raise ValueError(f"topology {name!r}: cannot describe it ({cli.one_line(e)}); is "
                     "libtpu installed (pip install -e '.[tpu]')?") from e


class DoesNotFit(ValueError):
  """The TPU compiler ran out of HBM (or VMEM) for the step."""


@dataclasses.dataclass(frozen=True)
class MemoryReport:
  """Per-device bytes of one compiled step (``total`` = arguments + outputs not aliased
  to them + temporaries + code) and its compiled cost."""
  topology: str
  device_kind: str
  mesh: dict[str, int]
  params: int                 # parameter count
  param_bytes: int
  optimizer_bytes: int
  state_bytes: int            # the whole train state (params, optimizer, extras, rng)
  argument_bytes: int         # state + batch
  output_bytes: int
  alias_bytes: int            # outputs written in place of donated arguments
  temp_bytes: int
  code_bytes: int
  hbm_bytes: float
  flops: float
  bytes_accessed: float

  @property
  def total_bytes(self) -> int:
    return (self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes
            + self.code_bytes)

  @property
  def fraction_of_hbm(self) -> float:
    return self.total_bytes / self.hbm_bytes

  def table(self) -> str:
    gib = lambda v: f"{v / GiB:8.2f} GiB" if v >= GiB / 10 else f"{v / 2**20:8.2f} MiB"
    rows = [
        ("parameters", gib(self.param_bytes)),
        ("optimizer state", gib(self.optimizer_bytes)),
        ("other state", gib(self.state_bytes - self.param_bytes - self.optimizer_bytes)),
        ("batch", gib(self.argument_bytes - self.state_bytes)),
        ("outputs not in place", gib(self.output_bytes - self.alias_bytes)),
        ("temporaries", gib(self.temp_bytes)),
        ("code", gib(self.code_bytes)),
        ("total", gib(self.total_bytes)),
        ("HBM", gib(self.hbm_bytes)),
        ("headroom", f"{100 * (1 - self.fraction_of_hbm):8.1f} %"),
        ("FLOPs / step / device", f"{self.flops:.3e}"),
        ("bytes accessed / device", f"{self.bytes_accessed:.3e}"),
    ]
    head = (f"{self.topology} ({self.device_kind}), mesh {self.mesh}, "
            f"{self.params:,} parameters; per device:")
    return "\n".join([head] + [f"  {name:<24}{value}" for name, value in rows])


def _abstract_step(config: ml_collections.ConfigDict, mesh):
  """(jitted step, abstract state and batch with shardings, built) on ``mesh``."""
  _, model_cfg = driver.check(config, mesh.size)
  built = driver.build(config, mesh, driver.load_tokenizer(config, model_cfg))
  abstract_batch = built.loop.abstract_batch(built.ctx)
  batch = sharding.with_shardings(abstract_batch, built.batch_shardings(abstract_batch))
  return built.jit_step(abstract_batch), (built.abstract_state_with_shardings, batch), built


def _with_elapsed_time(report: Callable[[str], None]) -> Callable[[str], None]:
  """``report`` with each message prefixed by the seconds since this call."""
  started = time.perf_counter()
  return lambda message: report(f"[{time.perf_counter() - started:6.1f} s] {message}")


def compile_train_step(config: ml_collections.ConfigDict, topology: str = "",
                       report: Callable[[str], None] = lambda message: None
                       ) -> tuple[jax.stages.Compiled, MemoryReport]:
  """(compiled step, per-device memory report) for TPU ``topology`` (default: the
  config's ``mesh.topology``); each phase is reported as it starts, with the seconds
  elapsed. Raises the compiler's error if the step does not fit."""
  topology = topology or config.mesh.get("topology", "")
  if not topology:
    raise ValueError("no topology: pass --topology=<name> (e.g. v5p:4x4x4) or set "
                     "mesh.topology in the config")
  phase = _with_elapsed_time(report)
  phase(f"describing TPU topology {topology}")
  devices = topology_devices(topology)
  mesh = sharding.make_mesh(config.mesh, devices)
  phase(f"building the step for mesh {dict(mesh.shape)} of {len(devices)} "
        f"{devices[0].device_kind} devices")
  jitted, args, built = _abstract_step(config, mesh)
  phase("tracing and lowering the step")
  lowered = jitted.trace(*args).lower()
  phase("compiling with the TPU compiler (minutes for a large model)")
  try:
    compiled = lowered.compile()
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    raise DoesNotFit(f"{topology}: the step does not fit: {cli.one_line(e)}") from e
  phase("compiled")
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis() or {}
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  kind = devices[0].device_kind
  if kind not in HBM_BYTES:
    raise ValueError(f"topology {topology!r}: device kind {kind!r} has no HBM size in "
                     f"train/aot.py HBM_BYTES (known: {sorted(HBM_BYTES)})")
  state, shardings = built.abstract_state, built.state_shardings
  report = MemoryReport(
      topology=topology, device_kind=kind, mesh=dict(mesh.shape),
      params=lm.count_params(built.ctx.model_cfg),
      param_bytes=sharding.bytes_per_device(state.params, shardings.params),
      optimizer_bytes=sharding.bytes_per_device(state.opt_state, shardings.opt_state),
      state_bytes=sharding.bytes_per_device(state, shardings),
      argument_bytes=memory.argument_size_in_bytes, output_bytes=memory.output_size_in_bytes,
      alias_bytes=memory.alias_size_in_bytes, temp_bytes=memory.temp_size_in_bytes,
      code_bytes=memory.generated_code_size_in_bytes, hbm_bytes=HBM_BYTES[kind],
      flops=float(cost.get("flops", 0.0)),
      bytes_accessed=float(cost.get("bytes accessed", 0.0)))
  return compiled, report


def lower_train_step(config: ml_collections.ConfigDict, num_devices: int,
                     platform: str = "tpu") -> tuple[jax.stages.Lowered, dict[str, Any]]:
  """(lowered step, report) for an abstract mesh of ``num_devices`` devices of
  ``platform``: shardings and shapes only, no compiler and no memory figures.

  report: 'mesh' (axis sizes), 'params' (count), 'param_bytes_per_device',
  'optimizer_bytes_per_device', 'state_bytes_per_device'.
  """
  mesh = sharding.abstract_mesh(config.mesh, num_devices)
  jitted, args, built = _abstract_step(config, mesh)
  lowered = jitted.trace(*args).lower(lowering_platforms=(platform,))
  state, shardings = built.abstract_state, built.state_shardings
  report = {
      "mesh": dict(mesh.shape),
      "params": lm.count_params(built.ctx.model_cfg),
      "param_bytes_per_device": sharding.bytes_per_device(state.params, shardings.params),
      "optimizer_bytes_per_device": sharding.bytes_per_device(state.opt_state,
                                                              shardings.opt_state),
      "state_bytes_per_device": sharding.bytes_per_device(state, shardings),
  }
  return lowered, report


def main(argv: list[str]) -> None:
  with cli.entry_point(argv):
    _, report = compile_train_step(flags.FLAGS.config, flags.FLAGS.topology,
                                   report=lambda message: print(message, flush=True))
    print(report.table())


if __name__ == "__main__":
  config_flags.DEFINE_config_file(
      "config", None, "Run config file (configs/*.py); --print_config lists its fields.",
      lock_config=True)
  flags.DEFINE_string("topology", "", "TPU topology, e.g. v5p:4x4x4 (default: the "
                      "config's mesh.topology).")
  flags.adopt_module_key_flags(cli)  # --print_config and --traceback in --help
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.aot --config=configs/<name>.py [--topology=<tpu topology>] "
      "[--config.<section>.<field>=<value> ...]", required=("config",)))
