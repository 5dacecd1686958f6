"""A run's metrics: throughput and MFU, and one logger for console, JSONL and TensorBoard."""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, Optional

# Dense bf16 peak FLOP/s per device, matched against ``jax.Device.device_kind`` by
# substring, first match wins (so specific names go before general ones).
PEAK_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("TPU v6", 918e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v5", 459e12),
    ("TPU v4", 275e12),
)


def peak_flops_per_device(device_kind: str) -> Optional[float]:
  """Peak FLOP/s of one device, or None for devices we do not know (e.g. CPUs)."""
  for name, flops in PEAK_FLOPS:
    if name.lower() in device_kind.lower():
      return flops
  return None


class Throughput:
  """Step time, tokens/s and MFU between calls to ``measure`` (call it after a sync)."""

  def __init__(self, *, tokens_per_step: int, flops_per_token: float, num_devices: int,
               device_kind: str):
    self._tokens_per_step = tokens_per_step
    self._flops_per_token = flops_per_token
    self._peak = peak_flops_per_device(device_kind)
    self._num_devices = num_devices
    self._last_time: Optional[float] = None
    self._last_step = 0

  def start(self, step: int) -> None:
    self._last_time, self._last_step = time.perf_counter(), step

  def measure(self, step: int) -> dict[str, float]:
    """{'step_time_s', 'tokens_per_s', 'mfu' (when the device's peak is known)} since the
    last call; {} on the first."""
    now = time.perf_counter()
    if self._last_time is None or step <= self._last_step:
      self.start(step)
      return {}
    step_time = (now - self._last_time) / (step - self._last_step)
    self.start(step)
    out = {"step_time_s": step_time, "tokens_per_s": self._tokens_per_step / step_time}
    if self._peak:
      out["mfu"] = out["tokens_per_s"] * self._flops_per_token / (self._num_devices * self._peak)
    return out


def read_records(path: str) -> list[dict]:
  """The JSON records of a ``metrics.jsonl`` / ``eval.jsonl`` ([] if absent)."""
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def keep_records_up_to(path: str, step: int) -> None:
  """Drops the records of steps after ``step`` (a resumed run logs them again)."""
  if not os.path.exists(path):
    return
  kept = [record for record in read_records(path) if record.get("step", 0) <= step]
  temporary = path + ".tmp"
  with open(temporary, "w", encoding="utf-8") as f:
    f.writelines(json.dumps(record) + "\n" for record in kept)
  os.replace(temporary, path)


class MetricsLogger:
  """Writes records to the console, ``metrics.jsonl`` / ``eval.jsonl`` and TensorBoard.

  Numbers go everywhere; strings (e.g. the data stage) to JSONL and the console only.
  Only the primary process writes; the others log nothing. ``start_step``: a resumed
  run's first step; TensorBoard forgets what an earlier attempt logged after it.
  """

  def __init__(self, workdir: str, *, total_steps: int, start_step: int = 0,
               primary: bool = True):
    self._total_steps = total_steps
    self._primary = primary
    if primary:
      self._paths = {kind: os.path.join(workdir, f"{kind}.jsonl") for kind in ("metrics", "eval")}
      self._tensorboard = _tensorboardx().SummaryWriter(
          os.path.join(workdir, "tensorboard"), purge_step=start_step + 1 if start_step else None,
          flush_secs=10)

  def write(self, step: int, record: Mapping[str, Any], *, kind: str = "metrics") -> None:
    """One record of ``kind`` ('metrics' or 'eval') at ``step``."""
    if not self._primary:
      return
    record = plain(dict(record))
    with open(self._paths[kind], "a", encoding="utf-8") as f:
      f.write(json.dumps({"step": step, **record}) + "\n")
    for name, value in record.items():
      if isinstance(value, (int, float)):
        self._tensorboard.add_scalar(name if kind == "metrics" else f"eval/{name}", value, step)
    print(format_line(step, self._total_steps, record, kind=kind), flush=True)

  def close(self) -> None:
    if self._primary:
      self._tensorboard.close()


@functools.cache
def _tensorboardx():
  """tensorboardX, imported without torch: it imports torch whenever torch is installed
  (seconds at every start of a run, bench/RESULTS.md) only to accept torch tensors, which
  we never log. A process that already imported torch keeps it."""
  if "torch" in sys.modules:
    import tensorboardX  # pylint: disable=g-import-not-at-top
    return tensorboardX
  sys.modules["torch"] = None   # `import torch` raises ImportError while this is set
  try:
    import tensorboardX  # pylint: disable=g-import-not-at-top
  finally:
    del sys.modules["torch"]
  return tensorboardX


def plain(value: Any) -> Any:
  """JSON-friendly values: numpy and jax scalars become Python numbers, in nested dicts
  and lists too."""
  if isinstance(value, (str, bool, int, float)) or value is None:
    return value
  if isinstance(value, Mapping):
    return {str(k): plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [plain(v) for v in value]
  return value.item() if hasattr(value, "item") else float(value)


# Shown when present, in this order: the loops' headline metrics (the RL loops': reward,
# share of completions cut at the token budget, their mean length, clipped share of the
# ratio, KL), then speed and the data schedule's stage. Three significant digits, so a
# tiny value reads 2.08e-06, not 0.0000.
_CONSOLE_FORMATS = (("loss", "loss {:.3g}"), ("learning_rate", "lr {:.2e}"),
                    ("grad_norm", "grad_norm {:.3g}"), ("reward_mean", "reward {:.3g}"),
                    ("truncated", "truncated {:.3g}"),
                    ("completion_length", "completion_length {:.1f}"),
                    ("clip_fraction", "clip_fraction {:.3g}"), ("kl", "kl {:.3g}"),
                    ("accuracy", "acc {:.3g}"), ("tokens_per_s", "tok/s {:,.0f}"),
                    ("mfu", "mfu {:.1%}"), ("step_time_s", "{:.3g} s/step"),
                    ("data_stage", "data_stage {}"))


def format_line(step: int, total_steps: int, record: Mapping[str, Any], *,
                kind: str = "metrics") -> str:
  """The console line of a record: headline metrics, speed and, from the step time, the
  time left."""
  parts = [f"step {step}/{total_steps}"]
  if kind == "eval":
    parts += ["eval"] + [f"{name} {value:.4g}" for name, value in record.items()
                         if isinstance(value, (int, float))]
    return " | ".join(parts)
  parts += [fmt.format(record[name]) for name, fmt in _CONSOLE_FORMATS if name in record]
  if "step_time_s" in record:
    eta = record["step_time_s"] * (total_steps - step)
    parts.append(f"ETA {datetime.timedelta(seconds=round(eta))}")
  return " | ".join(parts)
