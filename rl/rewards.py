"""Verifiable rewards: registered pure functions ``reward(completion, example) -> float``.

``completion`` is the decoded generation (special tokens written out, e.g.
``"<think>…</think>\\boxed{7}<|end|>"``); ``example`` is the task record, with at least
``answer`` and, for ``crossthink``, ``kind`` in {'mcq', 'open', 'math'}.

Final answers are read from the last ``\\boxed{…}``, else from the text after the last
``</think>`` (see ``final_answer``). Math answers are compared with sympy after a
conservative LaTeX normalisation; only a whitelisted expression grammar is ever parsed
(model output is untrusted). ``math-verify`` would cover more LaTeX; sympy suffices for
the procedural tasks here.

``score(reward_weights, completions, examples)`` runs the chosen rewards on the host and
raises ``RewardError`` naming the reward and the sample if one of them fails.
"""

from __future__ import annotations

import re
import string
import tokenize
from collections.abc import Mapping, Sequence
from typing import Callable, Optional

import numpy as np
import sympy
from sympy.parsing import sympy_parser

from data import tokenizer as tokenizer_lib
from rl.registry import Registry

RewardFn = Callable[[str, Mapping], float]
REWARDS: Registry[RewardFn] = Registry("reward")

_TRAILING_MARKERS = (tokenizer_lib.END_OF_TURN, "</s>", "<eos>")


class RewardError(RuntimeError):
  """A reward function raised; the message names the reward, sample and completion."""


# ------------------------------------------------------------------- answer extraction


def last_boxed(text: str) -> Optional[str]:
  """Content of the last ``\\boxed{...}`` (nested braces allowed), or None."""
  start = text.rfind("\\boxed{")
  if start < 0:
    return None
  depth, begin = 0, start + len("\\boxed{")
  for i in range(begin, len(text)):
    if text[i] == "{":
      depth += 1
    elif text[i] == "}":
      if depth == 0:
        return text[begin:i]
      depth -= 1
  return None


def final_answer(completion: str) -> str:
  """The boxed answer if any, else the text after the last ``</think>``, stripped."""
  boxed = last_boxed(completion)
  if boxed is not None:
    return boxed.strip()
  answer = completion.rsplit(tokenizer_lib.THINK_END, 1)[-1]
  for marker in _TRAILING_MARKERS:
    answer = answer.split(marker, 1)[0]
  return answer.strip()


# ------------------------------------------------------------------- math equivalence

_LATEX_REWRITES = (
    (r"\\left|\\right|\\!|\\,|\\;|\\quad|\$", ""),
    (r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)"),
    (r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)"),
    (r"\\cdot|\\times", "*"),
    (r"\\pi", "pi"),
    (r"\^", "**"),
)
_SAFE_EXPRESSION = re.compile(r"^[0-9a-z+\-*/(). ]+$")
_IDENTIFIER = re.compile(r"[a-z]+")
_ALLOWED_NAMES = {"sqrt": sympy.sqrt, "pi": sympy.pi, "e": sympy.E}
_PARSER_GLOBALS = {"Integer": sympy.Integer, "Float": sympy.Float, "Rational": sympy.Rational,
                   "Symbol": sympy.Symbol, "__builtins__": {}}
_TRANSFORMS = sympy_parser.standard_transformations + (sympy_parser.implicit_multiplication,)


def _normalize(answer: str) -> str:
  text = answer.strip().rstrip(".").lower()
  text = re.sub(r"^[a-z]\s*=\s*", "", text)                     # "x = 5" → "5"
  if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):
    text = text.replace(",", "")                                # 1,000 → 1000
  for pattern, replacement in _LATEX_REWRITES:
    text = re.sub(pattern, replacement, text)
  return text.replace("{", "(").replace("}", ")").replace(" ", "")


def _safe_sympy(text: str) -> Optional[sympy.Expr]:
  """A sympy expression for whitelisted arithmetic, or None (never evaluates other text)."""
  if not text or len(text) > 200 or not _SAFE_EXPRESSION.match(text):
    return None
  if re.search(r"(?<!\d)\.|\.(?!\d)", text):                    # attribute access
    return None
  if any(len(name) > 1 and name not in _ALLOWED_NAMES for name in _IDENTIFIER.findall(text)):
    return None
  if re.search(r"\d{40}", text) or text.count("**") > 2 or any(
      float(p) > 64 for p in re.findall(r"\*\*\(?(\d+(?:\.\d+)?)", text)):
    return None                                                 # no huge powers
  names = dict(_ALLOWED_NAMES)
  names.update({c: sympy.Symbol(c) for c in string.ascii_lowercase if c not in names})
  try:
    expression = sympy_parser.parse_expr(text, local_dict=names,
                                         global_dict=dict(_PARSER_GLOBALS),
                                         transformations=_TRANSFORMS, evaluate=True)
  except (SyntaxError, TypeError, ValueError, AttributeError, NameError, ZeroDivisionError,
          sympy.SympifyError, tokenize.TokenError):
    return None
  return expression if isinstance(expression, sympy.Basic) else None



def math_equal(prediction: str, reference: str) -> bool:
  """True when the answers are equal as strings after normalisation or symbolically."""
  a, b = _normalize(prediction), _normalize(reference)
  if not a or not b:
    return False
  if a == b:
    return True
  x, y = _safe_sympy(a), _safe_sympy(b)
  if x is None or y is None:
    return False
  try:
    return bool(sympy.simplify(x - y) == 0)
  except (TypeError, ValueError, AttributeError, RecursionError):
    return False


# ---------------------------------------------------------------- text answers, letters


def normalize_text(answer: str) -> str:
  """Lower case, no punctuation, no articles, single spaces (open-ended exact match)."""
  text = answer.lower()
  text = "".join(c for c in text if c not in string.punctuation)
  text = re.sub(r"\b(a|an|the)\b", " ", text)
  return " ".join(text.split())


def choice_letter(answer: str) -> Optional[str]:
  """The first standalone option letter A–J in an answer like 'B', '(C)' or 'D. Paris'."""
  match = re.search(r"(?<![A-Za-z])([A-J])(?![A-Za-z])", answer)
  return match.group(1) if match else None


# --------------------------------------------------------------------------- rewards


@REWARDS.register("math")
def math_reward(completion: str, example: Mapping) -> float:
  """1 if the final answer equals ``example['answer']`` symbolically, else 0."""
  return float(math_equal(final_answer(completion), str(example["answer"])))


@REWARDS.register("multiple_choice")
def multiple_choice_reward(completion: str, example: Mapping) -> float:
  """1 if the final answer's option letter is ``example['answer']`` (a letter), else 0."""
  return float(choice_letter(final_answer(completion)) == str(example["answer"]).strip())


@REWARDS.register("open_ended")
def open_ended_reward(completion: str, example: Mapping) -> float:
  """1 if the final answer equals ``example['answer']`` after ``normalize_text``."""
  answer = normalize_text(final_answer(completion))
  return float(bool(answer) and answer == normalize_text(str(example["answer"])))


@REWARDS.register("format")
def format_reward(completion: str, example: Mapping) -> float:
  """1 for one ``\\boxed{}`` answer after balanced thinking tags, else 0 (CrossThink)."""
  del example
  opens = completion.count(tokenizer_lib.THINK_START)
  closes = completion.count(tokenizer_lib.THINK_END)
  after_thinking = completion.rsplit(tokenizer_lib.THINK_END, 1)[-1]
  return float(opens == closes <= 1 and completion.count("\\boxed{") == 1
               and last_boxed(after_thinking) is not None)


_ACCURACY_BY_KIND = {"mcq": multiple_choice_reward, "open": open_ended_reward,
                     "math": math_reward}


@REWARDS.register("crossthink")
def crossthink_reward(completion: str, example: Mapping) -> float:
  """Nemotron-CrossThink (methods.md §3): R = R_acc AND R_format, R_acc by
  ``example['kind']``: letter match (mcq), normalised exact match (open), sympy (math)."""
  kind = example["kind"]
  if kind not in _ACCURACY_BY_KIND:
    raise ValueError(f"example kind {kind!r}: want one of {sorted(_ACCURACY_BY_KIND)}")
  return float(_ACCURACY_BY_KIND[kind](completion, example) > 0
               and format_reward(completion, example) > 0)


def score(reward_weights: Mapping[str, float], completions: Sequence[str],
          examples: Sequence[Mapping]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """(Σ_k w_k·reward_k per completion (n,) float32, {name: unweighted reward_k (n,)}).

  Raises RewardError if a reward raises or returns a non-finite value.
  """
  if len(completions) != len(examples):
    raise ValueError(f"{len(completions)} completions but {len(examples)} examples")
  if not reward_weights:
    raise ValueError("no rewards configured")
  parts = {}
  for name, weight in reward_weights.items():
    fn = REWARDS.get(name)
    values = np.zeros(len(completions), np.float32)
    for i, (completion, example) in enumerate(zip(completions, examples)):
      try:
        values[i] = fn(completion, example)
      except Exception as e:  # any failure of user code: report which one, keep state.
        raise RewardError(f"reward {name!r} raised {type(e).__name__}: {e} on sample {i} "
                          f"(completion {completion[:80]!r})") from e
      if not np.isfinite(values[i]):
        raise RewardError(f"reward {name!r} returned {values[i]} on sample {i}")
    parts[name] = values
  total = sum(np.float32(w) * parts[name] for name, w in reward_weights.items())
  return total.astype(np.float32), parts
