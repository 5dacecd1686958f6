r"""Data curation pipelines on Apache Beam, one command each.

  python -m data.curate --pipeline=cc_math --input='crawl/*.warc.gz' --output=DIR
  python -m data.curate --pipeline=dedup --input='docs/*.jsonl' --output=DIR
  python -m data.curate --pipeline=crossthink --input='qa/*.jsonl' --output=DIR \
      [--config.crossthink.recipes.source_only.source=mmlu] \
      [--beam_options='--runner=DataflowRunner --project=... --temp_location=gs://...']

Pipelines (each a list of stages, ``data/curation/beam.py``: ArrayRecord shards of JSON
documents per stage under DIR, resumable shard by shard, ``DIR/summary.json`` with the
documents in and out of every stage and its drops by reason):

  cc_math     Nemotron-CC-Math (arXiv 2508.15096): WARC files → ``extract`` (HTML pages,
              decoded, boilerplate dropped, math kept as LaTeX and code verbatim, rendered
              by lynx or resiliparse: ``data/curation/html_text.py``) → ``cleanup``
              (optional: a model rewrites batches of pages with a prompt) → ``quality``
              (optional: a scorer rates pages 0-5, those under the threshold dropped) →
              ``dedup`` (exact and MinHash LSH) → ``decontaminate`` (optional: 13-gram
              overlap with evaluation records)
  dedup       JSONL or ArrayRecord documents → ``dedup`` → ``decontaminate`` (optional)
  crossthink  Nemotron-CrossThink (arXiv 2504.13941): QA records (JSONL) → ``template``
              (multiple-choice and open-ended forms, the paper's filters) → one
              ``blend_<recipe>`` stage per recipe → ``DIR/blends/<recipe>.jsonl``, GRPO
              record files (``data/curation/crossthink.py``)

The model stages are plug-ins named by import path (``module:factory``), so this module
needs no model code: ``quality.scorer`` is a factory of ``texts -> scores (0-5)`` called
with ``quality.args`` (``train.quality:load_scorer`` loads a classifier trained with
``python -m train.quality``); ``cleanup.rewriter`` a factory of ``texts -> texts``
(``train.llm_cleanup:load_rewriter`` runs one of our checkpoints with a prompt).

Beam's in-process runner (FnApiRunner) runs them by default; ``--beam_options`` passes Beam's
pipeline options (runner, workers) through unchanged. The final documents are
``summary['final']``, an ArrayRecord pattern the trainer reads as a source
(``data.config.source_config('array_record', pattern, field='text')``).
"""

from __future__ import annotations

import importlib
import json
import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ml_collections
from absl import app
from absl import flags
from ml_collections import config_flags

from data import sources
from data.curation import beam as curation_beam
from data.curation import crossthink
from data.curation import dedup
from data.curation import storage

PIPELINES = ("cc_math", "dedup", "crossthink")


def default_config() -> ml_collections.ConfigDict:
  """Every pipeline's settings (each pipeline reads its own sections)."""
  return ml_collections.ConfigDict(dict(
      extract=dict(renderer="lynx", max_page_bytes=10 * 2**20, min_chars=0),
      cleanup=dict(rewriter="", args=dict(checkpoint=""), batch_size=16),
      quality=dict(scorer="", args=dict(path=""), threshold=3.0, batch_size=64),
      dedup=dict(field="text", fuzzy=True, bands=16, rows=8, threshold=0.8, shingle=5),
      decontaminate=dict(eval_records=(), ngram=13),
      crossthink=dict(recipes=dict(
          natural=dict(kind="natural", size=0),
          more_math=dict(kind="more_math", size=0, share=2 / 3),
          more_general=dict(kind="more_general", size=0, share=2 / 3),
          format_only=dict(kind="format_only", size=0, format="open"))),
  ))


def load_plugin(path: str, what: str) -> Callable:
  """The factory ``module:name`` names; a ValueError names the config field at fault."""
  module, _, name = path.partition(":")
  if not module or not name:
    raise ValueError(f"{what}={path!r}: want 'module:factory'")
  try:
    return getattr(importlib.import_module(module), name)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"{what}={path!r}: {e}") from None


def _batched(items: Iterator[dict], size: int) -> Iterator[list[dict]]:
  batch = []
  for item in items:
    batch.append(item)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def extract_stage(section: ml_collections.ConfigDict) -> curation_beam.ShardStage:
  """WARC shard → one document {url, text, equations, code_blocks} per HTML page kept."""
  from data.curation import html_text  # pylint: disable=g-import-not-at-top
  from data.curation import warc  # pylint: disable=g-import-not-at-top
  html_text.check_renderer(section.renderer)   # lynx missing: the clear error now

  def process(path: str, counts: curation_beam.ShardCounts) -> Iterator[dict]:
    for page, reason in warc.read_pages(path, max_page_bytes=section.max_page_bytes):
      counts.inputs += 1
      if page is None:
        counts.drop(reason)
        continue
      html, reason = html_text.decode_html(page.html, page.http_charset)
      if html is None:
        counts.drop(reason, {"url": page.url})
        continue
      text, reason, stats = html_text.extract(html, renderer=section.renderer)
      counts.stats.update({k: v for k, v in stats.items() if v})
      if text is None or len(text) < section.min_chars:
        counts.drop(reason or "too_short", {"url": page.url})
        continue
      yield {"url": page.url, "text": text, "equations": stats["equations"],
             "code_blocks": stats["code_blocks"]}

  return curation_beam.ShardStage("extract", process)


def _model_stage(name: str, section: ml_collections.ConfigDict, plugin: str,
                 judge: Callable[[dict, Any, curation_beam.ShardCounts], dict | None]
                 ) -> curation_beam.ShardStage:
  """A stage that runs the plug-in ``section[plugin]`` (made once per worker process from
  ``section.args``) on the texts of each batch of ``section.batch_size`` documents;
  ``judge(document, output, counts)`` gives the document kept (or None: dropped)."""
  factory = load_plugin(section[plugin], f"{name}.{plugin}")
  args = section.args.to_dict() if hasattr(section.args, "to_dict") else dict(section.args)
  made = {}

  def process(path: str, counts: curation_beam.ShardCounts) -> Iterator[dict]:
    if plugin not in made:
      made[plugin] = factory(**args)
    for batch in _batched(curation_beam.read_shard(path), section.batch_size):
      counts.inputs += len(batch)
      for document, output in zip(batch, made[plugin]([d["text"] for d in batch])):
        kept = judge(document, output, counts)
        if kept is not None:
          yield kept

  return curation_beam.ShardStage(name, process)


def cleanup_stage(section: ml_collections.ConfigDict) -> curation_beam.ShardStage:
  """Each batch of documents rewritten by the plug-in (an empty rewrite: 'emptied')."""
  def judge(document, text, counts):
    if not text.strip():
      counts.drop("emptied", {"url": document.get("url", "")})
      return None
    return dict(document, text=text)
  return _model_stage("cleanup", section, "rewriter", judge)


def quality_stage(section: ml_collections.ConfigDict) -> curation_beam.ShardStage:
  """Documents scored 0-5 by the plug-in; those under ``threshold``: 'low_quality'
  (stats ``score/<n>``: documents per whole score)."""
  def judge(document, score, counts):
    counts.stats[f"score/{int(min(max(score, 0), 5))}"] += 1
    if score < section.threshold:
      counts.drop("low_quality")
      return None
    return dict(document, quality=round(float(score), 3))
  return _model_stage("quality", section, "scorer", judge)


def eval_texts(paths: Sequence[str]) -> list[str]:
  """The question and answer text of every evaluation record (JSONL) to decontaminate
  against."""
  texts = []
  for path in paths:
    for record in sources.read_records(path, required=("question",)):
      texts.append(" ".join(str(record.get(k, "")) for k in ("question", "answer")))
  return texts


def _read_documents(field: str) -> Callable[[str], Iterator]:
  """Input documents of the dedup pipeline: ArrayRecord or JSONL shards; a line that
  is not JSON is skipped as 'malformed', a record without a text ``field`` as
  'no_text'."""
  def read(path: str) -> Iterator:
    records = (curation_beam.read_shard(path) if path.endswith(curation_beam.SHARD_SUFFIX)
               else crossthink.read_jsonl(path))
    for record in records:
      if not isinstance(record, dict):
        yield curation_beam.Skipped("malformed")
      elif not isinstance(record.get(field), str):
        yield curation_beam.Skipped("no_text")
      else:
        yield record
  return read


def stages(pipeline: str, config: ml_collections.ConfigDict
           ) -> list[curation_beam.ShardStage | curation_beam.GlobalStage]:
  """The stages of ``pipeline`` up to its last shard stage (crossthink's blends come
  after, from the template stage's pool counts)."""
  section = config.dedup
  fuzzy = dedup.MinHashLSH(bands=section.bands, rows=section.rows,
                           threshold=section.threshold,
                           shingle=section.shingle) if section.fuzzy else None
  if pipeline == "cc_math":
    out = [extract_stage(config.extract)]
    if config.cleanup.rewriter:
      out.append(cleanup_stage(config.cleanup))
    if config.quality.scorer:
      out.append(quality_stage(config.quality))
    out.append(dedup.dedup_stage(fuzzy, "text"))
  elif pipeline == "dedup":
    out = [curation_beam.GlobalStage("dedup", dedup.Deduplicate(fuzzy, section.field),
                                     reads=_read_documents(section.field))]
  elif pipeline == "crossthink":
    return [crossthink.template_stage(crossthink.read_jsonl)]
  else:
    raise ValueError(f"--pipeline={pipeline!r}: want one of {PIPELINES}")
  if config.decontaminate.eval_records:
    out.append(dedup.decontamination_stage(eval_texts(config.decontaminate.eval_records),
                                           ngram=config.decontaminate.ngram,
                                           field=section.field if pipeline == "dedup" else "text"))
  return out


def run(pipeline: str, inputs: Sequence[str], output: str,
        config: ml_collections.ConfigDict | None = None, *,
        beam_options: Sequence[str] = (), progress: bool = True) -> dict:
  """Runs ``pipeline`` over the input files into ``output``; returns the summary."""
  config = config or default_config()
  storage.makedirs(output)
  summary = curation_beam.run_pipeline(stages(pipeline, config), inputs, output,
                                       beam_options=beam_options, progress=progress,
                                       extra_summary={"pipeline": pipeline})
  if pipeline == "crossthink":
    summary = _blends(config, output, summary, beam_options, progress)
  return summary


def _blends(config, output: str, summary: dict, beam_options, progress) -> dict:
  """crossthink: each recipe's blend stage over the templated shards, then its GRPO
  records file; the summary gains each stage and ``blends``: {recipe: path, records}."""
  template = summary["stages"]["template"]
  pool = crossthink.pool_counts(template)
  shards = curation_beam.shard_paths(storage.join(output, "template"))
  blends_dir = storage.join(output, "blends")
  storage.makedirs(blends_dir)
  summary["blends"] = {}
  for name, fields in sorted(config.crossthink.recipes.items()):
    try:
      recipe = crossthink.Recipe(**dict(fields))
    except (TypeError, ValueError) as e:
      raise ValueError(f"crossthink.recipes.{name}: {e}") from None
    stage = crossthink.blend_stage(name, recipe, pool)
    stage_dir = storage.join(output, stage.name)
    summary["stages"][stage.name] = curation_beam.run_stage(
        stage, shards, stage_dir, beam_options=beam_options, progress=progress)
    path = storage.join(blends_dir, f"{name}.jsonl")
    summary["blends"][name] = {"path": path,
                               "records": crossthink.write_records_file(stage_dir, path)}
  storage.write_json(storage.join(output, curation_beam.SUMMARY), summary)
  return summary


def main(argv):
  del argv
  inputs = sorted({p for pattern in _INPUT.value.split(",") for p in storage.glob(pattern)})
  if not inputs:
    raise app.UsageError(f"--input={_INPUT.value!r} matches no file")
  summary = run(_PIPELINE.value, inputs, _OUTPUT.value, _CONFIG.value,
                beam_options=shlex.split(_BEAM_OPTIONS.value))
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  _PIPELINE = flags.DEFINE_enum("pipeline", None, PIPELINES, "The pipeline to run.")
  _INPUT = flags.DEFINE_string("input", None, "Input files: a glob (several: "
                               "comma-separated).")
  _OUTPUT = flags.DEFINE_string("output", None, "Output directory (a rerun resumes it).")
  _BEAM_OPTIONS = flags.DEFINE_string("beam_options", "", "Apache Beam pipeline options, "
                                      "e.g. '--runner=DataflowRunner --project=...'.")
  _CONFIG = config_flags.DEFINE_config_dict("config", default_config(), "Pipeline "
                                            "settings (--config.dedup.threshold=...).")
  flags.mark_flags_as_required(["pipeline", "input", "output"])
  app.run(main)
