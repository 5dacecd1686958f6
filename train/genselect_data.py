r"""Selector SFT data for GenSelect (arXiv 2504.16891, §GenSelect) from a checkpoint's own
samples: sample k solutions per problem, check them, and turn the problems with both
right and wrong solutions into selector records.

  python -m train.genselect_data --config=configs/<run config>.py --checkpoint=<dir> \
      --problems=problems.jsonl --out=selector.jsonl [--samples=8] [--candidates=4] \
      [--rounds=1] [--temperature=1.0] [--max_new_tokens=256] [--template=chat] \
      [--max_tokens=N] [--eval_records=a.jsonl,b.jsonl] [--ngram=13] [--seed=0]

The config gives the model, tokenizer and mesh (as for ``train.evaluate``); the
checkpoint is a run's workdir or a Hugging Face directory. Each problem is
{"question", "answer"[, "kind", "options"]}; one sharing a word ``--ngram`` with a
question of ``--eval_records`` is dropped (``data.synthesis.contamination_index``), and
each other problem's ``--samples`` solutions
(``train.synthesize.sample_solutions``) are checked against the answer
(``data.answers.is_correct``). A problem with at least one right and one wrong solution
gives ``--rounds`` selector records (``data.genselect.selector_records``): a selector
prompt over ``--candidates`` of the solutions' summaries, a right and a wrong one among
them, and the reply ``Judgment: i`` naming a right one; a record whose conversation
(``data.chat``, no system prompt) is longer than ``--max_tokens`` tokens is dropped (a
solution without an answer line makes a long summary). Writes ``--out`` (JSONL, the SFT
loop's question/answer records: ``--config.sft.records=<out>``, with provenance: the
problem, the sample indices shown, the checkpoint and sampling settings) and
``<out>.counts.json`` (problems in, problems dropped by decontamination, problems with
mixed verdicts, records dropped as too long, records out), both atomically; every process returns once they are
written. The SFT loop also makes them itself from its starting weights
(``sft.synthesis.kind='selector'``, ``train/sft.py``). A missing checkpoint, a problem without an answer, or ``--candidates``
outside [2, ``--samples``] is one error before anything is loaded or sampled.
"""

from __future__ import annotations

import json
import os
import random
from typing import Optional

from absl import app
from absl import flags
from ml_collections import config_flags

from data import answers
from data import chat
from data import genselect
from data import prompts as prompts_lib
from data import sources
from data import synthesis
from train import checkpoint as checkpoint_lib
from train import cli
from train import config as run_config
from train import evaluate
from train import sharding
from train import synthesize
from train.loops import Context


def make_selector_data(config, checkpoint: str, problems_path: str, out: str, *,
                       samples: int = 8, candidates: int = 4, rounds: int = 1,
                       temperature: float = 1.0, max_new_tokens: int = 256,
                       template: str = "chat", max_tokens: Optional[int] = None,
                       eval_records: tuple[str, ...] = (),
                       ngram: int = 13, seed: int = 0) -> dict[str, int]:
  """Samples, checks and writes (see the module docstring); returns the counts."""
  if not os.path.isdir(checkpoint):
    raise FileNotFoundError(f"--checkpoint={checkpoint}: no such directory")
  if samples < 2:
    raise ValueError(f"--samples={samples}: at least 2 (a right and a wrong one)")
  if not 2 <= candidates <= samples:
    raise ValueError(f"--candidates={candidates}: a selector prompt shows 2 to "
                     f"--samples={samples} solutions")
  if rounds < 1:
    raise ValueError(f"--rounds={rounds}: at least 1")
  problems = sources.read_records(problems_path, required=("question", "answer"))
  contaminated = synthesis.contamination_index(
      [r["question"] for path in eval_records
       for r in sources.read_records(path, required=("question",))], ngram)
  kept = [p for p, problem in enumerate(problems)
          if not contaminated.keys() & synthesis.ngrams(problem["question"], ngram)]
  model_cfg, tokenizer = evaluate.model_and_tokenizer(config, checkpoint)
  ctx = Context(config=config, model_cfg=model_cfg, tokenizer=tokenizer,
                mesh=sharding.make_mesh(config.mesh), optimizer=None, schedule=None)
  params, _ = checkpoint_lib.load_params(checkpoint, model_cfg, ctx.param_shardings())
  solutions = synthesize.sample_solutions(
      ctx, params, [problems[p] for p in kept], samples=samples, temperature=temperature,
      max_new_tokens=max_new_tokens, template=template, seed=seed)
  flat = [(p, text) for p, texts in zip(kept, solutions) for text in texts]
  verdicts = iter(answers.map_checks(lambda item: answers.is_correct(item[1], problems[item[0]]),
                                     flat))
  meta = {"checkpoint": os.path.abspath(checkpoint),
          "sampling": {"samples": samples, "temperature": temperature,
                       "max_new_tokens": max_new_tokens, "template": template,
                       "seed": seed}}
  rng = random.Random(seed)
  records, mixed = [], 0
  for p, texts in zip(kept, solutions):
    problem = problems[p]
    right = [next(verdicts) for _ in texts]
    mixed += any(right) and not all(right)
    records += genselect.selector_records(
        genselect.problem_text(problem), texts, right, candidates, rng, rounds=rounds,
        meta={"problem": p, **meta})
  fits = [r for r in records if not max_tokens or len(chat.tokenize(
      chat.conversation(r["question"], answer=r["answer"]), tokenizer)[0]) <= max_tokens]
  counts = {"problems": len(problems), "decontaminated": len(problems) - len(kept),
            "mixed": mixed, "too_long": len(records) - len(fits), "records": len(fits)}
  synthesize.write_records(out, fits, counts)
  return counts


def main(argv: list[str]) -> None:
  with cli.entry_point(argv):
    run_config.check_ranges(_CONFIG.value, run_config.RANGES)
    counts = make_selector_data(
        _CONFIG.value, _CHECKPOINT.value, _PROBLEMS.value, _OUT.value,
        samples=_SAMPLES.value, candidates=_CANDIDATES.value, rounds=_ROUNDS.value,
        temperature=_TEMPERATURE.value, max_new_tokens=_MAX_NEW_TOKENS.value,
        template=_TEMPLATE.value, max_tokens=_MAX_TOKENS.value,
        eval_records=tuple(filter(None, _EVAL_RECORDS.value)),
        ngram=_NGRAM.value, seed=_SEED.value)
    print(json.dumps(counts))


if __name__ == "__main__":
  _CONFIG = config_flags.DEFINE_config_file(
      "config", None, "The checkpoint's run config (model, tokenizer, mesh).",
      lock_config=True)
  _CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A run's workdir or a HF directory.")
  _PROBLEMS = flags.DEFINE_string("problems", None, "Problems with answers (JSONL).")
  _OUT = flags.DEFINE_string("out", None, "The selector SFT records file to write (JSONL).")
  _SAMPLES = flags.DEFINE_integer("samples", 8, "Solutions sampled per problem (k).")
  _CANDIDATES = flags.DEFINE_integer("candidates", 4, "Solutions shown per selector "
                                     "prompt (n).")
  _ROUNDS = flags.DEFINE_integer("rounds", 1, "Selector records per mixed problem.")
  _TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature.")
  _MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 256, "Budget per solution.")
  _TEMPLATE = flags.DEFINE_enum("template", "chat", list(prompts_lib.TEMPLATES),
                                "How a problem becomes a prompt.")
  _MAX_TOKENS = flags.DEFINE_integer("max_tokens", None, "Longest selector conversation "
                                     "kept.")
  _EVAL_RECORDS = flags.DEFINE_list("eval_records", [], "Evaluation records to "
                                    "decontaminate against.")
  _NGRAM = flags.DEFINE_integer("ngram", 13, "Word n-gram length of decontamination.")
  _SEED = flags.DEFINE_integer("seed", 0, "Sampling and subset seed.")
  flags.adopt_module_key_flags(cli)
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.genselect_data --config=configs/<name>.py --checkpoint=<dir> "
      "--problems=<jsonl> --out=<jsonl>", required=("config", "checkpoint", "problems", "out")))
