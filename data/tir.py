r"""Tool-integrated reasoning (TIR) text: the AIMO-2 format (arXiv 2504.16891, §3).

A solution interleaves reasoning with Python the model writes and the output a tool
returns::

    ... so I compute it.
    ```python
    print(123 * 456)
    ```
    ```output
    56088
    ```
    Remaining code executions: 2.
    The product is 56088. Answer: 56088

The question states the budget of code executions (``with_budget``); after each
execution the tool's reply (``tool_reply``) gives the output, truncated to a limit,
and the executions left. Generation stops a row when it closes a ```python block
(``fence_automaton``: the token-level automaton the jitted decode runs), the host runs
the code (``last_code_block``) and feeds the reply back as tokens
(``train/generation.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np

CODE_OPEN = "```python\n"
CODE_CLOSE = "\n```\n"        # the closing fence on its own line
OUTPUT_OPEN, OUTPUT_CLOSE = "```output\n", "\n```\n"
TRUNCATED = "[output truncated]"


def with_budget(question: str, calls: int) -> str:
  """The question with the instruction that states its code-execution budget (AIMO-2's
  "You may perform up to k Python code calls", shortened for small models)."""
  if calls < 0:
    raise ValueError(f"a code-execution budget of {calls}: must be >= 0")
  return f"{question}\nYou may run up to {calls} Python code calls."


def budgeted(record: Mapping, calls: int) -> Mapping:
  """A task record whose question states a budget of ``calls`` executions (0: as is)."""
  return dict(record, question=with_budget(record["question"], calls)) if calls else record


def last_code_block(text: str) -> Optional[str]:
  """The code of the last closed ```python block of ``text`` (None if there is none)."""
  start = text.rfind(CODE_OPEN)
  if start < 0:
    return None
  end = text.find(CODE_CLOSE, start + len(CODE_OPEN) - 1)
  if end < 0:
    return None
  return text[start + len(CODE_OPEN):end + 1]


def printable(text: str) -> str:
  """``text`` with control characters and undecodable bytes as U+FFFD (binary output)."""
  return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)


def tool_output(status: str, stdout: str, stderr: str, max_chars: int) -> str:
  """What an execution shows the model: its stdout, or the last line of its error
  (``status`` 'error'), or why it was stopped; at most ``max_chars`` characters."""
  if status == "ok":
    text = stdout
  elif status == "error":
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else "error"
  elif status == "timeout":
    text = "Execution timed out"
  else:
    text = "Execution was stopped (a resource limit)"
  text = printable(text.rstrip("\n"))
  if len(text) > max_chars:
    text = text[:max_chars] + "\n" + TRUNCATED
  return text


def tool_reply(output: str, remaining: int) -> str:
  """The tool's turn after an execution: the output block and the executions left."""
  return f"{OUTPUT_OPEN}{output}{OUTPUT_CLOSE}Remaining code executions: {remaining}.\n"


_REPLY = re.compile(re.escape(OUTPUT_OPEN) + r".*?" + re.escape(OUTPUT_CLOSE)
                    + r"Remaining code executions: \d+\.\n", re.DOTALL)


def conversation(question: str, completion: str) -> list[dict[str, str]]:
  """A tool-integrated completion as chat messages: the user's question, then the
  model's text and the tool's replies (``tool_reply``) as alternating assistant and
  tool turns, so SFT learns the model's tokens and not the tool's."""
  messages = [{"role": "user", "content": question}]
  start = 0
  for reply in _REPLY.finditer(completion):
    messages += [{"role": "assistant", "content": completion[start:reply.start()]},
                 {"role": "tool", "content": reply.group()}]
    start = reply.end()
  return messages + [{"role": "assistant", "content": completion[start:]}]


def has_open_code_block(text: str) -> bool:
  """Whether ``text`` opens a ```python block it never closes."""
  start = text.rfind(CODE_OPEN)
  return start >= 0 and text.find(CODE_CLOSE, start + len(CODE_OPEN) - 1) < 0


def _kmp_step(pattern: str, state: int, char: str) -> int:
  """The next state of substring search for ``pattern`` (state = characters matched)."""
  while True:
    if state < len(pattern) and pattern[state] == char:
      return state + 1
    if state == 0:
      return 0
    # The longest proper border of the matched prefix, then retry.
    prefix = pattern[:state]
    state = next(k for k in range(state - 1, -1, -1) if prefix.endswith(pattern[:k]))


def fence_automaton(token_texts: Sequence[str]) -> np.ndarray:
  """(s v) int32 state transitions over tokens: find ``CODE_OPEN``, then ``CODE_CLOSE``;
  the last state (s − 1) means a block was just closed (the decode resets it to 0).

  States 0..o−1 are the characters of CODE_OPEN matched, o + j the characters of
  CODE_CLOSE matched inside a block (entered at j = 1: CODE_OPEN's newline starts the
  closing fence of an empty block). A token moves the state character by character and
  stays closed once a block closes inside it.
  """
  o, c = len(CODE_OPEN), len(CODE_CLOSE)
  closed = o + c

  def char_step(state: int, char: str) -> int:
    if state < o:
      matched = _kmp_step(CODE_OPEN, state, char)
      return o + 1 if matched == o else matched
    matched = _kmp_step(CODE_CLOSE, state - o, char)
    return closed if matched == c else o + matched

  alphabet = set(CODE_OPEN + CODE_CLOSE)
  table = np.empty((closed + 1, len(token_texts)), np.int32)
  table[closed] = closed
  for state in range(closed):
    # A token without a fence character drops the match (inside a block: to state o).
    table[state] = 0 if state < o else o
  for token, text in enumerate(token_texts):
    if not alphabet & set(text):
      continue
    for start in range(closed):
      state = start
      for char in text:
        state = char_step(state, char)
        if state == closed:
          break
      table[start, token] = state
  return table
