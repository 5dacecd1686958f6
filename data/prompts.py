"""Nemotron-CrossThink question templates (methods.md §3): multiple choice and open-ended.

An example is a dict with ``kind`` ('mcq', 'open' or 'math'), ``question``, ``answer``
(an option letter for 'mcq') and, for 'mcq', ``options`` (a list of option texts).
Both templates ask for the final answer in ``\\boxed{}``, which the ``crossthink``
reward checks (``rl/rewards.py``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Optional

MCQ_INSTRUCTION = ("Answer the following multiple-choice question. Think step by step, then "
                   "put the letter of the correct option in \\boxed{}.")
OPEN_INSTRUCTION = ("Answer the following question. Think step by step, then put the final "
                    "answer in \\boxed{}.")
# Questions that only make sense with their options (dropped from the open-ended form).
_OPTION_DEPENDENT = re.compile(
    r"which of the (following|these|above)|all of the above|none of the above|"
    r"\b(following|these) (options|choices|statements)", re.IGNORECASE)
# Short answers are kept for open-ended RL; the paper's exact cut is unverified (≲ 10 words).
MAX_OPEN_ANSWER_WORDS = 10


def option_letters(count: int) -> str:
  if not 1 <= count <= 10:
    raise ValueError(f"a multiple-choice question needs 1..10 options, got {count}")
  return string.ascii_uppercase[:count]


def multiple_choice_prompt(question: str, options: list[str]) -> str:
  lines = [f"{letter}. {option}" for letter, option in zip(option_letters(len(options)), options)]
  return f"{MCQ_INSTRUCTION}\n\nQuestion: {question}\nOptions:\n" + "\n".join(lines)


def open_ended_prompt(question: str) -> str:
  return f"{OPEN_INSTRUCTION}\n\nQuestion: {question}"


def prompt_text(example: Mapping) -> str:
  """The templated question of an example, by its kind."""
  if example["kind"] == "mcq":
    return multiple_choice_prompt(example["question"], list(example["options"]))
  if example["kind"] in ("open", "math"):
    return open_ended_prompt(example["question"])
  raise ValueError(f"example kind {example['kind']!r}: want 'mcq', 'open' or 'math'")


def to_open_ended(example: Mapping) -> Optional[dict]:
  """The open-ended form of a multiple-choice example (options removed, the gold
  option's text as answer), or None when the question needs its options or the answer
  is longer than ``MAX_OPEN_ANSWER_WORDS`` words."""
  if example["kind"] != "mcq":
    raise ValueError(f"to_open_ended converts 'mcq' examples, got {example['kind']!r}")
  letters = option_letters(len(example["options"]))
  if example["answer"] not in letters:
    raise ValueError(f"answer {example['answer']!r} is not one of the options {letters}")
  answer = example["options"][letters.index(example["answer"])]
  if _OPTION_DEPENDENT.search(example["question"]) or len(answer.split()) > MAX_OPEN_ANSWER_WORDS:
    return None
  return {"kind": "open", "question": example["question"], "answer": answer}
