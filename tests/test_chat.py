"""Chat through a Hugging Face tokenizer's own template (data/chat.py, data/tokenizer.py):
token ids identical to transformers' apply_chat_template, exact assistant-only weights,
the reasoning toggle and the end-of-turn stop ids."""

import json
import pickle

import numpy as np
import pytest
import tokenizers
import transformers
from tokenizers import decoders, models, pre_tokenizers, trainers

from data import chat
from data import config as data_config
from data import tokenizer as tokenizer_lib

# Modelled on Llama-3.1/3.2-Instruct's template: bos, a system block with the knowledge
# and today's date, trimmed contents, headers and <|eot_id|>.
LLAMA3_TEMPLATE = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
    {{- tools | tojson(indent=4) }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if message.role not in ['user', 'assistant'] %}
        {{- raise_exception("Only user and assistant roles after the system message") }}
    {%- endif %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Modelled on Qwen2.5-Instruct's template (no tools): ChatML with a default system turn.
QWEN2_TEMPLATE = """{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant") %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

# Qwen3-like: the reasoning of earlier assistant turns is dropped, so a prefix of the
# conversation does not render as a prefix of the whole.
DROPS_REASONING_TEMPLATE = """{%- for message in messages %}
    {%- set content = message.content %}
    {%- if message.role == 'assistant' and not loop.last %}
        {%- set content = content.split('</think>')[-1] %}
    {%- endif %}
    {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

# The tool-role handling of the real templates, copied: Qwen2.5-Instruct's system block
# (no tools) and message loop, and Llama-3.1-Instruct's, each without its tool_calls branch.
QWEN25_TOOL_TEMPLATE = """{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

LLAMA31_TOOL_TEMPLATE = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Rewrites an earlier answer (upper case) once a message follows it.
REWRITES_ANSWERS_TEMPLATE = """{%- for message in messages %}
    {%- set content = message.content %}
    {%- if message.role == 'assistant' and not loop.last %}
        {%- set content = content | upper %}
    {%- endif %}
    {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

TEXTS = ["What is 12 + 7? Add the ones: 2 + 7 = 9. So 12 + 7 = 19.",
         "Name a colour. Blue. Another one? Green. The sky is blue and the grass is green.",
         "detailed thinking on detailed thinking off <think> reasoning </think> answer",
         "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
         "Cutting Knowledge Date: December 2023 Today Date: 26 Jul 2024 system user assistant",
         "Ünïcödé façade — naïve café, 北京 and emoji 🙂 too.",
         "Add them:\n```python\nprint(12 + 7)\n```\n```output\n19\n```\nSo 12 + 7 = 19. "
         "<tool_response> </tool_response> ipython"]

DIALOGUE = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "  Another one?  "},
    {"role": "assistant", "content": "Green, the colour of grass 🙂\n"},
]
CONVERSATIONS = [
    DIALOGUE,
    DIALOGUE[:2],
    DIALOGUE[1:],
    [{"role": "user", "content": "What is 12 + 7?"},
     {"role": "assistant", "content": "<think>\nAdd the ones: 2 + 7 = 9.\n</think>\n19"}],
    chat.conversation("What is 12 + 7?", answer="19", reasoning="2 + 7 = 9.", thinking=True),
    chat.conversation("Ünïcödé façade?", answer="naïve café, 北京", thinking=False),
]

# name → (special tokens, tokenizer_config.json fields, (end of turn, eos)).
STYLES = {
    "llama3": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"],
               {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                "chat_template": LLAMA3_TEMPLATE},
               ("<|eot_id|>", "<|end_of_text|>")),
    "qwen2": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
              {"bos_token": None, "pad_token": "<|endoftext|>", "chat_template": QWEN2_TEMPLATE,
               "eos_token": {"__type": "AddedToken", "content": "<|endoftext|>",
                             "lstrip": False, "normalized": False, "rstrip": False,
                             "single_word": False}},
              ("<|im_end|>", "<|endoftext|>")),
}


def _byte_level_bpe(special):
  """Llama-3 style: byte-level BPE."""
  tokenizer = tokenizers.Tokenizer(models.BPE())
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tokenizer.decoder = decoders.ByteLevel()
  tokenizer.train_from_iterator(TEXTS, trainers.BpeTrainer(
      vocab_size=400, special_tokens=special,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  return tokenizer


def _word_level(special):
  """A word-level vocabulary with an unknown token (whitespace is not kept)."""
  tokenizer = tokenizers.Tokenizer(models.WordLevel(unk_token="<unk>"))
  tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
  tokenizer.train_from_iterator(TEXTS, trainers.WordLevelTrainer(
      special_tokens=["<unk>", *special]))
  return tokenizer


def _write(directory, style, **config_changes):
  special, config, _ = STYLES[style]
  tokenizer = (_byte_level_bpe if style == "llama3" else _word_level)(special)
  directory.mkdir(parents=True, exist_ok=True)
  tokenizer.save(str(directory / "tokenizer.json"))
  config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 4096,
            **config, **config_changes}
  (directory / "tokenizer_config.json").write_text(json.dumps(config))
  return directory


@pytest.fixture(scope="module", params=sorted(STYLES))
def style(request, tmp_path_factory):
  """(name, our tokenizer, transformers' tokenizer) of one template style."""
  return request.param, *_ours_and_theirs(_write(tmp_path_factory.mktemp(request.param),
                                                  request.param))


def _ours_and_theirs(directory):
  ours = tokenizer_lib.load_tokenizer(str(directory / "tokenizer.json"))
  theirs = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
  return ours, theirs


def _their_ids(theirs, messages, add_generation_prompt):
  return list(theirs.apply_chat_template(messages, tokenize=True, return_dict=False,
                                         add_generation_prompt=add_generation_prompt))


@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_ids_equal_transformers(style, index, add_generation_prompt):
  _, ours, theirs = style
  messages = CONVERSATIONS[index]
  ids, weights = chat.tokenize(messages, ours, add_generation_prompt=add_generation_prompt)
  assert ids.dtype == weights.dtype == np.int32 and ids.shape == weights.shape
  assert ids.tolist() == _their_ids(theirs, messages, add_generation_prompt)
  assert chat.render(messages, tokenizer=ours, add_generation_prompt=add_generation_prompt
                     ) == theirs.apply_chat_template(
                         messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _weighted_runs(ids, weights):
  runs, current = [], []
  for token, weight in zip(ids.tolist(), weights.tolist()):
    if weight:
      current.append(token)
    elif current:
      runs.append(current)
      current = []
  return runs + ([current] if current else [])


@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
def test_weights_are_assistant_contents_and_their_end_of_turn(style, index):
  name, ours, _ = style
  messages = CONVERSATIONS[index]
  end_of_turn = ours.token_to_id(STYLES[name][2][0])
  ids, weights = chat.tokenize(messages, ours)
  trim = str.strip if name == "llama3" else str   # the Llama-3 template trims contents
  assert _weighted_runs(ids, weights) == [ours.encode(trim(m["content"])) + [end_of_turn]
                                          for m in messages if m["role"] == "assistant"]
  roles = [m["role"] for m in messages]
  first_answer = roles.index("assistant") if "assistant" in roles else len(roles)
  _, prompt_weights = chat.tokenize(messages[:first_answer], ours, add_generation_prompt=True)
  assert not prompt_weights.any()


def test_stop_token_ids(style):
  name, ours, _ = style
  assert chat.stop_token_ids(ours) == tuple(ours.token_to_id(t) for t in STYLES[name][2])
  shipped = tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))
  assert chat.stop_token_ids(shipped) == (
      shipped.token_to_id(tokenizer_lib.END_OF_TURN), shipped.eos_id)


def test_reasoning_toggle_through_the_template(style):
  name, ours, theirs = style
  on, off = chat.toggle_pair("What is 12 + 7?", "2 + 7 = 9.", "19")
  on_text, off_text = chat.render(on, tokenizer=ours), chat.render(off, tokenizer=ours)
  assert chat.THINKING_ON in on_text and chat.THINKING_OFF in off_text
  assert "<think>2 + 7 = 9.</think>19" + STYLES[name][2][0] in on_text
  assert "<think>" not in off_text
  on_prompt = chat.prompt_ids("What is 12 + 7?", ours, thinking=True)
  off_prompt = chat.prompt_ids("What is 12 + 7?", ours, thinking=False)
  assert on_prompt != off_prompt
  assert on_prompt == _their_ids(theirs, chat.conversation("What is 12 + 7?", thinking=True),
                                 add_generation_prompt=True)
  ids, weights = chat.tokenize(on, ours)
  assert _weighted_runs(ids, weights) == [
      ours.encode("<think>2 + 7 = 9.</think>19") + [ours.token_to_id(STYLES[name][2][0])]]


def test_template_that_rewrites_earlier_turns_is_rejected(tmp_path):
  directory = _write(tmp_path, "qwen2", chat_template=DROPS_REASONING_TEMPLATE)
  tokenizer = tokenizer_lib.load_tokenizer(str(directory / "tokenizer.json"))
  messages = CONVERSATIONS[3] + DIALOGUE[3:]
  with pytest.raises(ValueError, match=r"renders messages\[:i \+ 1\] \(i=1\) differently"):
    chat.tokenize(messages, tokenizer)
  ids, _ = chat.tokenize(CONVERSATIONS[3], tokenizer)   # one assistant turn is fine
  assert len(ids) > 0


def test_template_errors_name_the_template(tmp_path):
  directory = _write(tmp_path / "plain", "qwen2", chat_template=(
      "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"))
  tokenizer = tokenizer_lib.load_tokenizer(str(directory / "tokenizer.json"))
  with pytest.raises(ValueError, match="not a special token: no end-of-turn token"):
    chat.stop_token_ids(tokenizer)
  directory = _write(tmp_path / "raises", "llama3")
  tokenizer = tokenizer_lib.load_tokenizer(str(directory / "tokenizer.json"))
  with pytest.raises(ValueError, match="chat_template failed: Only user and assistant"):
    chat.tokenize(DIALOGUE + [{"role": "system", "content": "late"}], tokenizer)


def test_tokenizer_config_is_read(tmp_path):
  directory = _write(tmp_path / "qwen", "qwen2")
  tokenizer = tokenizer_lib.HuggingFaceTokenizer(str(directory / "tokenizer.json"))
  assert tokenizer.chat_template == QWEN2_TEMPLATE
  assert tokenizer.special_tokens_map == {"eos_token": "<|endoftext|>",
                                          "pad_token": "<|endoftext|>"}
  assert tokenizer.bos_id == tokenizer.eos_id == tokenizer.token_to_id("<|endoftext|>")
  assert set(tokenizer.added_special_tokens) >= {"<|im_start|>", "<|im_end|>"}
  restored = pickle.loads(pickle.dumps(tokenizer))
  assert restored.chat_template == QWEN2_TEMPLATE
  assert restored.special_tokens_map == tokenizer.special_tokens_map
  given = tokenizer_lib.HuggingFaceTokenizer(str(directory / "tokenizer.json"),
                                             eos_token="<|im_end|>")
  assert given.eos_id == tokenizer.token_to_id("<|im_end|>")
  (directory / "chat_template.jinja").write_text(LLAMA3_TEMPLATE)  # transformers prefers it
  assert tokenizer_lib.HuggingFaceTokenizer(
      str(directory / "tokenizer.json")).chat_template == LLAMA3_TEMPLATE

  bare = _write(tmp_path / "bare", "llama3")
  (bare / "tokenizer_config.json").unlink()
  tokenizer = tokenizer_lib.HuggingFaceTokenizer(str(bare / "tokenizer.json"))
  assert tokenizer.chat_template is None
  assert tokenizer.bos_id == tokenizer.token_to_id("<|begin_of_text|>")

  broken = _write(tmp_path / "broken", "llama3", eos_token="<|nope|>")
  with pytest.raises(ValueError, match=r"eos token '<\|nope\|>' \(.*tokenizer_config.json\)"):
    tokenizer_lib.HuggingFaceTokenizer(str(broken / "tokenizer.json"))
  broken = _write(tmp_path / "broken2", "llama3", eos_token=7)
  with pytest.raises(ValueError, match="tokenizer_config.json: eos_token=7"):
    tokenizer_lib.HuggingFaceTokenizer(str(broken / "tokenizer.json"))


def test_null_bos_token_means_none_even_when_the_vocabulary_has_one(tmp_path):
  """`"bos_token": null` gives no bos, as transformers reads it, although `<s>` (a name
  searched for when the config says nothing) is in the vocabulary: the template renders
  no bos and the ids equal transformers'."""
  special = ["<s>", *STYLES["llama3"][0]]
  tokenizer = _byte_level_bpe(special)
  tokenizer.save(str(tmp_path / "tokenizer.json"))
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({
      "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None,
      "eos_token": "<|end_of_text|>", "chat_template": LLAMA3_TEMPLATE}))
  ours = tokenizer_lib.load_tokenizer(str(tmp_path / "tokenizer.json"))
  theirs = transformers.AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
  assert theirs.bos_token is None and "bos_token" not in ours.special_tokens_map
  messages = CONVERSATIONS[1]
  assert not chat.render(messages, tokenizer=ours).startswith("<s>")
  assert chat.tokenize(messages, ours)[0].tolist() == _their_ids(theirs, messages, False)
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({
      "eos_token": "<|end_of_text|>", "chat_template": LLAMA3_TEMPLATE}))
  unnamed = tokenizer_lib.load_tokenizer(str(tmp_path / "tokenizer.json"))
  assert unnamed.special_tokens_map["bos_token"] == "<s>"   # searched for by name


def test_our_template_weights_exactly_the_assistant_turns():
  """The shipped sentencepiece tokenizer keeps our template: weight 1 on each assistant
  content and its <|end|>, nothing else; a generation prompt ends with <|assistant|>."""
  ours = tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))
  dialogue = [{"role": "system", "content": chat.THINKING_OFF},
              {"role": "user", "content": "Name a colour."},
              {"role": "assistant", "content": "Blue."},
              {"role": "user", "content": "Another one?"},
              {"role": "assistant", "content": "Green."}]
  end = ours.token_to_id(tokenizer_lib.END_OF_TURN)
  ids, weights = chat.tokenize(dialogue, ours)
  assert ids.shape == weights.shape
  assert _weighted_runs(ids, weights) == [ours.encode("Blue.") + [end],
                                          ours.encode("Green.") + [end]]
  prompt, prompt_weights = chat.tokenize(dialogue[:2], ours, add_generation_prompt=True)
  assert prompt[-1] == ours.token_to_id(tokenizer_lib.ASSISTANT) and not prompt_weights.any()


# Tool-integrated reasoning (AIMO-2, arXiv 2504.16891): code, its output, then the answer.
CODE = "Add them:\n```python\nprint(12 + 7)\n```\n"
OUTPUT = "```output\n19\n```\n"
TIR = [{"role": "user", "content": "What is 12 + 7?"},
       {"role": "assistant", "content": CODE},
       {"role": "tool", "content": OUTPUT},
       {"role": "assistant", "content": "So 12 + 7 = 19."}]
TOOL_TEMPLATES = {"qwen2": QWEN25_TOOL_TEMPLATE, "llama3": LLAMA31_TOOL_TEMPLATE}
# What each template writes after the code: the tool's output and the generation prompt.
TOOL_RESPONSES = {
    "qwen2": ("<|im_end|>\n<|im_start|>user\n<tool_response>\n" + OUTPUT
              + "\n</tool_response><|im_end|>\n<|im_start|>assistant\n"),
    "llama3": ("<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n" + json.dumps(OUTPUT)
               + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
}


@pytest.fixture(scope="module", params=sorted(TOOL_TEMPLATES))
def tool_style(request, tmp_path_factory):
  """(name, ours, theirs) with the tool-role template of Qwen2.5 or Llama-3.1."""
  directory = _write(tmp_path_factory.mktemp(request.param + "_tools"), request.param,
                     chat_template=TOOL_TEMPLATES[request.param])
  return request.param, *_ours_and_theirs(directory)


def _trim(name):
  return str.strip if name == "llama3" else str   # the Llama-3 templates trim contents


@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_tool_messages_through_the_template(tool_style, add_generation_prompt):
  """Tool messages go to the template as they are: the ids are transformers', weight 0 on
  the tool's output, 1 on each assistant content and its end of turn."""
  name, ours, theirs = tool_style
  for messages in (TIR, TIR[:3]):
    ids, weights = chat.tokenize(messages, ours, add_generation_prompt=add_generation_prompt)
    assert ids.tolist() == _their_ids(theirs, messages, add_generation_prompt)
    text = chat.render(messages, tokenizer=ours, add_generation_prompt=add_generation_prompt)
    assert text == theirs.apply_chat_template(messages, tokenize=False,
                                              add_generation_prompt=add_generation_prompt)
  end_of_turn = STYLES[name][2][0]
  trim = _trim(name)
  assert (trim(CODE) + TOOL_RESPONSES[name] + TIR[3]["content"] + end_of_turn
          in chat.render(TIR, tokenizer=ours))
  ids, weights = chat.tokenize(TIR, ours)
  assert _weighted_runs(ids, weights) == [
      ours.encode(trim(m["content"])) + [ours.token_to_id(end_of_turn)]
      for m in TIR if m["role"] == "assistant"]


def test_tool_response_ids_continue_a_partial_response_through_the_template(tool_style):
  name, ours, _ = tool_style
  prompt = chat.render(TIR[:1], tokenizer=ours, add_generation_prompt=True)
  partial = prompt + _trim(name)(CODE)   # what the model has written when the code ran
  assert chat.render(TIR[:3], tokenizer=ours, add_generation_prompt=True
                     ) == partial + TOOL_RESPONSES[name]
  ids = chat.tool_response_ids(ours, OUTPUT)
  assert ids == ours.encode(TOOL_RESPONSES[name])
  assert chat.tokenize(TIR[:3], ours, add_generation_prompt=True)[0].tolist() == (
      ours.encode(partial) + ids)


def test_our_template_continues_the_assistant_turn_through_tool_output():
  """The AIMO-2 format: the tool's output is written inside the assistant's turn, with no
  marker or <|end|> around it; contents are encoded piece by piece, as a tool-integrated
  generator appends them."""
  ours = tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))
  code, output, answer = "a```python\nprint(1)\n```\n", "```output\n1\n```\n", "so 1"
  messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": code},
              {"role": "tool", "content": output}, {"role": "assistant", "content": answer}]
  assert chat.render(messages) == f"<|user|>q<|end|><|assistant|>{code}{output}{answer}<|end|>"
  assert chat.render(messages[:3], add_generation_prompt=True) == (
      f"<|user|>q<|end|><|assistant|>{code}{output}")
  assert chat.render(messages[:3]).endswith(f"{output}<|end|>")

  user, assistant, end = (ours.token_to_id(t) for t in (
      tokenizer_lib.USER, tokenizer_lib.ASSISTANT, tokenizer_lib.END_OF_TURN))
  prompt = [user, *ours.encode("q"), end, assistant]
  assert chat.prompt_ids("q", ours) == prompt
  code_ids, output_ids, answer_ids = (ours.encode(t) for t in (code, output, answer))
  assert chat.tool_response_ids(ours, output) == output_ids
  ids, weights = chat.tokenize(messages, ours)
  assert ids.tolist() == (prompt + code_ids + chat.tool_response_ids(ours, output)
                          + answer_ids + [end])
  assert weights.tolist() == ([0] * len(prompt) + [1] * len(code_ids) + [0] * len(output_ids)
                              + [1] * (len(answer_ids) + 1))
  ids, weights = chat.tokenize(messages[:3], ours, add_generation_prompt=True)
  assert ids.tolist() == prompt + code_ids + output_ids
  assert weights.tolist() == [0] * len(prompt) + [1] * len(code_ids) + [0] * len(output_ids)


def test_tool_message_errors(tmp_path):
  shipped = tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))
  tool = {"role": "tool", "content": OUTPUT}
  for messages, index in (([tool], 0), ([TIR[0], tool], 1), ([*TIR[:3], tool], 3)):
    with pytest.raises(ValueError, match=f"message {index}: a tool message must follow an "
                                         "assistant message"):
      chat.tokenize(messages, shipped)

  directory = _write(tmp_path / "refuses", "llama3")   # no tool role: raise_exception
  tokenizer = tokenizer_lib.load_tokenizer(str(directory / "tokenizer.json"))
  with pytest.raises(ValueError, match="chat_template failed: Only user and assistant roles"):
    chat.tokenize(TIR, tokenizer)
  with pytest.raises(ValueError, match="chat_template failed: Only user and assistant roles"):
    chat.tool_response_ids(tokenizer, OUTPUT)

  directory = _write(tmp_path / "rewrites", "qwen2", chat_template=REWRITES_ANSWERS_TEMPLATE)
  tokenizer = tokenizer_lib.load_tokenizer(str(directory / "tokenizer.json"))
  with pytest.raises(ValueError, match="renders an assistant message differently once a "
                                       "tool message follows"):
    chat.tool_response_ids(tokenizer, OUTPUT)
