"""Generation inside a run: one sharded computation over the mesh, each process its rows.

RL rollouts, teacher samples and evaluation all continue a global list of prompts with
the run's (sharded) weights. Every process calls ``generate_rows`` with the same list;
each supplies and reads back only its rows (``Context.process_rows``), so a multi-host
job samples every prompt exactly once and the result does not depend on how many
processes share the work (sampling keys are split per row, not per process).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from data import chat
from data import tir
from model import generate as generate_lib
from model import partitioning
from model import self_notes as self_notes_lib
from model.config import ModelConfig
from train import sharding
from train.loops import Context


@dataclasses.dataclass(frozen=True)
class LocalGeneration:
  """This process's rows of a generation: the global prompt indices ``rows`` (real
  prompts only), their left-padded prompts (r p) and what was generated (r n)."""
  rows: range
  prompt: np.ndarray
  prompt_mask: np.ndarray
  tokens: np.ndarray
  log_probs: np.ndarray
  mask: np.ndarray
  tool: Optional[np.ndarray] = None        # (r n) 1 on tokens a tool wrote
  calls: Optional[list[list[dict]]] = None  # per row: each tool call's outcome

  def completions(self) -> list[np.ndarray]:
    """The generated ids of each row, up to and including its stop token."""
    return [tokens[mask > 0] for tokens, mask in zip(self.tokens, self.mask)]


@functools.lru_cache(maxsize=32)
def _jitted_sample(model_cfg: ModelConfig, sampling: generate_lib.SamplingConfig,
                   rows_sharding: jax.sharding.NamedSharding, rules: tuple):
  out = generate_lib.Generation(tokens=rows_sharding, log_probs=rows_sharding,
                                mask=rows_sharding)
  sample = functools.partial(generate_lib.sample, model_cfg=model_cfg, sampling=sampling)
  return partitioning.jit(sample, rows_sharding.mesh, rules, out_shardings=out)


def generate_rows(ctx: Context, params, prompts: Sequence[Sequence[int]], rng: jax.Array, *,
                  sampling: generate_lib.SamplingConfig, model_cfg: Optional[ModelConfig] = None,
                  width: Optional[int] = None, pad_to: int = 0, row_multiple: int = 1,
                  all_rows: bool = False) -> LocalGeneration:
  """Continues every prompt (a collective: all processes pass the same list).

  width: prompt slots (default: the longest prompt); a longer prompt is an error.
  pad_to: generate at least this many rows: a shorter list is padded with copies of its
  last prompt (dropped again), so that the short last chunk of a long list reuses the
  program compiled for the full ones. A row's sampling noise does not depend on the row
  count (JAX's threefry draws each element's bits from its index), so the real rows get
  the tokens they get unpadded.
  row_multiple: rows that must stay on one process (e.g. a group of samples of one
  prompt): the list is padded (with copies of its last prompt, dropped again) so that
  every process's share is a multiple of it.
  all_rows: every process gets every row (for a few prompts: the generation is gathered).
  """
  padded, rows, prompt, prompt_mask = _process_prompts(
      ctx, prompts, sampling, width=width, pad_to=pad_to, row_multiple=row_multiple)
  inputs = ctx.to_global({"prompt": prompt, "mask": prompt_mask}, len(padded))
  sample = _jitted_sample(model_cfg or ctx.model_cfg, sampling, ctx.row_sharding(2),
                          tuple(map(tuple, ctx.rules)))
  generation = sample(params, inputs["prompt"], inputs["mask"], rng)
  if all_rows:
    rows = slice(0, len(padded))
    prompt, prompt_mask = generate_lib.left_pad(padded, pad_id=ctx.tokenizer.pad_id,
                                                width=prompt.shape[1])
    read = lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True))
  else:
    read = sharding.local_rows
  real = _real_rows(rows, len(prompts))
  return LocalGeneration(
      rows=range(rows.start, min(rows.stop, len(prompts))), prompt=prompt[real],
      prompt_mask=prompt_mask[real], tokens=read(generation.tokens)[real],
      log_probs=read(generation.log_probs)[real], mask=read(generation.mask)[real])


def _process_prompts(ctx: Context, prompts: Sequence[Sequence[int]],
                     sampling: generate_lib.SamplingConfig, *, width: Optional[int],
                     pad_to: int, row_multiple: int):
  """(the padded prompt list, this process's rows of it, their left-padded prompts and
  masks) of a generation (``generate_rows``' width, pad_to and row_multiple)."""
  if not prompts:
    raise ValueError("generation needs at least one prompt")
  padded, rows = _padded_rows(ctx, prompts, pad_to=pad_to, row_multiple=row_multiple)
  prompt, prompt_mask = generate_lib.left_pad(padded[rows], pad_id=ctx.tokenizer.pad_id,
                                              width=width or max(map(len, padded)))
  generate_lib.check_prompts(prompt_mask, max_new_tokens=sampling.max_new_tokens,
                             cache_len=None)
  return padded, rows, prompt, prompt_mask


def _padded_rows(ctx: Context, prompts: Sequence[Sequence[int]], *, pad_to: int,
                 row_multiple: int = 1) -> tuple[list, slice]:
  """(``prompts`` padded with copies of the last to at least ``pad_to`` rows and to a
  multiple of the row unit, this process's rows of it)."""
  padded = list(prompts) + [prompts[-1]] * max(0, pad_to - len(prompts))
  padded += [prompts[-1]] * (-len(padded) % ctx.row_unit(row_multiple))
  return padded, ctx.process_rows(len(padded))


def _real_rows(rows: slice, num_prompts: int) -> slice:
  """The rows read back (``rows`` of the padded list) that are real prompts."""
  return slice(0, max(0, min(rows.stop, num_prompts) - rows.start))


class Completion(NamedTuple):
  """One generated row: its prompt's index, its completion ids (up to and including the
  stop token) and, with a tool, each call's outcome (``generate_with_tools``)."""
  index: int
  ids: np.ndarray
  calls: tuple = ()


def generate_in_chunks(ctx: Context, params, prompts: Sequence[Sequence[int]],
                       indices: Sequence[int], rng: jax.Array, *,
                       sampling: generate_lib.SamplingConfig, chunk_rows: int,
                       row_multiple: int = 1, all_rows: bool = False,
                       tools: Optional["ToolUse"] = None,
                       reply_ids: Optional[Callable[[str], list[int]]] = None,
                       width: Optional[int] = None) -> list[Completion]:
  """``generate_rows`` (``generate_with_tools`` with ``tools``) over the rows
  ``prompts[i] for i in indices``, ``chunk_rows`` at a time (the last chunk padded to the
  same program; chunk k's key ``fold_in(rng, k's first row)``), prompts left-padded to
  ``width`` slots (default: the longest): the completions of the rows this process reads
  (every row with ``all_rows``; not with tools)."""
  if tools and all_rows:
    raise ValueError("generation with tools reads each process's own rows (all_rows=False)")
  width = width or max(len(prompts[i]) for i in indices)
  chunk_rows = min(chunk_rows, len(indices))
  out = []
  for start in range(0, len(indices), chunk_rows):
    chunk = indices[start:start + chunk_rows]
    kwargs = dict(sampling=sampling, width=width, pad_to=chunk_rows, row_multiple=row_multiple)
    key = jax.random.fold_in(rng, start)
    if tools:
      local = generate_with_tools(ctx, params, [prompts[i] for i in chunk], key, tools=tools,
                                  reply_ids=reply_ids, **kwargs)
    else:
      local = generate_rows(ctx, params, [prompts[i] for i in chunk], key, all_rows=all_rows,
                            **kwargs)
    calls = local.calls or [()] * len(local.rows)
    out += [Completion(chunk[row], ids, tuple(row_calls))
            for row, ids, row_calls in zip(local.rows, local.completions(), calls)]
  return out


def complete_texts(ctx: Context, params, prompts: Sequence[str], *, max_new_tokens: int,
                   batch_size: int = 64) -> list[str]:
  """The greedy plain-text continuation of each prompt (stopping at eos), stripped."""
  if not prompts:
    return []
  tokenizer = ctx.tokenizer
  ids = [tokenizer.encode(prompt) for prompt in prompts]
  sampling = generate_lib.SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0,
                                         stop_tokens=(tokenizer.eos_id,),
                                         pad_id=tokenizer.pad_id)
  out = [""] * len(prompts)
  for i, completion, _ in generate_in_chunks(ctx, params, ids, list(range(len(ids))),
                                             jax.random.PRNGKey(0), sampling=sampling,
                                             chunk_rows=batch_size, all_rows=True):
    out[i] = tokenizer.decode(completion.tolist()).strip()
  return out


def all_processes_texts(texts: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
  """Every process's ``{record index: texts}`` merged (a collective): JSON bytes, padded
  to the longest and gathered."""
  if jax.process_count() == 1:
    return {i: list(values) for i, values in texts.items()}
  encoded = json.dumps([[int(i), list(values)] for i, values in texts.items()]).encode()
  longest = int(np.max(multihost_utils.process_allgather(np.asarray(len(encoded)))))
  padded = np.zeros(longest, np.uint8)
  padded[:len(encoded)] = np.frombuffer(encoded, np.uint8)
  merged = {}
  for row in np.asarray(multihost_utils.process_allgather(padded)).reshape(-1, longest):
    merged.update({i: values for i, values in json.loads(bytes(row).rstrip(b"\0"))})
  return merged


# ------------------------------------------------------------ generation with a tool

# The tool runners train/ finds by module path (it never imports rl/ statically): each
# module has ``check()`` (raises when it cannot run), ``Limits`` and ``run(code, limits)``.
EXECUTORS = {"python": "rl.sandbox"}


@dataclasses.dataclass(frozen=True)
class ToolUse:
  """Tool-integrated generation (``generate_with_tools``; the format of ``data/tir.py``).

  calls: code executions per prompt (0: none, plain generation through the same path).
  executor: a key of ``EXECUTORS``; timeout_s, memory_mb: its limits per execution.
  output_chars: the output shown to the model is cut to this many characters.
  reply_slots: tokens of one tool reply at most (cut to fit, then the row's budget).
  chunk_steps: decode steps between looks at the rows (when waiting rows are served).
  wait_steps: cache slots a row may spend waiting in all (default 2 · chunk · calls):
    a row that would exceed them is waited for before the batch goes on.
  """
  calls: int
  executor: str = "python"
  timeout_s: float = 10.0
  memory_mb: int = 1024
  output_chars: int = 256
  reply_slots: int = 96
  chunk_steps: int = 16
  wait_steps: int = 0

  def __post_init__(self):
    if self.calls < 0:
      raise ValueError(f"tool calls={self.calls}: must be >= 0")
    if self.executor not in EXECUTORS:
      raise ValueError(f"tool executor {self.executor!r}: one of {sorted(EXECUTORS)}")
    if min(self.output_chars, self.reply_slots, self.chunk_steps) < 1:
      raise ValueError(f"{self}: output_chars, reply_slots and chunk_steps must be >= 1")

  @property
  def waiting_slots(self) -> int:
    return self.wait_steps or 2 * self.chunk_steps * max(self.calls, 1)


def reply_ids_for(tokenizer, template: str) -> Callable[[str], list[int]]:
  """How a tool's reply becomes tokens under a prompt ``template``: the chat template's
  tool turn (``chat.tool_response_ids``), or the reply's text after a 'text' prompt."""
  if template == "text":
    return tokenizer.encode
  return functools.partial(chat.tool_response_ids, tokenizer)


def _any_process(flag: bool) -> bool:
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def _executor(name: str):
  module = importlib.import_module(EXECUTORS[name])
  module.check()   # refuses before any work where the machine cannot sandbox
  return module


@functools.lru_cache(maxsize=8)
def _fence_table(tokenizer) -> np.ndarray:
  return tir.fence_automaton([tokenizer.decode([i]) for i in range(tokenizer.vocab_size)])


@functools.lru_cache(maxsize=32)
def _jitted_tool_decoding(model_cfg: ModelConfig, sampling: generate_lib.SamplingConfig,
                          mesh, rules: tuple, max_steps: int, reply_slots: int,
                          chunk_steps: int):
  wrap = lambda fn, **kw: partitioning.jit(fn, mesh, rules, **kw)
  start = wrap(functools.partial(generate_lib.start_tool_decoding, model_cfg=model_cfg,
                                 sampling=sampling, max_steps=max_steps,
                                 forced_slots=reply_slots))
  advance = wrap(functools.partial(generate_lib.advance_tool_decoding, model_cfg=model_cfg,
                                   sampling=sampling, max_steps=max_steps,
                                   chunk_steps=chunk_steps), donate_argnums=(1,))
  resume = wrap(generate_lib.resume_tool_rows, donate_argnums=(0,))
  live = jax.jit(lambda state: jnp.any(state.status_B == generate_lib.LIVE))
  return start, advance, resume, live


def generate_with_tools(ctx: Context, params, prompts: Sequence[Sequence[int]],
                        rng: jax.Array, *, sampling: generate_lib.SamplingConfig,
                        tools: ToolUse, reply_ids: Callable[[str], list[int]],
                        width: Optional[int] = None, pad_to: int = 0,
                        row_multiple: int = 1) -> LocalGeneration:
  """``generate_rows`` where a row that closes a ```python block waits while the host
  runs its code in the sandbox, then continues after the tool's reply (``tir.tool_reply``
  as ``reply_ids`` gives its tokens: the chat template's tool turn, or the text).

  The jitted decode runs ``tools.chunk_steps`` steps at a time on fixed shapes; between
  chunks the host starts the code of newly waiting rows on a thread pool and feeds back
  the replies that are ready, so other rows go on decoding while code runs. The batch
  waits for a row's code only when no row could go on, or when the row's waiting would
  exceed ``tools.waiting_slots`` (what the cache holds beyond the n tokens). A row's
  tokens do not depend on that timing (``generate_lib.ToolDecoding``). Rows sampled
  with the same prompts and keys as ``generate_rows`` are different draws (keys are per
  row and token here). ``calls`` records each call's status and reason per row, and
  'unclosed' when the completion ends inside a code block.
  """
  padded, rows, prompt, prompt_mask = _process_prompts(
      ctx, prompts, sampling, width=width, pad_to=pad_to, row_multiple=row_multiple)
  executor = _executor(tools.executor) if tools.calls else None
  tokenizer = ctx.tokenizer
  local_rows = len(prompt)
  inputs = ctx.to_global({"prompt": prompt, "mask": prompt_mask,
                          "calls": np.full((local_rows,), tools.calls, np.int32)},
                         len(padded))
  n, max_steps = sampling.max_new_tokens, sampling.max_new_tokens + tools.waiting_slots
  start, advance, resume, any_live = _jitted_tool_decoding(
      ctx.model_cfg, sampling, ctx.mesh, tuple(map(tuple, ctx.rules)), max_steps,
      tools.reply_slots, tools.chunk_steps)
  state = start(params, inputs["prompt"], inputs["mask"], inputs["calls"])
  fence = jnp.asarray(_fence_table(tokenizer))
  calls: list[list[dict]] = [[] for _ in range(local_rows)]
  pending: dict[int, futures.Future] = {}
  limits = executor and executor.Limits(timeout_s=tools.timeout_s, memory_mb=tools.memory_mb)

  def execute(row: int, text: str) -> tuple[dict, list[int]]:
    """Runs the row's last code block: (the call's outcome, the reply's tokens, its
    output cut until the whole reply fits ``tools.reply_slots``)."""
    result = executor.run(tir.last_code_block(text) or "", limits)
    remaining = tools.calls - len(calls[row]) - 1
    max_chars = tools.output_chars
    while True:
      output = tir.tool_output(result.status, result.stdout, result.stderr, max_chars)
      ids = reply_ids(tir.tool_reply(output, remaining))
      if len(ids) <= tools.reply_slots or max_chars == 0:
        break
      max_chars = min(max_chars - 1, int(max_chars * 0.8))
    outcome = {"status": result.status, "reason": result.reason,
               "wall_s": round(result.wall_s, 3),
               "truncated": result.truncated or output.endswith(tir.TRUNCATED)}
    return outcome, ids[:tools.reply_slots]

  with futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    while True:
      state = advance(params, state, rng, fence)
      steps = int(state.steps)
      status = sharding.local_rows(state.status_B)
      length = sharding.local_rows(state.length_B)
      tokens = sharding.local_rows(state.tokens_BN)
      for row in np.flatnonzero(status == generate_lib.WAITING):
        if row not in pending:
          text = tokenizer.decode(tokens[row, :length[row]].tolist())
          pending[row] = pool.submit(execute, int(row), text)
      live = bool(any_live(state))
      if steps >= max_steps or (not live and not _any_process(bool(pending))):
        break
      # Wait for the rows whose slack would run out in the next chunk, and for all when
      # no row could go on.
      must_wait = [row for row in pending if not live
                   or steps - length[row] + tools.chunk_steps > tools.waiting_slots]
      futures.wait([pending[row] for row in must_wait])
      forced = np.zeros((local_rows, tools.reply_slots), np.int32)
      forced_len = np.zeros((local_rows,), np.int32)
      resumed = np.zeros((local_rows,), bool)
      for row in [row for row, job in pending.items() if job.done()]:
        outcome, ids = pending.pop(row).result()
        calls[row].append(outcome)
        ids = ids[:n - length[row]]   # what the row's budget still holds
        forced[row, :len(ids)] = ids
        forced_len[row], resumed[row] = len(ids), True
      update = ctx.to_global({"resume": resumed, "forced": forced, "forced_len": forced_len},
                             len(padded))
      state = resume(state, update["resume"], update["forced"], update["forced_len"])
  read = sharding.local_rows
  real = _real_rows(rows, len(prompts))
  out_tokens, out_mask = read(state.tokens_BN)[real], read(state.mask_BN)[real]
  for row, (ids, mask) in enumerate(zip(out_tokens, out_mask)):
    if tir.has_open_code_block(tokenizer.decode(ids[mask > 0].tolist())):
      calls[row].append({"status": "unclosed", "reason": "the completion ends inside a "
                         "code block"})
  return LocalGeneration(
      rows=range(rows.start, min(rows.stop, len(prompts))), prompt=prompt[real],
      prompt_mask=prompt_mask[real], tokens=out_tokens, log_probs=read(state.log_probs_BN)[real],
      mask=out_mask, tool=read(state.tool_BN)[real], calls=calls[real])


# ------------------------------------------------------------ reading with Self-Notes


@dataclasses.dataclass(frozen=True)
class NotesReading:
  """This process's rows of a reading with notes (``generate_with_notes``): the global
  input indices ``rows`` and per row what ``model.self_notes.NotesGeneration`` holds."""
  rows: range
  sequences: list[np.ndarray]   # every token written (input, notes, answer)
  answers: list[np.ndarray]     # the answer's ids, up to and including its stop token
  notes: np.ndarray             # (r,) notes written
  forced: np.ndarray            # (r,) of them closed by force


@functools.lru_cache(maxsize=16)
def _jitted_notes(model_cfg: ModelConfig, sampling: generate_lib.SamplingConfig,
                  notes: self_notes_lib.NoteConfig,
                  rows_2: jax.sharding.NamedSharding, rows_1: jax.sharding.NamedSharding,
                  rules: tuple):
  out = self_notes_lib.NotesGeneration(
      sequence=rows_2, sequence_mask=rows_2, note_mask=rows_2, answer=rows_2,
      answer_mask=rows_2, notes_B=rows_1, forced_B=rows_1)
  read = functools.partial(self_notes_lib.read_with_notes, model_cfg=model_cfg,
                           sampling=sampling, notes=notes)
  return partitioning.jit(read, rows_2.mesh, rules, out_shardings=out)


def generate_with_notes(ctx: Context, params, inputs: Sequence[Sequence[int]],
                        rng: jax.Array, *, sampling: generate_lib.SamplingConfig,
                        notes: self_notes_lib.NoteConfig, width: Optional[int] = None,
                        pad_to: int = 0) -> NotesReading:
  """Reads every input with Self-Notes, then answers (``model.self_notes``; a
  collective: all processes pass the same list). Inputs are right-padded to ``width``
  slots (default: the longest); ``pad_to`` pads the list with copies of its last input
  (dropped again), as ``generate_rows`` does."""
  if not inputs:
    raise ValueError("reading with notes needs at least one input")
  padded, rows = _padded_rows(ctx, inputs, pad_to=pad_to)
  tokens, lengths = self_notes_lib.right_pad(padded[rows], pad_id=ctx.tokenizer.pad_id,
                                             width=width or max(map(len, padded)))
  arrays = ctx.to_global({"tokens": tokens, "lengths": lengths}, len(padded))
  read = _jitted_notes(ctx.model_cfg, sampling, notes, ctx.row_sharding(2),
                       ctx.row_sharding(1), tuple(map(tuple, ctx.rules)))
  out = jax.tree.map(sharding.local_rows, read(params, arrays["tokens"], arrays["lengths"],
                                                rng))
  real = _real_rows(rows, len(inputs))
  pick = lambda values, mask: [v[m > 0] for v, m in zip(values[real], mask[real])]
  return NotesReading(rows=range(rows.start, min(rows.stop, len(inputs))),
                      sequences=pick(out.sequence, out.sequence_mask),
                      answers=pick(out.answer, out.answer_mask),
                      notes=out.notes_B[real], forced=out.forced_B[real])


def note_config(section, tokenizer) -> Optional[self_notes_lib.NoteConfig]:
  """The reading with notes of an eval section (``eval.self_notes``, ``note_tokens``,
  ``max_note_tokens``, ``max_notes``), None when off; ValueError naming the field when a
  marker is not one token of ``tokenizer``."""
  if not section.get("self_notes", False):
    return None
  markers = tuple(section.get("note_tokens", ("<SN>", "</SN>")))
  if len(markers) != 2:
    raise ValueError(f"eval.note_tokens={markers!r}: want (start marker, end marker)")
  ids = [tokenizer.encode(marker) for marker in markers]
  for marker, marker_ids in zip(markers, ids):
    if len(marker_ids) != 1:
      raise ValueError(f"eval.note_tokens: {marker!r} is {len(marker_ids)} tokens of the "
                       "tokenizer, not one (train a tokenizer with it as a user-defined "
                       "symbol, e.g. data.self_notes.claim_dataset's)")
  return self_notes_lib.NoteConfig(start_token=ids[0][0], end_token=ids[1][0],
                                   max_note_tokens=section.get("max_note_tokens", 16),
                                   max_notes=section.get("max_notes", 16))


def notes_in_chunks(ctx: Context, params, inputs: Sequence[Sequence[int]],
                    indices: Sequence[int], rng: jax.Array, *,
                    sampling: generate_lib.SamplingConfig, notes: self_notes_lib.NoteConfig,
                    chunk_rows: int) -> list[tuple[int, np.ndarray, int, int]]:
  """``generate_with_notes`` over ``inputs[i] for i in indices``, ``chunk_rows`` at a time
  (``generate_in_chunks``' chunking and keys): (index, answer ids, notes, forced closes)
  of this process's rows."""
  width = max(len(inputs[i]) for i in indices)
  chunk_rows = min(chunk_rows, len(indices))
  out = []
  for start in range(0, len(indices), chunk_rows):
    chunk = indices[start:start + chunk_rows]
    local = generate_with_notes(ctx, params, [inputs[i] for i in chunk],
                                jax.random.fold_in(rng, start), sampling=sampling,
                                notes=notes, width=width, pad_to=chunk_rows)
    out += [(chunk[row], ids, int(k), int(f))
            for row, ids, k, f in zip(local.rows, local.answers, local.notes, local.forced)]
  return out
