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

import fcntl
import os
import socket
import time

# The run's files are written by data/files.py's atomic writers, re-exported here.
from data.files import atomic_file as atomic_file
from data.files import write_json as write_json
from data.files import write_jsonl as write_jsonl
from train.errors import WorkdirError


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
