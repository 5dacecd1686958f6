"""Runs ``python -m train.main`` with a fault injected right after it logs step K.

  python tests/faulty_run.py FAULT K --config=... --workdir=... [overrides]

FAULT: KILL, TERM or INT (the process sends itself that signal), INT_AT_SAVE (SIGINT as
the step's checkpoint save starts: inside orbax's save, once it has begun writing the
step's temporary directory), READONLY (the checkpoint directory is made read-only once
no save is in flight: the next save cannot write), 'reward' (the 'math' reward raises from
then on) or 'disk' (the next write of a log record fails with "No space left on
device"). The fault lands at a point chosen by the test, not at a random moment, so the
tests are deterministic: after SIGKILL the run dies with whatever checkpoint saves were
in flight, exactly as ``kill -9`` would leave it.

READONLY run as root first gives up root's licence to write anywhere (the capabilities
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER, dropped from the bounding set before
this script runs again), so that a read-only directory stops it as it stops other users;
where that is not allowed it exits with CANNOT_DROP_PRIVILEGES.
"""

import ctypes
import errno
import os
import runpy
import signal
import sys
import time

import orbax.checkpoint as ocp

from train import metrics

CANNOT_DROP_PRIVILEGES = 77
_FILE_CAPABILITIES = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
_PR_CAPBSET_DROP = 24


def _interrupt_next_save() -> None:
  """SIGINT from inside the next save's write of the state, on the main thread, as a
  Ctrl-C that lands there does."""
  handler = ocp.PyTreeCheckpointHandler
  async_save = handler.async_save

  async def interrupted_save(self, *args, **kwargs):
    handler.async_save = async_save
    signal.raise_signal(signal.SIGINT)
    return await async_save(self, *args, **kwargs)
  handler.async_save = interrupted_save


def _make_read_only(checkpoints: str, timeout_s: float = 60) -> None:
  """Makes ``checkpoints`` read-only once the save in flight (if any) has been renamed
  from its temporary directory."""
  deadline = time.monotonic() + timeout_s
  while (any("orbax-checkpoint-tmp" in name for name in os.listdir(checkpoints))
         and time.monotonic() < deadline):
    time.sleep(0.05)
  os.chmod(checkpoints, 0o555)


def _has_file_capabilities(kind: str) -> bool:
  """Whether this process's ``kind`` capability set ('CapEff', 'CapBnd') has any of
  _FILE_CAPABILITIES."""
  with open("/proc/self/status", encoding="ascii") as f:
    bits = next(int(line.split()[1], 16) for line in f if line.startswith(f"{kind}:"))
  return any(bits >> capability & 1 for capability in _FILE_CAPABILITIES)


def _cannot_drop_privileges(why: str) -> None:
  print(f"faulty_run: cannot make a directory read-only for this root process ({why})",
        file=sys.stderr)
  sys.exit(CANNOT_DROP_PRIVILEGES)


def _run_again_without_file_capabilities() -> None:
  """Root: this script again, with write permission checked as for any user."""
  if os.geteuid() != 0:
    return
  if not _has_file_capabilities("CapBnd"):  # dropped (run again), or never held
    if _has_file_capabilities("CapEff"):
      _cannot_drop_privileges("they are inherited")
    return
  libc = ctypes.CDLL(None, use_errno=True)
  for capability in _FILE_CAPABILITIES:
    if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0):
      _cannot_drop_privileges(os.strerror(ctypes.get_errno()))
  os.execv(sys.executable, [sys.executable, *sys.argv])


def inject(fault: str, logger: metrics.MetricsLogger) -> None:
  if fault == "INT_AT_SAVE":
    _interrupt_next_save()
  elif fault == "READONLY":
    workdir = os.path.dirname(logger._paths["metrics"])  # pylint: disable=protected-access
    _make_read_only(os.path.join(workdir, "checkpoints"))
  elif fault in ("KILL", "TERM", "INT"):
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
  if fault == "READONLY":
    _run_again_without_file_capabilities()
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
