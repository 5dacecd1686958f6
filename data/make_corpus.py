"""Writes the shipped corpus deterministically (same bytes on every run).

  python -m data.make_corpus                  # rewrites data/corpus/
  python -m data.make_corpus --out_dir /tmp/c

Files:
  english.txt, english_valid.txt      procedural English (`english_grammar`), documents
                                      separated by blank lines
  reasoning.jsonl, reasoning_valid.jsonl
                                      problems (`reasoning_tasks`), half with <think>;
                                      validation questions never occur in training
  modsum.jsonl                        all 1000 "a b c = s" sums, half with a thought
  sums.jsonl, sums_valid.jsonl        every "a+b=" with a < 100, b < 3 as a question/answer
                                      record, 80/20 split (the GRPO CPU task)
  tokenizer.model                     sentencepiece BPE trained on the three training files

Files of the claims (``configs/claims/``; not part of the tokenizer's training text):
  chain_sums.txt, chain_sums_valid.jsonl
                                      sums of five digits, reduced one addition per line
                                      (`reasoning_tasks.chain_sum`), held out by question
  chain_sums_sft_long.jsonl, chain_sums_sft_short.jsonl
                                      the same 20 training questions answered step by
                                      step, or with the "Answer:" line alone
  chain_sums_dev.jsonl                other sums of five digits drawn like those, in
                                      neither chain_sums.txt nor chain_sums_valid.jsonl:
                                      the long_cot claim's dev split (its competence gate)
  chain_sums_seeds.jsonl              distinct sums of five digits with their answers, in
                                      none of the three files above: the synthesis_filter
                                      claim's seed problems (its teacher solves them)
  modsum_noisy.txt                    "a b c =\n<think> t </think>s" for the 800 training
                                      triples, four draws each, t wrong (a random digit)
                                      with probability 0.4 and s following t: a noisy
                                      thinker's pretraining text
  modsum_train.jsonl, modsum_valid.jsonl
                                      the 800 training triples without thoughts, and the
                                      200 held-out ones ("a b c =" → (a+b+c) % 10)
  modsum_sft.jsonl                    20 training triples with the right thought
  modsum_thought_valid.jsonl          the held-out triples with their right thought
                                      (a+b) % 10 as the answer: the rlp claim's gate
  code_updates.txt                    short Python programs of variable and list
                                      updates, each ending with its printed output
  boxes_valid.jsonl                   held-out boxes entity-tracking questions ("... Box 2
                                      contains" → "the key and the pen"), kind "ops<n>",
                                      n the operations on the asked box ("ops3": three
                                      or more)
  boxes_text.txt                      boxes stories with none to four operations, each
                                      its question then its answer on the next line:
                                      the code entity-tracking claim's pretraining text
  boxes_dev.jsonl                     boxes questions (as boxes_valid.jsonl) for that
                                      claim's competence gate, to tune on; neither file
                                      shares a question with boxes_valid.jsonl
  boxes_read.txt                      boxes stories whose asked box no operation
                                      touches, half with no operation at all: that
                                      claim's base learns to read a box's contents
  crossthink_facts.txt                the fact tables of `general_questions` stated
                                      ("A robin is a bird."), and training questions and
                                      sums answered ("Question: What is 13 + 4?
                                      \\boxed{ 17}"), a few of each per document: the
                                      CrossThink claim's pretraining text
  crossthink_sft.jsonl                CrossThink-templated questions (general, open-ended
                                      and multiple-choice, and math) answered with
                                      \\boxed{}: the claim's SFT
  crossthink_math.jsonl, crossthink_blend.jsonl, crossthink_open.jsonl,
  crossthink_mcq.jsonl                its GRPO records: math only; the same math with
                                      general questions, half open-ended half
                                      multiple-choice; all open-ended; all multiple-choice
                                      (the same general questions in the last three)
  crossthink_valid.jsonl              held-out general questions, open-ended, about pairs
                                      never asked about in training
  crossthink_dev.jsonl                other held-out category questions, open-ended,
                                      about pairs in neither the training files nor
                                      crossthink_valid.jsonl: that claim's dev split (its
                                      competence gate, and what its settings are tuned on)
  front_reasoning.jsonl               short step-by-step problems of four kinds
                                      (``reasoning_tasks.FRONT_LOADING_KINDS``: sums of
                                      three digits, a two-digit number plus a digit,
                                      counting a digit, following variables): the
                                      front-loading claim's reasoning data, its 'text' in
                                      pretraining, question and solution in SFT
  front_narrow.txt                    as many problems of one kind (sums of three digits):
                                      that claim's narrow pretraining mixture
  front_dev.jsonl, front_valid.jsonl  problems of the four kinds, an equal number of
                                      each, no question in two files: that claim's dev
                                      split (its competence gate) and held-out records
  products_tir_sft.jsonl,             products of two three-digit numbers solved with
  products_cot_sft.jsonl              one code execution (conversations with the tool's
                                      turn, the question stating the budget) or by long
                                      multiplication in the text: the tir claim's SFT arms
  products_valid.jsonl                held-out products (question, answer)
  genselect_sums.txt                  sums of five digits worked out right, whose
                                      "Answer:" line slips to the last line + 1 in 60% of
                                      them: the genselect claim's pretraining text (its
                                      base's majority answer is the slip)
  genselect_sft.jsonl                 the first of those as SFT records (question,
                                      solution with its slip or not, the right answer):
                                      that claim's task data beside its selector records
  genselect_seeds.jsonl               distinct sums with their answers in neither file:
                                      the problems whose samples make its selector records
  retro_sums.jsonl                    sums of five digits worked out line by line,
                                      each line a step ended by a blank line, then
                                      often checked again for nothing ("Wait, let me
                                      check." and the last step again; "Alternatively,
                                      let me start again." and every step again), as
                                      {"text"}: the retro_search claim's pretraining
                                      text
  retro_seeds.jsonl                   distinct sums with their answers in neither that
                                      file nor the held-out and dev sums: that claim's
                                      seed problems

  mae_roles.txt, mae_roles_weak.txt   proposer, judge and solver documents
                                      (``data/mae.py``): the mae claim's pretraining
                                      text, its solver answers wrong 40% (weak: 80%) of
                                      the time, its judgements right
  mae_seed_questions.jsonl            unlabelled sums: that claim's starting question pool
  mae_solve_valid.jsonl, mae_judge_dev.jsonl, mae_propose_probe.jsonl
                                      held-out sums for the solver (kind "terms<k>"),
                                      the judge's dev split (its gate) and proposer
                                      prompts (its difficulty figure)
  fusion_sums.jsonl, fusion_tens.jsonl
                                      sums of three digits, two-digit numbers plus a
                                      digit, worked out step by step, as {"text"}: the
                                      fusion_routing claim's two specialists' text
  fusion_queries.jsonl                as many distinct questions of each (from that
                                      text) with their answers and kind: that claim's
                                      routing queries and fusion problems
  fusion_dev.jsonl, fusion_valid.jsonl
                                      held-out questions of both skills, in neither
                                      file above nor each other: its gate and its eval

``python -m data.make_corpus --only=crossthink`` writes the CrossThink files alone,
``--only=boxes`` the last two boxes files, ``--only=long_cot`` chain_sums_dev.jsonl,
``--only=rlp`` modsum_thought_valid.jsonl, ``--only=front_loading`` the four front_*
files, ``--only=synthesis_filter`` chain_sums_seeds.jsonl, ``--only=tir`` the three
products files, ``--only=genselect`` the three genselect_* files,
``--only=retro_search`` the two retro_* files, ``--only=mae`` the six mae_* files,
``--only=fusion_routing`` the five fusion_* files (the
whole corpus takes long: its tokenizer is trained first).
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Sequence

from data import answers
from data import config as config_lib
from data import english_grammar
from data import general_questions
from data import mae
from data import reasoning_tasks
from data import tir
from data import tokenizer as tokenizer_lib

SEED = 20251101
NUM_ENGLISH, NUM_ENGLISH_VALID = 2800, 200
NUM_REASONING, NUM_REASONING_VALID = 2500, 300
VOCAB_SIZE = 1024
CORPUS_FILES = ("english.txt", "english_valid.txt", "reasoning.jsonl",
                "reasoning_valid.jsonl", "modsum.jsonl", "sums.jsonl", "sums_valid.jsonl",
                "tokenizer.model", "chain_sums.txt", "chain_sums_valid.jsonl",
                "chain_sums_sft_long.jsonl", "chain_sums_sft_short.jsonl", "modsum_noisy.txt",
                "modsum_train.jsonl", "modsum_valid.jsonl", "modsum_sft.jsonl")
SUMS_MAX_A, SUMS_MAX_B, SUMS_VALID_FRACTION = 99, 2, 0.2
CHAIN_TERMS, NUM_CHAIN, NUM_CHAIN_VALID, NUM_FEW_SHOT_SFT = 5, 4000, 256, 20
MODSUM_VALID, MODSUM_DRAWS, MODSUM_NOISE = 200, 4, 0.4
NUM_CODE, NUM_BOXES_VALID, NUM_BOXES_TEXT, NUM_BOXES_DEV = 1000, 200, 8000, 300
BOXES_TEXT_OPERATIONS = range(5)   # stories from none to four operations: a curriculum
BOXES_FILES = ("code_updates.txt", "boxes_valid.jsonl", "boxes_text.txt", "boxes_dev.jsonl",
               "boxes_read.txt")
CORPUS_FILES += BOXES_FILES
NUM_FACT_DOCS, FACTS_PER_DOC, QUESTIONS_PER_DOC, SUMS_PER_DOC = 300, 6, 4, 2
NUM_CT_SFT, NUM_CT_GENERAL, NUM_CT_MATH = 288, 128, 128   # SFT; GRPO general, math
CT_HELD_OUT, NUM_CT_VALID_CHOICE = 0.3, 60   # held-out share of pairs; category_choice
CT_HELD_OUT_FAMILIES = ("category_choice", "bigger")
NUM_CT_DEV = 120   # dev split: held-out category questions not in crossthink_valid.jsonl
CROSSTHINK_FILES = ("crossthink_facts.txt", "crossthink_sft.jsonl", "crossthink_math.jsonl",
                    "crossthink_blend.jsonl", "crossthink_open.jsonl", "crossthink_mcq.jsonl",
                    "crossthink_valid.jsonl", "crossthink_dev.jsonl")
CORPUS_FILES += CROSSTHINK_FILES
NUM_CHAIN_DEV = 256
CHAIN_DEV_FILES = ("chain_sums_dev.jsonl",)
CORPUS_FILES += CHAIN_DEV_FILES
NUM_CHAIN_SEEDS = 4096
CHAIN_SEED_FILES = ("chain_sums_seeds.jsonl",)
CORPUS_FILES += CHAIN_SEED_FILES
MODSUM_GATE_FILES = ("modsum_thought_valid.jsonl",)
CORPUS_FILES += MODSUM_GATE_FILES
NUM_FRONT, NUM_FRONT_DEV, NUM_FRONT_VALID = 4000, 200, 400
FRONT_NARROW_KIND = "chain_sum"
FRONT_FILES = ("front_reasoning.jsonl", "front_narrow.txt", "front_dev.jsonl",
               "front_valid.jsonl")
CORPUS_FILES += FRONT_FILES
NUM_PRODUCTS_SFT, NUM_PRODUCTS_VALID, PRODUCT_DIGITS, PRODUCT_CALLS = 2000, 256, 3, 1
PRODUCTS_FILES = ("products_tir_sft.jsonl", "products_cot_sft.jsonl", "products_valid.jsonl")
CORPUS_FILES += PRODUCTS_FILES
NUM_GENSELECT, NUM_GENSELECT_SFT, NUM_GENSELECT_SEEDS = 4000, 500, 1024
GENSELECT_SLIP = 0.6   # the share of genselect_sums.txt whose answer line slips
GENSELECT_FILES = ("genselect_sums.txt", "genselect_sft.jsonl", "genselect_seeds.jsonl")
CORPUS_FILES += GENSELECT_FILES
NUM_RETRO, NUM_RETRO_SEEDS = 4000, 512
RETRO_WAIT, RETRO_RESTART = 0.6, 0.25   # after the answer: a re-check; a restart
RETRO_CHECK, RETRO_AGAIN = "Wait, let me check.", "Alternatively, let me start again."
RETRO_FILES = ("retro_sums.jsonl", "retro_seeds.jsonl")
CORPUS_FILES += RETRO_FILES
NUM_MAE_DOCS, NUM_MAE_SEEDS, NUM_MAE_VALID_PER_TERMS, NUM_MAE_DEV = 24000, 64, 64, 128
MAE_SOLVER_ERROR, MAE_WEAK_SOLVER_ERROR = 0.4, 0.8   # wrong solver answers in the text
MAE_FILES = ("mae_roles.txt", "mae_roles_weak.txt", "mae_seed_questions.jsonl",
             "mae_solve_valid.jsonl", "mae_judge_dev.jsonl", "mae_propose_probe.jsonl")
CORPUS_FILES += MAE_FILES
FUSION_KINDS = ("chain_sum", "add_digit")   # the two skills: a + b + c, ab + c
NUM_FUSION_TEXT, NUM_FUSION_QUERIES, NUM_FUSION_DEV, NUM_FUSION_VALID = 3000, 256, 64, 128
FUSION_FILES = ("fusion_sums.jsonl", "fusion_tens.jsonl", "fusion_queries.jsonl",
                "fusion_dev.jsonl", "fusion_valid.jsonl")
CORPUS_FILES += FUSION_FILES


def english_documents(rng: random.Random, count: int,
                      exclude: frozenset[str] = frozenset()) -> list[str]:
  documents = []
  while len(documents) < count:
    if (document := english_grammar.make_document(rng)) not in exclude:
      documents.append(document)
  return documents


def reasoning_problems(rng: random.Random, count: int,
                       exclude_questions: frozenset[str] = frozenset()) -> list[dict[str, str]]:
  problems = []
  while len(problems) < count:
    if (problem := reasoning_tasks.random_problem(rng))["question"] not in exclude_questions:
      problems.append(problem)
  return problems


def modular_sums(rng: random.Random) -> list[dict[str, str]]:
  triples = [(a, b, c) for a in range(10) for b in range(10) for c in range(10)]
  rng.shuffle(triples)
  return [reasoning_tasks.modular_sum(*t, think=rng.random() < 0.5) for t in triples]


def chain_sums(rng: random.Random, count: int,
               exclude_questions: frozenset[str] = frozenset(),
               distinct: bool = False) -> list[dict[str, str]]:
  """``count`` sums of five digits, none of ``exclude_questions``; ``distinct``: no
  question twice."""
  problems, seen = [], set(exclude_questions)
  while len(problems) < count:
    problem = reasoning_tasks.chain_sum(rng, CHAIN_TERMS)
    if problem["question"] not in seen:
      problems.append(problem)
      if distinct:
        seen.add(problem["question"])
  return problems


def answer_only(problem: dict[str, str]) -> dict[str, str]:
  """The problem with its solution cut to the final "Answer:" line."""
  final = problem["solution"].rpartition("\n")[2]
  return {"question": problem["question"], "solution": final, "answer": problem["answer"]}


def modsum_claim_files(rng: random.Random) -> tuple[list[str], list[dict], list[dict],
                                                    list[dict]]:
  """(noisy thinking documents, training triples, held-out triples, SFT records)."""
  triples = [(a, b, c) for a in range(10) for b in range(10) for c in range(10)]
  rng.shuffle(triples)
  train, valid = triples[MODSUM_VALID:], triples[:MODSUM_VALID]
  noisy = []
  for _ in range(MODSUM_DRAWS):
    for a, b, c in train:
      thought = rng.randrange(10) if rng.random() < MODSUM_NOISE else (a + b) % 10
      noisy.append(reasoning_tasks.modular_sum_lines(a, b, c, thought)["text"])
  rng.shuffle(noisy)
  question_answer = lambda t: {key: value for key, value in
                               reasoning_tasks.modular_sum_lines(*t, None).items()
                               if key in ("question", "answer", "text")}
  sft = [reasoning_tasks.modular_sum_lines(a, b, c, (a + b) % 10)
         for a, b, c in train[:NUM_FEW_SHOT_SFT]]
  sft = [{key: r[key] for key in ("question", "solution", "answer")} for r in sft]
  return (noisy, [question_answer(t) for t in train], [question_answer(t) for t in valid],
          sft)


def boxes_questions(rng: random.Random, count: int,
                    exclude_questions: frozenset[str] = frozenset(),
                    num_operations: Sequence[int] = (), kind: str = "") -> list[dict[str, str]]:
  """``count`` distinct boxes questions {question, answer, kind: "ops<n>"}, n the
  operations on the asked box (at most 3: "ops3" is three or more), only of ``kind`` if
  given; ``num_operations``: the operations of a story are drawn from these (default 2-4).
  As in the paper, the query is the statement to complete: "... Box 2 contains" → "the
  apple and the pen"."""
  records, seen = [], set(exclude_questions)
  while len(records) < count:
    problem = reasoning_tasks.boxes(
        rng, think=False, num_operations=rng.choice(num_operations) if num_operations else None)
    asked = int(problem["question"].rsplit("Box ", 1)[1].split(" ")[0])
    question = problem["question"].replace(f"What does Box {asked} contain?",
                                           f"Box {asked} contains")
    if question in seen:
      continue
    seen.add(question)
    operations = reasoning_tasks.box_operations(question, asked)
    if kind and f"ops{min(operations, 3)}" != kind:
      continue
    records.append({"question": question, "answer": problem["answer"],
                    "kind": f"ops{min(operations, 3)}"})
  return records


def _write_text(path: str, text: str) -> None:
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write(text)


def _write_jsonl(path: str, records: Sequence[dict[str, str]]) -> None:
  _write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_corpus(out_dir: str) -> list[str]:
  """Generates every file of `CORPUS_FILES` into `out_dir`; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  english = english_documents(random.Random(f"{SEED}-english"), NUM_ENGLISH)
  english_valid = english_documents(random.Random(f"{SEED}-english-valid"), NUM_ENGLISH_VALID,
                                    exclude=frozenset(english))
  reasoning = reasoning_problems(random.Random(f"{SEED}-reasoning"), NUM_REASONING)
  reasoning_valid = reasoning_problems(
      random.Random(f"{SEED}-reasoning-valid"), NUM_REASONING_VALID,
      exclude_questions=frozenset(p["question"] for p in reasoning))
  sums = modular_sums(random.Random(f"{SEED}-modsum"))
  small_sums = reasoning_tasks.small_sums(SUMS_MAX_A, SUMS_MAX_B)
  random.Random(f"{SEED}-sums").shuffle(small_sums)
  num_sums_valid = round(SUMS_VALID_FRACTION * len(small_sums))
  paths = [os.path.join(out_dir, name) for name in CORPUS_FILES]
  _write_text(paths[0], "\n\n".join(english) + "\n")
  _write_text(paths[1], "\n\n".join(english_valid) + "\n")
  _write_jsonl(paths[2], reasoning)
  _write_jsonl(paths[3], reasoning_valid)
  _write_jsonl(paths[4], sums)
  _write_jsonl(paths[5], small_sums[num_sums_valid:])
  _write_jsonl(paths[6], small_sums[:num_sums_valid])
  tokenizer = tokenizer_lib.train_sentencepiece(
      english + [p["text"] for p in reasoning + sums], vocab_size=VOCAB_SIZE)
  tokenizer.save(paths[7])
  chain, chain_valid, _ = chain_sum_splits()
  _write_text(paths[8], "\n\n".join(p["text"] for p in chain) + "\n")
  _write_jsonl(paths[9], [{"question": p["question"], "answer": p["answer"]}
                          for p in chain_valid])
  few = chain[:NUM_FEW_SHOT_SFT]
  _write_jsonl(paths[10], [{key: p[key] for key in ("question", "solution", "answer")}
                           for p in few])
  _write_jsonl(paths[11], [answer_only(p) for p in few])
  noisy, modsum_train, modsum_valid, modsum_sft = modsum_claim_files(
      random.Random(f"{SEED}-modsum-claim"))
  _write_text(paths[12], "\n\n".join(noisy) + "\n")
  _write_jsonl(paths[13], modsum_train)
  _write_jsonl(paths[14], modsum_valid)
  _write_jsonl(paths[15], modsum_sft)
  write_crossthink_files(out_dir)
  write_boxes_files(out_dir)
  write_chain_dev_files(out_dir)
  write_chain_seed_files(out_dir)
  write_modsum_gate_files(out_dir)
  write_front_files(out_dir)
  write_products_files(out_dir)
  write_genselect_files(out_dir)
  write_mae_files(out_dir)
  write_fusion_files(out_dir)
  write_retro_files(out_dir)
  return paths


def write_modsum_gate_files(out_dir: str) -> list[str]:
  """The rlp claim's gate records (`MODSUM_GATE_FILES`): the held-out triples with the
  right thought (a + b) % 10 as the answer; returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in MODSUM_GATE_FILES]
  _, _, valid, _ = modsum_claim_files(random.Random(f"{SEED}-modsum-claim"))
  thoughts = []
  for record in valid:
    a, b, _ = map(int, record["question"].split()[:3])
    thoughts.append({"question": record["question"], "answer": str((a + b) % 10)})
  _write_jsonl(paths[0], thoughts)
  return paths


def front_problems(rng: random.Random, kinds: Sequence[str], count: int,
                   exclude_questions: frozenset[str] = frozenset()) -> list[dict[str, str]]:
  """``count`` problems of ``FRONT_LOADING_KINDS``, each of a kind drawn from ``kinds``,
  none with a question of ``exclude_questions`` (repeats among them allowed)."""
  problems = []
  while len(problems) < count:
    problem = reasoning_tasks.FRONT_LOADING_KINDS[rng.choice(kinds)](rng)
    if problem["question"] not in exclude_questions:
      problems.append(problem)
  return problems


def distinct_front_problems(rng: random.Random, count: int,
                            exclude_questions: frozenset[str] = frozenset()
                            ) -> list[dict[str, str]]:
  """``count`` problems with distinct questions, as many of each kind, none with a
  question of ``exclude_questions``, as {question, answer, kind} records."""
  per_kind = count // len(reasoning_tasks.FRONT_LOADING_KINDS)
  records, seen = [], set(exclude_questions)
  for make in reasoning_tasks.FRONT_LOADING_KINDS.values():
    for _ in range(per_kind):
      while (problem := make(rng))["question"] in seen:
        pass
      seen.add(problem["question"])
      records.append({key: problem[key] for key in ("question", "answer", "kind")})
  return records


def write_front_files(out_dir: str) -> list[str]:
  """The front_loading claim's files (`FRONT_FILES`): held-out and dev records first,
  then training problems that ask none of their questions; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in FRONT_FILES]
  valid = distinct_front_problems(random.Random(f"{SEED}-front-valid"), NUM_FRONT_VALID)
  dev = distinct_front_problems(random.Random(f"{SEED}-front-dev"), NUM_FRONT_DEV,
                                exclude_questions=frozenset(r["question"] for r in valid))
  held_out = frozenset(r["question"] for r in valid + dev)
  train = front_problems(random.Random(f"{SEED}-front"),
                         list(reasoning_tasks.FRONT_LOADING_KINDS), NUM_FRONT, held_out)
  narrow = front_problems(random.Random(f"{SEED}-front-narrow"), [FRONT_NARROW_KIND],
                          NUM_FRONT, held_out)
  _write_jsonl(paths[0], [{key: p[key] for key in ("question", "solution", "answer", "text")}
                          for p in train])
  _write_text(paths[1], "\n\n".join(p["text"] for p in narrow) + "\n")
  _write_jsonl(paths[2], dev)
  _write_jsonl(paths[3], valid)
  return paths


def chain_sum_splits() -> tuple[list[dict], list[dict], list[dict]]:
  """The sums of five digits of chain_sums.txt, chain_sums_valid.jsonl and
  chain_sums_dev.jsonl (training, held-out, dev), each without the questions before."""
  chain = chain_sums(random.Random(f"{SEED}-chain"), NUM_CHAIN)
  chain_valid = chain_sums(random.Random(f"{SEED}-chain-valid"), NUM_CHAIN_VALID,
                           exclude_questions=frozenset(p["question"] for p in chain))
  dev = chain_sums(random.Random(f"{SEED}-chain-dev"), NUM_CHAIN_DEV,
                   exclude_questions=frozenset(p["question"] for p in chain + chain_valid))
  return chain, chain_valid, dev


def write_chain_dev_files(out_dir: str) -> list[str]:
  """The long_cot claim's dev split (`CHAIN_DEV_FILES`): sums drawn like the training
  ones, none of them a training or held-out question; returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in CHAIN_DEV_FILES]
  _, _, dev = chain_sum_splits()
  _write_jsonl(paths[0], [{"question": p["question"], "answer": p["answer"]} for p in dev])
  return paths


def write_chain_seed_files(out_dir: str) -> list[str]:
  """The synthesis_filter claim's seed problems (`CHAIN_SEED_FILES`): sums drawn like the
  training ones with their answers, none of them a training, held-out or dev question;
  returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in CHAIN_SEED_FILES]
  seen = frozenset(p["question"] for split in chain_sum_splits() for p in split)
  seeds = chain_sums(random.Random(f"{SEED}-chain-seeds"), NUM_CHAIN_SEEDS,
                     exclude_questions=seen, distinct=True)
  _write_jsonl(paths[0], [{"question": p["question"], "answer": p["answer"]} for p in seeds])
  return paths


def write_boxes_files(out_dir: str) -> list[str]:
  """The code entity-tracking claim's files (`BOXES_FILES`): the programs, the held-out
  questions, a dev split that leaves them out, and stories that leave out both; returns
  their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in BOXES_FILES]
  code_rng = random.Random(f"{SEED}-code")
  code = [reasoning_tasks.code_state_updates(code_rng) for _ in range(NUM_CODE)]
  valid = boxes_questions(random.Random(f"{SEED}-boxes-valid"), NUM_BOXES_VALID)
  held_out = frozenset(r["question"] for r in valid)
  dev = boxes_questions(random.Random(f"{SEED}-boxes-dev"), NUM_BOXES_DEV,
                        exclude_questions=held_out)
  stories = boxes_questions(random.Random(f"{SEED}-boxes-text"), NUM_BOXES_TEXT,
                            exclude_questions=held_out | {r["question"] for r in dev},
                            num_operations=BOXES_TEXT_OPERATIONS)
  _write_text(paths[0], "\n\n".join(code) + "\n")
  _write_jsonl(paths[1], valid)
  _write_text(paths[2], "\n\n".join(f"{r['question']}\n{r['answer']}" for r in stories)
              + "\n")
  _write_jsonl(paths[3], dev)
  seen = held_out | {r["question"] for r in dev + stories}
  lookups = boxes_questions(random.Random(f"{SEED}-boxes-lookup"), NUM_BOXES_TEXT // 2,
                            exclude_questions=seen, num_operations=(0,))
  untouched = boxes_questions(random.Random(f"{SEED}-boxes-untouched"), NUM_BOXES_TEXT // 2,
                              exclude_questions=seen, kind="ops0")
  _write_text(paths[4], "\n\n".join(f"{r['question']}\n{r['answer']}"
                                     for pair in zip(lookups, untouched) for r in pair) + "\n")
  return paths


def _category_pair(record: dict) -> tuple[str, frozenset[str]]:
  """What a category_choice question asks about: its category and unordered pair."""
  return record["question"].split(":")[0], frozenset(record["options"])


def crossthink_records(rng: random.Random) -> tuple[list[dict], list[dict], list[dict]]:
  """(training, held-out, spare) general multiple-choice records: the families of
  ``CT_HELD_OUT_FAMILIES`` (questions about pairs: many new instances) split by pair,
  ``NUM_CT_VALID_CHOICE`` held-out questions of category_choice (it has thousands); the
  other families (one question per fact, a few dozen each) only in training. Spare: the
  held-out category_choice questions about pairs that no held-out question asks about."""
  train, valid, spare = [], [], []
  for family in general_questions.FAMILIES:
    held_out = CT_HELD_OUT if family in CT_HELD_OUT_FAMILIES else 0.0
    family_train, family_valid = general_questions.split(family, rng, held_out)
    if family == "category_choice":
      unused = family_valid
      family_valid = rng.sample(unused, NUM_CT_VALID_CHOICE)
      asked = {_category_pair(r) for r in family_valid}
      spare = [r for r in unused if _category_pair(r) not in asked]
    train += family_train
    valid += family_valid
  return train, valid, spare


def write_crossthink_files(out_dir: str) -> list[str]:
  """The files of the crossthink claim (`CROSSTHINK_FILES`); returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in CROSSTHINK_FILES]
  rng = random.Random(f"{SEED}-crossthink")
  train, valid, spare = crossthink_records(rng)
  documents = []
  for _ in range(NUM_FACT_DOCS):
    asked = [general_questions.render(r, open_ended=True)
             for r in rng.sample(train, QUESTIONS_PER_DOC)]
    asked += [general_questions.math_question(rng) for _ in range(SUMS_PER_DOC)]
    documents.append("\n".join([general_questions.fact_document(rng, FACTS_PER_DOC)] + [
        f"Question: {r['question']} {general_questions.boxed(r['answer'])}" for r in asked]))
  _write_text(paths[0], "\n\n".join(documents) + "\n")
  sft = [general_questions.render(r, open_ended=rng.random() < 0.5)
         for r in rng.sample(train, NUM_CT_SFT * 2 // 3)]
  sft += [general_questions.math_question(rng) for _ in range(NUM_CT_SFT - len(sft))]
  rng.shuffle(sft)
  _write_jsonl(paths[1], [general_questions.sft_record(r) for r in sft])
  math = [general_questions.math_question(rng) for _ in range(2 * NUM_CT_MATH)]
  general = rng.sample(train, NUM_CT_GENERAL)
  open_ended = [general_questions.render(r, open_ended=True) for r in general]
  half = [general_questions.render(r, open_ended=i % 2 == 0) for i, r in enumerate(general)]
  _write_jsonl(paths[2], math)
  for path, records in zip(paths[3:6], (half, open_ended, general)):
    _write_jsonl(path, math[:NUM_CT_MATH] + records)
  _write_jsonl(paths[6], [general_questions.render(r, open_ended=True) for r in valid])
  dev = random.Random(f"{SEED}-crossthink-dev").sample(spare, NUM_CT_DEV)
  _write_jsonl(paths[7], [general_questions.render(r, open_ended=True) for r in dev])
  return paths


def product_records(rng: random.Random, count: int,
                    exclude: frozenset[str] = frozenset()) -> list[dict]:
  """``count`` distinct products of two PRODUCT_DIGITS-digit numbers: question, answer,
  a tool-integrated conversation (AIMO-2's format, ``data/tir.py``) and a long
  multiplication (one partial product per digit of the second factor, then their sum)."""
  low, high = 10 ** (PRODUCT_DIGITS - 1), 10 ** PRODUCT_DIGITS - 1
  out, seen = [], set(exclude)
  while len(out) < count:
    a, b = rng.randint(low, high), rng.randint(low, high)
    question = f"What is {a} * {b}?"
    if question in seen:
      continue
    seen.add(question)
    answer = str(a * b)
    places = [int(d) * 10 ** i for i, d in enumerate(reversed(str(b))) if d != "0"][::-1]
    solution = (f"{a} * {b} = " + " + ".join(f"{a} * {p}" for p in places) + "\n= "
                + " + ".join(str(a * p) for p in places) + f"\n= {answer}\nAnswer: {answer}")
    conversation = [
        {"role": "user", "content": tir.with_budget(question, PRODUCT_CALLS)},
        {"role": "assistant", "content": f"{tir.CODE_OPEN}print({a} * {b}){tir.CODE_CLOSE}"},
        {"role": "tool", "content": tir.tool_reply(answer, PRODUCT_CALLS - 1)},
        {"role": "assistant", "content": f"Answer: {answer}"}]
    out.append({"question": question, "answer": answer, "solution": solution,
                "messages": conversation})
  return out


def write_products_files(out_dir: str) -> list[str]:
  """The tir claim's files (`PRODUCTS_FILES`): the same training products solved with
  the tool or in the text, and held-out products; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in PRODUCTS_FILES]
  train = product_records(random.Random(f"{SEED}-products"), NUM_PRODUCTS_SFT)
  valid = product_records(random.Random(f"{SEED}-products-valid"), NUM_PRODUCTS_VALID,
                          exclude=frozenset(r["question"] for r in train))
  _write_jsonl(paths[0], [{"messages": r["messages"]} for r in train])
  _write_jsonl(paths[1], [{k: r[k] for k in ("question", "solution", "answer")} for r in train])
  _write_jsonl(paths[2], [{"question": r["question"], "answer": r["answer"]} for r in valid])
  return paths


def slipped(problem: dict[str, str]) -> dict[str, str]:
  """The problem with its "Answer:" line one more than the last line it computed (the
  genselect claim's slip); its reference answer stays the right one."""
  body = problem["solution"].rpartition("\n")[0]
  solution = f"{body}\n{answers.ANSWER_PREFIX}{int(problem['answer']) + 1}"
  return {**problem, "solution": solution, "text": f"{problem['question']}\n{solution}"}


def write_genselect_files(out_dir: str) -> list[str]:
  """The genselect claim's files (`GENSELECT_FILES`): sums worked out right, a
  `GENSELECT_SLIP` share of them with the slip (``slipped``), as pretraining text and,
  the first `NUM_GENSELECT_SFT`, as SFT records; then distinct seed problems in neither;
  none of them a question of chain_sums_valid.jsonl or chain_sums_dev.jsonl. Returns
  their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in GENSELECT_FILES]
  _, valid, dev = chain_sum_splits()
  held_out = frozenset(p["question"] for p in valid + dev)
  rng = random.Random(f"{SEED}-genselect")
  sums = [slipped(p) if rng.random() < GENSELECT_SLIP else p
          for p in chain_sums(rng, NUM_GENSELECT, exclude_questions=held_out)]
  seeds = chain_sums(random.Random(f"{SEED}-genselect-seeds"), NUM_GENSELECT_SEEDS,
                     exclude_questions=held_out | {p["question"] for p in sums},
                     distinct=True)
  _write_text(paths[0], "\n\n".join(p["text"] for p in sums) + "\n")
  _write_jsonl(paths[1], [{key: p[key] for key in ("question", "solution", "answer")}
                          for p in sums[:NUM_GENSELECT_SFT]])
  _write_jsonl(paths[2], [{"question": p["question"], "answer": p["answer"]} for p in seeds])
  return paths


def detoured(problem: dict[str, str], rng: random.Random) -> dict[str, str]:
  """A sum of five digits worked out line by line, then checked again for nothing: each
  line a step, every step ended by a blank line, the last line with its "Answer:" line;
  then, with probability `RETRO_WAIT`, a step `RETRO_CHECK` and the last step again,
  and, with probability `RETRO_RESTART`, a step `RETRO_AGAIN` and every step again. The
  answer stays right (the Retro-Search claim's traces: detours after the answer, which
  leave the lines that compute it next to each other)."""
  body, _, final = problem["solution"].rpartition("\n")
  lines = body.split("\n")
  steps = lines[:-1] + [f"{lines[-1]}\n{final}"]
  detours = []
  if rng.random() < RETRO_WAIT:
    detours += [RETRO_CHECK, steps[-1]]
  if rng.random() < RETRO_RESTART:
    detours += [RETRO_AGAIN, *steps]
  solution = "".join(f"{step}\n\n" for step in steps + detours)
  return {**problem, "solution": solution, "text": f"{problem['question']}\n{solution}"}


def write_retro_files(out_dir: str) -> list[str]:
  """The retro_search claim's files (`RETRO_FILES`): sums of five digits worked out with
  detours (``detoured``) as pretraining records ({"text"}), and distinct seed problems
  with their answers in none of them; none of either a question of
  chain_sums_valid.jsonl or chain_sums_dev.jsonl. Returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in RETRO_FILES]
  _, valid, dev = chain_sum_splits()
  held_out = frozenset(p["question"] for p in valid + dev)
  rng = random.Random(f"{SEED}-retro")
  traces = [detoured(p, rng) for p in chain_sums(rng, NUM_RETRO, exclude_questions=held_out)]
  seeds = chain_sums(random.Random(f"{SEED}-retro-seeds"), NUM_RETRO_SEEDS,
                     exclude_questions=held_out | {p["question"] for p in traces},
                     distinct=True)
  _write_jsonl(paths[0], [{"text": p["text"]} for p in traces])
  _write_jsonl(paths[1], [{"question": p["question"], "answer": p["answer"]} for p in seeds])
  return paths


def write_mae_files(out_dir: str) -> list[str]:
  """The mae claim's files (`MAE_FILES`, ``data/mae.py``): role-formatted pretraining text
  whose solver answers are wrong with probability `MAE_SOLVER_ERROR` (the weak base's:
  `MAE_WEAK_SOLVER_ERROR`) and whose judgements are right; unlabelled seed questions;
  held-out solver records (kind "terms<k>"); a judge dev split (half the answers wrong,
  the right score as answer); proposer prompts with a reference question (their greedy
  proposals' length is that claim's difficulty figure). No held-out or dev question occurs
  in the other files. Returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in MAE_FILES]
  rng = random.Random(f"{SEED}-mae-held-out")
  valid, dev, seen = [], [], set()
  for terms in range(mae.MIN_TERMS, mae.MAX_TERMS + 1):
    while len(valid) < NUM_MAE_VALID_PER_TERMS * (terms - 1):
      if (q := mae.sum_question(rng, terms)) not in seen:
        seen.add(q)
        valid.append({"question": mae.solver_prompt(q), "answer": str(mae.sum_value(q)),
                      "kind": f"terms{terms}"})
  while len(dev) < NUM_MAE_DEV:
    q = mae.sum_question(rng, rng.randint(mae.MIN_TERMS + 1, mae.MAX_TERMS))
    if q not in seen:
      seen.add(q)
      right = len(dev) % 2 == 0
      answer = mae.sum_value(q) + (0 if right else rng.choice([-2, -1, 1, 2]))
      response = mae.tagged(str(answer), mae.ANSWER_TAG)
      dev.append({"question": mae.judge_prompt(q, response),
                  "answer": str(mae.RIGHT_SCORE if right else mae.WRONG_SCORE)})
  held_out = frozenset(seen)
  for path, error, name in ((paths[0], MAE_SOLVER_ERROR, "roles"),
                            (paths[1], MAE_WEAK_SOLVER_ERROR, "roles-weak")):
    docs = mae.role_documents(random.Random(f"{SEED}-mae-{name}"), NUM_MAE_DOCS,
                              solver_error=error, exclude=held_out)
    _write_text(path, "\n\n".join(docs) + "\n")
  rng = random.Random(f"{SEED}-mae-seeds")
  seeds = []
  while len(seeds) < NUM_MAE_SEEDS:
    if (q := mae.sum_question(rng, rng.randint(mae.MIN_TERMS, mae.MAX_TERMS))) not in seen:
      seen.add(q)
      seeds.append(q)
  _write_jsonl(paths[2], [{"question": q} for q in seeds])
  _write_jsonl(paths[3], valid)
  _write_jsonl(paths[4], dev)
  _write_jsonl(paths[5], [{"question": mae.proposer_prompt(q), "answer": q} for q in seeds])
  return paths


def write_fusion_files(out_dir: str) -> list[str]:
  """The fusion_routing claim's files (`FUSION_FILES`): two skills, sums of three digits
  and a two-digit number plus a digit (`FUSION_KINDS`, ``reasoning_tasks``). Held-out records first
  (valid, dev: as many of each skill, distinct questions); then per skill pretraining
  text ({"text"}) asking none of their questions, and the routing queries: the first
  `NUM_FUSION_QUERIES` distinct questions of each skill's text. Returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, name) for name in FUSION_FILES]
  rng = random.Random(f"{SEED}-fusion")
  held_out, valid, dev = set(), [], []
  for kind in FUSION_KINDS:
    make = reasoning_tasks.FRONT_LOADING_KINDS[kind]
    for records, count in ((valid, NUM_FUSION_VALID), (dev, NUM_FUSION_DEV)):
      for _ in range(count):
        while (problem := make(rng))["question"] in held_out:
          pass
        held_out.add(problem["question"])
        records.append({key: problem[key] for key in ("question", "answer", "kind")})
  queries = []
  for kind, path in zip(FUSION_KINDS, paths[:2]):
    problems = front_problems(rng, [kind], NUM_FUSION_TEXT, frozenset(held_out))
    _write_jsonl(path, [{"text": p["text"]} for p in problems])
    distinct = list({p["question"]: p for p in problems}.values())[:NUM_FUSION_QUERIES]
    queries += [{key: p[key] for key in ("question", "answer", "kind")} for p in distinct]
  _write_jsonl(paths[2], queries)
  _write_jsonl(paths[3], dev)
  _write_jsonl(paths[4], valid)
  return paths


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--out_dir", default=config_lib.CORPUS_DIR)
  parser.add_argument("--only", choices=("", "crossthink", "boxes", "long_cot", "rlp",
                                           "front_loading", "synthesis_filter", "tir",
                                           "genselect", "retro_search", "mae",
                                           "fusion_routing"),
                      default="",
                      help="write only the files of one claim")
  args = parser.parse_args()
  write = {"crossthink": write_crossthink_files,
           "boxes": write_boxes_files,
           "long_cot": write_chain_dev_files,
           "rlp": write_modsum_gate_files,
           "front_loading": write_front_files,
           "synthesis_filter": write_chain_seed_files,
           "tir": write_products_files,
           "genselect": write_genselect_files,
           "retro_search": write_retro_files,
           "mae": write_mae_files,
           "fusion_routing": write_fusion_files}.get(args.only, write_corpus)
  for path in write(args.out_dir):
    print(f"{os.path.getsize(path):>9,d}  {path}")


if __name__ == "__main__":
  main()
