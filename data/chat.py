"""The chat template, with the Llama-Nemotron reasoning toggle (methods.md §11).

A conversation is a list of ``{'role': 'system'|'user'|'assistant', 'content': str}``.
Each turn is rendered as ``<|role|>content<|end|>``::

    <|system|>detailed thinking on<|end|><|user|>What is 2+3?<|end|><|assistant|><think>2
    plus 3 is 5</think>5<|end|>

The role and end markers and ``<think>``/``</think>`` are single tokens of the project
tokenizers. ``tokenize`` builds ids from the pieces (markers are never re-tokenized from
text) and gives target weight 1 exactly to assistant contents and their closing
``<|end|>`` (the model learns to end its turn), 0 to everything else. A generation
prompt ends with ``<|assistant|>`` and generation stops at ``<|end|>``.

Reasoning toggle: the system prompt "detailed thinking on" pairs with an assistant turn
``<think>reasoning</think>answer``; "detailed thinking off" with the bare answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np

from data import tokenizer as tokenizer_lib

ROLES = {"system": tokenizer_lib.SYSTEM, "user": tokenizer_lib.USER,
         "assistant": tokenizer_lib.ASSISTANT}
THINKING_ON = "detailed thinking on"
THINKING_OFF = "detailed thinking off"

Message = Mapping[str, str]


def reasoning_system_prompt(thinking: bool) -> str:
  return THINKING_ON if thinking else THINKING_OFF


def assistant_response(answer: str, reasoning: Optional[str] = None) -> str:
  """``<think>reasoning</think>answer`` when reasoning is given, else ``answer``."""
  if reasoning is None:
    return answer
  return f"{tokenizer_lib.THINK_START}{reasoning}{tokenizer_lib.THINK_END}{answer}"


def conversation(question: str, *, answer: Optional[str] = None,
                 reasoning: Optional[str] = None, thinking: Optional[bool] = None
                 ) -> list[dict[str, str]]:
  """[system?, user, assistant?]: the system turn carries the toggle when ``thinking`` is
  set; with ``thinking=False`` the reasoning is dropped from the response.

  Raises ValueError for ``thinking=True`` with an answer but no reasoning.
  """
  messages = []
  if thinking is not None:
    messages.append({"role": "system", "content": reasoning_system_prompt(thinking)})
  messages.append({"role": "user", "content": question})
  if answer is not None:
    if thinking and reasoning is None:
      raise ValueError("'detailed thinking on' needs a reasoning trace for the response")
    messages.append({"role": "assistant", "content": assistant_response(
        answer, reasoning if thinking is not False else None)})
  return messages


def toggle_pair(question: str, reasoning: str, answer: str) -> list[list[dict[str, str]]]:
  """The Llama-Nemotron SFT pair: the question with a reasoning response under
  "detailed thinking on" and with the direct answer under "detailed thinking off"."""
  return [conversation(question, answer=answer, reasoning=reasoning, thinking=True),
          conversation(question, answer=answer, reasoning=reasoning, thinking=False)]


def _check(messages: Sequence[Message]) -> None:
  if not messages:
    raise ValueError("empty conversation")
  for i, message in enumerate(messages):
    if message.get("role") not in ROLES:
      raise ValueError(f"message {i}: role {message.get('role')!r} not in {sorted(ROLES)}")
    if not isinstance(message.get("content"), str):
      raise ValueError(f"message {i}: content must be a string")


def render(messages: Sequence[Message], *, add_generation_prompt: bool = False) -> str:
  """The conversation as text (what ``tokenize`` encodes)."""
  _check(messages)
  text = "".join(f"{ROLES[m['role']]}{m['content']}{tokenizer_lib.END_OF_TURN}"
                 for m in messages)
  return text + (tokenizer_lib.ASSISTANT if add_generation_prompt else "")


def tokenize(messages: Sequence[Message], tokenizer: tokenizer_lib.Tokenizer, *,
             add_generation_prompt: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(ids (n,) int32, target_weights (n,) int32): weight 1 on assistant contents and
  their ``<|end|>``. The weights feed ``data.packing`` like a document's."""
  _check(messages)
  end_id = tokenizer.token_to_id(tokenizer_lib.END_OF_TURN)
  ids, weights = [], []
  for message in messages:
    content = tokenizer.encode(message["content"]) + [end_id]
    learned = int(message["role"] == "assistant")
    ids += [tokenizer.token_to_id(ROLES[message["role"]])] + content
    weights += [0] + [learned] * len(content)
  if add_generation_prompt:
    ids.append(tokenizer.token_to_id(tokenizer_lib.ASSISTANT))
    weights.append(0)
  return np.asarray(ids, np.int32), np.asarray(weights, np.int32)


def stop_token_ids(tokenizer: tokenizer_lib.Tokenizer) -> tuple[int, ...]:
  """Ids that end an assistant turn: the template's end-of-turn marker and eos."""
  return (tokenizer.token_to_id(tokenizer_lib.END_OF_TURN), tokenizer.eos_id)


def prompt_ids(question: str, tokenizer: tokenizer_lib.Tokenizer, *,
               thinking: Optional[bool] = None) -> list[int]:
  """Token ids of a generation prompt for one user question."""
  ids, _ = tokenize(conversation(question, thinking=thinking), tokenizer,
                    add_generation_prompt=True)
  return ids.tolist()
