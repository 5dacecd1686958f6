"""Masked-span prediction as a data transform: spans of varying length replaced by
sentinels, the spans appended as targets, the loss on the targets only.

The pretraining objective of pooling-augmented blockwise attention (Xiong et al.,
"Adapting Pretrained Text-to-Text Models for Long Text Sequences", arXiv 2209.10052 §3):
T5's span corruption (arXiv 1910.10683 §3.1.4) with spans of varying length, short and
long ones mixed. For a decoder-only model the corrupted input and the targets are one
sequence::

  ids      a b c d e f g h i j <eos>
  input    a <s0> d e f <s1> j          (each span replaced by one sentinel)
  targets  <s0> b c <s1> g h i <eos>    (sentinel i, then span i; eos last)
  row      input + targets, target weights 0 on the input and 1 on the targets

The mixture of span lengths: each corrupted piece draws one mean span length uniformly
from ``mean_span_lengths`` (e.g. (3, 8, 64): T5's short spans, medium and long ones), so
both short and long spans occur in every batch (the paper mixes short and long spans; its
exact mixture is not reproduced here). Within a piece, T5's ``random_spans_noise_mask``:
``round(n * noise_density)`` noise tokens (at least 1, at most n - 1) in
``round(noise / mean)`` spans (at least 1; at most the noise tokens and the kept tokens),
the noise and the kept tokens each split at uniformly random points, spans and kept
segments alternating; the piece starts with a span or a kept segment with equal
probability. A span is never longer than its piece: a piece shorter than the mean span
gets one span of its noise tokens (a defined outcome, not an error).

Sentinels: ``<extra_id_i>`` when the tokenizer has those tokens (T5's SentencePiece
models), else T5's convention for a vocabulary without them, sentinel i = id
``vocab_size - 1 - i`` (ordinary tokens of the vocabulary then double as sentinels:
the model tells them apart by position in the row). 'after_vocab': ids the tokenizer
does not have, sentinel i = ``vocab_size + i``, for a model whose embedding has room
beyond its tokenizer (the driver checks that ``model.vocab_size`` holds them): no
sentinel is also a word. ``sentinels`` in the config picks one ('auto', 'extra_id',
'vocab_end', 'after_vocab').

In the pipeline (``data/pipeline.py``, ``data.span_corruption.enabled``) each tokenized
document is cut into near-equal pieces short enough that a corrupted piece (input plus
targets) fits a row of ``seq_len`` whatever mean it draws, and each piece is corrupted
with a generator seeded by the pipeline's seed and the document's place in the
(shuffled, repeated) document order, so the rows are deterministic and the iterator's
state restores exactly; each epoch corrupts a document anew. Leading tokens without
target weight (bos, an SFT prompt) stay uncorrupted input; the original target weights are
otherwise replaced by the span targets'. A piece with fewer than two tokens to corrupt
is dropped (as ``packing.split_into_chunks`` drops chunks without targets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar, Optional

import grain
import ml_collections
import numpy as np

from data import tokenizer as tokenizer_lib

SENTINEL_KINDS = ("auto", "extra_id", "vocab_end", "after_vocab")
_FIELD = "data.span_corruption"


def default_config() -> ml_collections.ConfigDict:
  """The ``data.span_corruption`` section (see the module docstring); off by default."""
  return ml_collections.ConfigDict(dict(
      enabled=False, noise_density=0.15, mean_span_lengths=(3, 8, 64), num_sentinels=100,
      sentinels="auto", sources=()))


def corrupts_source(config: Optional[ml_collections.ConfigDict], name: str,
                    names: Sequence[str]) -> bool:
  """Whether a ``data.span_corruption`` section (None: none) corrupts the source ``name``
  of ``names``: enabled, and its ``sources`` empty (every source) or naming it; a
  ValueError names ``sources`` that are no source."""
  if config is None or not config.enabled:
    return False
  chosen = tuple(config.get("sources", ()))
  if unknown := sorted(set(chosen) - set(names)):
    raise ValueError(f"{_FIELD}.sources={chosen}: {unknown} are not in data.sources "
                     f"{sorted(names)}")
  return not chosen or name in chosen


def check_settings(noise_density: float, mean_span_lengths: Sequence[float]) -> None:
  """Raises a ValueError naming the field of a noise density or span means out of range."""
  if not 0.0 < noise_density < 1.0:
    raise ValueError(f"{_FIELD}.noise_density={noise_density}: must be in (0, 1)")
  if not mean_span_lengths or any(not m >= 1 for m in mean_span_lengths):
    raise ValueError(f"{_FIELD}.mean_span_lengths={tuple(mean_span_lengths)}: want one or "
                     "more means, each >= 1")


def span_counts(length: int, noise_density: float, mean_span_length: float) -> tuple[int, int]:
  """(noise tokens, spans) of a piece of ``length`` >= 2 tokens (module docstring)."""
  num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
  num_spans = max(int(round(num_noise / mean_span_length)), 1)
  return num_noise, min(num_spans, num_noise, length - num_noise)


def corrupted_length(length: int, noise_density: float, mean_span_length: float) -> int:
  """Tokens of a corrupted piece of ``length`` tokens: each span adds its sentinel twice
  (input and targets), plus the final eos."""
  return length + 2 * span_counts(length, noise_density, mean_span_length)[1] + 1


def _segment_lengths(total: int, count: int, rng: np.random.Generator) -> np.ndarray:
  """``count`` positive lengths summing to ``total``, cut at uniformly random points."""
  cuts = np.sort(rng.choice(np.arange(1, total), count - 1, replace=False))
  return np.diff(np.concatenate([[0], cuts, [total]]))


def noise_mask(length: int, rng: np.random.Generator, *, noise_density: float,
               mean_span_length: float) -> np.ndarray:
  """(length,) bool: True on the tokens of the spans (T5's random_spans_noise_mask)."""
  num_noise, num_spans = span_counts(length, noise_density, mean_span_length)
  noise = _segment_lengths(num_noise, num_spans, rng)
  kept = _segment_lengths(length - num_noise, num_spans, rng)
  if rng.random() < 0.5:   # span first: kept, span, ..., kept, span -> span, kept, ...
    segments, is_noise = np.stack([noise, kept], 1).ravel(), [True, False]
  else:
    segments, is_noise = np.stack([kept, noise], 1).ravel(), [False, True]
  return np.repeat(np.tile(is_noise, num_spans), segments)


def corrupt(ids: np.ndarray, rng: np.random.Generator, *, noise_density: float,
            mean_span_lengths: Sequence[float], sentinel_ids: Sequence[int],
            eos_id: int) -> tuple[np.ndarray, np.ndarray]:
  """One piece corrupted: (input + targets ids (m,) int32, target weights (m,) int32),
  weights 1 exactly on the targets. The mean span length is drawn uniformly from
  ``mean_span_lengths``; ``ids`` needs at least 2 tokens and no more spans than
  ``sentinel_ids``."""
  check_settings(noise_density, mean_span_lengths)
  ids = np.asarray(ids, np.int32)
  if len(ids) < 2:
    raise ValueError(f"span corruption needs at least 2 tokens, got {len(ids)}")
  mean = float(mean_span_lengths[rng.integers(len(mean_span_lengths))])
  mask = noise_mask(len(ids), rng, noise_density=noise_density, mean_span_length=mean)
  starts = np.flatnonzero(mask & ~np.concatenate([[False], mask[:-1]]))
  if len(starts) > len(sentinel_ids):
    raise ValueError(f"{len(ids)} tokens at mean span length {mean} make {len(starts)} "
                     f"spans, more than the {len(sentinel_ids)} sentinels: raise "
                     f"{_FIELD}.num_sentinels or shorten the pieces")
  is_start = np.zeros(len(ids), bool)
  is_start[starts] = True
  span_index = np.cumsum(is_start) - 1
  sentinels = np.asarray(sentinel_ids, np.int32)
  # Input: kept tokens, and a sentinel where a span starts; targets: the sentinel before
  # the first token of each span, then the span's tokens.
  inputs = np.where(is_start, sentinels[span_index], ids)[~mask | is_start]
  targets = np.insert(ids[mask], np.flatnonzero(is_start[mask]),
                      sentinels[span_index[starts]])
  out = np.concatenate([inputs, targets, [eos_id]]).astype(np.int32)
  weights = np.concatenate([np.zeros(len(inputs), np.int32),
                            np.ones(len(targets) + 1, np.int32)])
  return out, weights


def sentinel_ids(tokenizer: tokenizer_lib.Tokenizer, num_sentinels: int,
                 kind: str = "auto") -> tuple[int, ...]:
  """The ids of sentinels 0..num_sentinels-1 (module docstring); a ValueError names the
  field when the tokenizer cannot give them or one is bos, eos or pad."""
  if kind not in SENTINEL_KINDS:
    raise ValueError(f"{_FIELD}.sentinels={kind!r}: want one of {SENTINEL_KINDS}")
  if num_sentinels < 1:
    raise ValueError(f"{_FIELD}.num_sentinels={num_sentinels}: must be >= 1")
  if kind == "after_vocab":
    return tuple(tokenizer.vocab_size + i for i in range(num_sentinels))
  if kind != "vocab_end":
    try:
      return tuple(tokenizer.token_to_id(f"<extra_id_{i}>") for i in range(num_sentinels))
    except ValueError as e:
      if kind == "extra_id":
        raise ValueError(f"{_FIELD}.sentinels='extra_id': {e}") from None
  ids = tuple(tokenizer.vocab_size - 1 - i for i in range(num_sentinels))
  special = {tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id} & set(ids)
  if special or ids[-1] < 0:
    raise ValueError(f"{_FIELD}.num_sentinels={num_sentinels}: the last ids of a "
                     f"{tokenizer.vocab_size}-token vocabulary include "
                     f"{sorted(special) or 'negative ids'} (bos, eos or pad)")
  return ids


def piece_length(seq_len: int, noise_density: float,
                 mean_span_lengths: Sequence[float]) -> int:
  """The most tokens a piece may have so that, corrupted at any of the means, it fits
  ``seq_len`` (a ValueError when not even 2 tokens fit)."""
  check_settings(noise_density, mean_span_lengths)
  fits = lambda n: all(corrupted_length(n, noise_density, m) <= seq_len
                       for m in mean_span_lengths)
  length = seq_len
  while length >= 2 and not fits(length):
    length -= 1
  if length < 2:
    raise ValueError(f"train.seq_len={seq_len} is too short for span corruption: a "
                     "corrupted piece of 2 tokens needs 5")
  return length


def corrupt_document(ids: np.ndarray, target_weights: np.ndarray, rng: np.random.Generator,
                     *, max_piece: int, noise_density: float,
                     mean_span_lengths: Sequence[float], sentinel_ids: Sequence[int],
                     eos_id: int) -> list[dict[str, np.ndarray]]:
  """A tokenized document as corrupted pieces (dicts of ``tokens`` and ``target_weights``,
  as ``packing.split_into_chunks`` gives): cut into ceil(n / max_piece) near-equal pieces;
  in each, leading tokens without target weight stay input, the rest is corrupted."""
  pieces = []
  count = -(-len(ids) // max_piece)
  for piece, weights in zip(np.array_split(ids, count), np.array_split(target_weights, count)):
    context = int(np.argmax(weights > 0)) if weights.any() else len(weights)
    if len(piece) - context < 2:
      continue
    tokens, span_weights = corrupt(piece[context:], rng, noise_density=noise_density,
                                   mean_span_lengths=mean_span_lengths,
                                   sentinel_ids=sentinel_ids, eos_id=eos_id)
    pieces.append({"tokens": np.concatenate([piece[:context], tokens]).astype(np.int32),
                   "target_weights": np.concatenate([np.zeros(context, np.int32),
                                                     span_weights])})
  return pieces


@dataclasses.dataclass(frozen=True)
class CorruptSpans(grain.transforms.RandomMap):
  """grain transform: (ids, target_weights) -> its corrupted pieces (a list; module
  level: workers pickle it). Build it with ``from_config``."""

  max_piece: int
  noise_density: float
  mean_span_lengths: tuple[float, ...]
  sentinel_ids: tuple[int, ...]
  eos_id: int

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, tokenizer: tokenizer_lib.Tokenizer,
                  seq_len: int) -> CorruptSpans:
    """The transform of a ``data.span_corruption`` section; raises on bad fields, and
    when a piece could make more spans than ``num_sentinels``."""
    means = tuple(float(m) for m in config.mean_span_lengths)
    max_piece = piece_length(seq_len, config.noise_density, means)
    sentinels = sentinel_ids(tokenizer, config.num_sentinels, config.get("sentinels", "auto"))
    most_spans = max(span_counts(max_piece, config.noise_density, m)[1] for m in means)
    if most_spans > len(sentinels):
      raise ValueError(f"{_FIELD}.num_sentinels={len(sentinels)}: pieces of {max_piece} "
                       f"tokens (seq_len {seq_len}) make up to {most_spans} spans at mean "
                       f"{min(means)}; want num_sentinels >= {most_spans}")
    return cls(max_piece, float(config.noise_density), means, sentinels, tokenizer.eos_id)

  def random_map(self, tokenized: tuple[np.ndarray, np.ndarray],
                 rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    return corrupt_document(*tokenized, rng, max_piece=self.max_piece,
                            noise_density=self.noise_density,
                            mean_span_lengths=self.mean_span_lengths,
                            sentinel_ids=self.sentinel_ids, eos_id=self.eos_id)


@dataclasses.dataclass(frozen=True)
class EachPiece(grain.experimental.FlatMapTransform):
  """grain transform: a document's list of pieces -> the pieces."""

  max_fan_out: ClassVar[int] = 1 << 30  # Unused by FlatMapIterDataset.

  def flat_map(self, pieces: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    return pieces
