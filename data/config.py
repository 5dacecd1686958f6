"""The `data` section of a run config (an `ml_collections.ConfigDict`).

Fields:
  tokenizer_path    sentencepiece `.model` or Hugging Face `tokenizer.json`.
  sources           name -> `source_config(...)` (format, path, field, ...).
  stages            tuple of `stage_config(...)`: weights per source name and a budget.
  add_bos           prepend bos to every document.
  num_packing_bins  first-fit packing bins (more bins, less padding).
  num_workers       grain worker processes per source (0 = in the main process).
  read_threads      threads per source that tokenize documents ahead (0 = none: fastest
                    on a few cores; raise it, or num_workers, for long documents on a
                    big host).
  span_corruption   masked-span prediction (arXiv 2209.10052; `data/span_corruption.py`):
                    enabled (False: plain next-token rows), noise_density (the share of
                    tokens in spans, in (0, 1)), mean_span_lengths (each corrupted piece
                    draws one mean uniformly: short and long spans mixed), num_sentinels
                    (at least the spans of a piece; checked when the pipeline starts),
                    sentinels ('auto': `<extra_id_i>` if the tokenizer has them, else id
                    vocab_size - 1 - i; 'extra_id'; 'vocab_end'), sources (names of the
                    sources corrupted; () = all). Their documents are cut into pieces
                    whose input plus targets fit a row; the loss is on the targets only.
The seed, sequence length and batch size come from the run config and are passed to
`pipeline.make_iterator`. Default paths point into the package's shipped corpus, so
they work from any directory and after `pip install`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Optional

import ml_collections

from data import sources
from data import span_corruption

CORPUS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def corpus_path(file_name: str) -> str:
  """Absolute path of a file of the shipped corpus."""
  return os.path.join(CORPUS_DIR, file_name)


def source_config(format: str, path: str, *,  # pylint: disable=redefined-builtin
                  field: str = "text", prompt_field: str = "", prompt_separator: str = "\n",
                  tfds_name: str = "", split: str = "train", concatenate: int = 1
                  ) -> ml_collections.ConfigDict:
  """One entry of `sources`, with every field a source may use.

  Args:
    format: one of `sources.FORMATS` (see `data/sources.py` for each).
    path: file path or glob; for tfds the `data_dir` the dataset was prepared in.
    field: JSON field / tfds feature holding the text (unused for `text`; for
      `array_record` "" means records are raw UTF-8 text).
    prompt_field: if set, the record's prompt, joined to the text by
      `prompt_separator` and masked out of the loss (SFT).
    prompt_separator: string between prompt and text.
    tfds_name: registered tfds builder name (tfds only).
    split: tfds split (tfds only).
    concatenate: join this many consecutive documents of the source's shuffled order
      into one (a blank line between): long documents made of randomly concatenated
      short ones, on which arXiv 2209.10052 (§5) adapts models to long inputs best.
      Pretraining documents only (no prompt_field).
  """
  if format not in sources.FORMATS:
    raise ValueError(f"unknown source format {format!r} for {path}; want one of "
                     f"{sources.FORMATS}")
  if not isinstance(concatenate, int) or concatenate < 1 or (concatenate > 1 and prompt_field):
    raise ValueError(f"source {path}: concatenate={concatenate!r} must be a positive "
                     "integer, and 1 for a source with a prompt_field")
  return ml_collections.ConfigDict(dict(
      format=format, path=path, field=field, prompt_field=prompt_field,
      prompt_separator=prompt_separator, tfds_name=tfds_name, split=split,
      concatenate=concatenate))


def stage_config(name: str, weights: Mapping[str, float], *, num_steps: Optional[int] = None,
                 num_tokens: Optional[int] = None, mixture: str = ""
                 ) -> ml_collections.ConfigDict:
  """One entry of `stages`: mixture weights by source name and at most one budget.

  A token budget counts global tokens (global_batch_size * seq_len per step, padding
  included). Only the last stage may have no budget (it then runs forever). With
  ``mixture`` (a mixture file, ``read_mixture``; ``weights`` then empty) the stage takes
  that file's weights and sources when the run starts (``with_mixture_files``): a
  mixture searched after the config was made (CLIMB, arXiv 2504.13161).
  """
  fields = dict(name=name, weights=dict(weights), num_steps=num_steps, num_tokens=num_tokens)
  if mixture:
    fields["mixture"] = mixture
  return ml_collections.ConfigDict(fields)


def read_mixture(path: str, *, stage: str = "mixture", num_tokens: Optional[int] = None
                 ) -> tuple[dict[str, ml_collections.ConfigDict], tuple]:
  """(sources, stages) of a mixture file, JSON {sources: {name: source fields},
  weights: {name: weight}} (CLIMB's search writes one: ``train/climb.py``, arXiv
  2504.13161): one stage of those weights, unbounded unless ``num_tokens``. A relative
  source path is taken from the file's directory.

    config.data.sources, config.data.stages = read_mixture("runs/climb/mixture.json")
  """
  with open(path, encoding="utf-8") as f:
    mixture = json.load(f)
  missing = [k for k in ("sources", "weights") if not isinstance(mixture.get(k), dict)]
  if missing:
    raise ValueError(f"mixture {path}: missing {missing} (want {{sources, weights}})")
  folder = os.path.dirname(os.path.abspath(path))
  out = {}
  for name, fields in mixture["sources"].items():
    fields = dict(fields)
    fields["path"] = os.path.join(folder, fields["path"])  # an absolute path stays
    out[name] = source_config(fields.pop("format"), fields.pop("path"), **fields)
  return out, (stage_config(stage, mixture["weights"], num_tokens=num_tokens),)


def with_mixture_files(data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``data`` (a `data` section) with every stage that names a ``mixture`` file given
  that file's weights (its budget kept) and the file's sources added to ``sources``; a
  source name both give must be the same source. Read when the run starts
  (``data.pipeline.make_iterator``)."""
  if not any(stage.get("mixture") for stage in data.stages):
    return data
  sources_, stages = {n: dict(s) for n, s in data.sources.items()}, []
  for stage in data.stages:
    path = stage.get("mixture")
    if path:
      if stage["weights"]:
        raise ValueError(f"stage {stage['name']!r}: weights {dict(stage['weights'])} beside "
                         f"mixture={path!r}; the file gives the weights")
      read_sources, (read,) = read_mixture(path, stage=stage["name"])
      for name, source in read_sources.items():
        if sources_.setdefault(name, source.to_dict()) != source.to_dict():
          raise ValueError(f"mixture {path}: source {name!r} differs from data.sources.{name}")
      stage = stage_config(stage["name"], read.weights, num_steps=stage.get("num_steps"),
                           num_tokens=stage.get("num_tokens"))
    stages.append(stage)
  out = ml_collections.ConfigDict(data.to_dict())
  with out.unlocked():
    out.sources = sources_
    out.stages = tuple(stages)
  return out


def default_data_config() -> ml_collections.ConfigDict:
  """Pretraining on the shipped corpus: 70/30 English/reasoning for 2M tokens, then 30/70."""
  return ml_collections.ConfigDict(dict(
      tokenizer_path=corpus_path("tokenizer.model"),
      sources=dict(
          web=source_config("text", corpus_path("english.txt")),
          reasoning=source_config("jsonl", corpus_path("reasoning.jsonl"), field="text"),
      ),
      stages=(
          stage_config("pretrain", {"web": 0.7, "reasoning": 0.3}, num_tokens=1 << 21),
          stage_config("anneal", {"web": 0.3, "reasoning": 0.7}),
      ),
      add_bos=False,
      num_packing_bins=64,
      num_workers=0,
      read_threads=0,
      span_corruption=span_corruption.default_config(),
  ))


def sft_data_config() -> ml_collections.ConfigDict:
  """SFT on the shipped reasoning problems: loss on the solution only, the question masked."""
  config = default_data_config()
  config.sources = dict(reasoning=source_config(
      "jsonl", corpus_path("reasoning.jsonl"), field="solution", prompt_field="question"))
  config.stages = (stage_config("sft", {"reasoning": 1.0}),)
  return config
