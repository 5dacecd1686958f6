"""A procedural verifiable task for RL tests and the CPU defaults: small sums.

``small_sums(max_a, max_b)`` lists every ``{'kind': 'math', 'question': 'a+b=',
'answer': 'a+b'}`` with 0 <= a <= max_a, 0 <= b <= max_b; ``split`` holds out a fixed,
seeded share for evaluation; ``chat_records`` turns examples into SFT records.
"""

from __future__ import annotations

import random

from rl import chat


def small_sums(max_a: int, max_b: int) -> list[dict[str, str]]:
  return [{"kind": "math", "question": f"{a}+{b}=", "answer": str(a + b)}
          for a in range(max_a + 1) for b in range(max_b + 1)]


def split(examples: list, held_out_fraction: float, seed: int = 0) -> tuple[list, list]:
  """(train, held_out): a seeded shuffle, the last fraction held out."""
  shuffled = list(examples)
  random.Random(seed).shuffle(shuffled)
  cut = len(shuffled) - max(1, int(round(held_out_fraction * len(shuffled))))
  return shuffled[:cut], shuffled[cut:]


def chat_records(examples: list[dict]) -> list[dict]:
  """SFT records (``{'messages': ...}``): the question answered directly."""
  return [{"messages": chat.conversation(e["question"], answer=e["answer"])} for e in examples]
