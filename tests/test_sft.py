"""SFT: records to conversations with the reasoning toggle, the assistant-only loss mask
through packing, bad records named, a step."""

import json

import jax
import numpy as np
import optax
import pytest

from configs import sft as sft_config
from configs import tiny_hybrid
from data import chat
from data import config as data_config
from data import tokenizer as tokenizer_lib
from model import config as mcfg
from model import lm
from train import loops
from train import loss as loss_lib
from train import sft
from train import step as step_lib
from train.state import TrainState

PROBLEM = {"question": "What is 12 + 7?",
           "solution": "<think>\nAdd the ones: 2 + 7 = 9.\nSo 12 + 7 = 19.\n</think>\nAnswer: 19",
           "answer": "19"}
DIALOGUE = [
    {"role": "system", "content": chat.THINKING_OFF},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another one?"},
    {"role": "assistant", "content": "Green."},
]


@pytest.fixture(scope="module")
def tokenizer():
  return tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))


def assistant_ids(messages, tokenizer):
  end = tokenizer.token_to_id(tokenizer_lib.END_OF_TURN)
  return [tokenizer.encode(m["content"]) + [end] for m in messages if m["role"] == "assistant"]


def test_packed_loss_mask_covers_exactly_assistant_tokens(tokenizer):
  records = [{"messages": DIALOGUE},
             {"messages": chat.conversation("Say hi.", answer="Hi!", thinking=False)}]
  batch = next(iter(sft.packed_batches(records, tokenizer, seq_len=96, batch_size=1,
                                       toggle="none")))
  tokens, targets, mask, segments = (batch[k][0] for k in
                                     ("tokens", "targets", "loss_mask", "segment_ids"))
  assert segments.max() >= 2, "both conversations should share the row"
  for segment in range(1, segments.max() + 1):
    in_segment = segments == segment
    learned = targets[in_segment & (mask > 0)].tolist()
    text = tokenizer.decode(tokens[in_segment])
    messages = DIALOGUE if "colour" in text else records[1]["messages"]
    assert learned == sum(assistant_ids(messages, tokenizer), [])
  # No target ever crosses into another conversation or into padding.
  assert np.all(mask[segments == 0] == 0)
  next_segment = np.append(segments[1:], 0)
  assert np.all(mask[next_segment != segments] == 0)


def test_reasoning_toggle_changes_the_template(tokenizer):
  on, off = sft.record_conversations(PROBLEM, "pair")
  on_text, off_text = chat.render(on), chat.render(off)
  assert on_text == ("<|system|>detailed thinking on<|end|><|user|>What is 12 + 7?<|end|>"
                     "<|assistant|><think>Add the ones: 2 + 7 = 9.\nSo 12 + 7 = 19.</think>"
                     "Answer: 19<|end|>")
  assert off_text == ("<|system|>detailed thinking off<|end|><|user|>What is 12 + 7?<|end|>"
                      "<|assistant|>Answer: 19<|end|>")
  think = tokenizer.token_to_id(tokenizer_lib.THINK_START)
  on_ids, on_weights = chat.tokenize(on, tokenizer)
  off_ids, _ = chat.tokenize(off, tokenizer)
  assert think in on_ids[on_weights > 0].tolist() and think not in off_ids.tolist()
  assert [len(sft.record_conversations(PROBLEM, t)) for t in ("on", "off", "none")] == [1, 1, 1]
  assert chat.prompt_ids("Hi", tokenizer, thinking=True) != chat.prompt_ids(
      "Hi", tokenizer, thinking=False)


def hook_context(config, tokenizer) -> loops.Context:
  """A context for the loop hooks that read only the config and the tokenizer."""
  return loops.Context(config=config, model_cfg=None, tokenizer=tokenizer, mesh=None,
                       optimizer=None, schedule=None)


def test_samples_are_chat_prompts_that_stop_at_the_end_of_turn(tokenizer):
  """The prompts sampled at the end of a run: SFT's are user turns of the chat template
  with the reasoning toggle the run evaluates with; pretraining's plain text."""
  config = sft_config.get_config()                      # evaluated with thinking off
  prompt_format = sft.LOOP.prompt_format(hook_context(config, tokenizer))
  question = {"question": "What is 2+3?"}
  assert tokenizer.decode(prompt_format.prompt_ids(question, tokenizer)) == (
      "<|system|>detailed thinking off<|end|><|user|>What is 2+3?<|end|><|assistant|>")
  end_of_turn = tokenizer.token_to_id(tokenizer_lib.END_OF_TURN)
  assert set(prompt_format.stop_tokens(tokenizer)) == {end_of_turn, tokenizer.eos_id}
  config.eval.thinking = ""
  prompt_format = sft.LOOP.prompt_format(hook_context(config, tokenizer))
  assert tokenizer.decode(prompt_format.prompt_ids(question, tokenizer)) == (
      "<|user|>What is 2+3?<|end|><|assistant|>")
  plain = loops.get("pretrain").prompt_format(hook_context(tiny_hybrid.get_config(), tokenizer))
  assert plain.prompt_ids({"question": "Once upon a time"}, tokenizer) == tokenizer.encode(
      "Once upon a time")
  assert plain.stop_tokens(tokenizer) == (tokenizer.eos_id,)


def test_text_template_trains_on_what_a_text_prompt_asks(tokenizer):
  """sft.template='text': the question and a newline (the 'text' prompt evaluation asks),
  then the solution and eos, the only targets; the run is asked the same way."""
  [(ids, weights)] = sft.record_examples(PROBLEM, tokenizer, toggle="none", template="text")
  prompt = tokenizer.encode(PROBLEM["question"] + "\n")
  assert ids.tolist() == prompt + tokenizer.encode(PROBLEM["solution"]) + [tokenizer.eos_id]
  assert weights.tolist() == [0] * len(prompt) + [1] * (len(ids) - len(prompt))
  answered = sft.record_examples({"question": "2+2?", "answer": 4}, tokenizer, toggle="pair",
                                 template="text")[0][0]
  assert tokenizer.decode(answered[answered != tokenizer.eos_id]) == "2+2?\n4"
  batch = next(iter(sft.packed_batches([PROBLEM], tokenizer, seq_len=96, batch_size=1,
                                       toggle="none", template="text")))
  learned = batch["targets"][0][batch["loss_mask"][0] > 0].tolist()
  assert learned[:int(weights.sum())] == ids[weights > 0].tolist()   # the record repeats
  with pytest.raises(ValueError, match="'messages' records need the chat template"):
    sft.record_examples({"messages": DIALOGUE}, tokenizer, toggle="none", template="text")
  config = sft_config.get_config()
  config.sft.template = "text"
  prompt_format = sft.LOOP.prompt_format(hook_context(config, tokenizer))
  assert prompt_format.prompt_ids(PROBLEM, tokenizer) == prompt
  assert prompt_format.stop_tokens(tokenizer) == (tokenizer.eos_id,)


def test_bad_records_are_named_by_file_and_line(tokenizer, tmp_path):
  path = tmp_path / "records.jsonl"
  path.write_text(json.dumps(PROBLEM) + "\n" + json.dumps({"question": "no answer"}) + "\n")
  with pytest.raises(ValueError, match=f"{path}:2: an SFT record needs 'messages', or "
                                       "'question' with 'solution' or 'answer'"):
    sft.read_records(str(path), tokenizer, "pair")
  path.write_text(json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n")
  with pytest.raises(ValueError, match=f"{path}:1: message 0: role 'robot'"):
    sft.read_records(str(path), tokenizer, "none")


def test_bad_conversations_raise(tokenizer):
  with pytest.raises(ValueError, match="role"):
    chat.tokenize([{"role": "robot", "content": "x"}], tokenizer)
  with pytest.raises(ValueError, match="empty"):
    chat.tokenize([], tokenizer)
  with pytest.raises(ValueError, match="reasoning"):
    chat.conversation("q", answer="a", thinking=True)
  with pytest.raises(ValueError, match="toggle"):
    sft.record_conversations(PROBLEM, "maybe")


def test_sft_step_lowers_the_assistant_loss(tokenizer):
  records = [PROBLEM, {"messages": DIALOGUE}]
  batches = iter(sft.packed_batches(records, tokenizer, seq_len=64, batch_size=4))
  batch = next(batches)
  cfg = mcfg.tiny(vocab_size=tokenizer.vocab_size, d_model=32, mlp_dim=64)
  optimizer = optax.adam(1e-2)
  state = TrainState.create(lm.init(jax.random.PRNGKey(0), cfg), optimizer,
                            jax.random.PRNGKey(1))
  step = jax.jit(step_lib.make_train_step(loss_lib.make_lm_loss(cfg), optimizer),
                 donate_argnums=0)
  losses = []
  for _ in range(8):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.7 * losses[0], losses
