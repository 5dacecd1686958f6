"""Where the curation pipelines read and write: local paths through the operating system
(a file published by an atomic rename), every other scheme (``gs://``, ``s3://``,
``hdfs://``, ...) through Apache Beam's ``FileSystems``, so that a pipeline run on
Dataflow, Flink or Spark reads its input and writes its shards in the bucket its workers
share (an object is published when its upload closes)."""

from __future__ import annotations

import contextlib
import glob as glob_lib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from data import files


def is_remote(path: str) -> bool:
  return "://" in path


def join(directory: str, name: str) -> str:
  return FileSystems.join(directory, name) if is_remote(directory) else os.path.join(directory,
                                                                                     name)


def makedirs(directory: str) -> None:
  """A local directory (object stores have none to make)."""
  if not is_remote(directory):
    os.makedirs(directory, exist_ok=True)


def exists(path: str) -> bool:
  return FileSystems.exists(path) if is_remote(path) else os.path.exists(path)


def glob(pattern: str) -> list[str]:
  """The paths a pattern matches, sorted."""
  if not is_remote(pattern):
    return sorted(glob_lib.glob(pattern))
  [result] = FileSystems.match([pattern])
  return sorted(metadata.path for metadata in result.metadata_list)


def open_read(path: str) -> BinaryIO:
  """The file's bytes as they are (no decompression: a .gz is read as gzip bytes)."""
  if not is_remote(path):
    return open(path, "rb")
  return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
  """A local path holding the file (a remote one is downloaded for the block)."""
  if not is_remote(path):
    yield path
    return
  with tempfile.TemporaryDirectory() as directory:
    local = os.path.join(directory, os.path.basename(path))
    with open_read(path) as source, open(local, "wb") as target:
      shutil.copyfileobj(source, target)
    yield local


@contextlib.contextmanager
def writing(path: str) -> Iterator[str]:
  """A local path to write the file at, published to ``path`` when the block ends
  without an exception (renamed locally, uploaded otherwise); nothing is published when
  it raises."""
  if is_remote(path):
    with tempfile.TemporaryDirectory() as directory:
      local = os.path.join(directory, "upload")
      yield local
      with open(local, "rb") as source, FileSystems.create(
          path, compression_type=CompressionTypes.UNCOMPRESSED) as target:
        shutil.copyfileobj(source, target)
    return
  with files.atomic_path(path) as temporary:
    yield temporary


def _write(write: Callable[[str, Any], None], path: str, value: Any) -> None:
  """``write(path, value)`` for a local path (itself atomic), else to a local file that
  ``writing`` uploads."""
  if not is_remote(path):
    write(path, value)
    return
  with writing(path) as local:
    write(local, value)


def write_json(path: str, value: Any) -> None:
  """``files.write_json``, remote paths uploaded."""
  _write(files.write_json, path, value)


def write_jsonl(path: str, records: list) -> None:
  """``files.write_jsonl``, remote paths uploaded."""
  _write(files.write_jsonl, path, records)


def read_json(path: str) -> Any:
  with open_read(path) as f:
    return json.loads(f.read().decode("utf-8"))
