r"""Solution synthesis (OpenMathInstruct-1/2, arXiv 2402.10176, 2410.01560): sample K
solutions per seed problem from a teacher checkpoint, filter them, write SFT records.

  python -m train.synthesize --config=configs/<teacher's run config>.py \
      --teacher=<workdir or Hugging Face directory> --problems=seeds.jsonl \
      --out=synthesized.jsonl [--samples=8] [--temperature=1.0] [--max_new_tokens=256] \
      [--template=chat] [--eval_records=a.jsonl,b.jsonl] [--ngram=13] \
      [--max_tokens=N] [--unfiltered] [--max_solutions=N] [--seed=0] [--tool_calls=0] \
      [--max_problems=N]

The config gives the teacher's model, tokenizer and mesh (as for ``train.evaluate``).
Each problem is {"question"[, "answer", "kind", "options"]}: with an answer, a solution
is kept if its final answer equals it; without, if it equals the majority answer of the
problem's samples. Then over-long and duplicate solutions go, and problems sharing a
word n-gram with the ``--eval_records`` questions are dropped (``data/synthesis.py``).
``--unfiltered`` keeps the solutions the answer filter would drop (the ablation's
other arm); ``--max_solutions`` keeps that many of the solutions left, drawn with
``--seed`` (``synthesis.select_solutions``: equal counts for both arms).
``--max_problems=N`` uses the first N problems (the papers' question-diversity
ablation: fewer problems, more samples each, as many solutions). ``--tool_calls=k``
samples tool-integrated solutions (AIMO-2, arXiv 2504.16891;
``data/tir.py``: the prompt states k code executions, the code runs in the sandbox) and
gives each record its ``messages``, the tool's output as tool turns (not learned, as
``data/chat.py`` renders them); 0: chain-of-thought. Writes ``--out``
(JSONL: question, solution, answer, provenance with the teacher, the sampling settings
and each filter's verdict) and ``<out>.counts.json`` (solutions in and out per filter
and of the selection), both atomically; the SFT loop reads the records with
``--config.sft.records=<out>`` (the solution as the reply), or synthesises them itself
from its starting weights (``sft.synthesis``, ``train/sft.py``).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import jax
from absl import app
from absl import flags
from jax.experimental import multihost_utils
from ml_collections import config_flags

from data import prompts as prompts_lib
from data import sources
from data import synthesis
from data import tir
from model import generate as generate_lib
from train import checkpoint as checkpoint_lib
from train import cli
from train import config as run_config
from train import evaluate
from train import generation
from train import sharding
from train import workdir as workdir_lib
from train.loops import Context


def sample_solutions(ctx: Context, params, problems: list[dict], *, samples: int,
                     temperature: float, max_new_tokens: int, template: str, seed: int,
                     batch_size: int = 64, tool_calls: int = 0) -> list[list[str]]:
  """``samples`` completions of each problem's prompt under ``template`` (every process
  gets all of them); with ``tool_calls``, tool-integrated (``data/tir.py``: the prompt
  states the budget, the code runs in the sandbox, its output is part of the text)."""
  tokenizer = ctx.tokenizer
  prompts = [prompts_lib.prompt_ids(tir.budgeted(p, tool_calls), tokenizer, template=template)
             for p in problems]
  sampling = generate_lib.SamplingConfig(
      max_new_tokens=max_new_tokens, temperature=temperature, pad_id=tokenizer.pad_id,
      stop_tokens=prompts_lib.stop_token_ids(tokenizer, template))
  tools = reply_ids = None
  if tool_calls:
    tools = generation.ToolUse(calls=tool_calls)
    reply_ids = generation.reply_ids_for(tokenizer, template)
  indices = [i for i in range(len(problems)) for _ in range(samples)]
  texts: dict[int, list[str]] = {}
  for i, ids, _ in generation.generate_in_chunks(
      ctx, params, prompts, indices, jax.random.PRNGKey(seed), sampling=sampling,
      chunk_rows=max(1, batch_size // samples) * samples, row_multiple=samples,
      all_rows=not tools, tools=tools, reply_ids=reply_ids):
    texts.setdefault(i, []).append(tokenizer.decode(ids.tolist()))
  if tools:   # each process sampled its own problems' rows
    texts = generation.all_processes_texts(texts)
  return [texts.get(i, []) for i in range(len(problems))]


def synthesize(config, teacher: str, problems_path: str, out: str, *, samples: int,
               temperature: float, max_new_tokens: int, template: str,
               eval_records: tuple[str, ...] = (), ngram: int = 13,
               max_tokens: Optional[int] = None, strict: bool = True,
               max_solutions: Optional[int] = None, seed: int = 0, tool_calls: int = 0,
               max_problems: Optional[int] = None) -> dict[str, dict[str, int]]:
  """Samples (with ``seed``), filters, selects and writes (see the module docstring);
  returns the counts. Every process returns once the files are written."""
  if not os.path.isdir(teacher):
    raise FileNotFoundError(f"--teacher={teacher}: no such directory")
  if samples < 1:
    raise ValueError(f"--samples={samples}: at least 1")
  if max_problems is not None and max_problems < 1:
    raise ValueError(f"--max_problems={max_problems}: at least 1")
  problems = sources.read_records(problems_path, required=("question",))[:max_problems]
  if not problems:
    raise ValueError(f"--problems={problems_path}: no problems")
  eval_questions = [r["question"] for path in eval_records
                    for r in sources.read_records(path, required=("question",))]
  model_cfg, tokenizer = evaluate.model_and_tokenizer(config, teacher)
  ctx = Context(config=config, model_cfg=model_cfg, tokenizer=tokenizer,
                mesh=sharding.make_mesh(config.mesh), optimizer=None, schedule=None)
  params, _ = checkpoint_lib.load_params(teacher, model_cfg, ctx.param_shardings())
  solutions = sample_solutions(ctx, params, problems, samples=samples,
                               temperature=temperature, max_new_tokens=max_new_tokens,
                               template=template, seed=seed, tool_calls=tool_calls)
  meta = {"teacher": os.path.abspath(teacher),
          "sampling": {"samples": samples, "temperature": temperature,
                       "max_new_tokens": max_new_tokens, "template": template,
                       "seed": seed, "tool_calls": tool_calls}}
  records, counts = synthesis.filter_solutions(
      problems, solutions, eval_questions=eval_questions, ngram=ngram,
      max_tokens=max_tokens, count_tokens=lambda text: len(tokenizer.encode(text)),
      strict=strict, meta=meta)
  selected = (records if max_solutions is None else
              synthesis.select_solutions(records, max_solutions, seed))
  if tool_calls:   # the tool's output as tool turns: SFT learns the model's tokens only
    selected = [dict(r, messages=tir.conversation(tir.with_budget(r["question"], tool_calls),
                                                  r["solution"])) for r in selected]
  counts["select"] = {"in": len(records), "out": len(selected)}
  write_records(out, selected, {"problems": len(problems), **counts})
  return counts


def write_records(out: str, records: list[dict], counts: dict) -> None:
  """Writes ``records`` (JSONL) to ``out`` and ``counts`` to ``<out>.counts.json``, both
  atomically, from process 0; every process returns once they are written."""
  if jax.process_index() == 0:
    workdir_lib.write_jsonl(out, records)
    workdir_lib.write_json(f"{out}.counts.json", counts)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"wrote {out}")


def main(argv: list[str]) -> None:
  with cli.entry_point(argv):
    run_config.check_ranges(_CONFIG.value, run_config.RANGES)
    counts = synthesize(
        _CONFIG.value, _TEACHER.value, _PROBLEMS.value, _OUT.value, samples=_SAMPLES.value,
        temperature=_TEMPERATURE.value, max_new_tokens=_MAX_NEW_TOKENS.value,
        template=_TEMPLATE.value, eval_records=tuple(filter(None, _EVAL_RECORDS.value)),
        ngram=_NGRAM.value, max_tokens=_MAX_TOKENS.value, strict=not _UNFILTERED.value,
        max_solutions=_MAX_SOLUTIONS.value, seed=_SEED.value,
        tool_calls=_TOOL_CALLS.value, max_problems=_MAX_PROBLEMS.value)
    print(json.dumps(counts))


if __name__ == "__main__":
  _CONFIG = config_flags.DEFINE_config_file(
      "config", None, "The teacher's run config (model, tokenizer, mesh).",
      lock_config=True)
  _TEACHER = flags.DEFINE_string("teacher", None, "A run's workdir or a HF directory.")
  _PROBLEMS = flags.DEFINE_string("problems", None, "Seed problems (JSONL).")
  _OUT = flags.DEFINE_string("out", None, "The SFT records file to write (JSONL).")
  _SAMPLES = flags.DEFINE_integer("samples", 8, "Solutions sampled per problem.")
  _TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature.")
  _MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 256, "Budget per solution.")
  _TEMPLATE = flags.DEFINE_enum("template", "chat", list(prompts_lib.TEMPLATES),
                                "How a problem becomes a prompt.")
  _EVAL_RECORDS = flags.DEFINE_list("eval_records", [], "Evaluation records to "
                                    "decontaminate against.")
  _NGRAM = flags.DEFINE_integer("ngram", 13, "Word n-gram length of decontamination.")
  _MAX_TOKENS = flags.DEFINE_integer("max_tokens", None, "Longest solution kept.")
  _UNFILTERED = flags.DEFINE_bool("unfiltered", False, "Keep wrong answers too.")
  _MAX_SOLUTIONS = flags.DEFINE_integer("max_solutions", None, "Keep this many of the "
                                        "solutions the filters leave, drawn with --seed.")
  _SEED = flags.DEFINE_integer("seed", 0, "Sampling and selection seed.")
  _MAX_PROBLEMS = flags.DEFINE_integer("max_problems", None, "Use the first N problems "
                                       "(question diversity: with --samples, the same "
                                       "solution count from fewer problems).")
  _TOOL_CALLS = flags.DEFINE_integer("tool_calls", 0, "Tool-integrated solutions: code "
                                     "executions per solution (0: chain-of-thought).")
  flags.adopt_module_key_flags(cli)
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.synthesize --config=configs/<name>.py --teacher=<dir> "
      "--problems=<jsonl> --out=<jsonl>", required=("config", "teacher", "problems", "out")))
