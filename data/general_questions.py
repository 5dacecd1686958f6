r"""General-purpose (non-math) questions from small fact tables, for the CrossThink claim.

Nemotron-CrossThink (arXiv 2504.13941) blends math with general-purpose questions,
multiple-choice and open-ended, for RL. A 0.9M-parameter model knows no world facts, so
here the "world" is a few fixed tables (``CATEGORIES``, ``ANTONYMS``, ``SIZES``,
``ORDERS``) that the pretraining text states (``fact_document``: "A robin is a bird.",
"The opposite of hot is cold.", "A horse is bigger than a dog.", "After Monday comes
Tuesday."), and the questions ask about them. Families (``FAMILIES``):

  category_choice   "Which is a bird: oak or robin?"           (2 options)
  category_name     "What kind of thing is a robin?" → "bird"  (4 options)
  antonym           "What is the opposite of hot?" → "cold"    (4 options)
  bigger            "Which is bigger: dog or horse?"           (2 options)
  next_in_order     "What comes after Monday?" → "Tuesday"     (4 options)

Every question is made multiple-choice first (``{kind: 'mcq', question, options,
answer: letter}``); its open-ended form is ``data.prompts.to_open_ended`` (the question
names the options of the two-option families, so it stands alone). ``instances(family)``
lists every question of a family with a ``key`` (the fact or unordered pair it asks
about), so held-out questions can be split off by key: a held-out key is never asked in
training, only stated in the pretraining text. ``math_question`` is the math side of the
blend ("What is 13 + 4?").
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from data import prompts

CATEGORIES = {
    "bird": ("robin", "eagle", "owl", "crow", "duck", "swan"),
    "fish": ("salmon", "trout", "shark", "cod", "tuna", "carp"),
    "tree": ("oak", "pine", "elm", "birch", "maple", "willow"),
    "fruit": ("apple", "pear", "plum", "mango", "lemon", "cherry"),
    "tool": ("hammer", "saw", "drill", "wrench", "chisel", "shovel"),
    "vehicle": ("car", "bus", "truck", "train", "boat", "bicycle"),
    "instrument": ("piano", "violin", "drum", "flute", "guitar", "harp"),
}
ANTONYMS = (("hot", "cold"), ("big", "small"), ("tall", "short"), ("fast", "slow"),
            ("wet", "dry"), ("happy", "sad"), ("old", "young"), ("hard", "soft"),
            ("loud", "quiet"), ("early", "late"), ("full", "empty"), ("rich", "poor"),
            ("strong", "weak"), ("open", "closed"), ("clean", "dirty"), ("thick", "thin"),
            ("high", "low"), ("near", "far"), ("sweet", "sour"), ("light", "dark"))
SIZES = ("ant", "mouse", "rabbit", "cat", "dog", "sheep", "horse", "camel", "elephant",
         "whale")   # smallest first
ORDERS = (("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
          ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"))   # cyclic
NUM_OPTIONS = 4   # of the families that are not a choice between two named things


def _article(word: str) -> str:
  return "an" if word[0] in "aeiou" else "a"


def facts() -> list[str]:
  """Every fact of the tables as a sentence (sizes both ways)."""
  out = [f"{_article(m).capitalize()} {m} is {_article(c)} {c}."
         for c, members in CATEGORIES.items() for m in members]
  out += [f"The opposite of {a} is {b}." for pair in ANTONYMS for a, b in (pair, pair[::-1])]
  for i, j in itertools.combinations(range(len(SIZES)), 2):
    small, big = SIZES[i], SIZES[j]
    out += [f"{_article(big).capitalize()} {big} is bigger than {_article(small)} {small}.",
            f"{_article(small).capitalize()} {small} is smaller than {_article(big)} {big}."]
  out += [f"After {order[i]} comes {order[(i + 1) % len(order)]}."
          for order in ORDERS for i in range(len(order))]
  return out


def fact_document(rng: random.Random, count: int) -> str:
  """``count`` distinct facts in random order, one per line."""
  return "\n".join(rng.sample(facts(), count))


def _mcq(question: str, options: list[str], answer: str) -> dict:
  return {"kind": "mcq", "question": question, "options": options,
          "answer": prompts.option_letters(len(options))[options.index(answer)]}


def _with_distractors(rng: random.Random, answer: str, pool: list[str]) -> list[str]:
  options = [answer] + rng.sample([w for w in pool if w != answer], NUM_OPTIONS - 1)
  rng.shuffle(options)
  return options


def _category_choice(rng: random.Random) -> list[tuple[str, dict]]:
  out = []
  for category, members in CATEGORIES.items():
    others = [m for c, ms in CATEGORIES.items() if c != category for m in ms]
    for member, other in itertools.product(members, others):
      for pair in ((member, other), (other, member)):
        out.append((f"{category}:{member}/{other}",
                    _mcq(f"Which is {_article(category)} {category}: {pair[0]} or {pair[1]}?",
                         list(pair), member)))
  return out


def _category_name(rng: random.Random) -> list[tuple[str, dict]]:
  return [(member, _mcq(f"What kind of thing is {_article(member)} {member}?",
                        _with_distractors(rng, category, list(CATEGORIES)), category))
          for category, members in CATEGORIES.items() for member in members]


def _antonym(rng: random.Random) -> list[tuple[str, dict]]:
  words = [w for pair in ANTONYMS for w in pair]
  return [("/".join(sorted(pair)), _mcq(f"What is the opposite of {a}?",
                                        _with_distractors(rng, b, words), b))
          for pair in ANTONYMS for a, b in (pair, pair[::-1])]


def _bigger(rng: random.Random) -> list[tuple[str, dict]]:
  del rng
  out = []
  for i, j in itertools.combinations(range(len(SIZES)), 2):
    for pair in ((SIZES[i], SIZES[j]), (SIZES[j], SIZES[i])):
      out.append((f"{SIZES[i]}/{SIZES[j]}",
                  _mcq(f"Which is bigger: {pair[0]} or {pair[1]}?", list(pair), SIZES[j])))
  return out


def _next_in_order(rng: random.Random) -> list[tuple[str, dict]]:
  return [(order[i], _mcq(f"What comes after {order[i]}?",
                          _with_distractors(rng, order[(i + 1) % len(order)], list(order)),
                          order[(i + 1) % len(order)]))
          for order in ORDERS for i in range(len(order))]


FAMILIES: dict[str, Callable[[random.Random], list[tuple[str, dict]]]] = {
    "category_choice": _category_choice, "category_name": _category_name,
    "antonym": _antonym, "bigger": _bigger, "next_in_order": _next_in_order}


def instances(family: str, rng: random.Random) -> list[tuple[str, dict]]:
  """Every question of ``family`` as (key, multiple-choice record); ``rng`` draws the
  distractors and their order."""
  return FAMILIES[family](rng)


def split(family: str, rng: random.Random, held_out: float
          ) -> tuple[list[dict], list[dict]]:
  """(training, held-out) multiple-choice records of ``family``: a ``held_out`` share of
  its keys, and every question about them, is held out."""
  pairs = instances(family, rng)
  keys = sorted({key for key, _ in pairs})
  rng.shuffle(keys)
  held = set(keys[:round(held_out * len(keys))])
  return ([r for k, r in pairs if k not in held], [r for k, r in pairs if k in held])


def math_question(rng: random.Random) -> dict:
  """A two-term sum, 'What is 13 + 4?' (kind 'math'), a < 20, b < 10."""
  a, b = rng.randrange(1, 20), rng.randrange(1, 10)
  return {"kind": "math", "question": f"What is {a} + {b}?", "answer": str(a + b)}


def render(record: dict, open_ended: bool) -> dict:
  """The record as asked: multiple-choice as it is, or its open-ended form."""
  return prompts.to_open_ended(record) if open_ended else record


def boxed(answer: str) -> str:
  """``\\boxed{ answer}``, with a space: the 1024-piece tokenizer splits a word after
  "{" into other pieces than after a space, so with the space the answer's tokens are
  those of the word in running text (the checkers strip it, ``data/answers.py``)."""
  return f"\\boxed{{ {answer}}}"


def sft_record(record: dict) -> dict:
  """A CrossThink SFT conversation: the templated question (``prompts.prompt_text``),
  answered with the bare ``boxed`` answer."""
  return {"question": prompts.prompt_text(record), "solution": boxed(record["answer"]),
          "answer": record["answer"]}
