"""A run's directory: one run at a time, and the files that record it.

    config.json      the resolved run config, the model config and its parameter count
    config_history.jsonl  the changes a resume made to config.json (``train/driver.py``)
    metrics.jsonl    one record per logged step (``train/metrics.py``)
    eval.jsonl       one record per evaluation
    tensorboard/     the same scalars for TensorBoard
    checkpoints/     ``train/checkpoint.py``
    summary.json     the final train and eval figures, written when the run ends
    .lock            held (``flock``) by the process that runs in the workdir

JSON files are written to a temporary name and renamed, so a killed run never leaves
half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from train.errors import WorkdirError


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "w"):
  """A file open for writing at a temporary name, renamed to ``path`` when the block
  ends: a reader never sees half of it."""
  temporary = f"{path}.tmp{os.getpid()}"
  with open(temporary, mode, encoding=None if "b" in mode else "utf-8") as f:
    yield f
  os.replace(temporary, path)


def write_json(path: str, value: Any) -> None:
  """Writes ``value`` as indented JSON, atomically."""
  text = json.dumps(value, indent=2) + "\n"
  with atomic_file(path) as f:
    f.write(text)


def write_jsonl(path: str, records: Sequence[Any]) -> None:
  """Writes ``records`` as JSON lines, atomically."""
  with atomic_file(path) as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


class Workdir:
  """Creates and locks a workdir; ``path(name)`` joins names onto it."""

  def __init__(self, root: str):
    self.root = os.path.abspath(root)
    self._lock_file = None

  def path(self, *names: str) -> str:
    return os.path.join(self.root, *names)

  def open(self) -> None:
    """Creates the directory and takes its lock; WorkdirError names what is wrong."""
    try:
      os.makedirs(self.root, exist_ok=True)
      lock_file = open(self.path(".lock"), "a+", encoding="utf-8")
    except OSError as e:
      raise WorkdirError(f"workdir {self.root} is not writable ({e.strerror})") from None
    try:
      fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      lock_file.seek(0)
      holder = lock_file.read().strip() or "another process"
      lock_file.close()
      raise WorkdirError(f"workdir {self.root} is in use by {holder}; wait for that run "
                         "to end or use another workdir") from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    lock_file.flush()
    self._lock_file = lock_file

  def close(self) -> None:
    """Releases the lock (the kernel releases it too when the process dies)."""
    if self._lock_file is not None:
      fcntl.flock(self._lock_file, fcntl.LOCK_UN)
      self._lock_file.close()
      self._lock_file = None
