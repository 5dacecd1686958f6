"""Verifiable rewards: registered pure functions ``reward(completion, example) -> float``.

``completion`` is the decoded generation (special tokens written out, e.g.
``"<think>…</think>\\boxed{7}<|end|>"``); ``example`` is the task record, with at least
``answer`` and, for ``crossthink``, ``kind`` in {'mcq', 'open', 'math'}. Answers are
extracted and checked by ``data.answers``, the code evaluation uses too.

``score(reward_weights, completions, examples)`` runs the chosen rewards on the host and
raises ``RewardError`` naming the reward and the sample if one of them fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Callable

import numpy as np

from data import answers
from data import tokenizer as tokenizer_lib
from train.errors import LoopError
from train.registry import Registry

RewardFn = Callable[[str, Mapping], float]
REWARDS: Registry[RewardFn] = Registry("reward")


class RewardError(LoopError):
  """A reward function raised; the message names the reward, sample and completion."""


@REWARDS.register("math")
def math_reward(completion: str, example: Mapping) -> float:
  """1 if the final answer equals ``example['answer']`` by ``answers.math_equal``
  (Math-Verify), else 0."""
  return float(answers.math_equal(answers.final_answer(completion), str(example["answer"])))


@REWARDS.register("multiple_choice")
def multiple_choice_reward(completion: str, example: Mapping) -> float:
  """1 if the final answer's option letter is ``example['answer']`` (a letter), else 0."""
  return float(answers.is_correct(completion, {"kind": "mcq", "answer": example["answer"]}))


@REWARDS.register("open_ended")
def open_ended_reward(completion: str, example: Mapping) -> float:
  """1 if the final answer equals ``example['answer']`` after ``normalize_text``."""
  return float(answers.is_correct(completion, {"kind": "open", "answer": example["answer"]}))


@REWARDS.register("format")
def format_reward(completion: str, example: Mapping) -> float:
  """1 for one ``\\boxed{}`` answer after balanced thinking tags, else 0 (CrossThink)."""
  del example
  opens = completion.count(tokenizer_lib.THINK_START)
  closes = completion.count(tokenizer_lib.THINK_END)
  after_thinking = completion.rsplit(tokenizer_lib.THINK_END, 1)[-1]
  return float(opens == closes <= 1 and completion.count("\\boxed{") == 1
               and answers.last_boxed(after_thinking) is not None)


@REWARDS.register("crossthink")
def crossthink_reward(completion: str, example: Mapping) -> float:
  """Nemotron-CrossThink (arXiv 2504.13941): R = R_acc AND R_format, R_acc by
  ``example['kind']``: letter match (mcq), normalised exact match (open), Math-Verify
  (math)."""
  kind = example["kind"]
  if kind not in answers.KINDS:
    raise ValueError(f"example kind {kind!r}: want one of {sorted(answers.KINDS)}")
  return float(answers.is_correct(completion, example)
               and format_reward(completion, example) > 0)


def score(reward_weights: Mapping[str, float], completions: Sequence[str],
          examples: Sequence[Mapping]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """(Σ_k w_k·reward_k per completion (n,) float32, {name: unweighted reward_k (n,)}).

  The completions are scored on ``answers.map_checks``' threads (Math-Verify checks in
  parallel worker processes), so a reward must be safe to call from several threads.
  Raises RewardError if a reward raises or returns a non-finite value.
  """
  if len(completions) != len(examples):
    raise ValueError(f"{len(completions)} completions but {len(examples)} examples")
  if not reward_weights:
    raise ValueError("no rewards configured")
  parts = {}
  for name, weight in reward_weights.items():
    fn = REWARDS.get(name)

    def value(i: int) -> np.float32:   # run (by map_checks) before the loop moves on
      try:
        result = np.float32(fn(completions[i], examples[i]))
      except Exception as e:  # any failure of user code: report which one, keep state.
        raise RewardError(f"reward {name!r} raised {type(e).__name__}: {e} on sample {i} "
                          f"(completion {completions[i][:80]!r})") from e
      if not np.isfinite(result):
        raise RewardError(f"reward {name!r} returned {result} on sample {i}")
      return result
    parts[name] = np.asarray(answers.map_checks(value, range(len(completions))), np.float32)
  total = sum(np.float32(w) * parts[name] for name, w in reward_weights.items())
  return total.astype(np.float32), parts
