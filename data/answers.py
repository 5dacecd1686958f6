"""Final answers: extraction from a completion and checking against a gold answer.

One place for the answer logic that evaluation (``train/evaluate.py``) and the RL rewards
(``rl/rewards.py``) share. A record is ``{question, answer[, options, kind]}`` with
``kind`` 'math' (default), 'mcq' (``answer`` is an option letter) or 'open' (free text
compared after normalisation).

Extraction (``final_answer``): the last ``\\boxed{...}``, else the text after the last
``</think>`` with end-of-turn markers cut. Math answers are compared with sympy after a
conservative LaTeX normalisation; only a whitelisted expression grammar is ever parsed
(model output is untrusted).
"""

from __future__ import annotations

import re
import string
import tokenize
from collections.abc import Mapping
from typing import Optional

import sympy
from sympy.parsing import sympy_parser

from data import tokenizer as tokenizer_lib

_TRAILING_MARKERS = (tokenizer_lib.END_OF_TURN, "</s>", "<eos>")
KINDS = ("math", "mcq", "open")


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


def is_correct(completion: str, record: Mapping) -> bool:
  """Whether the completion's final answer matches ``record['answer']`` by its kind."""
  kind = record_kind(record)
  gold = str(record["answer"])
  answer = final_answer(completion)
  if kind == "mcq":
    return choice_letter(answer) == gold.strip()
  if kind == "open":
    normalized = normalize_text(answer)
    return bool(normalized) and normalized == normalize_text(gold)
  return math_equal(answer, gold)


def record_kind(record: Mapping) -> str:
  """The record's checking kind: 'mcq', 'open', or 'math' for everything else."""
  kind = record.get("kind", "math")
  return kind if kind in KINDS else "math"
