"""Runs ``python -m train.main`` and sends itself a signal right after it logs step K.

  python tests/signal_at_step.py KILL|TERM K --config=... --workdir=... [overrides]

The signal lands at a step boundary chosen by the test (not at a random moment), so a
resume test is deterministic: after SIGKILL the run dies with whatever checkpoint saves
were in flight, exactly as ``kill -9`` would leave it; SIGTERM is a preemption notice.
"""

import os
import runpy
import signal
import sys

from train import metrics


def main() -> None:
  signal_number = getattr(signal, f"SIG{sys.argv[1]}")
  at_step = int(sys.argv[2])
  write = metrics.MetricsLogger.write

  def write_then_signal(self, step, record, *, kind="metrics"):
    write(self, step, record, kind=kind)
    if kind == "metrics" and step == at_step:
      os.kill(os.getpid(), signal_number)

  metrics.MetricsLogger.write = write_then_signal
  sys.argv = ["train.main"] + sys.argv[3:]
  runpy.run_module("train.main", run_name="__main__")


if __name__ == "__main__":
  main()
