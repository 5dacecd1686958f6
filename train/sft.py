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
'none', see ``record_conversations``), template ('chat', the default, or 'text': a
question record as plain text, ``text_example``, for a model pretrained on text and
asked in text), num_packing_bins, and whole_conversations
(optional): refuse a conversation longer than ``train.seq_len`` instead of splitting it
across rows, so few-example SFT (e.g. 20 records for many epochs) trains on every
record whole, its answer always after its question.

Synthesised records (``sft.synthesis``, optional; on when its ``problems`` is set, and
then ``sft.records`` is ''): at the start of the run, before its first step, the run's
starting weights (``init_checkpoint``: the teacher) sample and the filters keep the
records it trains on, by ``train.synthesize.synthesize`` (OpenMathInstruct-1/2, arXiv
2402.10176, 2410.01560): ``samples`` completions of each seed problem of ``problems``
(JSONL {question[, answer]}) at ``temperature`` (``max_new_tokens``, prompts of
``template``); ``filter`` 'answer' keeps those whose final answer is the reference (or
the majority's), 'none' keeps every one (the ablation); both drop solutions of more than
``max_tokens`` tokens (0: no limit), duplicates, and problems sharing a word ``ngram``
with a question of ``eval_records``; then ``max_solutions`` of the solutions left are
drawn (0: all), so that arms with different filters train on as many; ``tool_calls``
(optional) samples tool-integrated solutions (``train.synthesize``). Sampling and
drawing use ``train.seed``. The records and their counts are written atomically into the
workdir (``synthesized.jsonl``, ``synthesized.jsonl.counts.json``); a resumed run reads
them back instead of sampling again.

``kind`` (optional) is what the samples become: 'solutions' (the default: the above) or
'selector', GenSelect's selector records (AIMO-2, arXiv 2504.16891; ``data/genselect.py``)
by ``train.genselect_data.make_selector_data``: each seed problem (with its reference
answer) whose samples are right and wrong gives ``rounds`` selector prompts over the
summaries of ``candidates`` of them, answered ``Judgment: i`` naming a right one; a
record longer than ``max_tokens`` tokens (its conversation) is dropped, decontamination
applies, ``filter`` and ``max_solutions`` do not.
``sft.records``, if set, is trained on beside the selector records: the task data that
keeps the selector a solver (AIMO-2 trains one model on solutions and selections).
Or 'retro_search': the solutions synthesised as for 'solutions' (into ``traces.jsonl``)
are then revised by Retro-Search (arXiv 2504.04383; ``train.retro_search``) into the
records it trains on: as many, each the shortest correct trace the search found; the
reviser is ``reviser`` (a checkpoint; '': the starting weights, self-improvement) of
``reviser_model`` (None: the run's model; a smaller model: weak-to-strong), with
``gamma`` (0.9), ``switch_words`` and ``banned_new_tokens`` (16) (``revise_traces``).
Or 'fusion' (FusionFactory's model-level fusion, arXiv 2507.10540): the starting weights
and, with a ``teacher`` section, ``teacher.checkpoint`` answer the problems, and the
``top_k`` (1) best responses per problem under (``alpha``, ``beta``) = (1, 0), right ones
only unless ``filter`` is 'none', are the records (``train.fusion.fusion_from_run``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import ClassVar

import grain
import numpy as np

from data import chat
from data import packing
from data import pipeline
from data import prompts
from data import retro_search as data_retro_search
from data import sources
from data import tokenizer as tokenizer_lib
from train import config as config_lib
from train import fusion
from train import genselect_data
from train import pretrain
from train import retro_search
from train import synthesize
from train.loops import Context, IteratorBatches, Loop, PromptFormat

TOGGLES = ("pair", "on", "off", "none")
TEMPLATES = ("chat", "text")
SYNTHESIS_FILTERS = ("answer", "none")
SYNTHESIS_KINDS = ("solutions", "selector", "retro_search", "fusion")
SYNTHESIZED = "synthesized.jsonl"
TRACES = "traces.jsonl"   # kind 'retro_search': the solutions before the search


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


def text_example(record: Mapping, tokenizer: tokenizer_lib.Tokenizer
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(ids, target_weights) of a question record as a pretrained model reads text: the
  'text' prompt (the question and a newline, ``data/prompts.py``), then the solution (or
  the answer) and the end-of-text token, the only tokens with weight 1. Evaluation with
  template 'text' asks the same prompt and stops at the same token."""
  if "question" not in record:
    raise ValueError("sft.template='text' trains on question records; 'messages' "
                     "records need the chat template")
  prompt = prompts.prompt_ids(record, tokenizer, template="text")
  completion = tokenizer.encode(str(record.get("solution", record.get("answer"))))
  completion.append(tokenizer.eos_id)
  return (np.asarray(prompt + completion, np.int32),
          np.asarray([0] * len(prompt) + [1] * len(completion), np.int32))


def record_examples(record: Mapping, tokenizer: tokenizer_lib.Tokenizer, *, toggle: str,
                    template: str = "chat") -> list[tuple[np.ndarray, np.ndarray]]:
  """(ids, target_weights) of each example one record trains on: its conversations
  (``record_conversations``) under the chat template, or its ``text_example``."""
  if template not in TEMPLATES:
    raise ValueError(f"sft.template={template!r}: want one of {TEMPLATES}")
  if template == "text":
    return [text_example(record, tokenizer)]
  return [chat.tokenize(c, tokenizer) for c in record_conversations(record, toggle)]


@dataclasses.dataclass(frozen=True)
class TokenizeRecords(grain.experimental.FlatMapTransform):
  """grain: record → ``record_examples`` (module level: pickles)."""

  tokenizer: tokenizer_lib.Tokenizer
  toggle: str
  template: str = "chat"
  max_fan_out: ClassVar[int] = 2

  def flat_map(self, record: Mapping) -> list[tuple[np.ndarray, np.ndarray]]:
    return record_examples(record, self.tokenizer, toggle=self.toggle,
                           template=self.template)


def read_records(path: str, tokenizer: tokenizer_lib.Tokenizer, toggle: str,
                 max_length: int = 0, template: str = "chat") -> list[dict]:
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
      lengths = [len(ids) for ids, _ in record_examples(record, tokenizer, toggle=toggle,
                                                          template=template)]
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
                   seq_len: int, batch_size: int, toggle: str = "pair",
                   template: str = "chat", seed: int = 0,
                   num_packing_bins: int = 8, process_index: int = 0,
                   process_count: int = 1) -> grain.IterDataset:
  """Endless batches of ``data.packing.ROW_FEATURES``, each (batch_size, seq_len)."""
  shard = grain.MapDataset.source(list(records))[process_index::process_count]
  tokenized = grain.experimental.FlatMapIterDataset(
      pipeline.read_in_order(shard.shuffle(seed).repeat(), _READ_THREADS),
      TokenizeRecords(tokenizer, toggle, template))
  chunks = grain.experimental.FlatMapIterDataset(tokenized, packing.SplitIntoChunks(seq_len))
  rows = packing.pack_chunks(chunks, seq_len=seq_len, pad_id=tokenizer.pad_id,
                             num_packing_bins=num_packing_bins, seed=seed + 1)
  return rows.batch(batch_size)


def records_paths(ctx: Context) -> list[str]:
  """The record files the run trains on: ``sft.records``, or those ``sft.synthesis``
  makes in the workdir, synthesised first unless a resumed run finds them there (with
  ``sft.records`` beside selector records)."""
  config = ctx.config
  section = config.sft.get("synthesis")
  if section is None or not section.problems:
    return [config.sft.records]
  kind = section.get("kind", "solutions")
  if kind not in SYNTHESIS_KINDS:
    raise config_lib.ConfigError(f"sft.synthesis.kind={kind!r}: want one of "
                                 f"{SYNTHESIS_KINDS}")
  if config.sft.records and kind != "selector":
    raise config_lib.ConfigError(
        f"sft.records={config.sft.records} and sft.synthesis.problems={section.problems}: "
        "the run trains on one of them (sft.records='' to synthesise)")
  if section.filter not in SYNTHESIS_FILTERS:
    raise config_lib.ConfigError(f"sft.synthesis.filter={section.filter!r}: want one of "
                                 f"{SYNTHESIS_FILTERS}")
  if not config.init_checkpoint:
    raise config_lib.ConfigError("sft.synthesis samples from the run's starting weights: "
                                 "set init_checkpoint (the teacher)")
  if not ctx.workdir:
    raise config_lib.ConfigError("sft.synthesis writes its records into the run's workdir: "
                                 "build the context with one")
  path = os.path.join(ctx.workdir, SYNTHESIZED)
  if not os.path.exists(path) and kind == "selector":
    os.makedirs(ctx.workdir, exist_ok=True)
    genselect_data.make_selector_data(
        config, config.init_checkpoint, section.problems, path, samples=section.samples,
        candidates=section.candidates, rounds=section.rounds,
        temperature=section.temperature, max_new_tokens=section.max_new_tokens,
        template=section.template, max_tokens=section.max_tokens or None,
        eval_records=tuple(section.eval_records), ngram=section.ngram,
        seed=config.train.seed)
  elif not os.path.exists(path) and kind == "fusion":
    os.makedirs(ctx.workdir, exist_ok=True)
    fusion.fusion_from_run(config, path)
  elif not os.path.exists(path):   # kinds 'solutions' and 'retro_search'
    os.makedirs(ctx.workdir, exist_ok=True)
    solutions = path if kind == "solutions" else os.path.join(ctx.workdir, TRACES)
    if not os.path.exists(solutions):
      synthesize.synthesize(
          config, config.init_checkpoint, section.problems, solutions,
          samples=section.samples, temperature=section.temperature,
          max_new_tokens=section.max_new_tokens, template=section.template,
          eval_records=tuple(section.eval_records), ngram=section.ngram,
          max_tokens=section.max_tokens or None, strict=section.filter == "answer",
          max_solutions=section.max_solutions or None, seed=config.train.seed,
          tool_calls=section.get("tool_calls", 0))
    if kind == "retro_search":
      revise_traces(config, section, solutions, path)
  return [path, *filter(None, [config.sft.records])]


def revise_traces(config, section, traces: str, out: str) -> None:
  """Kind 'retro_search': the synthesised ``traces`` revised into ``out``
  (``train.retro_search``, arXiv 2504.04383) by ``section.reviser``, a checkpoint ('':
  the run's starting weights, self-improvement) of ``section.reviser_model`` (None: the
  run's model; a smaller one: weak-to-strong), with the synthesis' temperature, budget
  and template, ``gamma``, ``switch_words``, ``banned_new_tokens`` and ``train.seed``."""
  reviser_config = config
  if section.get("reviser_model") is not None:
    reviser_config = config.copy_and_resolve_references()
    with reviser_config.unlocked():
      reviser_config.model = section.reviser_model
  retro_search.retro_search_file(
      reviser_config, section.get("reviser", "") or config.init_checkpoint, traces, out,
      template=section.template, temperature=section.temperature,
      max_new_tokens=section.max_new_tokens, gamma=section.get("gamma", 0.9),
      switch_words=tuple(section.get("switch_words", data_retro_search.SWITCH_WORDS)),
      banned_new_tokens=section.get("banned_new_tokens", 16), seed=config.train.seed)


def make_batches(ctx: Context) -> IteratorBatches:
  config = ctx.config
  if config.sft.toggle not in TOGGLES:
    raise config_lib.ConfigError(f"sft.toggle={config.sft.toggle!r}: want one of {TOGGLES}")
  template = config.sft.get("template", "chat")
  if template not in TEMPLATES:
    raise config_lib.ConfigError(f"sft.template={template!r}: want one of {TEMPLATES}")
  index, count, rows = pretrain.process_share(ctx)
  whole = config.sft.get("whole_conversations", False)
  paths = records_paths(ctx)
  records = [record for path in paths for record in read_records(
      path, ctx.tokenizer, config.sft.toggle, max_length=config.train.seq_len if whole else 0,
      template=template)]
  if len(records) < count:
    raise config_lib.ConfigError(f"sft records {', '.join(paths)} have {len(records)} "
                                 f"records, fewer than the {count} processes")
  batch_size = config.train.global_batch_size // count
  iterator = iter(packed_batches(
      records, ctx.tokenizer, seq_len=config.train.seq_len, batch_size=batch_size,
      toggle=config.sft.toggle, template=template, seed=config.train.seed,
      num_packing_bins=config.sft.num_packing_bins, process_index=index,
      process_count=count))
  return IteratorBatches(iterator, rows=rows)


def prompt_format(ctx: Context) -> PromptFormat:
  """How the run's model is asked: as it trained (``sft.template``), a chat user turn
  with the reasoning toggle the run evaluates with (``eval.thinking``: which system
  prompts SFT trained on depends on the records, toggle 'pair' gives both,
  question/answer records none) or the 'text' prompt."""
  if ctx.config.sft.get("template", "chat") == "text":
    return PromptFormat("text")
  return PromptFormat("chat", ctx.config.eval.thinking)


LOOP = Loop(make_step=pretrain.make_lm_step, make_batches=make_batches,
            abstract_batch=pretrain.abstract_lm_batch, sections=("sft",),
            ranges={"sft.num_packing_bins": config_lib.POSITIVE_INT,
                    "sft.synthesis.samples": config_lib.POSITIVE_INT,
                    "sft.synthesis.temperature": config_lib.NON_NEGATIVE,
                    "sft.synthesis.max_new_tokens": config_lib.POSITIVE_INT,
                    "sft.synthesis.max_tokens": config_lib.NON_NEGATIVE_INT,
                    "sft.synthesis.max_solutions": config_lib.NON_NEGATIVE_INT,
                    "sft.synthesis.ngram": config_lib.POSITIVE_INT,
                    "sft.synthesis.candidates": config_lib.POSITIVE_INT,
                    "sft.synthesis.rounds": config_lib.POSITIVE_INT,
                    "sft.synthesis.banned_new_tokens": config_lib.NON_NEGATIVE_INT},
            prompt_format=prompt_format, optional_sections=("teacher",))
