"""Runs ``python -m train.main`` with a fault injected right after it logs step K.

  python tests/faulty_run.py FAULT K --config=... --workdir=... [overrides]

FAULT: KILL, TERM or INT (the process sends itself that signal), 'reward' (the 'math'
reward raises from then on) or 'disk' (the next write of a log record fails with "No
space left on device"). The fault lands at a step boundary chosen by the test, not at a
random moment, so the tests are deterministic: after SIGKILL the run dies with whatever
checkpoint saves were in flight, exactly as ``kill -9`` would leave it.
"""

import errno
import os
import runpy
import signal
import sys

from train import metrics


def inject(fault: str, logger: metrics.MetricsLogger) -> None:
  if fault in ("KILL", "TERM", "INT"):
    # To this thread: os.kill(os.getpid()) lets the kernel pick any thread of the process,
    # and the handler then runs at a later, random point of the main thread.
    signal.raise_signal(getattr(signal, f"SIG{fault}"))
  elif fault == "reward":
    from rl import rewards  # pylint: disable=import-outside-toplevel

    def broken(completion, example):
      raise KeyError("answer_key")
    rewards.REWARDS._functions["math"] = broken  # pylint: disable=protected-access
  elif fault == "disk":
    path = logger._paths["metrics"]  # pylint: disable=protected-access

    def full_disk(*args, **kwargs):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    logger.write = full_disk
  else:
    raise ValueError(f"unknown fault {fault!r}")


def main() -> None:
  fault, at_step = sys.argv[1], int(sys.argv[2])
  write = metrics.MetricsLogger.write

  def write_then_fault(self, step, record, *, kind="metrics"):
    write(self, step, record, kind=kind)
    if kind == "metrics" and step == at_step:
      inject(fault, self)

  metrics.MetricsLogger.write = write_then_fault
  # Ctrl-C as in a run started from a shell: the test process may ignore SIGINT (some
  # test runners' workers do), and a child inherits an ignored signal.
  signal.signal(signal.SIGINT, signal.default_int_handler)
  sys.argv = ["train.main"] + sys.argv[3:]
  runpy.run_module("train.main", run_name="__main__")


if __name__ == "__main__":
  main()
