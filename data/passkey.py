"""Passkey retrieval: a key hidden in long filler text, asked for at the end.

The long-input task of Mohtashami & Jaggi (arXiv 2305.16300 §4.1), the task of the
``pooled_blockwise`` claim (pooling-augmented blockwise attention, arXiv 2209.10052): a
document of filler text with one key sentence at a chosen depth, then the question::

  There is important info hidden inside a lot of irrelevant text. Find it and memorize
  it. I will quiz you about the important information there. <filler> The pass key is
  73. Remember it. 73 is the pass key. <filler> What is the pass key? The pass key is

and the answer is the key ("73"); the preamble is optional (``preamble``). The filler
is the blank-line separated documents of a text file (e.g. the shipped
``data/corpus/english.txt``), whitespace collapsed to single spaces and read as one
cyclic stream of words from a random word on. ``length`` counts the whole question
(preamble, filler, key sentence, question) in tokens of a tokenizer, or in characters
without one: the most filler words that keep it within ``length``.
``depth`` is the share of those filler words before the key sentence (0: right after the
preamble, 1: right before the question).

Outputs: records ``{question, answer, kind}`` for ``train.evaluate`` (template 'text',
so the prompt is the question and a newline; ``kind`` is a depth bucket such as
'first_block' or 'near', giving ``pass@1/<kind>``), and training text, the same
documents with the answer on the next line (as a 'text' record prompt is answered), one
document per blank-line separated block: a ``text`` source of the pretrain loop.
``build`` writes a claim's files (the claims' ``datasets`` section).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import numpy as np

from data import config as config_lib
from data import sources
from data import tokenizer as tokenizer_lib

PREAMBLE = ("There is important info hidden inside a lot of irrelevant text. Find it and "
            "memorize it. I will quiz you about the important information there.")
KEY_SENTENCE = "The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = "What is the pass key? The pass key is"
DEFAULT_DEPTHS = {"first_block": (0.0, 0.1), "near": (0.9, 1.0)}

Measure = Callable[[str], int]


def filler_words(path: str) -> list[str]:
  """The words of the blank-line separated documents of the text file(s) at ``path``."""
  words = [word for document in sources.read_text_documents(path) for word in document.split()]
  if not words:
    raise ValueError(f"{path}: no filler words")
  return words


def document(filler: Sequence[str], *, key: str, before: int, after: int, start: int,
             preamble: str = PREAMBLE) -> str:
  """The question text: ``preamble`` (if any), ``before`` filler words, the key sentence,
  ``after`` filler words (the stream read cyclically from word ``start``), the question."""
  stream = [filler[(start + i) % len(filler)] for i in range(before + after)]
  return " ".join([*([preamble] if preamble else []), *stream[:before],
                   KEY_SENTENCE.format(key=key), *stream[before:], QUESTION])


def make_example(filler: Sequence[str], rng: np.random.Generator, *, length: int,
                 depth: float, key: str, measure: Measure = len,
                 preamble: str = PREAMBLE) -> dict[str, Any]:
  """{question, answer, depth, length}: the longest question of at most ``length``
  (``measure``: characters, or tokens) with the key after ``depth`` of its filler words
  (``depth``: the share as placed, ``length``: as measured)."""
  if not 0.0 <= depth <= 1.0:
    raise ValueError(f"depth={depth}: must be in [0, 1]")
  start = int(rng.integers(len(filler)))
  make = lambda words: document(filler, key=key, before=int(round(depth * words)),
                                after=words - int(round(depth * words)), start=start,
                                preamble=preamble)
  shortest = measure(make(0))
  if shortest > length:
    raise ValueError(f"length={length}: the question without filler is already "
                     f"{shortest} long")
  low, high = 0, max(length, 1)   # a word measures at least 1: never more than length words
  while low < high:               # the most filler words that fit
    middle = (low + high + 1) // 2
    if measure(make(middle)) <= length:
      low = middle
    else:
      high = middle - 1
  question = make(low)
  before = int(round(depth * low))
  return {"question": question, "answer": key, "depth": before / low if low else depth,
          "length": measure(question)}


def make_records(filler: Sequence[str], rng: np.random.Generator, *, count: int, length: int,
                 depths: Mapping[str, Sequence[float]], key_range: Sequence[int],
                 measure: Measure = len, preamble: str = PREAMBLE) -> list[dict[str, Any]]:
  """``count`` examples, kinds in turn from ``depths`` ({kind: (low, high)}: the depth
  drawn uniformly in that range), keys uniform integers in [key_range[0], key_range[1])."""
  low_key, high_key = (int(k) for k in key_range)
  if not 0 <= low_key < high_key:
    raise ValueError(f"key_range={tuple(key_range)}: want 0 <= low < high")
  for kind, bounds in depths.items():
    if len(bounds) != 2 or not 0.0 <= bounds[0] <= bounds[1] <= 1.0:
      raise ValueError(f"depths[{kind!r}]={tuple(bounds)}: want (low, high), "
                       "0 <= low <= high <= 1")
  kinds = list(depths)
  if not kinds:
    raise ValueError("depths is empty: want {kind: (low, high)}")
  records = []
  for index in range(count):
    kind = kinds[index % len(kinds)]
    low, high = depths[kind]
    example = make_example(filler, rng, length=length, depth=float(rng.uniform(low, high)),
                           key=str(int(rng.integers(low_key, high_key))), measure=measure,
                           preamble=preamble)
    records.append({"question": example["question"], "answer": example["answer"],
                    "kind": kind, "depth": example["depth"], "length": example["length"]})
  return records


def training_text(record: Mapping[str, Any]) -> str:
  """The record as a training document: the question, a newline, the answer."""
  return f"{record['question']}\n{record['answer']}"


def _resolve(name: str) -> str:
  """A path as given if absolute, else a file of the shipped corpus."""
  return name if os.path.isabs(name) else config_lib.corpus_path(name)


def _figures(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  lengths = [r["length"] for r in records]
  kinds = sorted({r["kind"] for r in records})
  return {"count": len(records), "length_min": min(lengths), "length_max": max(lengths),
          "length_mean": statistics.fmean(lengths),
          "depth_by_kind": {k: statistics.fmean(r["depth"] for r in records if r["kind"] == k)
                            for k in kinds}}


def build(directory: str, *, filler_file: str = "english.txt", tokenizer_path: str = "",
          short_length: int = 256, long_length: int = 1024, train_count: int = 2000,
          eval_count: int = 100, depths: Optional[Mapping[str, Sequence[float]]] = None,
          train_depth: Sequence[float] = (0.0, 1.0), key_range: Sequence[int] = (10, 100),
          preamble: str = PREAMBLE, seed: int = 0) -> dict[str, Any]:
  """The passkey dataset (a claims ``datasets`` build, ``train.stages.build_dataset``),
  written into ``directory``:

    short_train.txt, long_train.txt   ``train_count`` training documents each, of
                                      ``short_length`` / ``long_length``, depth uniform
                                      in ``train_depth``
    dev.jsonl, valid.jsonl            ``eval_count`` records each of ``long_length``,
                                      kinds from ``depths`` (default first_block:
                                      (0, 0.1), near: (0.9, 1))
    short_valid.jsonl                 the same at ``short_length``

  Lengths in tokens of ``tokenizer_path``, or characters if ''; ``filler_file`` and
  ``tokenizer_path`` are shipped corpus files unless absolute; ``preamble`` opens every
  question ('' for none: the paper's is 69 tokens of the shipped tokenizer, much of a
  short row). A training document is its question, a newline, the answer and eos: a few
  tokens over its length, so leave that room in ``train.seq_len``. Returns the figures: per
  file the count, lengths and mean depth by kind.
  """
  depths = dict(DEFAULT_DEPTHS if depths is None else depths)
  filler = filler_words(_resolve(filler_file))
  if tokenizer_path:
    tokenizer = tokenizer_lib.load_tokenizer(_resolve(tokenizer_path))
    measure, unit = (lambda text: len(tokenizer.encode(text))), "tokens"
  else:
    measure, unit = len, "characters"
  streams = np.random.SeedSequence(seed).spawn(5)
  train_depths = {"train": tuple(train_depth)}
  files = {
      "short_train.txt": (short_length, train_count, train_depths),
      "long_train.txt": (long_length, train_count, train_depths),
      "dev.jsonl": (long_length, eval_count, depths),
      "valid.jsonl": (long_length, eval_count, depths),
      "short_valid.jsonl": (short_length, eval_count, depths),
  }
  figures: dict[str, Any] = {"unit": unit, "filler_file": filler_file,
                             "filler_words": len(filler), "files": {}}
  for (name, (length, count, file_depths)), stream in zip(files.items(), streams):
    records = make_records(filler, np.random.default_rng(stream), count=count, length=length,
                           depths=file_depths, key_range=key_range, measure=measure,
                           preamble=preamble)
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
      if name.endswith(".txt"):
        f.write("\n\n".join(training_text(r) for r in records) + "\n")
      else:
        f.writelines(json.dumps({k: r[k] for k in ("question", "answer", "kind")}) + "\n"
                     for r in records)
    figures["files"][name] = {"length": length, **_figures(records)}
  return figures
