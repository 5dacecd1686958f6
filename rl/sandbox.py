r"""Runs untrusted Python (a model's tool calls) in a sandbox: one process per execution.

  python -m rl.sandbox [--timeout=S] [--memory_mb=M] < program.py

prints one JSON object: {"status", "stdout", "stderr", "reason", "returncode",
"wall_s"}; status is "ok", "error" (non-zero exit, e.g. an exception), "timeout" (the
wall-clock limit) or "killed" (a signal, e.g. the CPU-time limit).

Mechanism, and why. Model output is hostile, so each execution gets what Linux itself
gives, with no daemon and nothing to install (util-linux's ``unshare``, ``prlimit`` and
``setpriv``, present on every Debian and Ubuntu image):

  namespaces   ``unshare --pid --net --mount --ipc --uts --fork --kill-child``: its own
               process tree (it cannot see or signal the parent), a network namespace with
               only a loopback that is down (no socket reaches anything, 127.0.0.1
               included), and its own mounts: empty read-only tmpfs over /tmp,
               /var/tmp, /dev/shm, /home, /root and the repository, the execution's own
               directory bound in as the working directory, and the interpreter's prefix
               bound read-only (so an interpreter under /root still runs).
  privileges   ``setpriv``: an unprivileged uid and gid of its own (one per execution,
               so the process-count limit is per execution), no supplementary groups,
               no capabilities, ``no_new_privs``. With these /etc/shadow and other
               users' files are unreadable and nothing outside the working directory
               is writable.
  limits       ``prlimit``: address space (memory), CPU seconds, processes, file size,
               open files. The parent enforces the wall-clock limit (the whole process
               tree dies with its namespace) and keeps at most ``max_output_bytes`` of
               each stream, reading the rest away.
  environment  empty but for PATH, HOME and TMPDIR (the working directory), LANG and
               the bound interpreter's library directory; ``python -I`` ignores user
               site-packages and PYTHON* variables.

seccomp (a syscall filter) would need a compiled helper or libseccomp bindings; the
namespaces and the uid already remove what it would guard here. Making the namespaces,
mounts and uid needs root (a container's root is enough where the container may
unshare): without it, or without a tool, ``run`` raises ``SandboxUnavailable`` naming
what is missing, and ``check()`` runs a trivial program once to prove the rest; nothing
ever runs unsandboxed. The interpreter is the one running this module
(``sys.executable``), so the standard library is there; site-packages are not (they may
live under the hidden paths).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from typing import Optional

TOOLS = ("unshare", "prlimit", "setpriv", "mount")
STATUSES = ("ok", "error", "timeout", "killed")
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HIDDEN = ("/tmp", "/var/tmp", "/dev/shm", "/home", "/root")
STAGE = "/mnt"                    # a tmpfs here holds the mount points below
WORK, PYTHON = f"{STAGE}/work", f"{STAGE}/python"
FIRST_UID, NUM_UIDS = 200_000, 50_000   # unprivileged ids, one per execution
_uids = itertools.count()


class SandboxUnavailable(RuntimeError):
  """The machine cannot sandbox (a tool or a kernel feature missing); nothing ran."""


@dataclasses.dataclass(frozen=True)
class Limits:
  timeout_s: float = 10.0          # wall clock
  memory_mb: int = 1024            # address space
  processes: int = 16
  file_mb: int = 16                # largest file it may write
  tmpfs_mb: int = 64               # each fresh tmpfs
  max_output_bytes: int = 65_536   # kept of stdout and of stderr, each


@dataclasses.dataclass(frozen=True)
class Result:
  status: str                      # one of STATUSES
  stdout: str
  stderr: str
  reason: str                      # why it stopped, for anything but "ok"
  returncode: Optional[int]
  wall_s: float
  truncated: bool = False          # a stream was longer than max_output_bytes


def _setup_script(limits: Limits, uid: int, prefix: str, program: str) -> str:
  """The shell commands the new namespaces run as root: mounts, then the program with
  limits and without privileges."""
  # Read-only and empty for the program: what it may write is its working directory.
  tmpfs = f"mount -t tmpfs -o size={limits.tmpfs_mb}m,mode=0755,nosuid,nodev tmpfs"
  hidden = [path for path in (*HIDDEN, REPOSITORY) if os.path.isdir(path)]
  # A path inside one hidden before it is hidden with it (and its mount point is gone).
  hidden = [path for path in hidden
            if not any(path.startswith(other + os.sep) for other in hidden)]
  python = os.path.join(PYTHON, os.path.relpath(os.path.realpath(sys.executable), prefix))
  command = [
      "prlimit", f"--as={limits.memory_mb << 20}", f"--cpu={int(limits.timeout_s) + 1}",
      f"--nproc={limits.processes}", f"--fsize={limits.file_mb << 20}", "--nofile=64",
      "--core=0", "--",
      "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
      "--inh-caps=-all", "--bounding-set=-all", "--",
      "env", "-i", "PATH=/usr/bin:/bin", f"HOME={WORK}", f"TMPDIR={WORK}", "LANG=C.UTF-8",
      f"LD_LIBRARY_PATH={PYTHON}/lib",       # a libpython found by an absolute rpath
      python, "-I", "-B", program]
  return "\n".join([
      "set -e",
      "mount --make-rprivate /",
      f"{tmpfs} {STAGE}",
      f"mkdir {WORK} {PYTHON}",
      f'mount --bind "$1" {WORK}',
      f"mount --bind {shlex.quote(prefix)} {PYTHON}",
      f"mount -o remount,bind,ro {PYTHON}",
      *[f"{tmpfs},ro {shlex.quote(path)}" for path in hidden],
      f"cd {WORK}",
      "exec " + shlex.join(command)])


def _interpreter_prefix() -> str:
  """The directory tree the running interpreter and its standard library live in."""
  prefix = os.path.realpath(sys.base_prefix)
  stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
  executable = os.path.realpath(sys.executable)
  if not (stdlib.startswith(prefix + os.sep) and executable.startswith(prefix + os.sep)):
    raise SandboxUnavailable(f"the interpreter {executable} and its standard library "
                             f"{stdlib} are not both under {prefix}")
  return prefix


def _read(stream, limit: int, out: list, overflow: list) -> None:
  """Keeps the first ``limit`` bytes of ``stream`` in ``out``, reads the rest away."""
  kept = 0
  while chunk := stream.read(65536):
    if kept < limit:
      out.append(chunk[:limit - kept])
    kept += len(chunk)
  overflow.append(kept > limit)


def run(code: str, limits: Limits = Limits()) -> Result:
  """Runs the Python source ``code`` in a fresh sandbox; never raises for what the code
  does (only ``SandboxUnavailable`` when the sandbox cannot be made)."""
  missing = [tool for tool in TOOLS if shutil.which(tool) is None]
  if missing:
    raise SandboxUnavailable(f"missing {missing} (util-linux): cannot sandbox")
  if os.geteuid() != 0:
    raise SandboxUnavailable("making namespaces, mounts and an unprivileged uid needs "
                             f"root; this process runs as uid {os.geteuid()}")
  uid = FIRST_UID + next(_uids) % NUM_UIDS
  with tempfile.TemporaryDirectory(prefix="reasonax-sandbox-") as directory:
    with open(os.path.join(directory, "main.py"), "w", encoding="utf-8") as f:
      f.write(code)
    os.chown(directory, uid, uid)
    os.chmod(directory, 0o700)
    script = _setup_script(limits, uid, _interpreter_prefix(), "main.py")
    started = time.monotonic()
    process = subprocess.Popen(
        ["unshare", "--pid", "--net", "--mount", "--ipc", "--uts", "--fork",
         "--kill-child", "--mount-proc", "--", "/bin/sh", "-c", script, "sandbox",
         directory],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, start_new_session=True)
    streams, overflow = ([], []), []
    readers = [threading.Thread(target=_read, args=(pipe, limits.max_output_bytes, kept,
                                                    overflow), daemon=True)
               for pipe, kept in zip((process.stdout, process.stderr), streams)]
    for reader in readers:
      reader.start()
    try:
      returncode = process.wait(timeout=limits.timeout_s)
      timed_out = False
    except subprocess.TimeoutExpired:
      os.killpg(process.pid, signal.SIGKILL)
      returncode, timed_out = process.wait(), True
    for reader in readers:
      reader.join()
    wall_s = time.monotonic() - started
  stdout, stderr = (b"".join(kept).decode("utf-8", "replace") for kept in streams)
  if timed_out:
    status, reason = "timeout", f"wall-clock limit of {limits.timeout_s:g} s"
  elif returncode == 0:
    status, reason = "ok", ""
  elif returncode < 0 or returncode > 128:
    number = -returncode if returncode < 0 else returncode - 128
    status, reason = "killed", f"signal {signal.Signals(number).name}"
  else:
    status, reason = "error", f"exit status {returncode}"
  if status != "timeout" and stderr.startswith(("unshare:", "mount:", "setpriv:",
                                                "prlimit:", "sandbox:")):
    raise SandboxUnavailable(f"the sandbox could not start: {stderr.strip()}")
  return Result(status=status, stdout=stdout, stderr=stderr, reason=reason,
                returncode=None if timed_out else returncode, wall_s=wall_s,
                truncated=any(overflow))


@functools.cache
def check() -> None:
  """Raises ``SandboxUnavailable`` unless a trivial program runs sandboxed here."""
  result = run("print(6 * 7)")
  if result.status != "ok" or result.stdout.strip() != "42":
    raise SandboxUnavailable(f"a trivial program failed in the sandbox: {result}")


def run_many(codes: Sequence[str], limits: Limits = Limits(),
             workers: Optional[int] = None) -> list[Result]:
  """``run`` for each of ``codes`` on a pool of threads (each a sandboxed process), in
  order: a batch's tool calls in parallel."""
  check()
  with futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
    return list(pool.map(functools.partial(run, limits=limits), codes))


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--timeout", type=float, default=Limits.timeout_s,
                      help="wall-clock seconds")
  parser.add_argument("--memory_mb", type=int, default=Limits.memory_mb)
  args = parser.parse_args(argv)
  try:
    result = run(sys.stdin.read(), Limits(timeout_s=args.timeout, memory_mb=args.memory_mb))
  except SandboxUnavailable as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
  print(json.dumps(dataclasses.asdict(result)))


if __name__ == "__main__":
  main()
