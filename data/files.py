"""Atomic file writes: a file is written at a temporary name and renamed into place, so
a reader, or a run resumed after a kill, never sees half of it."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str):
  """A temporary path to write ``path`` at (a file, or a writer that takes a path),
  renamed to ``path`` when the block ends without an exception (removed when it
  raises)."""
  temporary = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
  try:
    yield temporary
    os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "w"):
  """A file open for writing at a temporary name, renamed to ``path`` when the block
  ends without an exception (the temporary file is removed when it raises)."""
  with atomic_path(path) as temporary:
    with open(temporary, mode, encoding=None if "b" in mode else "utf-8") as f:
      yield f


def write_json(path: str, value: Any) -> None:
  """Writes ``value`` as indented JSON, atomically."""
  text = json.dumps(value, indent=2) + "\n"
  with atomic_file(path) as f:
    f.write(text)


def write_jsonl(path: str, records: Iterable[Any]) -> None:
  """Writes ``records`` as JSON lines, atomically."""
  with atomic_file(path) as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
