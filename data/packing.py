"""Tokenized documents -> fixed-length packed rows with next-token targets and masks.

A document becomes `[bos?] prompt_ids text_ids eos`. Its target weights say which
tokens count as loss targets: 1 for the text and eos, 0 for bos and the prompt.
Documents longer than a row are cut into chunks of at most `seq_len` tokens that
overlap by one token, so every token after the first is a target exactly once.
Chunks are first-fit packed into rows; a row (all arrays shaped (seq_len,)) holds

  tokens       int32    input ids, `pad_id` on padding
  targets      int32    the next token of the same document, else `pad_id`
  segment_ids  int32    0 on padding, 1, 2, ... for the chunks packed into the row
  positions    int32    0, 1, ... restarting at every chunk
  loss_mask    float32  1 where `targets` is a real next token of the same document
                        whose target weight is 1, else 0

so no position ever predicts a token of another document.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import grain
import numpy as np

from data import sources
from data import tokenizer as tokenizer_lib

ROW_FEATURES = ("tokens", "targets", "segment_ids", "positions", "loss_mask")


def tokenize_document(document: sources.Document, tokenizer: tokenizer_lib.Tokenizer,
                      add_bos: bool) -> tuple[np.ndarray, np.ndarray]:
  """Token ids (n,) int32 and target weights (n,) int32 of one `(prompt, text)`."""
  prompt, text = document
  context = ([tokenizer.bos_id] if add_bos else []) + (tokenizer.encode(prompt) if prompt else [])
  learned = tokenizer.encode(text) + [tokenizer.eos_id]
  ids = np.asarray(context + learned, np.int32)
  target_weights = np.concatenate([np.zeros(len(context), np.int32),
                                   np.ones(len(learned), np.int32)])
  return ids, target_weights


def split_into_chunks(ids: np.ndarray, target_weights: np.ndarray,
                      seq_len: int) -> list[dict[str, np.ndarray]]:
  """Chunks of at most `seq_len` tokens overlapping by one; those without targets dropped.

  The first token of a chunk is input only, so a chunk `ids[s:s + seq_len]` starting at
  `s = k * (seq_len - 1)` predicts exactly the tokens the previous chunk could not.

  Returns:
    dicts with `tokens` and `target_weights`, each (chunk_len,) int32, 2 <= chunk_len.
  """
  if seq_len < 2:
    raise ValueError(f"seq_len must be at least 2, got {seq_len}")
  chunks = []
  for start in range(0, len(ids) - 1, seq_len - 1):
    chunk_weights = target_weights[start:start + seq_len]
    if chunk_weights[1:].any():
      chunks.append({"tokens": ids[start:start + seq_len], "target_weights": chunk_weights})
  return chunks


@dataclasses.dataclass(frozen=True)
class TokenizeDocument(grain.transforms.Map):
  """grain transform: `Document` -> (ids, target_weights) (module level: workers pickle it)."""

  tokenizer: tokenizer_lib.Tokenizer
  add_bos: bool

  def map(self, document: sources.Document) -> tuple[np.ndarray, np.ndarray]:
    return tokenize_document(document, self.tokenizer, self.add_bos)


@dataclasses.dataclass(frozen=True)
class SplitIntoChunks(grain.experimental.FlatMapTransform):
  """grain transform: (ids, target_weights) -> its chunks."""

  seq_len: int
  max_fan_out: ClassVar[int] = 1 << 30  # Unused by FlatMapIterDataset.

  def flat_map(self, tokenized: tuple[np.ndarray, np.ndarray]) -> list[dict[str, np.ndarray]]:
    return split_into_chunks(*tokenized, self.seq_len)


def row_of_packed(packed: dict[str, np.ndarray], pad_id: int) -> dict[str, np.ndarray]:
  """`ROW_FEATURES` of one packed row from `FirstFitPackIterDataset` (all (seq_len,))."""
  tokens = packed["tokens"].astype(np.int32)
  segment_ids = packed["tokens_segment_ids"].astype(np.int32)
  next_is_same_document = np.zeros(tokens.shape, bool)
  next_is_same_document[:-1] = (segment_ids[1:] == segment_ids[:-1]) & (segment_ids[:-1] > 0)
  next_tokens = np.append(tokens[1:], np.int32(pad_id))
  next_weights = np.append(packed["target_weights"][1:], 0)
  return {
      "tokens": tokens,
      "targets": np.where(next_is_same_document, next_tokens, pad_id).astype(np.int32),
      "segment_ids": segment_ids,
      "positions": packed["tokens_positions"].astype(np.int32),
      "loss_mask": (next_is_same_document & (next_weights > 0)).astype(np.float32),
  }


@dataclasses.dataclass(frozen=True)
class RowOfPacked(grain.transforms.Map):
  pad_id: int

  def map(self, packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return row_of_packed(packed, self.pad_id)


def pack_chunks(chunks: grain.IterDataset, *, seq_len: int, pad_id: int, num_packing_bins: int,
                seed: int, shuffle_bins: bool = True) -> grain.IterDataset:
  """First-fit packs chunks into rows of `ROW_FEATURES`; bins are shuffled with `seed`
  (or emitted in order without `shuffle_bins`).

  Larger `num_packing_bins` means less padding; the packer emits all bins whenever a
  chunk fits in none of them.
  """
  packed = grain.experimental.FirstFitPackIterDataset(
      chunks, length_struct={"tokens": seq_len, "target_weights": seq_len},
      num_packing_bins=num_packing_bins, seed=seed, shuffle_bins=shuffle_bins,
      padding_struct={"tokens": pad_id, "target_weights": 0})
  return packed.map(RowOfPacked(pad_id))
