r"""Retro-Search (Lu et al., arXiv 2504.04383): a reviser model revises correct reasoning
traces into shorter correct ones, batched; writes SFT records.

  python -m train.retro_search --config=configs/<the reviser's run config>.py \
      --reviser=<workdir or Hugging Face directory> --traces=traces.jsonl \
      --out=revised.jsonl [--gamma=0.9] [--temperature=1.0] [--max_new_tokens=256] \
      [--template=chat] [--banned_new_tokens=16] [--switch_words=Wait,Alternatively,Hmm] \
      [--seed=0] [--batch_size=64]

The config gives the reviser's model, tokenizer and mesh (as for ``train.synthesize``'s
teacher). Self-improvement: the reviser is the model that wrote the traces;
weak-to-strong: a smaller model revises a larger one's traces (the paper's two modes;
the traces' writer plays no part here). ``--traces``: SFT records {question, solution,
answer} (``train.synthesize``'s output), the solution being the trace.

The search is ``data/retro_search.py``'s, run for every trace at once: each round rolls
out, in one chunked generation (``generation.generate_in_chunks``), every trace whose
search is not done, from the end of its current thought (the prompt under
``template``, then the trace so far), at ``temperature``; the tokens that begin a
switch word (``switch_token_ids``) are banned for the first ``banned_new_tokens`` new
tokens: a bound on the first new step (a step of the toy sums is at most a dozen tokens)
rather than its end at a blank line, so a switch word that would start a second step
inside that bound is banned too. A rollout is right when the trace it makes has the
record's answer (``answers.is_correct``). Each record gets the shortest correct trace
as its solution (tokens); a trace without a switch word is kept as it is.

Writes ``--out`` (the records, each with ``provenance.retro_search``: the original
trace, its and the revised trace's tokens, steps and thoughts, the rollouts scored and
taken) and ``<out>.counts.json`` (traces, those without a switch word, revised,
rollouts, accepted, rounds, mean tokens and steps before and after), atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from data import answers
from data import prompts as prompts_lib
from data import retro_search
from data import sources
from model import generate as generate_lib
from train import checkpoint as checkpoint_lib
from train import cli
from train import config as run_config
from train import evaluate
from train import generation
from train import sharding
from train import synthesize
from train.loops import Context

# Prompt slots are rounded up to a multiple of this, so that rounds share programs.
_WIDTH_QUANTUM = 64


def switch_token_ids(tokenizer, switch_words: Sequence[str]) -> tuple[int, ...]:
  """The ids of the tokens that begin each switch word at the start of a text, after a
  space and after a newline (the first token of the encoding that is not whitespace)."""
  ids = set()
  for word in switch_words:
    for text in (word, " " + word, "\n" + word):
      encoded = tokenizer.encode(text)
      for k in range(len(encoded)):
        if tokenizer.decode(encoded[:k + 1]).strip():
          ids.add(int(encoded[k]))
          break
  return tuple(sorted(ids))


def revise(ctx: Context, params, records: Sequence[Mapping], *, template: str,
           temperature: float, max_new_tokens: int, gamma: float,
           switch_words: Sequence[str] = retro_search.SWITCH_WORDS,
           banned_new_tokens: int = 16, seed: int = 0, batch_size: int = 64
           ) -> tuple[list[dict], dict]:
  """(revised records, counts) of ``records`` with the reviser's ``params`` (see the
  module docstring)."""
  tokenizer = ctx.tokenizer
  count_tokens = lambda text: len(tokenizer.encode(text))
  revisions = [retro_search.Revision.start(r["solution"], answers.is_correct(r["solution"], r))
               for r in records]
  prompts = [prompts_lib.prompt_ids(r, tokenizer, template=template) for r in records]
  sampling = generate_lib.SamplingConfig(
      max_new_tokens=max_new_tokens, temperature=temperature, pad_id=tokenizer.pad_id,
      stop_tokens=prompts_lib.stop_token_ids(tokenizer, template),
      banned_tokens=switch_token_ids(tokenizer, switch_words),
      banned_new_tokens=min(banned_new_tokens, max_new_tokens))
  rng = jax.random.PRNGKey(seed)
  rounds = 0
  while True:
    active = [(k, prefix) for k, revision in enumerate(revisions)
              if (prefix := retro_search.rollout_prefix(revision, switch_words)) is not None]
    if not active:
      break
    round_prompts = [prompts[k] + tokenizer.encode(prefix) for k, prefix in active]
    width = -(-max(map(len, round_prompts)) // _WIDTH_QUANTUM) * _WIDTH_QUANTUM
    chunk = min(batch_size, len(active))
    indices = list(range(len(active)))
    indices += indices[-1:] * (-len(indices) % chunk)   # every chunk one program
    rollouts: dict[int, str] = {}
    for i, ids, _ in generation.generate_in_chunks(
        ctx, params, round_prompts, indices, jax.random.fold_in(rng, rounds),
        sampling=sampling, chunk_rows=chunk, all_rows=True, width=width):
      rollouts.setdefault(i, tokenizer.decode(ids.tolist()))
    for i, (k, prefix) in enumerate(active):
      correct = answers.is_correct(prefix + rollouts[i], records[k])
      retro_search.consider(revisions[k], rollouts[i], correct, gamma=gamma,
                            switch_words=switch_words)
    rounds += 1
  figures = lambda text: {
      "tokens": count_tokens(text), "steps": len(retro_search.split_steps(text)),
      "thoughts": len(retro_search.split_thoughts(text, switch_words))}
  out = []
  for record, revision in zip(records, revisions):
    revised = retro_search.result(revision, count_tokens)
    provenance = dict(record.get("provenance", {}))
    provenance["retro_search"] = {
        "original": revision.original, "before": figures(revision.original),
        "after": figures(revised), "rollouts": revision.rollouts,
        "accepted": revision.accepted, "gamma": gamma}
    out.append({**record, "solution": revised, "provenance": provenance})
  mean = lambda stage, figure: float(np.mean(
      [r["provenance"]["retro_search"][stage][figure] for r in out])) if out else 0.0
  counts = {
      "traces": len(records),
      "no_switch": sum(len(retro_search.split_thoughts(r.original, switch_words)) == 1
                       for r in revisions),
      "revised": sum(r["solution"] != r["provenance"]["retro_search"]["original"]
                     for r in out),
      "rollouts": sum(r.rollouts for r in revisions),
      "accepted": sum(r.accepted for r in revisions), "rounds": rounds,
      "tokens_before": mean("before", "tokens"), "tokens_after": mean("after", "tokens"),
      "steps_before": mean("before", "steps"), "steps_after": mean("after", "steps")}
  return out, counts


def retro_search_file(config, reviser: str, traces: str, out: str, *, template: str,
                      temperature: float, max_new_tokens: int, gamma: float,
                      switch_words: Sequence[str] = retro_search.SWITCH_WORDS,
                      banned_new_tokens: int = 16, seed: int = 0, batch_size: int = 64
                      ) -> dict:
  """Revises the records of ``traces`` with the checkpoint ``reviser`` (``config``: its
  model, tokenizer and mesh) and writes ``out`` and its counts; returns the counts.
  Every process returns once the files are written."""
  if not os.path.isdir(reviser):
    raise FileNotFoundError(f"--reviser={reviser}: no such directory")
  records = sources.read_records(traces, required=("question", "solution", "answer"))
  retro_search.value("", True, gamma)   # checks gamma before the model loads
  retro_search.switch_pattern(switch_words)
  model_cfg, tokenizer = evaluate.model_and_tokenizer(config, reviser)
  ctx = Context(config=config, model_cfg=model_cfg, tokenizer=tokenizer,
                mesh=sharding.make_mesh(config.mesh), optimizer=None, schedule=None)
  params, _ = checkpoint_lib.load_params(reviser, model_cfg, ctx.param_shardings())
  revised, counts = revise(
      ctx, params, records, template=template, temperature=temperature,
      max_new_tokens=max_new_tokens, gamma=gamma, switch_words=switch_words,
      banned_new_tokens=banned_new_tokens, seed=seed, batch_size=batch_size)
  for record in revised:
    record["provenance"]["retro_search"]["reviser"] = os.path.abspath(reviser)
  synthesize.write_records(out, revised, counts)
  return counts


def main(argv: list[str]) -> None:
  with cli.entry_point(argv):
    run_config.check_ranges(_CONFIG.value, run_config.RANGES)
    counts = retro_search_file(
        _CONFIG.value, _REVISER.value, _TRACES.value, _OUT.value, template=_TEMPLATE.value,
        temperature=_TEMPERATURE.value, max_new_tokens=_MAX_NEW_TOKENS.value,
        gamma=_GAMMA.value, switch_words=tuple(_SWITCH_WORDS.value),
        banned_new_tokens=_BANNED_NEW_TOKENS.value, seed=_SEED.value,
        batch_size=_BATCH_SIZE.value)
    print(json.dumps(counts))


if __name__ == "__main__":
  _CONFIG = config_flags.DEFINE_config_file(
      "config", None, "The reviser's run config (model, tokenizer, mesh).",
      lock_config=True)
  _REVISER = flags.DEFINE_string("reviser", None, "A run's workdir or a HF directory.")
  _TRACES = flags.DEFINE_string("traces", None, "SFT records whose solutions are the "
                                "traces to revise (JSONL).")
  _OUT = flags.DEFINE_string("out", None, "The revised SFT records to write (JSONL).")
  _GAMMA = flags.DEFINE_float("gamma", 0.9, "V = gamma^steps · 1[correct].")
  _TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Rollout temperature.")
  _MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 256, "Budget per rollout.")
  _TEMPLATE = flags.DEFINE_enum("template", "chat", list(prompts_lib.TEMPLATES),
                                "How a problem becomes a prompt.")
  _BANNED_NEW_TOKENS = flags.DEFINE_integer(
      "banned_new_tokens", 16, "Switch words are banned for this many new tokens.")
  _SWITCH_WORDS = flags.DEFINE_list("switch_words", list(retro_search.SWITCH_WORDS),
                                    "Words that begin a new thought.")
  _SEED = flags.DEFINE_integer("seed", 0, "Rollout seed.")
  _BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Rollouts per generation chunk.")
  flags.adopt_module_key_flags(cli)
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.retro_search --config=configs/<name>.py --reviser=<dir> "
      "--traces=<jsonl> --out=<jsonl>", required=("config", "reviser", "traces", "out")))
