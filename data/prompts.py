"""Prompts of task records, shared by evaluation and RL: one builder, three templates.

A record is a dict with ``question``, ``answer`` (an option letter for 'mcq'), optionally
``kind`` ('mcq', 'open' or 'math'; another kind with ``options`` is multiple choice,
``answers.record_kind``) and, for 'mcq', ``options`` (option texts).

Templates (``prompt_ids``):
  text        the question and a newline, no chat markup: how a pretrained model saw
              the shipped reasoning corpus; generation stops at eos.
  chat        the question as the user turn of the chat template (``data/chat.py``),
              with the reasoning toggle as system prompt; stops at end of turn.
  crossthink  Nemotron-CrossThink (arXiv 2504.13941): the multiple-choice or open-ended
              instruction asking for the answer in ``\\boxed{}`` as the user turn.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Optional

from data import answers
from data import chat
from data import tokenizer as tokenizer_lib

TEMPLATES = ("text", "chat", "crossthink")
# The reasoning toggle as run configs write it: the system prompt "detailed thinking on",
# "detailed thinking off", or no system prompt.
THINKING = {"on": True, "off": False, "": None}

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
  """The templated question of an example: multiple choice when it is checked as one
  (``answers.record_kind``: kind 'mcq', or options with a kind of its own), else
  open-ended."""
  if answers.record_kind(example) == "mcq":
    return multiple_choice_prompt(example["question"], list(example["options"]))
  return open_ended_prompt(example["question"])


def open_ended_drop_reason(question: str, answer: str) -> Optional[str]:
  """Why a question with this answer makes no open-ended item (CrossThink's filters):
  'needs_options' when the question only makes sense with its options ("which of the
  following"), 'long_answer' when the answer is over ``MAX_OPEN_ANSWER_WORDS`` words;
  None when it makes one."""
  if _OPTION_DEPENDENT.search(question):
    return "needs_options"
  if len(answer.split()) > MAX_OPEN_ANSWER_WORDS:
    return "long_answer"
  return None


def to_open_ended(example: Mapping) -> Optional[dict]:
  """The open-ended form of a multiple-choice example (options removed, the gold
  option's text as answer), or None when ``open_ended_drop_reason`` names a reason."""
  if example["kind"] != "mcq":
    raise ValueError(f"to_open_ended converts 'mcq' examples, got {example['kind']!r}")
  letters = option_letters(len(example["options"]))
  if example["answer"] not in letters:
    raise ValueError(f"answer {example['answer']!r} is not one of the options {letters}")
  answer = example["options"][letters.index(example["answer"])]
  if open_ended_drop_reason(example["question"], answer) is not None:
    return None
  return {"kind": "open", "question": example["question"], "answer": answer}


def prompt_ids(record: Mapping, tokenizer: tokenizer_lib.Tokenizer, *, template: str,
               thinking: str = "") -> list[int]:
  """Token ids of the generation prompt of a record under ``template``; ``thinking``:
  'on', 'off' or '' (the reasoning toggle of chat templates)."""
  if thinking not in THINKING:
    raise ValueError(f"thinking={thinking!r}: want one of {sorted(THINKING)}")
  if template == "text":
    return tokenizer.encode(record["question"] + "\n")
  if template == "chat":
    return chat.prompt_ids(record["question"], tokenizer, thinking=THINKING[thinking])
  if template == "crossthink":
    return chat.prompt_ids(prompt_text(record), tokenizer, thinking=THINKING[thinking])
  raise ValueError(f"prompt template {template!r}: want one of {TEMPLATES}")


def stop_token_ids(tokenizer: tokenizer_lib.Tokenizer, template: str) -> tuple[int, ...]:
  """The ids that end a completion of a ``template`` prompt."""
  return (tokenizer.eos_id,) if template == "text" else chat.stop_token_ids(tokenizer)
