r"""GenSelect (AIMO-2's winning recipe, arXiv 2504.16891, §GenSelect): a model picks the
right one of n candidate solutions from their summaries.

The k candidate solutions of a problem are summarised (``summary``); a selector prompt
(``selector_prompt``) lists n of them, numbered 0..n-1, and asks which is right; the
selector's reply ends in ``Judgment: IDX`` (``parse_judgment``). A problem gets several
selection rounds, each over its own random ordered subset of the candidates
(``candidate_subsets``: the paper samples the subsets and their order, so no candidate
owes its choice to its position), and the final answers of the selected candidates are
majority-voted by the checker's equivalence (``genselect_vote``,
``data.answers.majority_vote``).

Summaries: the paper has an LLM (Qwen2.5-32B-Instruct) summarise each solution. Here a
summary is deterministic and needs no model: the solution's last reasoning lines
(``<think>`` tags dropped, whole lines, newest kept, up to ``SUMMARY_CHARS`` characters)
followed by a final ``Answer: ...`` line with its final answer
(``data.answers.final_answer``). The end of a solution is where it computes and states
its answer, which is what a selector compares.

Selector training data (``selector_records``): from our own samples of a problem with at
least one right and one wrong solution, selector prompts over subsets holding both, the
target reply ``Judgment: i`` naming a right candidate, as the SFT loop's
question/answer records (``train/sft.py``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Optional

from data import answers
from data import prompts as prompts_lib
from data import tokenizer as tokenizer_lib

SUMMARY_CHARS = 400          # a summary's length budget (the answer line included)
JUDGMENT = "Judgment:"
INSTRUCTION = (
    "Compare the solutions and decide which one is correct. The last line of your reply "
    "must be \"Judgment: IDX\", where IDX is the number of the correct solution "
    "(0 to {last}).")
_JUDGMENT = re.compile(r"Judgment:\**[ \t]*\[?[ \t]*(-?\d+)(?!\.?\d)")


def summary(solution: str, max_chars: int = SUMMARY_CHARS) -> str:
  """The solution's last reasoning lines and its final answer, at most ``max_chars``
  characters (see the module docstring): always ends with ``Answer: <final answer>``
  (an answer too long for the budget is cut, ending in "…")."""
  final = answers.final_answer(solution)
  answer_room = max(1, max_chars - len(answers.ANSWER_PREFIX))
  if len(final) > answer_room:
    final = final[:answer_room - 1] + "…"
  last = answers.ANSWER_PREFIX + final
  text = solution
  for marker in answers.END_OF_TURN_MARKERS:
    text = text.split(marker, 1)[0]
  text = text.replace(tokenizer_lib.THINK_START, "\n").replace(tokenizer_lib.THINK_END, "\n")
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  if lines and lines[-1] == last:
    lines.pop()
  room = max_chars - len(last)
  kept: list[str] = []
  for line in reversed(lines):
    if len(line) + 1 > room:
      if not kept and room > 2:   # not one whole line fits: the end of the last one
        kept.append("…" + line[len(line) - room + 2:])
      break
    kept.append(line)
    room -= len(line) + 1
  return "\n".join([*reversed(kept), last])


def problem_text(record: Mapping) -> str:
  """The problem as a selector sees it: the question, and a multiple-choice record's
  lettered options (its candidates answer with letters)."""
  if answers.record_kind(record) != "mcq" or "options" not in record:
    return str(record["question"])
  options = [f"{letter}. {option}" for letter, option in
             zip(prompts_lib.option_letters(len(record["options"])), record["options"])]
  return f"{record['question']}\nOptions:\n" + "\n".join(options)


def selector_prompt(question: str, summaries: Sequence[str]) -> str:
  """The selector's question: the problem, the summaries numbered 0..n-1, and the
  instruction to end with ``Judgment: IDX``."""
  if not summaries:
    raise ValueError("a selector prompt needs at least one candidate")
  parts = [f"Here is a problem and {len(summaries)} candidate solutions, each summarised.",
           f"Problem:\n{question}"]
  parts += [f"Solution {i}:\n{text}" for i, text in enumerate(summaries)]
  parts.append(INSTRUCTION.format(last=len(summaries) - 1))
  return "\n\n".join(parts)


def parse_judgment(reply: str, n: int) -> Optional[int]:
  """The index of the reply's last ``Judgment:`` (``Judgment: 2``, ``Judgment: [2]``,
  ``**Judgment:** 2``): None when there is none, when the last one is not followed by a
  whole number, or when that number is outside [0, n). An earlier judgment does not
  stand in for an invalid last one: the last is the selector's decision."""
  start = reply.rfind(JUDGMENT)
  if start < 0:
    return None
  match = _JUDGMENT.match(reply, start)
  if match is None:
    return None
  index = int(match.group(1))
  return index if 0 <= index < n else None


def candidate_subsets(k: int, n: int, rounds: int, rng: random.Random) -> list[list[int]]:
  """For each of ``rounds`` selections, the ordered candidates (indices into the k) it
  sees: n distinct ones in a random order (``random.Random``, so a seed gives the same
  subsets on every process)."""
  if not 1 <= n <= k:
    raise ValueError(f"GenSelect shows n of k candidates: need 1 <= n <= k, got n={n} k={k}")
  if rounds < 1:
    raise ValueError(f"GenSelect needs at least one round, got {rounds}")
  return [rng.sample(range(k), n) for _ in range(rounds)]


class Vote(NamedTuple):
  """GenSelect's verdict on one problem: ``choice`` the index of a candidate carrying the
  chosen answer (None: no answer at all), ``invalid`` the rounds without a valid
  judgment, ``fallback`` whether no round was valid and maj@k over all candidates chose."""
  choice: Optional[int]
  invalid: int
  fallback: bool


def genselect_vote(candidates: Sequence[str], subsets: Sequence[Sequence[int]],
                   replies: Sequence[str], record: Mapping) -> Vote:
  """Combines the rounds of one problem: round r showed ``candidates[j] for j in
  subsets[r]`` and the selector replied ``replies[r]``. The selected candidates' final
  answers are majority-voted by ``record``'s checker (``answers.majority_vote``; ties: the
  first round's); rounds without a valid judgment do not vote. If no round is valid, maj@k
  over every candidate decides (``fallback``)."""
  if len(subsets) != len(replies):
    raise ValueError(f"{len(subsets)} rounds but {len(replies)} replies")
  selected = []
  for subset, reply in zip(subsets, replies):
    index = parse_judgment(reply, len(subset))
    if index is not None:
      selected.append(subset[index])
  invalid = len(subsets) - len(selected)
  pool, fallback = (selected, False) if selected else (list(range(len(candidates))), True)
  vote = answers.majority_vote([answers.final_answer(candidates[j]) for j in pool], record)
  return Vote(None if vote is None else pool[vote], invalid, fallback)


def selector_records(question: str, solutions: Sequence[str], verdicts: Sequence[bool],
                     n: int, rng: random.Random, *, rounds: int = 1,
                     max_chars: int = SUMMARY_CHARS,
                     meta: Optional[Mapping[str, Any]] = None) -> list[dict]:
  """Selector SFT records from one problem's sampled ``solutions`` and their
  ``verdicts`` (right or wrong): none unless at least one is right and one wrong. Each of
  ``rounds`` records shows n candidates, at least one right and one wrong (the others
  drawn from the rest), in a random order; its reply ``Judgment: i`` names a right one
  (drawn among the right ones shown). Records: {"question": the selector prompt,
  "answer": "Judgment: i", "provenance": {"candidates": sample indices shown, "right":
  the positions of right ones, **meta}}; identical subsets are written once."""
  if len(solutions) != len(verdicts):
    raise ValueError(f"{len(solutions)} solutions but {len(verdicts)} verdicts")
  if not 2 <= n <= len(solutions):
    raise ValueError(f"a selector record shows n of the {len(solutions)} solutions with "
                     f"a right and a wrong one: need 2 <= n <= {len(solutions)}, got {n}")
  right = [j for j, verdict in enumerate(verdicts) if verdict]
  wrong = [j for j, verdict in enumerate(verdicts) if not verdict]
  if not right or not wrong:
    return []
  summaries = [summary(s, max_chars) for s in solutions]
  records, seen = [], set()
  for _ in range(rounds):
    shown = [rng.choice(right), rng.choice(wrong)]
    shown += rng.sample([j for j in range(len(solutions)) if j not in shown], n - 2)
    rng.shuffle(shown)
    if tuple(shown) in seen:
      continue
    seen.add(tuple(shown))
    positions = [i for i, j in enumerate(shown) if verdicts[j]]
    target = rng.choice(positions)
    records.append({
        "question": selector_prompt(question, [summaries[j] for j in shown]),
        "answer": f"{JUDGMENT} {target}",
        "provenance": {"candidates": shown, "right": positions, **(meta or {})}})
  return records
