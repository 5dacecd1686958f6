"""Multi-Agent Evolve (MAE, arXiv 2510.23595): role prompts, tag formats, and a toy domain.

One model plays three roles, each asked by a role prompt (``data/prompts.py``'s 'text'
template: the prompt, a newline, the model's response until end of sequence):

  proposer  ``PROPOSE`` or, with a reference question, ``PROPOSE_LIKE``; writes
            ``<question>…</question>``
  solver    ``SOLVE``; writes ``<answer>…</answer>``
  judge     ``RATE`` (a proposed question's quality) or ``JUDGE`` (a solver's response,
            shown verbatim); reasons, then writes ``<score>X</score>``, X in 1..10

The paper's prompts are paragraphs of instructions for a 3B chat model; these are the
short cues a miniature model pretrained on role-formatted text (``role_documents``)
learns to follow.

Format score (the paper's f): 1.0 for exactly the expected number of tag pairs, 0.5 for
more (still balanced), else 0. Judge value: v = clip((X − 1)/9, 0, 1) of the last
``<score>`` pair; None when the response has no score (the caller's defined outcome).

The toy domain of the MAE claim in miniature (``configs/claims/mae.py``): sums of 2 to 5
single digits ("5+2+7"), whose difficulty is the number of terms. A solver answers them
directly; a judge takes the terms from the answer one at a time before scoring
(``judge_reasoning``), so judging is easier than solving: the asymmetry MAE's judge lends
the solver.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Optional

PROPOSE = "Propose:"
PROPOSE_LIKE = "Propose like {reference}:"
SOLVE = "Solve: {question}"
RATE = "Rate: {question}"
JUDGE = "Judge: {question} {response}"

ROLES = ("proposer", "solver", "judge")
PROPOSER, SOLVER, JUDGE_ROLE = range(3)
QUESTION_TAG, ANSWER_TAG, SCORE_TAG = "question", "answer", "score"
MIN_SCORE, MAX_SCORE = 1, 10
RIGHT_SCORE, WRONG_SCORE = MAX_SCORE, MIN_SCORE

_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d+)?\s*$")


def tagged(content: str, tag: str) -> str:
  return f"<{tag}>{content}</{tag}>"


def tag_pairs(text: str, tag: str) -> Optional[list[str]]:
  """The contents of the ``<tag>…</tag>`` pairs of ``text`` in order, or None when its
  tags are not balanced (a close before its open, a nested open, an open never
  closed)."""
  opening, closing = f"<{tag}>", f"</{tag}>"
  contents, position = [], 0
  while True:
    start, close = text.find(opening, position), text.find(closing, position)
    if start < 0:
      return contents if close < 0 else None
    if close < start:
      return None
    following = text.find(opening, start + len(opening))
    if close < 0 or 0 <= following < close:
      return None
    contents.append(text[start + len(opening):close])
    position = close + len(closing)


def format_score(text: str, tag: str, expected: int = 1) -> float:
  """MAE's format reward f: 1.0 for exactly ``expected`` balanced ``tag`` pairs, 0.5 for
  more (balanced), else 0."""
  pairs = tag_pairs(text, tag)
  if pairs is None or len(pairs) < expected:
    return 0.0
  return 1.0 if len(pairs) == expected else 0.5


def first_tagged(text: str, tag: str) -> Optional[str]:
  """The stripped content of the first balanced ``tag`` pair, or None (no pair, an empty
  one, or unbalanced tags)."""
  pairs = tag_pairs(text, tag)
  return (pairs[0].strip() or None) if pairs else None


def judge_value(text: str) -> Optional[float]:
  """v = clip((X − 1)/9, 0, 1) of the last ``<score>X</score>`` (arXiv 2510.23595), or
  None when the judge wrote no score tag or its content is not a number."""
  pairs = re.findall(r"<score>(.*?)</score>", text, re.DOTALL)
  if not pairs or not _NUMBER.match(pairs[-1]):
    return None
  value = (float(pairs[-1]) - MIN_SCORE) / (MAX_SCORE - MIN_SCORE)
  return min(max(value, 0.0), 1.0)


# -------------------------------------------------------------------- role prompts


def proposer_prompt(reference: Optional[str] = None) -> str:
  return PROPOSE if reference is None else PROPOSE_LIKE.format(reference=reference)


def solver_prompt(question: str) -> str:
  return SOLVE.format(question=question)


def rate_prompt(question: str) -> str:
  return RATE.format(question=question)


def judge_prompt(question: str, response: str) -> str:
  return JUDGE.format(question=question, response=response)


def fitted(render, fields: Mapping[str, str], fits) -> str:
  """``render(**fields)``, its longest field cut by a tenth (at least one character) until
  ``fits(text)``: a proposed question or a solver's response can run to the token budget,
  the judge's prompt around it must not."""
  fields = dict(fields)
  while not fits(text := render(**fields)):
    longest = max(fields, key=lambda k: len(fields[k]), default=None)
    if longest is None or not fields[longest]:
      raise ValueError(f"the prompt {text!r} does not fit its budget even with empty fields")
    fields[longest] = fields[longest][:len(fields[longest]) - max(1, len(fields[longest]) // 10)]
  return text


# --------------------------------------------------------------- the toy domain: sums

MIN_TERMS, MAX_TERMS = 2, 5
_SUM = re.compile(r"^\d(\+\d)+$")


def sum_question(rng: random.Random, terms: int) -> str:
  return "+".join(str(rng.randrange(10)) for _ in range(terms))


def sum_terms(question: str) -> Optional[float]:
  """The difficulty of a sum question: its number of single-digit terms; None when the
  text is not such a sum."""
  return float(question.count("+") + 1) if _SUM.match(question.strip()) else None


# The log's task-specific difficulty of a proposed question (``mae.difficulty``): None
# for a question the figure does not apply to.
DIFFICULTY_FIGURES = {"sum_terms": sum_terms}


def well_formed_sum(question: str) -> bool:
  """A sum of MIN_TERMS..MAX_TERMS single digits: what the judge rates as a good
  question."""
  terms = sum_terms(question)
  return terms is not None and MIN_TERMS <= terms <= MAX_TERMS


def sum_value(question: str) -> int:
  return sum(int(term) for term in question.strip().split("+"))


def judge_reasoning(question: str, claimed: int) -> str:
  """The judge's check before its score: the terms taken from the answer it judges one
  by one ("15-5=10 10-2=8 8-7=1"); the answer is right when nothing is left (= 0), so
  the score is read off the last number rather than found by comparing two."""
  left, steps = claimed, []
  for term in (int(t) for t in question.strip().split("+")):
    steps.append(f"{left}-{term}={left - term}")
    left -= term
  return " ".join(steps)


def malformed_sum(rng: random.Random) -> str:
  """A question the judge rates low: too many or too few terms, a missing or doubled
  operator, a number of several digits, a stray word."""
  good = sum_question(rng, rng.randint(MIN_TERMS, MAX_TERMS))
  kind = rng.randrange(6)
  if kind == 0:
    return sum_question(rng, rng.randint(MAX_TERMS + 1, MAX_TERMS + 3))
  if kind == 1:
    return str(rng.randrange(10))
  if kind == 2:
    return good + "+"
  if kind == 3:
    return good.replace("+", "++", 1)
  if kind == 4:
    return good.replace("+", "", 1)
  return good + " " + rng.choice(["yes", "sum", "what", "and"])


def role_documents(rng: random.Random, count: int, *, solver_error: float,
                   exclude: frozenset[str] = frozenset()) -> list[str]:
  """``count`` role-formatted documents ("prompt\\nresponse"), a quarter per kind:
  proposals (half with a reference question), quality ratings (half of malformed
  questions), solver answers (wrong, off by 1 to 3, with probability ``solver_error``),
  and judgements of answers (half of them wrong), whose reasoning takes the terms from
  the answer (``judge_reasoning``). No
  well-formed question of ``exclude`` occurs."""
  def question() -> str:
    while (q := sum_question(rng, rng.randint(MIN_TERMS, MAX_TERMS))) in exclude:
      pass
    return q

  def answer(q: str, wrong: bool) -> int:
    return sum_value(q) + (rng.choice([-3, -2, -1, 1, 2, 3]) if wrong else 0)

  docs = []
  for i in range(count):
    kind = i % 4
    if kind == 0:
      reference = question() if rng.random() < 0.5 else None
      docs.append(f"{proposer_prompt(reference)}\n{tagged(question(), QUESTION_TAG)}")
    elif kind == 1:
      good = rng.random() < 0.5
      q = question() if good else malformed_sum(rng)
      reason = "good" if good else "bad"
      score = RIGHT_SCORE if good else WRONG_SCORE
      docs.append(f"{rate_prompt(q)}\n{reason} {tagged(str(score), SCORE_TAG)}")
    elif kind == 2:
      q = question()
      value = answer(q, rng.random() < solver_error)
      docs.append(f"{solver_prompt(q)}\n{tagged(str(value), ANSWER_TAG)}")
    else:
      q = question()
      right = rng.random() < 0.5
      claimed = answer(q, not right)
      score = RIGHT_SCORE if right else WRONG_SCORE
      docs.append(f"{judge_prompt(q, tagged(str(claimed), ANSWER_TAG))}\n"
                  f"{judge_reasoning(q, claimed)} {tagged(str(score), SCORE_TAG)}")
  return docs
