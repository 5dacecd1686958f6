r"""Evaluation: held-out LM loss on text files, task accuracy on records.

Run by the driver every ``eval.every_steps`` steps and at the end of every loop, and
standalone on any checkpoint, ours or a Hugging Face directory::

  python -m train.evaluate --config=configs/<experiment>.py --checkpoint=<dir> [--output=<dir>]

(``--print_config`` lists the config's fields, what ``--config.<section>.<field>=`` sets.)

The ``eval`` section of a run config:

  every_steps     evaluate every this many steps (0: only at the end of the run)
  text_files      {name: path}: held-out text (a text file of blank-line separated
                  documents, or a JSONL file's 'text'); the mean next-token loss of
                  each, packed into rows of ``train.seq_len``
  max_text_rows   at most this many rows per file (0: all)
  records         JSONL of ``{question, answer[, options, kind]}`` ("": no task eval)
  max_records     the first this many records (0: all)
  template        how a record becomes a prompt: 'text', 'chat' or 'crossthink'
                  (``data/prompts.py``)
  thinking        the reasoning toggle of chat prompts: 'on', 'off' or '' (no system
                  prompt)
  judge           what is checked against a record's answer: 'final' (the final answer,
                  ``data.answers.final_answer``) or 'thought' (the text of the first
                  ``<think>`` … ``</think>``: whether a model computes an intermediate
                  step, e.g. the thought of RLP's toy task, arXiv 2510.01265)
  samples         k: also sample k completions per record at ``temperature`` for pass@k
                  and maj@k (0: greedy only)
  temperature     sampling temperature of those k samples
  genselect       n: also select among the k samples with the model itself, GenSelect
                  (arXiv 2504.16891; ``data/genselect.py``): each selection round shows
                  the summaries of n of the k samples (2 <= n <= k) and asks which is
                  right (0: off)
  genselect_rounds  selection rounds per record, each over its own random ordered
                  subset; the selected samples' final answers are majority-voted
  tool_calls      tool-integrated reasoning (AIMO-2, arXiv 2504.16891; ``data/tir.py``):
                  each prompt states this budget of code executions, and a completion
                  that closes a ```python block goes on after the sandbox's output
                  (``train.generation.generate_with_tools``; 0: no tool)
  tool_timeout_s  wall-clock limit of one execution
  max_new_tokens  completion budget (also of a selector's reply; with a tool, the
                  tool's output counts in it)
  mei_records     JSONL of MEI records (arXiv 2406.14654; ``data/mei.py``: text, major
                  entities, mention spans) ("": none): each gold mention's entity asked
                  greedily as a multiple-choice question (``train/mei.py``; the spans are
                  given, as in the paper's LLM setting; the first ``max_records``
                  records, ``batch_size`` questions per generation call; the 'crossthink'
                  template shows the options). Figures ``mei/macro_f1``,
                  ``mei/micro_f1``, ``mei/micro_precision``, ``mei/micro_recall``,
                  ``mei/<entity>/{precision,recall,f1}`` and ``mei/invalid`` (the share
                  of replies without a valid option letter)
  batch_size      records per generation call and rows per loss batch
  decode_timing   also time greedy decoding: the first ``batch_size`` prompts decoded
                  for exactly ``max_new_tokens`` tokens (no stop token), once to compile
                  and once timed: ``decode_tokens_per_s`` (tokens of every process over
                  their mean wall time). Compare models timed in one process, one after
                  another on the same machine
  self_notes      read each prompt with Self-Notes (arXiv 2305.00833;
                  ``model/self_notes.py``): before each prompt token the model may
                  write a note ``note_tokens[0]`` … ``note_tokens[1]`` (each one token of
                  the tokenizer) that joins the context, closed by force after
                  ``max_note_tokens``, at most ``max_notes`` per record; then the greedy
                  answer. Figures ``notes_per_record`` and ``notes_forced_closed`` (the
                  share of notes closed by force); greedy only (no samples, no tool)

Figures: ``loss/<name>`` per text file; ``pass@1`` (greedy), ``pass@k`` (unbiased
estimator of Chen et al., arXiv 2107.03374, from the k samples), ``maj@k`` (the most
frequent final answer of the k samples, grouped by the checker's equivalence, is right;
samples without an answer do not vote), ``sample_accuracy`` (the share of
right samples: pass@1 at ``temperature``), ``length`` (mean completion tokens,
greedy) and ``correct_length`` (the same over correct completions); with records that
have a ``kind``, ``pass@1/<kind>`` per kind (a record with ``options`` is checked by its
letter whatever its kind: e.g. IdentifyMe's 'nominal' and 'pronominal',
``data/entity_tasks.py``). Answers are
extracted and checked by ``data.answers``, as the RL rewards are. With ``tool_calls``
(greedy completions): ``tool_calls`` (executions per record), ``tool_failures`` (the
share of executions that raised, timed out or hit a limit) and ``tool_unclosed`` (the
share of completions that end inside a code block).

With ``genselect``: ``genselect@k`` (the majority answer, by the checker's equivalence,
of the samples the selector picked is right; rounds without a valid ``Judgment: IDX``
do not vote and a record with no valid round falls back to its maj@k),
``genselect_invalid`` (the share of selection rounds without a valid judgment) and
``genselect_fallback`` (the share of records that fell back). A selector prompt is a
record ``{"question": data.genselect.selector_prompt(...)}`` under the records'
template and thinking toggle ('crossthink' as 'chat': its answer-in-``\boxed{}``
instruction would contradict the selector's), sampled at ``temperature``. Every process
needs every record's samples to build the same selector prompts (the generation is a
collective over one prompt list) but samples only its own records, so the sampled texts
are gathered (JSON bytes, ``multihost_utils.process_allgather``) and the selector
replies generated with ``all_rows``; each process then votes and counts its own records,
and the sums are added across processes as the other figures are.

Evaluation refuses what it cannot do: a tokenizer with ids the model cannot embed (a
Hugging Face directory is evaluated with its own ``tokenizer.json`` if it has one, else
with ``data.tokenizer_path``) stops before anything runs, and a figure that comes out
NaN or infinite stops with one line naming it and the step (``NonFiniteError``; during a
run, the run stops) instead of being recorded.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Optional

import grain
import jax
import numpy as np
from absl import app
from absl import flags
from jax.experimental import multihost_utils
from ml_collections import config_flags

from data import answers
from data import genselect as genselect_lib
from data import packing
from data import pipeline
from data import prompts as prompts_lib
from data import sources
from data import tir
from data import tokenizer as tokenizer_lib
from model import generate as generate_lib
from model import hf
from train import checkpoint as checkpoint_lib
from train import cli
from train import config as run_config
from train import generation
from train import loops
from train import loss as loss_lib
from train import mei as mei_lib
from train import metrics as metrics_lib
from train import sharding
from train import workdir as workdir_lib
from train import xla_flags
from train.errors import NonFiniteError
from train.loops import Context

JUDGES = ("final", "thought")


def pass_at_k(n: int, c: int, k: int) -> float:
  """P(at least one of k samples drawn without replacement from n, c of them right, is
  right) = 1 − C(n−c, k) / C(n, k) (Chen et al. 2021)."""
  if not 0 <= c <= n or not 1 <= k <= n:
    raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
  if n - c < k:
    return 1.0
  return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def sampled_counts(records: Sequence[Mapping], completions: Mapping[int, Sequence[str]],
                   k: int) -> tuple[float, int, float]:
  """(Σ pass@k, number of maj@k successes, Σ share of right samples) over the records
  with their k sampled completions (``completions[i]`` for ``records[i]``)."""
  passed, voted, right = 0.0, 0, 0.0
  samples = [(records[i], text) for i, texts in completions.items() for text in texts]
  verdicts = iter(answers.map_checks(lambda sample: answers.is_correct(sample[1], sample[0]),
                                     samples))
  votes = iter(answers.map_checks(
      lambda item: answers.majority_vote([answers.final_answer(t) for t in item[1]],
                                         records[item[0]]),
      list(completions.items())))
  for texts in completions.values():
    correct = [next(verdicts) for _ in texts]
    passed += pass_at_k(len(texts), sum(correct), k)
    vote = next(votes)
    voted += vote is not None and correct[vote]
    right += sum(correct) / len(texts)
  return passed, voted, right


def genselect_counts(records: Sequence[Mapping], completions: Mapping[int, Sequence[str]],
                     rounds: Mapping[int, Sequence[tuple[Sequence[int], str]]]
                     ) -> tuple[int, int, int]:
  """(GenSelect successes, selection rounds without a valid judgment, records that fell
  back to maj@k) over the records of ``completions`` (their k sampled completions);
  ``rounds[i]``: (the candidates shown, the selector's reply) of each of record i's
  rounds (``data.genselect.genselect_vote``)."""
  def judge(i: int) -> tuple[genselect_lib.Vote, bool]:
    texts, shown = completions[i], rounds[i]
    vote = genselect_lib.genselect_vote(texts, [s for s, _ in shown], [r for _, r in shown],
                                        records[i])
    return vote, vote.choice is not None and answers.is_correct(texts[vote.choice], records[i])
  judged = answers.map_checks(judge, list(completions))
  return (sum(right for _, right in judged), sum(vote.invalid for vote, _ in judged),
          sum(vote.fallback for vote, _ in judged))


# --------------------------------------------------------------------------- LM loss


def read_documents(path: str) -> list[str]:
  """Documents of a text file (blank-line separated) or of a JSONL file's 'text'."""
  if path.endswith(".jsonl"):
    return [text for _, text in sources.read_jsonl_documents(path, "text")]
  return sources.read_text_documents(path)


def text_rows(path: str, tokenizer, *, seq_len: int, max_rows: int,
              num_packing_bins: int) -> dict[str, np.ndarray]:
  """The documents of a file packed in file order into (rows, seq_len) arrays."""
  documents = read_documents(path)
  chunks = grain.MapDataset.source(documents).map(
      lambda text: packing.tokenize_document(("", text), tokenizer, add_bos=False))
  chunks = grain.experimental.FlatMapIterDataset(pipeline.read_in_order(chunks),
                                                 packing.SplitIntoChunks(seq_len))
  rows = packing.pack_chunks(chunks, seq_len=seq_len, pad_id=tokenizer.pad_id,
                             num_packing_bins=num_packing_bins, seed=0, shuffle_bins=False)
  out = collections.defaultdict(list)
  for index, row in enumerate(rows):
    if max_rows and index == max_rows:
      break
    for name, value in row.items():
      out[name].append(value)
  return {name: np.stack(values) for name, values in out.items()}


@functools.lru_cache(maxsize=8)
def _loss_sums(model_cfg):
  loss_fn = loss_lib.make_lm_loss(model_cfg)

  def sums(params, batch):
    _, aux = loss_fn(params, batch, None)
    return aux["cross_entropy"] * aux["weight"], aux["weight"]
  # Called for a few batches per evaluation: a shorter compile (xla_flags.run_once_options).
  return jax.jit(sums, compiler_options=xla_flags.run_once_options())


def lm_loss(ctx: Context, params, rows: Mapping[str, np.ndarray], batch_size: int,
            model_cfg=None) -> float:
  """Mean next-token loss over ``rows`` (a collective: every process passes them all)."""
  sums = _loss_sums(model_cfg or ctx.model_cfg)
  unit = batch_size * ctx.batch_parallelism // math.gcd(batch_size, ctx.batch_parallelism)
  total = count = 0.0
  num_rows = len(rows["tokens"])
  for start in range(0, num_rows, unit):
    batch = {name: value[start:start + unit] for name, value in rows.items()}
    short = unit - len(batch["tokens"])
    if short:  # empty rows: no loss
      batch = {name: np.concatenate([value, np.zeros((short,) + value.shape[1:], value.dtype)])
               for name, value in batch.items()}
    local = {name: value[ctx.process_rows(unit)] for name, value in batch.items()}
    loss_sum, weight = sums(params, ctx.to_global(local, unit))
    total, count = total + float(loss_sum), count + float(weight)
  return total / max(count, 1.0)


# ------------------------------------------------------------------------- task accuracy


def _all_processes_sum(values: np.ndarray) -> np.ndarray:
  if jax.process_count() == 1:
    return values
  return np.asarray(multihost_utils.process_allgather(values)).sum(axis=0)


@dataclasses.dataclass
class Evaluator:
  """The evaluation of one run config (text rows and records read once, up front)."""
  ctx: Context
  text: dict[str, dict[str, np.ndarray]]
  records: list[dict]
  prompts: list[list[int]]
  notes: Optional[generation.self_notes_lib.NoteConfig] = None   # eval.self_notes
  mei: Optional[mei_lib.MeiTask] = None                          # eval.mei_records

  @classmethod
  def create(cls, ctx: Context, tokenizer=None) -> "Evaluator":
    """Reads the eval files; errors name the file, line or field (before any compile)."""
    section = ctx.config.eval
    tokenizer = tokenizer or ctx.tokenizer
    text = {name: text_rows(path, tokenizer, seq_len=ctx.config.train.seq_len,
                            max_rows=section.max_text_rows,
                            num_packing_bins=ctx.config.data.num_packing_bins)
            for name, path in section.text_files.items()}
    records, prompts = [], []
    if section.get("judge", "final") not in JUDGES:
      raise ValueError(f"eval.judge={section.judge!r}: one of {JUDGES}")
    check_genselect(section)
    notes = generation.note_config(section, tokenizer)
    if notes and (section.samples or tool_calls(section)):
      raise ValueError("eval.self_notes reads greedily without a tool: set eval.samples "
                       "and eval.tool_calls to 0")
    if section.records:
      records = sources.read_records(section.records, required=("question", "answer"))
      records = records[:section.max_records or None]
      prompts = [prompts_lib.prompt_ids(tir.budgeted(r, tool_calls(section)), tokenizer,
                                        template=section.template, thinking=section.thinking)
                 for r in records]
      longest = max(map(len, prompts))
      budget = section.max_new_tokens
      if longest + budget > 1 << 16:
        raise ValueError(f"eval.records={section.records}: a prompt of {longest} tokens plus "
                         f"eval.max_new_tokens={budget} is too long")
    mei = None
    if section.get("mei_records"):
      mei = mei_lib.MeiTask.create(section.mei_records, tokenizer, template=section.template,
                                   thinking=section.thinking, max_records=section.max_records)
    return cls(ctx, text, records, prompts, notes, mei)

  def __call__(self, params, step: int = 0) -> dict[str, float]:
    """The figures (a collective: every process calls it)."""
    section = self.ctx.config.eval
    out = {f"loss/{name}": lm_loss(self.ctx, params, rows, section.batch_size)
           for name, rows in self.text.items()}
    if self.records:
      out.update(self._accuracy(params, step))
    if self.mei:
      out.update(self.mei(self.ctx, params, jax.random.PRNGKey(self.ctx.config.train.seed),
                          sampling=self._sampling(0.0), batch_size=section.batch_size))
    check_finite(out, step)
    return out

  def _sampling(self, temperature: float) -> generate_lib.SamplingConfig:
    section = self.ctx.config.eval
    return generate_lib.SamplingConfig(
        max_new_tokens=section.max_new_tokens, temperature=temperature,
        stop_tokens=prompts_lib.stop_token_ids(self.ctx.tokenizer, section.template),
        pad_id=self.ctx.tokenizer.pad_id, vocab_limit=self.ctx.tokenizer.vocab_size)

  def _generate(self, params, prompt_indices: list[int], rng, temperature: float,
                row_multiple: int = 1):
    """(record index, completion text, completion tokens, tool calls) of this process's
    rows."""
    section = self.ctx.config.eval
    judged = answers.thought if section.get("judge", "final") == "thought" else str
    tools = reply_ids = None
    if calls := tool_calls(section):
      tools = generation.ToolUse(calls=calls, timeout_s=section.get("tool_timeout_s", 10.0))
      reply_ids = generation.reply_ids_for(self.ctx.tokenizer, section.template)
    rows = generation.generate_in_chunks(
        self.ctx, params, self.prompts, prompt_indices, rng,
        sampling=self._sampling(temperature), chunk_rows=section.batch_size * row_multiple,
        row_multiple=row_multiple, tools=tools, reply_ids=reply_ids)
    return [(i, judged(self.ctx.tokenizer.decode(ids.tolist())), len(ids), calls)
            for i, ids, calls in rows]

  def _accuracy(self, params, step: int) -> dict[str, float]:
    section = self.ctx.config.eval
    rng = jax.random.fold_in(jax.random.PRNGKey(self.ctx.config.train.seed), step)
    n = len(self.records)
    # Greedy: pass@1, lengths.
    kinds = sorted({str(r["kind"]) for r in self.records if "kind" in r})
    correct = lengths = correct_lengths = 0.0
    by_kind = np.zeros((2, len(kinds)))   # (right, count) per kind
    if self.notes:   # reading with Self-Notes (arXiv 2305.00833): (notes, forced closes)
      greedy, note_counts = self._read_with_notes(params, rng)
    else:
      greedy = self._generate(params, list(range(n)), rng, 0.0)   # (record, text, length, calls)
    verdicts = answers.map_checks(
        lambda row: answers.is_correct(row[1], self.records[row[0]]), greedy)
    tool = np.zeros(3)   # (calls, failed calls, completions ending inside a code block)
    for (i, _, length, calls), right in zip(greedy, verdicts):
      correct += right
      lengths += length
      correct_lengths += length * right
      if "kind" in self.records[i]:
        by_kind[:, kinds.index(str(self.records[i]["kind"]))] += (right, 1)
      ran = [call["status"] for call in calls if call["status"] != "unclosed"]
      tool += (len(ran), sum(status != "ok" for status in ran), len(ran) < len(calls))
    totals = [correct, lengths, correct_lengths, *tool, *by_kind.reshape(-1)]
    k = section.samples
    selecting = bool(section.get("genselect", 0))
    if k:
      by_record = collections.defaultdict(list)
      indices = [i for i in range(n) for _ in range(k)]
      for i, text, _, _ in self._generate(params, indices, jax.random.fold_in(rng, 1),
                                          section.temperature, row_multiple=k):
        by_record[i].append(text)
      totals += sampled_counts(self.records, by_record, k)
      if selecting:
        totals += self._genselect(params, by_record, jax.random.fold_in(rng, 2), step)
    if self.notes:
      totals += note_counts
    if section.get("decode_timing", False):
      totals += self._decode_speed(params, rng)
    totals = _all_processes_sum(np.asarray(totals, np.float64))
    if section.get("decode_timing", False):
      tokens, seconds = totals[-2:]
      totals = totals[:-2]
      speed = {"decode_tokens_per_s": tokens * jax.process_count() / seconds}
    else:
      speed = {}
    out = {**speed, "pass@1": totals[0] / n, "length": totals[1] / n,
           "correct_length": totals[2] / max(totals[0], 1.0)}
    if self.notes:
      notes, forced = totals[-2:]
      out.update({"notes_per_record": notes / n, "notes_forced_closed": forced / max(notes, 1)})
    if tool_calls(section):
      out.update({"tool_calls": totals[3] / n, "tool_failures": totals[4] / max(totals[3], 1),
                  "tool_unclosed": totals[5] / n})
    right, count = totals[6:6 + 2 * len(kinds)].reshape(2, -1)
    out.update({f"pass@1/{kind}": r / c for kind, r, c in zip(kinds, right, count)})
    if k:
      sampled = totals[6 + 2 * len(kinds):]
      out.update({f"pass@{k}": sampled[0] / n, f"maj@{k}": sampled[1] / n,
                  "sample_accuracy": sampled[2] / n})
    if k and selecting:
      out.update({f"genselect@{k}": sampled[3] / n,
                  "genselect_invalid": sampled[4] / (n * section.genselect_rounds),
                  "genselect_fallback": sampled[5] / n})
    return out

  def _read_with_notes(self, params, rng) -> tuple[list[tuple], list[float]]:
    """Greedy answers of this process's records read with notes
    (``generation.notes_in_chunks``): ((record, text, length, no calls) rows, [notes,
    forced closes])."""
    section = self.ctx.config.eval
    judged = answers.thought if section.get("judge", "final") == "thought" else str
    rows = generation.notes_in_chunks(
        self.ctx, params, self.prompts, list(range(len(self.prompts))), rng,
        sampling=self._sampling(0.0), notes=self.notes, chunk_rows=section.batch_size)
    greedy = [(i, judged(self.ctx.tokenizer.decode(ids.tolist())), len(ids), ())
              for i, ids, _, _ in rows]
    return greedy, [float(sum(r[2] for r in rows)), float(sum(r[3] for r in rows))]

  def _decode_speed(self, params, rng) -> list[float]:
    """(tokens, seconds) of this process's timed greedy decode of the first
    ``batch_size`` prompts for exactly ``max_new_tokens`` tokens; a first untimed pass
    compiles."""
    section = self.ctx.config.eval
    sampling = dataclasses.replace(self._sampling(0.0), stop_tokens=())
    indices = list(range(min(len(self.prompts), section.batch_size)))
    decode = lambda: generation.generate_in_chunks(
        self.ctx, params, self.prompts, indices, rng, sampling=sampling,
        chunk_rows=section.batch_size)
    decode()
    started = time.perf_counter()
    rows = decode()
    return [float(sum(len(ids) for _, ids, _ in rows)), time.perf_counter() - started]

  def _genselect(self, params, local_samples: Mapping[int, Sequence[str]], rng, step: int
                 ) -> tuple[int, int, int]:
    """GenSelect over the k samples of every record (a collective: each process passes
    its records' samples, which are gathered, and every process generates every selector
    reply): ``genselect_counts`` of this process's records. The rounds' candidate subsets
    are drawn from ``train.seed`` and ``step``, the same on every process."""
    section, tokenizer = self.ctx.config.eval, self.ctx.tokenizer
    samples = generation.all_processes_texts(local_samples)
    template = "chat" if section.template == "crossthink" else section.template
    subsets_rng = random.Random(f"genselect/{self.ctx.config.train.seed}/{step}")
    plan, prompts = [], []   # (record index, candidates shown) and prompt ids per round
    for i in sorted(samples):
      summaries = [genselect_lib.summary(text) for text in samples[i]]
      question = genselect_lib.problem_text(self.records[i])
      for shown in genselect_lib.candidate_subsets(len(summaries), section.genselect,
                                                   section.genselect_rounds, subsets_rng):
        text = genselect_lib.selector_prompt(question, [summaries[j] for j in shown])
        plan.append((i, shown))
        prompts.append(prompts_lib.prompt_ids({"question": text}, tokenizer,
                                              template=template, thinking=section.thinking))
    replies = generation.generate_in_chunks(
        self.ctx, params, prompts, list(range(len(prompts))), rng,
        sampling=self._sampling(section.temperature), chunk_rows=section.batch_size,
        all_rows=True)
    rounds = collections.defaultdict(list)
    for row, ids, _ in replies:
      i, shown = plan[row]
      rounds[i].append((shown, tokenizer.decode(ids.tolist())))
    return genselect_counts(self.records, local_samples, rounds)


def tool_calls(section) -> int:
  """The code executions per record of tool-integrated evaluation (0: none)."""
  return section.get("tool_calls", 0) or 0


def check_genselect(section) -> None:
  """ValueError naming the field when ``eval.genselect`` is on but cannot run."""
  n, k = section.get("genselect", 0), section.samples
  if not n:
    return
  if not 2 <= n <= k:
    raise ValueError(f"eval.genselect={n}: a selection shows n of the eval.samples={k} "
                     "samples, 2 <= n <= eval.samples (0: off)")
  if section.get("genselect_rounds", 0) < 1:
    raise ValueError(f"eval.genselect_rounds={section.get('genselect_rounds')}: at least 1 "
                     "with eval.genselect")
  if tool_calls(section):
    raise ValueError(f"eval.genselect={n} with eval.tool_calls={tool_calls(section)}: "
                     "GenSelect over tool-integrated samples is not supported; set one to 0")
  if section.get("judge", "final") != "final":
    raise ValueError(f"eval.genselect={n} selects final answers: it needs "
                     f"eval.judge='final', not {section.judge!r}")


def check_finite(figures: Mapping[str, float], step: int) -> None:
  """NonFiniteError naming the first figure that is NaN or infinite."""
  for name, value in figures.items():
    if not math.isfinite(value):
      raise NonFiniteError(f"step {step}: evaluation figure {name} is {value}")


# ------------------------------------------------------------------- the command line


def model_and_tokenizer(config, checkpoint: str):
  """(model config, tokenizer) to evaluate ``checkpoint`` with: a Hugging Face
  directory's model with its own ``tokenizer.json`` if it has one, else the run
  config's model (``loops.model_config``: e.g. a pruned student) and
  ``data.tokenizer_path``. ConfigError if the tokenizer has ids the model
  cannot embed."""
  tokenizer_path = config.data.tokenizer_path
  tokenizer_named = f"data.tokenizer_path={tokenizer_path}"
  if checkpoint_lib.is_hf_directory(checkpoint):
    model_cfg = hf.config_from_hf(hf.read_config(checkpoint))
    vocab_named = f"{os.path.join(checkpoint, 'config.json')} vocab_size"
    if os.path.exists(own_tokenizer := os.path.join(checkpoint, "tokenizer.json")):
      tokenizer_path = tokenizer_named = own_tokenizer
  else:
    model_cfg, vocab_named = loops.model_config(config), "model.vocab_size"
  tokenizer = tokenizer_lib.load_tokenizer(tokenizer_path)
  run_config.check_vocabulary(tokenizer_named, tokenizer.vocab_size, vocab_named,
                              model_cfg.vocab_size)
  return model_cfg, tokenizer


def evaluate_checkpoint(config, checkpoint: str, output: Optional[str] = None
                        ) -> dict[str, float]:
  """Evaluates the weights at ``checkpoint`` (a run's workdir or a Hugging Face
  directory) with ``config``'s ``eval`` section; appends the figures to
  ``<output>/eval.jsonl`` (default: the run's workdir) and returns them."""
  if not os.path.isdir(checkpoint):
    raise FileNotFoundError(f"--checkpoint={checkpoint}: no such directory")
  hf_directory = checkpoint_lib.is_hf_directory(checkpoint)
  if hf_directory and not output:
    raise ValueError(f"--checkpoint={checkpoint} is a Hugging Face directory: give "
                     "--output=<dir> for eval.jsonl")
  output = output or checkpoint
  model_cfg, tokenizer = model_and_tokenizer(config, checkpoint)
  run_config.check_ranges(config, run_config.RANGES)
  mesh = sharding.make_mesh(config.mesh)
  ctx = Context(config=config, model_cfg=model_cfg, tokenizer=tokenizer, mesh=mesh,
                optimizer=None, schedule=None)
  evaluator = Evaluator.create(ctx)
  params, step = checkpoint_lib.load_params(checkpoint, model_cfg, ctx.param_shardings())
  figures = evaluator(params, step or 0)
  if jax.process_index() == 0:
    directory = workdir_lib.Workdir(output)   # not while a run writes there
    directory.open()
    try:
      logger = metrics_lib.MetricsLogger(output, total_steps=step or 0)
      logger.write(step or 0, {"checkpoint": os.path.abspath(checkpoint), **figures},
                   kind="eval")
      logger.close()
    finally:
      directory.close()
  return figures


def main(argv: list[str]) -> None:
  with cli.entry_point(argv):
    evaluate_checkpoint(_CONFIG.value, _CHECKPOINT.value, _OUTPUT.value)


if __name__ == "__main__":
  _CONFIG = config_flags.DEFINE_config_file(
      "config", None, "Run config whose eval (and model, data) sections to use; "
      "--print_config lists its fields.", lock_config=True)
  _CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                    "A run's workdir or a Hugging Face directory.")
  _OUTPUT = flags.DEFINE_string("output", None, "Where eval.jsonl goes (default: the "
                                "run's workdir).")
  flags.adopt_module_key_flags(cli)  # --print_config and --traceback in --help
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.evaluate --config=configs/<name>.py --checkpoint=<dir> "
      "[--output=<dir>]", required=("config", "checkpoint")))
