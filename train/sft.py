"""Supervised fine-tuning on chat-templated conversations, loss on assistant tokens only.

Data: records → conversations (``data/chat.py``; reasoning problems become
Llama-Nemotron toggle pairs, arXiv 2505.00949) → ids and target weights (1 on assistant
tokens) → the pretraining packer (``data.packing``), which keeps every target inside its
own conversation, restarts positions per conversation and masks the loss by the target
weights. So a packed batch is a pretraining batch and the step is pretraining's
(``train.pretrain.make_lm_step``).

Record formats (one JSON object per line):
  {"messages": [{"role": ..., "content": ...}, ...]}    a conversation as is
  {"question": ..., "solution": ..., "answer": ...}      a reasoning problem
  {"question": ..., "answer": ...}                       a question answered directly
(``data/reasoning_tasks.py`` problems: the solution's steps, optionally inside
``<think>``, then a final ``Answer: ...`` line.)

The ``sft`` config section: records (a JSONL path), toggle ('pair', 'on', 'off' or
'none', see ``record_conversations``), num_packing_bins, and whole_conversations
(optional): refuse a conversation longer than ``train.seq_len`` instead of splitting it
across rows, so few-example SFT (e.g. 20 records for many epochs) trains on every
record whole, its answer always after its question.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import ClassVar

import grain
import numpy as np

from data import chat
from data import packing
from data import pipeline
from data import sources
from data import tokenizer as tokenizer_lib
from train import config as config_lib
from train import pretrain
from train.loops import Context, IteratorBatches, Loop, PromptFormat

TOGGLES = ("pair", "on", "off", "none")


def split_solution(solution: str) -> tuple[str, str]:
  """(reasoning, final line) of a reasoning-task solution; thinking tags removed."""
  body, _, final = solution.rstrip().rpartition("\n")
  body = body.replace(tokenizer_lib.THINK_START, "").replace(tokenizer_lib.THINK_END, "")
  return body.strip(), final.strip()


def record_conversations(record: Mapping, toggle: str) -> list[list[dict[str, str]]]:
  """The conversations one record trains on.

  toggle: 'pair' gives both Llama-Nemotron variants of a reasoning problem ("detailed
  thinking on" with ``<think>steps</think>`` + final line, "off" with the final line
  alone); 'on' / 'off' only one of them; 'none' no system prompt and the solution
  verbatim. ``messages`` records are used as they are, question/answer records answer
  directly.
  """
  if toggle not in TOGGLES:
    raise ValueError(f"toggle={toggle!r}: want one of {TOGGLES}")
  if "messages" in record:
    return [list(record["messages"])]
  if "solution" not in record:
    return [chat.conversation(record["question"], answer=str(record["answer"]))]
  if toggle == "none":
    return [chat.conversation(record["question"], answer=record["solution"])]
  reasoning, final = split_solution(record["solution"])
  pair = chat.toggle_pair(record["question"], reasoning, final)
  return {"pair": pair, "on": pair[:1], "off": pair[1:]}[toggle]


@dataclasses.dataclass(frozen=True)
class TokenizeConversations(grain.experimental.FlatMapTransform):
  """grain: record → [(ids, target_weights)] per conversation (module level: pickles)."""

  tokenizer: tokenizer_lib.Tokenizer
  toggle: str
  max_fan_out: ClassVar[int] = 2

  def flat_map(self, record: Mapping) -> list[tuple[np.ndarray, np.ndarray]]:
    return [chat.tokenize(c, self.tokenizer) for c in record_conversations(record, self.toggle)]


def read_records(path: str, tokenizer: tokenizer_lib.Tokenizer, toggle: str,
                 max_length: int = 0) -> list[dict]:
  """The SFT records of a JSONL file; a ValueError names the line of a record that is
  not a conversation, a reasoning problem or a question/answer pair, or (max_length >
  0) one with a conversation of more than max_length tokens."""
  records = []
  for where, record in sources.read_located_records(path):
    if "messages" not in record and not ("question" in record and (
        "solution" in record or "answer" in record)):
      raise ValueError(f"{where}: an SFT record needs 'messages', or 'question' with "
                       f"'solution' or 'answer' (it has {sorted(record)})")
    try:
      lengths = [len(chat.tokenize(conversation, tokenizer)[0])
                 for conversation in record_conversations(record, toggle)]
    except (ValueError, TypeError, KeyError) as e:
      raise ValueError(f"{where}: {e}") from None
    if max_length and max(lengths) > max_length:
      raise ValueError(f"{where}: a conversation of {max(lengths)} tokens does not fit in "
                       f"train.seq_len={max_length} (sft.whole_conversations)")
    records.append(record)
  return records


# Threads that look up the shuffled records ahead: grain's index shuffle of a short list is
# slow C++ that runs beside the tokenization (bench/RESULTS.md).
_READ_THREADS = 2


def packed_batches(records: Sequence[Mapping], tokenizer: tokenizer_lib.Tokenizer, *,
                   seq_len: int, batch_size: int, toggle: str = "pair", seed: int = 0,
                   num_packing_bins: int = 8, process_index: int = 0,
                   process_count: int = 1) -> grain.IterDataset:
  """Endless batches of ``data.packing.ROW_FEATURES``, each (batch_size, seq_len)."""
  shard = grain.MapDataset.source(list(records))[process_index::process_count]
  tokenized = grain.experimental.FlatMapIterDataset(
      pipeline.read_in_order(shard.shuffle(seed).repeat(), _READ_THREADS),
      TokenizeConversations(tokenizer, toggle))
  chunks = grain.experimental.FlatMapIterDataset(tokenized, packing.SplitIntoChunks(seq_len))
  rows = packing.pack_chunks(chunks, seq_len=seq_len, pad_id=tokenizer.pad_id,
                             num_packing_bins=num_packing_bins, seed=seed + 1)
  return rows.batch(batch_size)


def make_batches(ctx: Context) -> IteratorBatches:
  config = ctx.config
  if config.sft.toggle not in TOGGLES:
    raise config_lib.ConfigError(f"sft.toggle={config.sft.toggle!r}: want one of {TOGGLES}")
  index, count, rows = pretrain.process_share(ctx)
  whole = config.sft.get("whole_conversations", False)
  records = read_records(config.sft.records, ctx.tokenizer, config.sft.toggle,
                         max_length=config.train.seq_len if whole else 0)
  if len(records) < count:
    raise config_lib.ConfigError(f"sft.records={config.sft.records} has {len(records)} "
                                 f"records, fewer than the {count} processes")
  batch_size = config.train.global_batch_size // count
  iterator = iter(packed_batches(
      records, ctx.tokenizer, seq_len=config.train.seq_len, batch_size=batch_size,
      toggle=config.sft.toggle, seed=config.train.seed,
      num_packing_bins=config.sft.num_packing_bins, process_index=index,
      process_count=count))
  return IteratorBatches(iterator, rows=rows)


def prompt_format(ctx: Context) -> PromptFormat:
  """A user turn of the chat template, with the reasoning toggle the run evaluates with
  (``eval.thinking``): which system prompts SFT trained on depends on the records
  (toggle 'pair' gives both, question/answer records none)."""
  return PromptFormat("chat", ctx.config.eval.thinking)


LOOP = Loop(make_step=pretrain.make_lm_step, make_batches=make_batches,
            abstract_batch=pretrain.abstract_lm_batch, sections=("sft",),
            ranges={"sft.num_packing_bins": config_lib.POSITIVE_INT},
            prompt_format=prompt_format)
