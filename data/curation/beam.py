"""Apache Beam plumbing of the curation pipelines (``data/curate.py``): stages that
read and write shards of JSON documents, counts by reason, resumable output.

A pipeline is a list of stages; the first reads the input files, each other one the
shards of the stage before, and each writes its own directory under the output:

  OUTPUT/<stage>/<shard>.array_record    the documents it kept, one JSON object each
  OUTPUT/<stage>/<shard>.counts.json     documents in and out, dropped by reason, stats
  OUTPUT/<stage>/<shard>.dropped.jsonl   why each document the stage notes was dropped
  OUTPUT/summary.json                    every stage's counts summed over its shards

A shard is published atomically (written at a temporary name, then renamed), its counts
after it: a shard whose counts exist is finished, so a rerun skips it and a killed run
resumes where it stopped without losing or half-writing a shard. A ``ShardStage``
(extraction, quality, decontamination, templating) maps each input shard to one output
shard of the same name, its shards in parallel across Beam's workers; a ``GlobalStage``
(deduplication, blends) is a Beam transform over every document of every shard, and
writes each shard once its verdicts are in.

The pipelines run on any Beam runner: the in-process FnApiRunner by default (tests, one
machine), Dataflow, Flink or Spark by ``PipelineOptions`` (``--beam_options``), their
input and output local or in any filesystem Beam knows (``gs://``, ``s3://``, ...:
``data/curation/storage.py``). Counts
are also Beam metrics counters (namespace ``curate.<stage>``), live in a runner's UI.
The shards are ArrayRecord files, which the trainer's grain pipeline reads
(``data.config.source_config('array_record', 'OUTPUT/<stage>/*.array_record',
field='text')``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional

import apache_beam as beam
from apache_beam.options import pipeline_options

from data.curation import storage

SHARD_SUFFIX = ".array_record"
COUNTS_SUFFIX = ".counts.json"
DETAILS_SUFFIX = ".dropped.jsonl"
SUMMARY = "summary.json"
_READ_BATCH = 1024      # records read from a shard at a time
# Document ids in a global stage: (shard name, position in the shard).
DocId = tuple[str, int]


@dataclasses.dataclass
class ShardCounts:
  """What a stage did to one shard: inputs seen, documents written, inputs dropped by
  reason, and stage statistics (e.g. equations kept)."""

  inputs: int = 0
  outputs: int = 0
  dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  stats: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  details: list = dataclasses.field(default_factory=list)

  def drop(self, reason: str, detail: Optional[Mapping[str, Any]] = None) -> None:
    """Counts one input dropped for ``reason``; ``detail`` (e.g. what a document
    duplicated, which evaluation record it contained) goes to the shard's
    ``<shard>.dropped.jsonl``."""
    self.dropped[reason] += 1
    if detail is not None:
      self.details.append({"reason": reason, **detail})

  def to_json(self) -> dict:
    return {"inputs": self.inputs, "outputs": self.outputs,
            "dropped": dict(sorted(self.dropped.items())),
            "stats": dict(sorted(self.stats.items()))}


@dataclasses.dataclass(frozen=True)
class ShardStage:
  """A stage that maps one input shard to one output shard.

  ``process(path, counts)`` yields the documents kept from the shard at ``path`` and
  records in ``counts`` every input it reads (``inputs``) and drops (``drop(reason)``);
  it must never raise on bad content: a bad record is a reason."""

  name: str
  process: Callable[[str, ShardCounts], Iterator[dict]]


@dataclasses.dataclass(frozen=True)
class GlobalStage:
  """A stage whose verdicts need every document: ``verdicts`` turns a PCollection of
  (DocId, document) into one of (DocId, (reason, detail)) for the documents it drops,
  one each (detail: a JSON-able note on why, or None). ``reads`` reads an input shard
  (None: one of our shards, ``read_shard``)."""

  name: str
  verdicts: beam.PTransform
  reads: Callable[[str], Iterator[dict | Skipped]] | None = None   # None: our shards


@dataclasses.dataclass(frozen=True)
class Skipped:
  """What a GlobalStage's ``reads`` yields for an input record it cannot read: counted
  as an input dropped for ``reason``."""

  reason: str


def shard_name(path: str) -> str:
  """The shard's name: its file name without the directory and the format's suffix."""
  name = os.path.basename(path)
  for suffix in (SHARD_SUFFIX, ".warc.gz", ".warc", ".jsonl.gz", ".jsonl", ".json"):
    if name.endswith(suffix):
      return name[:-len(suffix)]
  return name


def shard_paths(directory: str) -> list[str]:
  """The finished shards of a stage directory, in name order."""
  return [path for path in storage.glob(storage.join(directory, "*" + SHARD_SUFFIX))
          if storage.exists(path[:-len(SHARD_SUFFIX)] + COUNTS_SUFFIX)]


def read_shard(path: str) -> Iterator[dict]:
  """The documents of one of our shards (a remote one read from a local copy)."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  with storage.local_copy(path) as local:
    reader = array_record_module.ArrayRecordReader(local)
    try:
      count = reader.num_records()
      for start in range(0, count, _READ_BATCH):
        for record in reader.read(list(range(start, min(start + _READ_BATCH, count)))):
          yield json.loads(record.decode("utf-8"))
    finally:
      reader.close()


def is_finished(out_dir: str, name: str) -> bool:
  return storage.exists(storage.join(out_dir, name + COUNTS_SUFFIX))


def write_shard(out_dir: str, name: str, documents: Iterable[dict],
                counts: ShardCounts) -> ShardCounts:
  """Writes the documents as shard ``name`` of ``out_dir``, then the details of its
  drops, then its counts (outputs: the documents written; an input shard with no
  record counts one 'empty_shard'): each file atomically, the counts last."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  with storage.writing(storage.join(out_dir, name + SHARD_SUFFIX)) as local:
    writer = array_record_module.ArrayRecordWriter(local, "group_size:1")
    try:
      for document in documents:
        writer.write(json.dumps(document, ensure_ascii=False).encode("utf-8"))
        counts.outputs += 1
    finally:
      writer.close()
  if counts.inputs == 0:
    counts.drop("empty_shard")
  if counts.details:
    storage.write_jsonl(storage.join(out_dir, name + DETAILS_SUFFIX), counts.details)
  storage.write_json(storage.join(out_dir, name + COUNTS_SUFFIX), counts.to_json())
  return counts


def _report(stage: str, counts: ShardCounts) -> None:
  """The shard's counts as Beam metrics (live in a runner's UI) and on the progress bar."""
  namespace = f"curate.{stage}"
  beam.metrics.Metrics.counter(namespace, "inputs").inc(counts.inputs)
  beam.metrics.Metrics.counter(namespace, "outputs").inc(counts.outputs)
  for reason, count in counts.dropped.items():
    beam.metrics.Metrics.counter(namespace, f"dropped/{reason}").inc(count)
  bar = _PROGRESS.get(stage)
  if bar is not None:
    bar.update(1)


# Progress bars of the stages running in this process (the in-process runner's workers run
# in the driver's process; other runners show the metrics counters instead).
_PROGRESS: dict[str, Any] = {}


class _RunShard(beam.DoFn):
  """One input shard through a ShardStage into its output shard."""

  def __init__(self, stage: ShardStage, out_dir: str):
    self._stage, self._out_dir = stage, out_dir

  def process(self, path: str):
    counts = ShardCounts()
    write_shard(self._out_dir, shard_name(path), self._stage.process(path, counts), counts)
    _report(self._stage.name, counts)
    yield shard_name(path)


def _read_ids(path: str, reads: Callable[[str], Iterator[dict]]):
  name = shard_name(path)
  for i, document in enumerate(reads(path)):
    yield (name, i), document


class _WriteVerdicts(beam.DoFn):
  """A shard's documents and the verdicts on them → its output shard."""

  def __init__(self, stage: str, out_dir: str):
    self._stage, self._out_dir = stage, out_dir

  def process(self, element):
    name, grouped = element
    if is_finished(self._out_dir, name):
      return
    verdicts = dict(grouped["dropped"])
    documents = sorted(grouped["documents"], key=lambda item: item[0])
    counts = ShardCounts(inputs=len(documents))
    for i in sorted(verdicts):
      reason, detail = verdicts[i]
      counts.drop(reason, None if detail is None else {"position": i, **detail})
    kept = (document for i, document in documents if i not in verdicts)
    write_shard(self._out_dir, name, kept, counts)
    _report(self._stage, counts)
    yield name


# Without a --runner option: Beam's in-process runner, FnApiRunner (Beam's DirectRunner
# first tries to download and start the Prism runner, a Go binary).
DEFAULT_RUNNER = "--runner=FnApiRunner"


def _run(build: Callable[[beam.Pipeline], Any], options: Sequence[str]) -> None:
  options = list(options)
  if not any(option.startswith("--runner") for option in options):
    options.insert(0, DEFAULT_RUNNER)
  with beam.Pipeline(options=pipeline_options.PipelineOptions(options)) as pipeline:
    build(pipeline)


def run_stage(stage: ShardStage | GlobalStage, inputs: Sequence[str], out_dir: str, *,
              beam_options: Sequence[str] = (), progress: bool = True) -> dict:
  """Runs ``stage`` over the ``inputs`` shards into ``out_dir``, skipping finished
  shards; returns the stage's counts summed over every shard (``summarize_stage``)."""
  storage.makedirs(out_dir)
  names = [shard_name(path) for path in inputs]
  if len(set(names)) != len(names):
    duplicated = sorted({n for n in names if names.count(n) > 1})
    raise ValueError(f"input shards {duplicated} have the same name in two directories: "
                     "each input shard becomes the output shard of its name")
  pending = [path for path in inputs if not is_finished(out_dir, shard_name(path))]
  if pending:
    bar = None
    if progress:
      import tqdm  # pylint: disable=g-import-not-at-top
      bar = tqdm.tqdm(total=len(pending), desc=stage.name, unit="shard")
      _PROGRESS[stage.name] = bar
    try:
      if isinstance(stage, ShardStage):
        _run(lambda p: (p | "shards" >> beam.Create(pending) | beam.Reshuffle()
                        | "run" >> beam.ParDo(_RunShard(stage, out_dir))), beam_options)
      else:
        reads = stage.reads or read_shard
        def build(p):
          read = (p | "shards" >> beam.Create(list(inputs)) | beam.Reshuffle()
                  | "read" >> beam.FlatMap(_read_ids, reads))
          documents = read | "readable" >> beam.Filter(lambda item: isinstance(item[1], dict))
          skipped = (read | "skipped" >> beam.Filter(lambda item: isinstance(item[1], Skipped))
                     | beam.Map(lambda item: (item[0], (item[1].reason, None))))
          dropped = ((documents | "verdicts" >> stage.verdicts, skipped)
                     | "all dropped" >> beam.Flatten())
          documents = read
          by_shard = lambda item: (item[0][0], (item[0][1], item[1]))
          ({"documents": documents | "documents by shard" >> beam.Map(by_shard),
            "dropped": dropped | "dropped by shard" >> beam.Map(by_shard)}
           | beam.CoGroupByKey() | beam.ParDo(_WriteVerdicts(stage.name, out_dir)))
        _run(build, beam_options)
        for name in names:        # an empty input shard has no document to group
          if not is_finished(out_dir, name):
            _report(stage.name, write_shard(out_dir, name, [], ShardCounts()))
    finally:
      if bar is not None:
        bar.close()
        _PROGRESS.pop(stage.name, None)
  return summarize_stage(out_dir, names)


def summarize_stage(out_dir: str, names: Sequence[str]) -> dict:
  """A stage's counts summed over its shards ``names``, with the number of shards."""
  total = {"shards": len(names), "inputs": 0, "outputs": 0, "dropped": collections.Counter(),
           "stats": collections.Counter()}
  for name in names:
    counts = storage.read_json(storage.join(out_dir, name + COUNTS_SUFFIX))
    total["inputs"] += counts["inputs"]
    total["outputs"] += counts["outputs"]
    total["dropped"].update(counts["dropped"])
    total["stats"].update(counts["stats"])
  total["dropped"] = dict(sorted(total["dropped"].items()))
  total["stats"] = dict(sorted(total["stats"].items()))
  return total


def run_pipeline(stages: Sequence[ShardStage | GlobalStage], inputs: Sequence[str],
                 output: str, *, beam_options: Sequence[str] = (), progress: bool = True,
                 extra_summary: Optional[Mapping[str, Any]] = None) -> dict:
  """Runs the stages in order (each over the shards of the one before) into ``output``
  and writes ``summary.json``: per stage, shards, documents in and out, dropped by
  reason and stats; ``final`` is the last stage's shard pattern."""
  if not inputs:
    raise ValueError("no input shards: the --input pattern matched no file")
  summary = {"stages": {}}
  shards = list(inputs)
  for stage in stages:
    out_dir = storage.join(output, stage.name)
    summary["stages"][stage.name] = run_stage(stage, shards, out_dir,
                                              beam_options=beam_options, progress=progress)
    shards = [storage.join(out_dir, shard_name(path) + SHARD_SUFFIX) for path in shards]
  summary["final"] = storage.join(storage.join(output, stages[-1].name), "*" + SHARD_SUFFIX)
  summary.update(extra_summary or {})
  storage.write_json(storage.join(output, SUMMARY), summary)
  return summary
