"""Supervised fine-tuning on chat-templated conversations, loss on assistant tokens only.

Data: records → conversations (``rl/chat.py``; reasoning problems become Llama-Nemotron
toggle pairs) → ids and target weights (1 on assistant tokens) → the pretraining packer
(``data.packing``), which keeps every target inside its own conversation, restarts
positions per conversation and masks the loss by the target weights. So a packed batch
is a pretraining batch and the step is the pretraining step over the masked LM loss:

    step = train.step.make_train_step(train.loss.make_lm_loss(model_cfg), optimizer)

Record formats (one JSON object per line):
  {"messages": [{"role": ..., "content": ...}, ...]}           a conversation as is
  {"question": ..., "solution": ..., "answer": ...}             a reasoning problem
(``data/reasoning_tasks.py`` problems: the solution's steps, optionally inside
``<think>``, then a final ``Answer: ...`` line.)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import ClassVar, Optional

import grain
import numpy as np

from data import packing
from data import tokenizer as tokenizer_lib
from model.config import ModelConfig
from data import chat
from train import loss as loss_lib
from train import step as step_lib

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
  verbatim. ``messages`` records are used as they are.
  """
  if toggle not in TOGGLES:
    raise ValueError(f"toggle={toggle!r}: want one of {TOGGLES}")
  if "messages" in record:
    return [list(record["messages"])]
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


def read_records(path: str) -> list[dict]:
  """JSONL records; raises ValueError naming the line of a malformed one."""
  records = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if line.strip():
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}:{number}: not JSON ({e})") from e
  if not records:
    raise ValueError(f"{path}: no records")
  return records


def packed_batches(records: Sequence[Mapping], tokenizer: tokenizer_lib.Tokenizer, *,
                   seq_len: int, batch_size: int, toggle: str = "pair", seed: int = 0,
                   num_packing_bins: int = 8, process_index: int = 0,
                   process_count: int = 1) -> grain.IterDataset:
  """Endless batches of ``data.packing.ROW_FEATURES``, each (batch_size, seq_len)."""
  shard = grain.MapDataset.source(list(records))[process_index::process_count]
  tokenized = grain.experimental.FlatMapIterDataset(
      shard.shuffle(seed).repeat().to_iter_dataset(), TokenizeConversations(tokenizer, toggle))
  chunks = grain.experimental.FlatMapIterDataset(tokenized, packing.SplitIntoChunks(seq_len))
  rows = packing.pack_chunks(chunks, seq_len=seq_len, pad_id=tokenizer.pad_id,
                             num_packing_bins=num_packing_bins, seed=seed + 1)
  return rows.batch(batch_size)


def make_sft_step(model_cfg: ModelConfig, optimizer, *, z_loss: float = 0.0,
                  grad_accum_steps: int = 1, learning_rate_fn: Optional = None):
  """The SFT update ``step(state, batch) -> (state, metrics)`` (jit it with ``jit_step``)."""
  return step_lib.make_train_step(loss_lib.make_lm_loss(model_cfg, z_loss), optimizer,
                                  grad_accum_steps=grad_accum_steps,
                                  learning_rate_fn=learning_rate_fn)
