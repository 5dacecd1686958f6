"""Training metrics: throughput and MFU, and one logger for console, JSONL and TensorBoard."""

from __future__ import annotations

import json
import os
import time
from typing import Optional

from train import tensorboard

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
  """Tokens/s and MFU between calls to ``measure`` (call it right after a device sync)."""

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
    """{'tokens_per_s', 'mfu' (when the device's peak is known)} since the last call."""
    now = time.perf_counter()
    if self._last_time is None or step <= self._last_step:
      self.start(step)
      return {}
    tokens_per_s = (step - self._last_step) * self._tokens_per_step / (now - self._last_time)
    self.start(step)
    out = {"tokens_per_s": tokens_per_s}
    if self._peak:
      out["mfu"] = tokens_per_s * self._flops_per_token / (self._num_devices * self._peak)
    return out


class MetricsLogger:
  """Writes scalars to the console, ``workdir/metrics.jsonl`` and TensorBoard.

  Only the primary process writes files; the others log nothing.
  """

  def __init__(self, workdir: str, *, total_steps: int, primary: bool = True):
    self._total_steps = total_steps
    self._primary = primary
    if primary:
      os.makedirs(workdir, exist_ok=True)
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
      self._events = tensorboard.EventFileWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, scalars: dict[str, float]) -> None:
    if not self._primary:
      return
    scalars = {name: float(value) for name, value in scalars.items()}
    self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
    self._jsonl.flush()
    self._events.scalars(step, scalars)
    print(format_line(step, self._total_steps, scalars), flush=True)

  def close(self) -> None:
    if self._primary:
      self._jsonl.close()
      self._events.close()


# Shown when present: pretraining's, then the post-training loops' headline metrics.
_CONSOLE_FORMATS = (("loss", "loss {:.4f}"), ("learning_rate", "lr {:.2e}"),
                    ("grad_norm", "grad_norm {:.3f}"), ("tokens_per_s", "tok/s {:,.0f}"),
                    ("mfu", "mfu {:.1%}"), ("reward_mean", "reward {:.4f}"),
                    ("kl", "kl {:.4f}"), ("accuracy", "acc {:.3f}"))


def format_line(step: int, total_steps: int, scalars: dict[str, float]) -> str:
  parts = [f"step {step}/{total_steps}"]
  parts += [fmt.format(scalars[name]) for name, fmt in _CONSOLE_FORMATS if name in scalars]
  return " | ".join(parts)
