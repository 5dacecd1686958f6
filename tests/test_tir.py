"""Tool-integrated reasoning: the AIMO-2 text format, its fence automaton, and generation
that runs a row's code in the sandbox and goes on after the output (data/tir.py,
train/generation.py)."""

import json
import random

import jax
import numpy as np
import pytest

from configs import base
from configs import grpo as grpo_defaults
from data import chat
from data import config as data_config
from data import tir
from data import tokenizer as tokenizer_lib
from model import generate as gen
from model import lm
from rl import grpo
from rl import sandbox
from train import config as run_config
from train import driver
from train import generation
from train import sharding
from train import synthesize
from train.loops import Context

TOKENIZER = tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))


def char_level_closes(text: str) -> list[int]:
  """Character offsets (one past) where a ```python block closes, by plain search."""
  out, start = [], 0
  while (open_at := text.find(tir.CODE_OPEN, start)) >= 0:
    close_at = text.find(tir.CODE_CLOSE, open_at + len(tir.CODE_OPEN) - 1)
    if close_at < 0:
      break
    out.append(close_at + len(tir.CODE_CLOSE))
    start = out[-1]
  return out


def test_fence_automaton_closes_where_the_text_does():
  """Over random texts made of fence fragments, the token automaton closes a block at the
  token that completes the closing fence, exactly where a plain search finds it."""
  texts = [tok for tok in (TOKENIZER.decode([i]) for i in range(TOKENIZER.vocab_size))]
  table = tir.fence_automaton(texts)
  closed = table.shape[0] - 1
  pieces = ["```", "python", "\n", "`", "x = 1", "```python\n", "\n```\n", "out", "``",
            "print(2)", " ", "py"]
  rng = random.Random(0)
  for _ in range(300):
    text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 25)))
    ids = TOKENIZER.encode(text)
    state, got, offset = 0, [], 0
    for token in ids:
      offset += len(TOKENIZER.decode([token]))
      state = table[state, token]
      if state == closed:
        got.append(offset)
        state = 0
    assert got == char_level_closes(TOKENIZER.decode(ids)), repr(text)


def test_text_format_pieces():
  text = "so\n```python\nx = 6\nprint(x * 7)\n```\n"
  assert tir.last_code_block(text) == "x = 6\nprint(x * 7)\n"
  assert tir.last_code_block("```python\nprint(1)") is None
  assert tir.has_open_code_block("a\n```python\nprint(1)")
  assert not tir.has_open_code_block(text)
  assert tir.tool_output("ok", "42\n", "", 100) == "42"
  assert tir.tool_output("error", "", "Traceback ...\n  x\nZeroDivisionError: division by zero\n",
                         100) == "ZeroDivisionError: division by zero"
  assert tir.tool_output("timeout", "", "", 100) == "Execution timed out"
  assert tir.tool_output("ok", "1234567890", "", 4) == "1234\n" + tir.TRUNCATED
  assert tir.tool_output("ok", "a\x00b\x07", "", 10) == "a\ufffdb\ufffd"
  assert tir.tool_reply("42", 2) == "```output\n42\n```\nRemaining code executions: 2.\n"
  assert tir.budgeted({"question": "q"}, 0) == {"question": "q"}
  assert "up to 2 Python code calls" in tir.budgeted({"question": "q", "answer": 1}, 2)["question"]
  with pytest.raises(ValueError, match="budget"):
    tir.with_budget("q", -1)


# ------------------------------------------------------------------- with the sandbox

CALL_AFTER = 3     # the toy fence closes a "block" after every 3 sampled tokens


@pytest.fixture(scope="module")
def context():
  try:
    sandbox.check()
  except sandbox.SandboxUnavailable as error:
    pytest.skip(f"this machine cannot sandbox: {error}")
  config = base.get_config()
  config.model = run_config.model_section("tiny", vocab_size=TOKENIZER.vocab_size, d_model=32,
                                          pattern="*M", mlp_dim=64, head_dim=16,
                                          chunk_size=4)
  model_cfg = run_config.model_config(config.model)
  ctx = Context(config=config, model_cfg=model_cfg, tokenizer=TOKENIZER,
                mesh=sharding.make_mesh(config.mesh), optimizer=None, schedule=None)
  return ctx, lm.init(jax.random.PRNGKey(0), model_cfg)


def generate(ctx, params, monkeypatch, programs, *, calls=2, timeout_s=5.0, n=96, chunk=4):
  """Tool generation on three prompts with a fence that closes every CALL_AFTER sampled
  tokens, the k-th call of every row running ``programs[k]``."""
  table = np.tile(np.arange(1, CALL_AFTER + 2, dtype=np.int32)[:, None],
                  (1, TOKENIZER.vocab_size))
  monkeypatch.setattr(generation, "_fence_table", lambda tokenizer: table)
  monkeypatch.setattr(tir, "last_code_block",
                      lambda text: programs[text.count("Remaining code executions")])
  prompts = [TOKENIZER.encode(q) for q in ("What is 6 times 7?\n", "Go\n", "Compute it.\n")]
  sampling = gen.SamplingConfig(max_new_tokens=n, temperature=0.0, pad_id=TOKENIZER.pad_id)
  return generation.generate_with_tools(
      ctx, params, prompts, jax.random.PRNGKey(0), sampling=sampling,
      tools=generation.ToolUse(calls=calls, timeout_s=timeout_s, chunk_steps=chunk),
      reply_ids=TOKENIZER.encode)


def test_rows_continue_after_the_sandbox_output(context, monkeypatch):
  """Each row's calls run in the sandbox; the reply's tokens follow the closing token,
  are marked as the tool's, carry the executions left, and stop after the budget."""
  ctx, params = context
  out = generate(ctx, params, monkeypatch, ["print(6 * 7)", "print(sum(range(5)))"])
  for row in range(3):
    tokens = out.tokens[row][out.mask[row] > 0].tolist()
    tool = out.tool[row][out.mask[row] > 0]
    first = TOKENIZER.encode(tir.tool_reply("42", 1))
    second = TOKENIZER.encode(tir.tool_reply("10", 0))
    assert tokens[CALL_AFTER:CALL_AFTER + len(first)] == first
    at = 2 * CALL_AFTER + len(first)
    assert tokens[at:at + len(second)] == second
    assert tool.sum() == len(first) + len(second)       # the budget: two calls, no third
    assert [c["status"] for c in out.calls[row]] == ["ok", "ok"]
    assert (out.log_probs[row][out.tool[row] > 0] == 0).all()


def test_timing_does_not_change_tokens(context, monkeypatch):
  """A slow program, a different chunk size: the same tokens (rows never see timing)."""
  ctx, params = context
  fast = generate(ctx, params, monkeypatch, ["print(1)", "print(2)"], chunk=4)
  slow = generate(ctx, params, monkeypatch, ["import time; time.sleep(0.5); print(1)",
                                             "print(2)"], chunk=7)
  np.testing.assert_array_equal(fast.tokens, slow.tokens)
  np.testing.assert_array_equal(fast.tool, slow.tool)


def test_hostile_or_broken_code_is_a_counted_outcome(context, monkeypatch):
  """Code that never ends times out, huge output is cut, an exception shows its last line,
  and a budget of zero never calls: each an outcome in the record, the batch unharmed."""
  ctx, params = context
  out = generate(ctx, params, monkeypatch, ["while True: pass", "print('x' * 10**7)"],
                 timeout_s=1.0, n=128)
  assert [c["status"] for c in out.calls[0]] == ["timeout", "ok"]
  assert out.calls[0][1]["truncated"]
  text = TOKENIZER.decode(out.tokens[0][out.mask[0] > 0].tolist())
  assert "Execution timed out" in text and tir.TRUNCATED in text
  out = generate(ctx, params, monkeypatch, ["1 / 0", "print(1)"], calls=1)
  assert "ZeroDivisionError: division by zero" in TOKENIZER.decode(out.tokens[1].tolist())
  none = generate(ctx, params, monkeypatch, ["print(1)"], calls=0)
  assert not none.tool.any() and none.calls == [[], [], []]


def test_grpo_rollouts_train_the_model_tokens_not_the_tool_output(tmp_path, monkeypatch,
                                                                   context):
  """GRPO with grpo.tool_calls: the tool's reply sits in the rollout as context (segment
  1) but is not an action (mask 0, no behaviour log-prob); the prompt states the budget."""
  records = [{"question": f"{a}+1=", "answer": str(a + 1)} for a in range(4)]
  path = tmp_path / "records.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  config = grpo_defaults.get_config()
  config.grpo.records = str(path)
  config.grpo.tool_calls = 1
  config.grpo.max_new_tokens = 48
  config.train.seq_len = 80 + 48
  config.train.global_batch_size = 2 * config.grpo.group_size
  config.mesh.data, config.mesh.fsdp = 1, -1
  model_cfg = run_config.model_config(config.model)
  built = driver.build(config, sharding.make_mesh(config.mesh),
                       driver.load_tokenizer(config, model_cfg))
  table = np.tile(np.arange(1, CALL_AFTER + 2, dtype=np.int32)[:, None],
                  (1, TOKENIZER.vocab_size))
  monkeypatch.setattr(generation, "_fence_table", lambda tokenizer: table)
  monkeypatch.setattr(tir, "last_code_block", lambda text: "print(6 * 7)")
  state = driver.initial_state(built, report=print)
  batch = grpo.make_batches(built.ctx)(state, 0)
  reply = chat.tool_response_ids(TOKENIZER, tir.tool_reply("42", 0))
  prompt_slots = config.train.seq_len - config.grpo.max_new_tokens
  assert "up to 1 Python code calls" in TOKENIZER.decode(batch["tokens"][0, :prompt_slots].tolist())
  stops = chat.stop_token_ids(TOKENIZER)
  called = 0
  for row in range(len(batch["tokens"])):
    completion = slice(prompt_slots, None)
    tokens, actions = batch["tokens"][row, completion], batch["action_mask"][row, completion]
    segments = batch["segment_ids"][row, completion]
    if np.isin(tokens[:CALL_AFTER], stops).any():   # stopped before its call
      continue
    called += 1
    np.testing.assert_array_equal(tokens[CALL_AFTER:CALL_AFTER + len(reply)], reply)
    assert actions[:CALL_AFTER].tolist() == [1] * CALL_AFTER
    assert not actions[CALL_AFTER:CALL_AFTER + len(reply)].any()
    assert segments[CALL_AFTER:CALL_AFTER + len(reply)].all()
    assert not batch["behaviour_log_probs"][row, completion][
        CALL_AFTER:CALL_AFTER + len(reply)].any()
  assert called > 0


def test_a_tool_integrated_completion_becomes_turns():
  """Synthesised TIR solutions train as conversations whose tool turns are not learned."""
  completion = ("Let me compute.\n```python\nprint(6 * 7)\n```\n" + tir.tool_reply("42", 1)
                + "So\n```python\nprint(1)\n```\n" + tir.tool_reply("1", 0) + "Answer: 42")
  messages = tir.conversation("q", completion)
  assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool",
                                           "assistant"]
  assert "".join(m["content"] for m in messages[1:]) == completion
  assert messages[2]["content"] == tir.tool_reply("42", 1)
  ids, weights = chat.tokenize(messages, TOKENIZER)
  assert TOKENIZER.decode(np.asarray(ids)[np.asarray(weights) > 0].tolist()).startswith(
      "Let me compute.")
  learned = TOKENIZER.decode(np.asarray(ids)[np.asarray(weights) > 0].tolist())
  assert "Remaining code executions" not in learned and "Answer: 42" in learned


def test_synthesis_samples_tool_integrated_solutions(context, monkeypatch):
  """A TIR teacher's samples carry the sandbox's output (rows that stop early have none)."""
  ctx, params = context
  table = np.tile(np.arange(1, CALL_AFTER + 2, dtype=np.int32)[:, None],
                  (1, TOKENIZER.vocab_size))
  monkeypatch.setattr(generation, "_fence_table", lambda tokenizer: table)
  monkeypatch.setattr(tir, "last_code_block", lambda text: "print(6 * 7)")
  problems = [{"question": "What is 6 * 7?", "answer": "42"}, {"question": "Hi", "answer": "1"}]
  solutions = synthesize.sample_solutions(ctx, params, problems, samples=2, temperature=1.0,
                                          max_new_tokens=64, template="chat", seed=0,
                                          tool_calls=1)
  assert [len(s) for s in solutions] == [2, 2]
  reply = tir.tool_reply("42", 0)
  assert sum(reply in text for group in solutions for text in group) >= 2
