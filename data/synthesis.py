"""The filters of solution synthesis (OpenMathInstruct-1/2, arXiv 2402.10176, 2410.01560):
from a teacher's sampled solutions to SFT records, every verdict on record.

``filter_solutions`` takes, per seed problem, the K solutions a teacher sampled and
applies, in order:

  decontaminate  drop a problem whose question shares a word n-gram (``ngram``, 13 by
                 default) with any evaluation question (the overlap test of GPT-3 and
                 OpenMathInstruct-1's decontamination)
  answer         keep a solution whose final answer is the reference answer by the
                 checker's equivalence (``data.answers.same_answer``), or, for a problem
                 without a reference, the majority answer of its solutions
                 (``answers.majority_vote``; a problem nobody answered keeps nothing)
  length         drop a solution longer than ``max_tokens`` (by ``count_tokens``)
  duplicate      drop a solution equal to one already kept for the problem (whitespace
                 normalised)

``strict=False`` keeps what the answer filter would drop (marked as such): the
unfiltered arm of a claim. Each record kept: {"question", "solution", "answer",
"provenance": {"problem": index, "sample": index, "filters": {name: "kept" | reason},
**meta}}; the counts: {filter: {"in", "out"}} in filter order.

``select_solutions`` then draws a fixed number of the records kept, so that two
syntheses whose filters keep different numbers (filtered and unfiltered) train on as
many solutions.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

from data import answers

FILTERS = ("decontaminate", "answer", "length", "duplicate")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
  """The word n-grams of ``text`` (lower case, punctuation dropped)."""
  words = re.findall(r"\w+", text.lower())
  return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def contamination_index(eval_questions: Sequence[str], n: int) -> dict[tuple[str, ...], int]:
  """Every word n-gram of the evaluation questions, to the index of the first question
  holding it (what a decontamination report names)."""
  index = {}
  for i, question in enumerate(eval_questions):
    for gram in ngrams(question, n):
      index.setdefault(gram, i)
  return index


def filter_solutions(problems: Sequence[Mapping], solutions: Sequence[Sequence[str]], *,
                     eval_questions: Sequence[str] = (), ngram: int = 13,
                     max_tokens: Optional[int] = None,
                     count_tokens: Callable[[str], int] = lambda s: len(s.split()),
                     strict: bool = True, meta: Optional[Mapping[str, Any]] = None
                     ) -> tuple[list[dict], dict[str, dict[str, int]]]:
  """(SFT records, counts) from ``problems`` ({"question"[, "answer", "kind"]}) and
  ``solutions[i]``, the teacher's samples for problem i (see the module docstring)."""
  if len(problems) != len(solutions):
    raise ValueError(f"{len(problems)} problems but solutions for {len(solutions)}")
  index = contamination_index(eval_questions, ngram)
  counts = {name: {"in": 0, "out": 0} for name in FILTERS}
  records = []
  for p, (problem, samples) in enumerate(zip(problems, solutions)):
    counts["decontaminate"]["in"] += len(samples)
    if index.keys() & ngrams(problem["question"], ngram):
      continue
    counts["decontaminate"]["out"] += len(samples)
    finals = [answers.final_answer(s) for s in samples]
    reference = problem.get("answer")
    if reference is None:
      vote = answers.majority_vote(finals, problem)
      reference = None if vote is None else finals[vote]
    kept_texts = set()
    for s, (sample, final) in enumerate(zip(samples, finals)):
      verdicts = {"decontaminate": "kept"}
      counts["answer"]["in"] += 1
      right = reference is not None and answers.same_answer(final, str(reference), problem)
      if not right and strict:
        continue
      verdicts["answer"] = "kept" if right else f"kept unfiltered: {final!r} is not the answer"
      counts["answer"]["out"] += 1
      counts["length"]["in"] += 1
      if max_tokens is not None and count_tokens(sample) > max_tokens:
        continue
      verdicts["length"] = "kept"
      counts["length"]["out"] += 1
      counts["duplicate"]["in"] += 1
      normalized = " ".join(sample.split())
      if normalized in kept_texts:
        continue
      kept_texts.add(normalized)
      verdicts["duplicate"] = "kept"
      counts["duplicate"]["out"] += 1
      records.append({"question": problem["question"], "solution": sample,
                      "answer": str(reference) if reference is not None else final,
                      "provenance": {"problem": p, "sample": s, "filters": verdicts,
                                     **(meta or {})}})
  return records, counts


def select_solutions(records: Sequence[dict], count: int, seed: int) -> list[dict]:
  """``count`` of ``records`` drawn without replacement with ``seed``, in their order; a
  ValueError if the filters kept fewer."""
  if count > len(records):
    raise ValueError(f"the filters kept {len(records)} solutions, fewer than the {count} "
                     "to select: sample more problems or more solutions per problem")
  return [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), count))]
