"""Chat templates, with the Llama-Nemotron reasoning toggle (arXiv 2505.00949) and tool
messages for tool-integrated reasoning (AIMO-2, arXiv 2504.16891).

A conversation is a list of ``{'role': 'system'|'user'|'assistant'|'tool', 'content':
str}``; a tool message (the output of the code the assistant wrote) follows an assistant
message. ``tokenize`` gives token ids and target weights: 1 exactly on assistant contents
and the end-of-turn token that closes them (the model learns to end its turn), 0
elsewhere (tool outputs included). ``tool_response_ids`` are the ids a tool-integrated
generator appends to a partial assistant response to hand it the tool's output.

A tokenizer with a ``chat_template`` (a Hugging Face ``tokenizer_config.json``, e.g.
Llama-3's or Qwen2's) is rendered with that Jinja template the way transformers'
``apply_chat_template`` renders it (sandboxed, ``trim_blocks``/``lstrip_blocks``,
``raise_exception``, ``strftime_now``, ``tojson``; variables ``messages``,
``add_generation_prompt``, ``tools``/``documents`` = None and the named special tokens)
and the whole text is encoded at once, so the ids are those of
``apply_chat_template(..., tokenize=True)``. Tool messages go to the template as they are
(Qwen2.5 writes them as a user turn ``<tool_response>\\n...\\n</tool_response>``, Llama-3.1
under an ``ipython`` header; a template without a tool role raises). Weights come from
rendering prefixes: for assistant message i, the text between ``render(messages[:i],
add_generation_prompt=True)`` and the end of the end-of-turn token closing
``render(messages[:i + 1])``; tokens overlapping it are learned. A template that rewrites
earlier turns when later ones follow (so a prefix does not render as a prefix) is
rejected. The end-of-turn token is the special token the template writes right after an
assistant's content (``<|eot_id|>`` for Llama-3, ``<|im_end|>`` for Qwen2); generation
stops at it and at eos.

Other tokenizers (the project's sentencepiece) use our template, each turn rendered as
``<|role|>content<|end|>``::

    <|system|>detailed thinking on<|end|><|user|>What is 2+3?<|end|><|assistant|><think>2
    plus 3 is 5</think>5<|end|>

The role and end markers and ``<think>``/``</think>`` are single tokens of the project
tokenizers; ids are built from the pieces (markers are never re-tokenized from text, each
content is encoded on its own). A tool message and the assistant message after it continue
the assistant turn before them, as the AIMO-2 format writes code output inside the
response (no marker, no ``<|end|>`` between them)::

    <|user|>q<|end|><|assistant|>a```python
    print(1)
    ```
    ```output
    1
    ```
    so 1<|end|>

A generation prompt ends with ``<|assistant|>`` (after a tool message: nothing, the turn
goes on) and generation stops at ``<|end|>``.

Reasoning toggle (either template): the system prompt "detailed thinking on" pairs with
an assistant turn ``<think>reasoning</think>answer``; "detailed thinking off" with the
bare answer.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Optional

import jinja2
import jinja2.ext
import jinja2.sandbox
import numpy as np

from data import tokenizer as tokenizer_lib

ROLES = ("system", "user", "assistant", "tool")
# Our template's role markers; a tool message has none (it continues the assistant turn).
_MARKERS = {"system": tokenizer_lib.SYSTEM, "user": tokenizer_lib.USER,
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
    if message["role"] == "tool" and (i == 0 or messages[i - 1]["role"] != "assistant"):
      raise ValueError(f"message {i}: a tool message must follow an assistant message")


# ------------------------------------------------------------ a tokenizer's own template


def _template(tokenizer: Optional[tokenizer_lib.Tokenizer]) -> Optional[str]:
  return getattr(tokenizer, "chat_template", None)


def _raise_exception(message: str):
  raise jinja2.exceptions.TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
  """transformers' ``tojson``: plain ``json.dumps``, no HTML escaping."""
  return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                    sort_keys=sort_keys)


def _strftime_now(format: str) -> str:  # pylint: disable=redefined-builtin
  return datetime.datetime.now().strftime(format)


@functools.lru_cache(maxsize=16)
def _compiled(template: str) -> jinja2.Template:
  environment = jinja2.sandbox.ImmutableSandboxedEnvironment(
      trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
  environment.filters["tojson"] = _tojson
  environment.globals["raise_exception"] = _raise_exception
  environment.globals["strftime_now"] = _strftime_now
  return environment.from_string(template)


def _render_template(messages: Sequence[Message], template: str,
                     special_tokens: Mapping[str, str], add_generation_prompt: bool) -> str:
  try:
    return _compiled(template).render(
        messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt,
        tools=None, documents=None, **special_tokens)
  except jinja2.exceptions.TemplateError as e:
    raise ValueError(f"the tokenizer's chat_template failed: {e}") from e


_PROBE = "reasonax probe"
_PROBED = ({"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE})


def _probe_end(text: str) -> int:
  """Where the probe assistant content ends in ``text``."""
  at = text.rfind(_PROBE)
  if at < 0:
    raise ValueError("the tokenizer's chat_template does not render the assistant's content")
  return at + len(_PROBE)


@functools.lru_cache(maxsize=16)
def _end_of_turn(template: str, special_tokens: tuple[tuple[str, str], ...],
                 added_special_tokens: tuple[str, ...]) -> str:
  """The special token the template writes right after an assistant's content."""
  text = _render_template(_PROBED, template, dict(special_tokens), add_generation_prompt=False)
  after = text[_probe_end(text):].lstrip()
  found = [token for token in added_special_tokens if after.startswith(token)]
  if not found:
    raise ValueError(f"the tokenizer's chat_template writes {after[:20]!r} after an "
                     "assistant's content, not a special token: no end-of-turn token")
  return max(found, key=len)


def _template_end_of_turn(tokenizer: tokenizer_lib.Tokenizer) -> str:
  return _end_of_turn(tokenizer.chat_template, tuple(tokenizer.special_tokens_map.items()),
                      tokenizer.added_special_tokens)


def _template_tool_response(tokenizer: tokenizer_lib.Tokenizer, content: str) -> str:
  """The text the template writes between an assistant's content and the generation prompt
  (included) that follows a tool message with ``content``."""
  template, special = tokenizer.chat_template, tokenizer.special_tokens_map
  answered = _render_template(_PROBED, template, special, add_generation_prompt=False)
  answered = answered[:_probe_end(answered)]
  text = _render_template([*_PROBED, {"role": "tool", "content": content}], template,
                          special, add_generation_prompt=True)
  if not text.startswith(answered):
    raise ValueError("the tokenizer's chat_template renders an assistant message differently "
                     "once a tool message follows: a partial response cannot be continued")
  return text[len(answered):]


def _learned_spans(messages: Sequence[Message], tokenizer: tokenizer_lib.Tokenizer,
                   full: str) -> list[tuple[int, int]]:
  """(start, end) characters of ``full`` that are learned: each assistant content and
  the end-of-turn token closing it."""
  template, special = tokenizer.chat_template, tokenizer.special_tokens_map
  end_of_turn = _template_end_of_turn(tokenizer)
  spans = []
  for i, message in enumerate(messages):
    if message["role"] != "assistant":
      continue
    head = _render_template(messages[:i], template, special, add_generation_prompt=True)
    turn = _render_template(messages[:i + 1], template, special, add_generation_prompt=False)
    for name, prefix in (("messages[:i] with a generation prompt", head),
                         ("messages[:i + 1]", turn)):
      if not full.startswith(prefix):
        raise ValueError(
            f"the tokenizer's chat_template renders {name} (i={i}) differently from the "
            "start of the whole conversation (it rewrites earlier turns, e.g. drops their "
            "reasoning): assistant-only target weights cannot be derived")
    end = turn.rfind(end_of_turn)
    if end < len(head):
      raise ValueError(f"the tokenizer's chat_template does not close assistant message {i} "
                       f"with {end_of_turn!r}")
    spans.append((len(head), end + len(end_of_turn)))
  return spans


def _tokenize_with_template(messages: Sequence[Message], tokenizer: tokenizer_lib.Tokenizer,
                            add_generation_prompt: bool) -> tuple[np.ndarray, np.ndarray]:
  full = _render_template(messages, tokenizer.chat_template, tokenizer.special_tokens_map,
                          add_generation_prompt)
  ids, offsets = tokenizer.encode_with_offsets(full)
  spans = _learned_spans(messages, tokenizer, full)
  weights = [int(any(end > a and start < b for a, b in spans)) for start, end in offsets]
  return np.asarray(ids, np.int32), np.asarray(weights, np.int32)


# ---------------------------------------------------------------------------- either


def _our_turns(messages: Sequence[Message], add_generation_prompt: bool
               ) -> list[tuple[str, Message, bool]]:
  """Our template, message by message: (role marker or "", message, closed by
  ``<|end|>``). A tool message and the assistant message after it continue the turn before
  them: they have no marker and the message before them is not closed. A generation prompt
  is an open, empty assistant message."""
  if add_generation_prompt:
    messages = [*messages, {"role": "assistant", "content": ""}]
  roles = [m["role"] for m in messages]
  continues = [role == "tool" or (role == "assistant" and i > 0 and roles[i - 1] == "tool")
               for i, role in enumerate(roles)]
  turns = []
  for i, message in enumerate(messages):
    last = i == len(messages) - 1
    closed = not (add_generation_prompt if last else continues[i + 1])
    turns.append(("" if continues[i] else _MARKERS[message["role"]], message, closed))
  return turns


def render(messages: Sequence[Message], *, add_generation_prompt: bool = False,
           tokenizer: Optional[tokenizer_lib.Tokenizer] = None) -> str:
  """The conversation as text (what ``tokenize`` encodes): by ``tokenizer``'s chat
  template when it has one, else by ours."""
  _check(messages)
  if (template := _template(tokenizer)) is not None:
    return _render_template(messages, template, tokenizer.special_tokens_map,
                            add_generation_prompt)
  return "".join(marker + message["content"] + (tokenizer_lib.END_OF_TURN if closed else "")
                 for marker, message, closed in _our_turns(messages, add_generation_prompt))


def tokenize(messages: Sequence[Message], tokenizer: tokenizer_lib.Tokenizer, *,
             add_generation_prompt: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(ids (n,) int32, target_weights (n,) int32): weight 1 on assistant contents and
  the end-of-turn token closing them, 0 elsewhere (tool outputs included). The weights
  feed ``data.packing`` like a document's."""
  _check(messages)
  if _template(tokenizer) is not None:
    return _tokenize_with_template(messages, tokenizer, add_generation_prompt)
  end_id = tokenizer.token_to_id(tokenizer_lib.END_OF_TURN)
  ids, weights = [], []
  for marker, message, closed in _our_turns(messages, add_generation_prompt):
    if marker:
      ids.append(tokenizer.token_to_id(marker))
      weights.append(0)
    content = tokenizer.encode(message["content"]) + ([end_id] if closed else [])
    ids += content
    weights += [int(message["role"] == "assistant")] * len(content)
  return np.asarray(ids, np.int32), np.asarray(weights, np.int32)


def tool_response_ids(tokenizer: tokenizer_lib.Tokenizer, content: str) -> list[int]:
  """Token ids that hand a tool's output to a model mid-response (tool-integrated
  reasoning, arXiv 2504.16891).

  Appended to a partial assistant response (the prompt and the content generated so far,
  e.g. up to a closed ```python block, without an end-of-turn token), they continue the
  ids as ``tokenize`` renders the conversation with that partial response, a tool message
  with ``content`` and a generation prompt. Our template: ``content`` encoded (the turn
  goes on). A chat template: the text it writes between the assistant's content and the
  end of the generation prompt (e.g. Qwen2.5's ``<|im_end|>\\n<|im_start|>user\\n
  <tool_response>\\n...\\n</tool_response><|im_end|>\\n<|im_start|>assistant\\n``), encoded.

  Raises ValueError if the chat template has no tool role or renders the assistant's
  content differently once a tool message follows.
  """
  if _template(tokenizer) is not None:
    return tokenizer.encode(_template_tool_response(tokenizer, content))
  return tokenizer.encode(content)


def stop_token_ids(tokenizer: tokenizer_lib.Tokenizer) -> tuple[int, ...]:
  """Ids that end an assistant turn: the template's end-of-turn token and eos."""
  if _template(tokenizer) is not None:
    end_of_turn = tokenizer.token_to_id(_template_end_of_turn(tokenizer))
  else:
    end_of_turn = tokenizer.token_to_id(tokenizer_lib.END_OF_TURN)
  return tuple(dict.fromkeys((end_of_turn, tokenizer.eos_id)))


def prompt_ids(question: str, tokenizer: tokenizer_lib.Tokenizer, *,
               thinking: Optional[bool] = None) -> list[int]:
  """Token ids of a generation prompt for one user question."""
  ids, _ = tokenize(conversation(question, thinking=thinking), tokenizer,
                    add_generation_prompt=True)
  return ids.tolist()
