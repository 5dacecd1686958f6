r"""Retro-Search's bookkeeping (Lu et al., arXiv 2504.04383), pure Python: how a reasoning
trace splits into thoughts and steps, the value of a continuation, and the revision of
one trace as the rollouts come back (the model's part: ``train/retro_search.py``).

A trace (a solution, the text after its prompt) is a list of **thoughts**: a new thought
begins at a line that starts with a switch word (``SWITCH_WORDS``: "Wait",
"Alternatively", "Hmm"; whole words, case-sensitive), the paper's markers of a switch
to another line of reasoning; the first thought begins at the start. Joined, the
thoughts are the trace. A text's **steps** are its blank-line separated paragraphs
(empty ones not counted).

The search (the paper's Algorithm 1, in our reading): for each thought i of the current
trace in order, except the last, the reviser continues the trace's first i+1 thoughts
(its first new step may not start with a switch word: ``train/retro_search.py`` bans
the tokens that begin them); the continuation's value is

  V = γ^(steps of the continuation) · 1[its final answer is the reference answer]

and it replaces the trace's remaining thoughts if its V is higher than theirs (the same
formula on the original suffix). Taken, the search goes on from the new trace at its
thought i, which now ends where the rollout itself switches (a switch not yet explored;
the first new step has no switch word, so the thought grew); not taken, at thought i+1.
It ends past the last thought. Every rollout taken has fewer steps than the suffix it
replaces, so the search ends.
The output is the shortest correct trace seen (the original, or one accepted); a trace
without a switch word (one thought) is returned as it is.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Optional

SWITCH_WORDS = ("Wait", "Alternatively", "Hmm")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def switch_pattern(switch_words: Sequence[str]) -> re.Pattern:
  """Where a new thought begins: a line (not the text's start) whose first word is one
  of ``switch_words``."""
  if not switch_words or not all(w.strip() == w and w for w in switch_words):
    raise ValueError(f"switch words {tuple(switch_words)!r}: want non-empty words "
                     "without surrounding spaces")
  words = "|".join(re.escape(w) for w in switch_words)
  return re.compile(rf"(?<=\n)[ \t]*(?:{words})\b")


def split_thoughts(trace: str, switch_words: Sequence[str] = SWITCH_WORDS) -> list[str]:
  """The thoughts of ``trace`` (see the module docstring); ``"".join`` gives it back."""
  starts = [0] + [m.start() for m in switch_pattern(switch_words).finditer(trace)]
  return [trace[a:b] for a, b in zip(starts, starts[1:] + [len(trace)]) if b > a] or [trace]


def split_steps(text: str) -> list[str]:
  """The blank-line separated steps of ``text`` (empty ones dropped)."""
  return [step for step in _BLANK_LINE.split(text) if step.strip()]


def value(text: str, correct: bool, gamma: float) -> float:
  """V = γ^(steps of ``text``) · 1[correct] (arXiv 2504.04383)."""
  if not 0 < gamma <= 1:
    raise ValueError(f"gamma={gamma}: must be in (0, 1]")
  return gamma ** len(split_steps(text)) if correct else 0.0


@dataclasses.dataclass
class Revision:
  """One trace under revision.

  original: the trace searched. trace: the current one (the original with every
  accepted rollout). thought: the thought the next rollout starts after. correct: is
  ``trace`` correct. rollouts, accepted: rollouts scored and taken. candidates: the
  correct traces seen (the original if correct, then each accepted one).
  """
  original: str
  trace: str
  correct: bool
  thought: int = 0
  rollouts: int = 0
  accepted: int = 0
  candidates: list[str] = dataclasses.field(default_factory=list)

  @classmethod
  def start(cls, trace: str, correct: bool) -> "Revision":
    return cls(original=trace, trace=trace, correct=correct,
               candidates=[trace] if correct else [])


def rollout_prefix(revision: Revision, switch_words: Sequence[str] = SWITCH_WORDS
                   ) -> Optional[str]:
  """The text the next rollout continues (the current trace's thoughts up to and
  including ``revision.thought``), or None once no thought follows it: done."""
  thoughts = split_thoughts(revision.trace, switch_words)
  if revision.thought + 1 >= len(thoughts):
    return None
  return "".join(thoughts[:revision.thought + 1])


def consider(revision: Revision, rollout: str, rollout_correct: bool, *, gamma: float,
             switch_words: Sequence[str] = SWITCH_WORDS) -> bool:
  """Scores the rollout continuing ``rollout_prefix(revision)`` against the trace's
  own suffix and takes it if its V is higher (the search stays at the thought, which
  now ends at the rollout's first switch), else moves on to the next thought. Returns
  whether it was taken."""
  prefix = rollout_prefix(revision, switch_words)
  if prefix is None:
    raise ValueError("the revision is done: no thought follows the current one")
  suffix = revision.trace[len(prefix):]
  revision.rollouts += 1
  taken = value(rollout, rollout_correct, gamma) > value(suffix, revision.correct, gamma)
  if taken:
    revision.trace, revision.correct = prefix + rollout, rollout_correct
    revision.accepted += 1
    if rollout_correct:
      revision.candidates.append(revision.trace)
  else:
    revision.thought += 1
  return taken


def result(revision: Revision, length: Callable[[str], int] = len) -> str:
  """The shortest correct trace seen by ``length`` (the first of equals: the original
  wins ties), or the original when none was correct."""
  if not revision.candidates:
    return revision.original
  return min(revision.candidates, key=length)
