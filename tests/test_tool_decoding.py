"""Decoding with tool calls: a waiting row decodes as if it had never waited."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model import config as mcfg
from model import generate as gen
from model import lm

PROMPTS = ([5, 9, 14, 3, 7, 22], [11, 4], [8, 30, 2, 19])
FAMILIES = {"transformer": mcfg.tiny_transformer, "hybrid": mcfg.tiny}
N = 14            # completion slots
CALL_AFTER = 3    # the toy fence closes after this many sampled tokens
REPLY = {0: [7, 7, 1, 2], 1: [3], 2: [9, 8, 7, 6, 5]}   # the "tool's" tokens per row


@functools.lru_cache(maxsize=None)
def _model(family: str):
  cfg = FAMILIES[family](vocab_size=64, d_model=32, mlp_dim=64, chunk_size=4)
  return cfg, lm.init(jax.random.PRNGKey(1), cfg)


@pytest.fixture(params=sorted(FAMILIES))
def model(request):
  return _model(request.param)


@pytest.fixture
def hybrid():
  """The hybrid alone: it has both kinds of cache (attention and Mamba layers)."""
  return _model("hybrid")


def counting_fence(vocab: int) -> jnp.ndarray:
  """A fence automaton that closes a 'block' after every CALL_AFTER sampled tokens."""
  return jnp.tile(jnp.arange(1, CALL_AFTER + 2, dtype=jnp.int32)[:, None], (1, vocab))


MAX_STEPS = N + 40


@functools.lru_cache(maxsize=None)
def _jitted(cfg, sampling, chunk):
  start = jax.jit(functools.partial(gen.start_tool_decoding, model_cfg=cfg, sampling=sampling,
                                    max_steps=MAX_STEPS, forced_slots=8))
  advance = jax.jit(functools.partial(gen.advance_tool_decoding, model_cfg=cfg,
                                      sampling=sampling, max_steps=MAX_STEPS,
                                      chunk_steps=chunk))
  return start, advance


def decode_with_waits(cfg, params, waits: dict[int, int], chunk: int, calls: int = 1,
                      temperature: float = 0.0):
  """Tool decoding where row r's reply comes back ``waits[r]`` chunks after it waits."""
  sampling = gen.SamplingConfig(max_new_tokens=N, temperature=temperature)
  prompt, mask = gen.left_pad(PROMPTS)
  start, advance = _jitted(cfg, sampling, chunk)
  state = start(params, jnp.asarray(prompt), jnp.asarray(mask), jnp.full((3,), calls))
  fence = counting_fence(cfg.vocab_size)
  waited = {row: 0 for row in range(3)}
  for _ in range(40):
    state = advance(params, state, jax.random.PRNGKey(3), fence)
    status = np.asarray(state.status_B)
    if (status == gen.DONE).all():
      break
    resume = np.zeros(3, bool)
    forced, forced_len = np.zeros((3, 8), np.int32), np.zeros(3, np.int32)
    for row in np.flatnonzero(status == gen.WAITING):
      waited[row] += 1
      if waited[row] > waits[row]:
        resume[row], waited[row] = True, 0
        forced[row, :len(REPLY[row])], forced_len[row] = REPLY[row], len(REPLY[row])
    state = gen.resume_tool_rows(state, jnp.asarray(resume), jnp.asarray(forced),
                                 jnp.asarray(forced_len))
  return state


def test_waiting_does_not_change_a_row(model):
  """However long each row waits (and whatever the chunk size), its tokens are those of
  a decode that never paused; the reply's tokens are marked as the tool's."""
  cfg, params = model
  base = decode_with_waits(cfg, params, {0: 0, 1: 0, 2: 0}, chunk=4)
  for waits, chunk in (({0: 2, 1: 0, 2: 5}, 4), ({0: 0, 1: 3, 2: 1}, 1)):
    other = decode_with_waits(cfg, params, waits, chunk=chunk)
    np.testing.assert_array_equal(other.tokens_BN, base.tokens_BN, err_msg=str(waits))
    np.testing.assert_allclose(other.log_probs_BN, base.log_probs_BN, atol=1e-5)
  tokens, tool = np.asarray(base.tokens_BN), np.asarray(base.tool_BN)
  for row in range(3):
    reply = REPLY[row]
    np.testing.assert_array_equal(tokens[row, CALL_AFTER:CALL_AFTER + len(reply)], reply)
    assert tool[row].tolist() == ([0] * CALL_AFTER + [1] * len(reply)
                                  + [0] * (N - CALL_AFTER - len(reply)))
  assert np.asarray(base.mask_BN).all()   # no stop token: every slot is the completion
  assert (np.asarray(base.log_probs_BN)[tool > 0] == 0).all()


def test_matches_the_full_forward(model):
  """The greedy tokens after a reply are the argmax of the uncached forward over the
  prompt, the tokens before the call and the reply (no cache state leaks)."""
  cfg, params = model
  state = decode_with_waits(cfg, params, {0: 1, 1: 2, 2: 0}, chunk=1)
  forward = jax.jit(lambda t: lm.forward(params, t, cfg)[0])
  width = max(map(len, PROMPTS)) + N   # right padding: causal, one compile
  for row, prompt in enumerate(PROMPTS):
    completion = np.asarray(state.tokens_BN[row]).tolist()
    context = list(prompt) + completion
    logits = forward(jnp.asarray([context + [0] * (width - len(context))]))
    for i in range(CALL_AFTER + len(REPLY[row]), N):
      assert int(jnp.argmax(logits[0, len(prompt) + i - 1])) == completion[i], (row, i)


def test_no_calls_left_means_no_waiting(hybrid):
  """With a budget of zero the fence never pauses a row: plain greedy decoding."""
  cfg, params = hybrid
  state = decode_with_waits(cfg, params, {0: 0, 1: 0, 2: 0}, chunk=4, calls=0)
  prompt, mask = gen.left_pad(PROMPTS)
  plain = gen.generate(params, prompt, mask, jax.random.PRNGKey(0), model_cfg=cfg,
                       sampling=gen.SamplingConfig(max_new_tokens=N, temperature=0.0))
  np.testing.assert_array_equal(state.tokens_BN, plain.tokens)
  assert not np.asarray(state.tool_BN).any()


def test_sampling_does_not_depend_on_timing(hybrid):
  cfg, params = hybrid
  a = decode_with_waits(cfg, params, {0: 0, 1: 2, 2: 1}, chunk=1, temperature=1.0)
  b = decode_with_waits(cfg, params, {0: 3, 1: 0, 2: 0}, chunk=4, temperature=1.0)
  np.testing.assert_array_equal(a.tokens_BN, b.tokens_BN)
