"""Document sources: text, JSONL, ArrayRecord and tfds, each as a grain `MapDataset`.

Every source yields documents `(prompt, text)` of two strings. Pretraining sources have
an empty prompt; a source with a `prompt_field` (SFT) yields the prompt and the text to
learn, and the pipeline masks the prompt out of the loss.

Formats (`source.format`, `source.path` may be a glob matching several files, read in
sorted order):
  text:         UTF-8 files, documents separated by one or more blank lines (a document
                may span several lines; its inner newlines are kept).
  jsonl:        one JSON object per line, the document in `source.field`.
  array_record: one document per record, UTF-8 text, or a JSON object if `source.field`
                is set (`write_array_record` writes either).
  tfds:         a dataset prepared locally: `tfds.builder(source.tfds_name,
                data_dir=source.path).as_data_source(split=source.split)`, the document
                in feature `source.field`.
Text and JSONL files are read into memory when the source is opened (fine up to a few
hundred MB); larger corpora belong in ArrayRecord or tfds, which are read lazily.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from collections.abc import Iterable
from typing import Any

import grain
import ml_collections

Document = tuple[str, str]  # (prompt, text); prompt == "" for pretraining documents.

FORMATS = ("text", "jsonl", "array_record", "tfds")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def open_source(source: ml_collections.ConfigDict) -> grain.MapDataset:
  """A `MapDataset` of `Document`s; raises early on missing, empty or malformed input."""
  if source.format == "text":
    if source.prompt_field:
      raise ValueError(f"{source.path}: text sources have no prompt_field")
    return grain.MapDataset.source([("", text) for text in read_text_documents(source.path)])
  if source.format == "jsonl":
    return grain.MapDataset.source(read_jsonl_documents(
        source.path, source.field, source.prompt_field, source.prompt_separator))
  if source.format == "array_record":
    return _open_array_record(source)
  if source.format == "tfds":
    return _open_tfds(source)
  raise ValueError(f"unknown source format {source.format!r} for {source.path}; "
                   f"want one of {FORMATS}")


def _expand(path: str) -> list[str]:
  paths = sorted(glob.glob(path))
  if not paths:
    raise FileNotFoundError(f"no file matches data source path: {path}")
  return paths


def read_text(file_path: str) -> str:
  """A UTF-8 file's text; a ValueError names the file and the first bad byte."""
  with open(file_path, "rb") as f:
    data = f.read()
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise ValueError(f"{file_path}:{line}: not UTF-8 text (byte {e.start}: "
                     f"{data[e.start:e.start + 1]!r})") from None


def read_text_documents(path: str) -> list[str]:
  """Documents of text files: blank-line separated, stripped, empty ones skipped."""
  documents = []
  for file_path in _expand(path):
    file_documents = [d.strip() for d in _BLANK_LINES.split(read_text(file_path))]
    file_documents = [d for d in file_documents if d]
    if not file_documents:
      raise ValueError(f"{file_path}: no documents (the file is empty or blank)")
    documents.extend(file_documents)
  return documents


def read_jsonl_documents(path: str, field: str, prompt_field: str = "",
                         prompt_separator: str = "\n") -> list[Document]:
  """`(prompt, text)` from JSONL files; errors name the file, line and field."""
  return [_document_of_record(record, where, field, prompt_field, prompt_separator)
          for where, record in read_located_records(path)]


def read_records(path: str, required: tuple[str, ...] = ()) -> list[dict]:
  """The JSON objects of JSONL files (one per non-blank line); errors name the file and
  line of invalid JSON, a non-object, or a record without a ``required`` field."""
  records = []
  for where, record in read_located_records(path):
    if missing := [name for name in required if name not in record]:
      raise ValueError(f"{where}: missing field {missing[0]!r} (record has {sorted(record)})")
    records.append(record)
  return records


def read_located_records(path: str) -> list[tuple[str, dict]]:
  """('file:line', object) of every non-blank line of the JSONL files at ``path``, for
  callers that check records themselves and name the line at fault."""
  located = []
  for file_path in _expand(path):
    count = len(located)
    for number, line in enumerate(read_text(file_path).split("\n"), start=1):
      if not line.strip():
        continue
      where = f"{file_path}:{number}"
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{where}: invalid JSON ({e.msg})") from None
      if not isinstance(record, dict):
        raise ValueError(f"{where}: a record must be a JSON object, got "
                         f"{type(record).__name__}")
      located.append((where, record))
    if len(located) == count:
      raise ValueError(f"{file_path}: no records (the file is empty or blank)")
  return located


def _document_of_record(record: Any, where: str, field: str, prompt_field: str,
                        prompt_separator: str) -> Document:
  """The `(prompt, text)` of a decoded record (a dict of str or bytes values)."""
  def get(name: str) -> str:
    if not isinstance(record, dict) or name not in record:
      keys = sorted(record) if isinstance(record, dict) else type(record).__name__
      raise ValueError(f"{where}: missing field {name!r} (record has {keys})")
    value = record[name]
    if isinstance(value, bytes):
      value = value.decode("utf-8")
    if not isinstance(value, str):
      raise ValueError(f"{where}: field {name!r} is {type(value).__name__}, not text")
    return value
  prompt = get(prompt_field) + prompt_separator if prompt_field else ""
  return prompt, get(field)


@dataclasses.dataclass(frozen=True)
class _DecodeRecord(grain.transforms.MapWithIndex):
  """ArrayRecord bytes or a tfds example -> `Document` (module level: workers pickle it)."""

  where: str
  field: str
  prompt_field: str
  prompt_separator: str
  is_json: bool

  def map_with_index(self, index: int, record: Any) -> Document:
    where = f"{self.where} record {index}"
    if isinstance(record, bytes):
      text = record.decode("utf-8")
      if not self.is_json:
        return "", text
      try:
        record = json.loads(text)
      except json.JSONDecodeError as e:
        raise ValueError(f"{where}: invalid JSON ({e.msg})") from e
    return _document_of_record(record, where, self.field, self.prompt_field,
                               self.prompt_separator)


def _check_non_empty_and_first(dataset: grain.MapDataset, where: str) -> grain.MapDataset:
  if len(dataset) == 0:  # pylint: disable=g-explicit-length-test
    raise ValueError(f"{where}: no documents (the source is empty)")
  dataset[0]  # pylint: disable=pointless-statement  # decodes one record: fail fast.
  return dataset


def _open_array_record(source: ml_collections.ConfigDict) -> grain.MapDataset:
  paths = _expand(source.path)
  records = grain.sources.ArrayRecordDataSource(paths)
  where = f"array_record {source.path}"
  decode = _DecodeRecord(where, source.field, source.prompt_field, source.prompt_separator,
                         is_json=bool(source.field))
  return _check_non_empty_and_first(grain.MapDataset.source(records).map_with_index(decode), where)


def _open_tfds(source: ml_collections.ConfigDict) -> grain.MapDataset:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # slow import.
  where = f"tfds {source.tfds_name} split {source.split} in {source.path}"
  if not os.path.isdir(source.path):
    raise FileNotFoundError(f"{where}: data_dir does not exist")
  builder = tfds.builder(source.tfds_name, data_dir=source.path)
  if not builder.is_prepared():
    raise FileNotFoundError(f"{where}: the dataset is not prepared there "
                            "(run builder.download_and_prepare())")
  examples = builder.as_data_source(split=source.split)
  decode = _DecodeRecord(where, source.field, source.prompt_field, source.prompt_separator,
                         is_json=False)
  return _check_non_empty_and_first(grain.MapDataset.source(examples).map_with_index(decode), where)


def write_array_record(path: str, documents: Iterable[str | dict]) -> int:
  """Writes one record per document (str as UTF-8, dict as JSON); returns the count.

  Converting a big JSONL corpus once to ArrayRecord shards gives lazy random access:
    write_array_record("web-00000.array_record", (json.loads(l) for l in open(...)))
  """
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  writer = array_record_module.ArrayRecordWriter(path, "group_size:1")
  count = 0
  for document in documents:
    text = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False)
    writer.write(text.encode("utf-8"))
    count += 1
  writer.close()
  return count
