"""Final answers: extraction from a completion and checking against a gold answer.

One place for the answer logic that evaluation and the RL rewards (``rl/rewards.py``)
share, and for the ``Answer: ...`` line the shipped corpus ends its solutions with
(``data/reasoning_tasks.py`` writes it with ``ANSWER_PREFIX``). A record is
``{question, answer[, options, kind]}`` with ``kind`` 'math' (default), 'mcq'
(``answer`` is an option letter; also any other kind of a record with ``options``) or
'open' (free text compared after normalisation).

Extraction (``final_answer``) reads only the text a reader sees: after the last
``</think>``, cut at a ``<think>`` that is never closed and at the first end-of-turn
marker. There it takes the last ``\\boxed{...}``, else the last ``<answer>`` or
``<score>`` pair (MAE's solver and judge), else the last ``Answer: ...`` line,
else the last "the answer is ...", else the whole text.

Math equivalence (``math_equal``) is Hugging Face's Math-Verify (``math-verify`` on
PyPI; the verifier of Open-R1, the open reproduction of DeepSeek-R1, arXiv 2501.12948):
both answers are parsed as the content of a ``\\boxed{}`` (LaTeX through
latex2sympy2's ANTLR grammar, plain arithmetic through a digits-and-operators regex, so
model output is never evaluated as Python) and compared numerically, symbolically, as
sets, intervals or equations. Before it: an exact-string fast path, and word answers
(``nothing``, ``the key and the ring``) compared as normalised text, since Math-Verify
would read them as products of one-letter symbols.

Math-Verify limits its time with SIGALRM, which only the main thread may use. On the
main thread each parse and comparison gets ``TIMEOUT_SECONDS``; from any other thread
the check runs in that thread's worker process (``python -c``, so no ``__main__`` is
re-imported) that is killed past ``WORKER_TIMEOUT_SECONDS`` and restarted. A worker that
cannot start (e.g. Math-Verify does not import there) raises ``CheckerError`` with its
stderr: no verdict is made up for it.

Checking is most of a small RL or evaluation run's time on a CPU (sympy on every wrong
answer, bench/RESULTS.md), while the accelerator or XLA's threads wait. ``map_checks``
runs a batch of checks on ``CHECK_THREADS`` threads, each with its own worker process,
so they use every core; the verdicts are those of a check on the main thread, and
each distinct (gold, prediction) pair is checked once per process.
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import string
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import Optional, TypeVar

from data import tokenizer as tokenizer_lib

KINDS = ("math", "mcq", "open")
ANSWER_PREFIX = "Answer: "
END_OF_TURN_MARKERS = (tokenizer_lib.END_OF_TURN, "</s>", "<eos>", "<|eot_id|>",
                       "<|im_end|>", "<|endoftext|>", "<|end_of_text|>")
TIMEOUT_SECONDS = 2           # per Math-Verify parse and per comparison (signal.alarm)
WORKER_TIMEOUT_SECONDS = 10   # one whole check off the main thread
WORKER_START_SECONDS = 120    # a worker's start: Python, Math-Verify, sympy, the grammar
MAX_ANSWER_CHARS = 500        # longer answers only get the exact-string comparison
CHECK_THREADS = max(1, min(8, os.cpu_count() or 1))   # map_checks' threads (and workers)

_ANSWER_LINE = re.compile(r"^Answer:[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_ANSWER_IS = re.compile(r"\bthe (?:final )?answer is:?[ \t]*(.*\S)", re.IGNORECASE)
# MAE's tagged outputs (arXiv 2510.23595): a solver's <answer>…</answer>, a judge's
# <score>…</score>.
_MAE_TAG = re.compile(r"<(answer|score)>(.*?)</\1>", re.DOTALL)
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox)\{([^{}]*)\}")
_WORDS = re.compile(r"[^\W\d_]+(?:[\s'-]+[^\W\d_]+)*")
_PROSE = re.compile(r"[^\W\d_]{2,}(?:\s+[^\W\d_]{2,}){3}")   # four words in a row


# ------------------------------------------------------------------- answer extraction


def visible_text(completion: str) -> str:
  """The text after the last ``</think>``, cut at an unclosed ``<think>`` and at the
  first end-of-turn marker."""
  text = completion.rsplit(tokenizer_lib.THINK_END, 1)[-1]
  text = text.split(tokenizer_lib.THINK_START, 1)[0]
  for marker in END_OF_TURN_MARKERS:
    text = text.split(marker, 1)[0]
  return text


def thought(completion: str) -> str:
  """The text of the completion's first ``<think>`` … ``</think>`` (up to the end if
  never closed; '' without a ``<think>``)."""
  if tokenizer_lib.THINK_START not in completion:
    return ""
  return completion.split(tokenizer_lib.THINK_START, 1)[1].split(tokenizer_lib.THINK_END, 1)[0]


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


def answer_line(text: str) -> Optional[str]:
  """The text of the last ``Answer: ...`` line without a final period, or None."""
  lines = _ANSWER_LINE.findall(text)
  return lines[-1].rstrip(".").strip() if lines else None


def mae_tagged(text: str) -> Optional[str]:
  """The content of the last ``<answer>…</answer>`` or ``<score>…</score>`` pair (the
  solver's and the judge's formats of MAE, ``data/mae.py``), or None."""
  pairs = _MAE_TAG.findall(text)
  return pairs[-1][1] if pairs else None


def _answer_is(text: str) -> Optional[str]:
  """What follows the last "the answer is" on its line, without a final period."""
  matches = _ANSWER_IS.findall(text)
  return matches[-1].rstrip(".").strip() if matches else None


def final_answer(completion: str) -> str:
  """The answer a completion gives (see the module docstring), stripped."""
  text = visible_text(completion)
  for extract in (last_boxed, mae_tagged, answer_line, _answer_is):
    if (answer := extract(text)) is not None:
      return answer.strip()
  return text.strip()


# ------------------------------------------------------------------- math equivalence


def _strip_math(answer: str) -> str:
  """Without surrounding whitespace, ``$...$`` delimiters and a final period."""
  text = answer.strip()
  if (match := re.fullmatch(r"\$+(.*?)\$+", text, re.DOTALL)) is not None:
    text = match.group(1).strip()
  return text.rstrip(".").strip()


def is_prose(answer: str) -> bool:
  """Four words in a row outside ``\\text{}``: no formula (Math-Verify's LaTeX parser
  would take long to read it as a product of one-letter symbols, bench/RESULTS.md)."""
  return _PROSE.search(_TEXT_COMMAND.sub(" ", answer)) is not None


def _words(answer: str) -> Optional[str]:
  """The answer as normalised text if it is words (letters and spaces only, more than
  one letter: a lone letter is a variable), else None."""
  text = _TEXT_COMMAND.sub(r"\1", answer).strip()
  if not _WORDS.fullmatch(text) or sum(c.isalpha() for c in text) < 2:
    return None
  return normalize_text(text)


@functools.cache
def _math_verify():
  """Math-Verify, imported on the first check: with sympy and the LaTeX grammar its import
  takes long (bench/RESULTS.md), which runs that never check an answer (pretraining, SFT)
  need not pay."""
  import math_verify  # pylint: disable=g-import-not-at-top
  return math_verify


@functools.lru_cache(maxsize=4096)
def _parsed(answer: str) -> tuple:
  """Math-Verify's readings of ``\\boxed{answer}`` (sympy objects, then the string)."""
  math_verify = _math_verify()
  extraction = (math_verify.LatexExtractionConfig(boxed_match_priority=0),
                math_verify.ExprExtractionConfig())
  return tuple(math_verify.parse("\\boxed{" + answer + "}", extraction,
                                 parsing_timeout=TIMEOUT_SECONDS))


def _verify_here(gold: str, prediction: str) -> bool:
  """Math-Verify on this (main) thread, each step limited by SIGALRM."""
  gold_parsed, predicted = _parsed(gold), _parsed(prediction)
  if not gold_parsed or not predicted:
    return False
  return _math_verify().verify(list(gold_parsed), list(predicted),
                            timeout_seconds=TIMEOUT_SECONDS)


class CheckerError(ChildProcessError):
  """A Math-Verify worker process did not start; the message has its stderr."""


def serve_checks() -> None:
  """The worker's loop: ``ready`` once Math-Verify is imported, then a JSON ``[gold,
  prediction]`` per stdin line, ``true``/``false`` per stdout line."""
  _math_verify()
  print(_READY, flush=True)
  for line in sys.stdin:
    print(json.dumps(_verify_here(*json.loads(line))), flush=True)


_WORKER_COMMAND = "from data import answers; answers.serve_checks()"
_READY = "ready"
_thread = threading.local()   # .worker: this thread's worker process
_pool: Optional[futures.ThreadPoolExecutor] = None
_T, _R = TypeVar("_T"), TypeVar("_R")


def _start_worker() -> subprocess.Popen:
  """A worker that said it is ready; CheckerError with its stderr if it did not."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
  command = [sys.executable, "-c", _WORKER_COMMAND]
  with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as stderr:
    worker = subprocess.Popen(command, text=True, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=stderr,
                              env=dict(os.environ, PYTHONPATH=path))
    ready, _, _ = select.select([worker.stdout], [], [], WORKER_START_SECONDS)
    greeting = worker.stdout.readline() if ready else ""
    if greeting.strip() == _READY:
      return worker
    worker.kill()
    returncode = worker.wait()
    stderr.seek(0)
    said = [line.strip() for line in stderr if line.strip()][-3:]
  why = (f"no reply in {WORKER_START_SECONDS} s" if not ready else
         f"it printed {greeting.strip()!r}" if greeting else f"exit code {returncode}")
  raise CheckerError(f"the answer checker's worker process ({' '.join(command)}) did not "
                     f"start ({why}); its stderr ends: {' / '.join(said) or '(nothing)'}")


def _verify_in_worker(gold: str, prediction: str) -> bool:
  """``_verify_here`` in this thread's worker process (SIGALRM works on its main
  thread), killed and restarted when one check takes over ``WORKER_TIMEOUT_SECONDS``."""
  worker = getattr(_thread, "worker", None)
  if worker is None or worker.poll() is not None:
    worker = _thread.worker = _start_worker()
  try:
    worker.stdin.write(json.dumps([gold, prediction]) + "\n")
    worker.stdin.flush()
    ready, _, _ = select.select([worker.stdout], [], [], WORKER_TIMEOUT_SECONDS)
    reply = worker.stdout.readline() if ready else ""
  except OSError:  # the worker died
    reply = ""
  if not reply:
    worker.kill()
    worker.wait()
    _thread.worker = None
    return False
  return bool(json.loads(reply))


def map_checks(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
  """``[fn(item) for item in items]``, run on ``CHECK_THREADS`` threads (in order; the
  first exception by position is raised). The answer checks inside ``fn`` then run in
  parallel, one worker process per thread; ``fn`` must be safe to call from several
  threads at once."""
  global _pool
  if CHECK_THREADS == 1 or len(items) < 2:
    return [fn(item) for item in items]
  if _pool is None:
    _pool = futures.ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="answer-check")
  return list(_pool.map(fn, items))


def math_equal(prediction: str, reference: str) -> bool:
  """Whether ``prediction`` is mathematically equal to the gold answer ``reference``.

  Equal strings (after ``_strip_math``) are equal; word answers compare as normalised
  text; prose and answers over ``MAX_ANSWER_CHARS`` are not formulas; everything else
  goes to Math-Verify (time-limited, never evaluated as code).
  """
  a, b = _strip_math(prediction), _strip_math(reference)
  if not a or not b:
    return False
  if a == b:
    return True
  if (gold_words := _words(b)) is not None:
    return _words(a) == gold_words
  if max(len(a), len(b)) > MAX_ANSWER_CHARS or is_prose(a) or is_prose(b):
    return False
  return _verified(b, a)


@functools.lru_cache(maxsize=1 << 16)
def _verified(gold: str, prediction: str) -> bool:
  """Math-Verify's verdict, kept for the run: the G samples of a prompt and every
  evaluation of the same prompts repeat pairs (4,089 distinct pairs in the 7,118 checks
  of the fast ``rlp`` claim). A check that timed out stays False; a worker that did not
  start raises CheckerError, which is kept as no verdict."""
  if threading.current_thread() is threading.main_thread():
    return _verify_here(gold, prediction)
  return _verify_in_worker(gold, prediction)


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
  return same_answer(final_answer(completion), str(record["answer"]), record)


def same_answer(answer: str, other: str, record: Mapping) -> bool:
  """Whether two final answers to ``record`` are one answer by its kind's checker: the
  same option letter (mcq), the same normalised text (open), or mathematically equal
  (math; ``other`` is taken as the reference). Majority voting groups by this."""
  kind = record_kind(record)
  if kind == "mcq":
    letter = choice_letter(answer)
    return letter is not None and letter == choice_letter(other)
  if kind == "open":
    normalized = normalize_text(answer)
    return bool(normalized) and normalized == normalize_text(other)
  return math_equal(answer, other)


def majority_vote(final_answers: Sequence[str], record: Mapping) -> Optional[int]:
  """The index of the first sample of the largest group of equivalent final answers
  (``same_answer``: "1/2", "0.5" and "\\frac{1}{2}" are one answer; ties: the
  group seen first), or None when no sample has an answer (empty answers do not vote)."""
  normalized = [" ".join(answer.split()) for answer in final_answers]
  groups: list[list[int]] = []
  for i, answer in enumerate(normalized):
    if not answer:
      continue
    for group in groups:
      first = normalized[group[0]]
      if answer == first or same_answer(answer, first, record):
        group.append(i)
        break
    else:
      groups.append([i])
  return max(groups, key=len)[0] if groups else None


def record_kind(record: Mapping) -> str:
  """The record's checking kind: its ``kind`` when that is 'mcq', 'open' or 'math', else
  'mcq' when it has ``options`` (a multiple-choice record whose ``kind`` names a group
  for ``pass@1/<kind>``, e.g. IdentifyMe's 'nominal'), else 'math'."""
  kind = record.get("kind", "math")
  if kind in KINDS:
    return kind
  return "mcq" if record.get("options") else "math"
