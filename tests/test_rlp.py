"""RLP (arXiv 2510.01265): rewards, advantages, loss, EMA, bad input, and learning."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data import config as data_config
from data import tokenizer as tokenizer_lib
from model import config as mcfg
from model import lm
from rl import algorithms
from rl import policy_update
from rl import rlp
from train import driver
from train import loss as loss_lib
from train import metrics as metrics_lib
from train import step as step_lib
from train.state import TrainState

CFG = mcfg.tiny(vocab_size=64, d_model=32, mlp_dim=64, chunk_size=4)
THINK, END_THINK = 60, 61
CONFIG = rlp.RLPConfig(think_start=THINK, think_end=END_THINK, group_size=3, thought_len=3,
                       context_len=6, ema_decay=0.5, temperature=1.0)
# Row 0: one document; row 1: two packed documents; row 2: a short one, then padding.
SEGMENTS = np.array([[1] * 12, [1] * 5 + [2] * 7, [1] * 4 + [0] * 8], np.int32)


@pytest.fixture(scope="module")
def tokenizer():
  return tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))


def text_batch(seed=0):
  tokens = np.asarray(jax.random.randint(jax.random.PRNGKey(seed), SEGMENTS.shape, 1, 59))
  return {"tokens": np.where(SEGMENTS > 0, tokens, 0).astype(np.int32),
          "segment_ids": SEGMENTS}


@jax.jit
def _log_softmax_all(params, tokens):
  return jax.nn.log_softmax(lm.forward(params, tokens, CFG)[0], axis=-1)


def next_token_log_prob(params, tokens, target, width=16):
  """log p(target | tokens) from a plain, unpadded-prefix forward (right padding is
  causal-safe), one compile for every length."""
  padded = jnp.asarray([list(tokens) + [0] * (width - len(tokens))])
  return float(_log_softmax_all(params, padded)[0, len(tokens) - 1, target])


def find_document_slice(batch, row, context, target):
  """Whether context + [target] occur contiguously inside one document of the row."""
  tokens, segments = batch["tokens"][row], batch["segment_ids"][row]
  want = list(context) + [target]
  for start in range(len(tokens) - len(want) + 1):
    window = slice(start, start + len(want))
    if tokens[window].tolist() == want and len(set(segments[window])) == 1 and segments[start]:
      return True
  return False


def test_document_end_scores_the_last_token_before_eos():
  """Packed documents end in eos (data.packing): 'document_end' scores the answer before
  it, also for a document whose eos was cut off by the row's end."""
  eos = 2
  tokens = jnp.asarray([[5, 6, 7, eos, 8, 9, eos, 0], [5, 6, eos, 7, 8, 9, 10, 11]])
  segments = jnp.asarray([[1, 1, 1, 1, 2, 2, 2, 0], [1, 1, 1, 2, 2, 2, 2, 2]])
  allowed = rlp.candidate_positions(tokens, segments, "document_end", eos_id=eos)
  np.testing.assert_array_equal(np.flatnonzero(allowed[0]), [2, 5])   # 7 and 9
  np.testing.assert_array_equal(np.flatnonzero(allowed[1]), [1, 7])   # 6 and 11
  without_eos = rlp.candidate_positions(tokens, segments, "document_end")
  np.testing.assert_array_equal(np.flatnonzero(without_eos[0]), [3, 6])
  for seed in range(4):
    *_, target_B, _ = rlp.sample_contexts(jax.random.PRNGKey(seed), tokens, segments,
                                          context_len=4, mode="document_end", pad_id=0,
                                          eos_id=eos)
    assert target_B[0] in (7, 9) and target_B[1] in (6, 11)


@pytest.fixture(scope="module")
def rollout_out():
  params = lm.init(jax.random.PRNGKey(1), CFG)
  ema_params = lm.init(jax.random.PRNGKey(2), CFG)
  batch = text_batch()
  out = jax.jit(lambda p, e, b, r: rlp.rollout(p, e, b, r, model_cfg=CFG, config=CONFIG))(
      params, ema_params, batch, jax.random.PRNGKey(3))
  return params, ema_params, batch, out


def test_reward_equals_two_separate_forward_passes(rollout_out):
  params, ema_params, batch, (policy_batch, rewards_BG, diagnostics) = rollout_out
  g = CONFIG.group_size
  lengths, truncated = [], []
  for row in range(policy_batch["tokens"].shape[0]):
    real = policy_batch["segment_ids"][row] > 0
    tokens = np.asarray(policy_batch["tokens"][row])[real].tolist()
    actions = np.asarray(policy_batch["action_mask"][row])[real]
    start = tokens.index(THINK)
    context, target = tokens[:start], tokens[-1]
    thought = [t for t, a in zip(tokens, actions) if a]
    # Layout: context, <think>, 1..thought_len sampled tokens, </think>, x_t.
    assert 1 <= len(thought) <= CONFIG.thought_len and tokens[-2] == END_THINK
    lengths.append(len(thought))
    truncated.append(END_THINK not in thought)      # closed by force, not sampled
    assert tokens[start + 1:start + 1 + len(thought)] == thought
    assert find_document_slice(batch, row // g, context, target)
    s_pred = next_token_log_prob(params, tokens[:-1], target)
    s_ema = next_token_log_prob(ema_params, context, target)
    np.testing.assert_allclose(rewards_BG[row // g, row % g], s_pred - s_ema, atol=1e-4)
  assert float(diagnostics["completion_length"]) == pytest.approx(np.mean(lengths))
  assert float(diagnostics["truncated"]) == pytest.approx(np.mean(truncated))


def test_advantages_and_loss_follow_the_paper(rollout_out):
  params, _, _, (policy_batch, rewards_BG, _) = rollout_out
  advantages = policy_batch["advantages"].reshape(rewards_BG.shape)
  g = CONFIG.group_size
  np.testing.assert_allclose(jnp.sum(advantages, axis=-1), 0.0, atol=1e-5)      # Σ_i A_i = 0
  np.testing.assert_allclose(
      advantages, g / (g - 1) * (rewards_BG - rewards_BG.mean(-1, keepdims=True)), atol=1e-5)
  # Only the sampled thought tokens are actions: never the context, <think>, the forced
  # </think> or x_t (the last slot).
  actions = np.asarray(policy_batch["action_mask"])
  tokens = np.asarray(policy_batch["tokens"])
  assert actions[:, -1].sum() == 0 and (actions[tokens == THINK] == 0).all()
  # With ρ = 1 the loss is −mean A over thoughts (any A, not only zero-mean ones).
  loss_fn = policy_update.make_policy_loss(CFG, CONFIG.loss)
  some_advantages = jnp.arange(actions.shape[0], dtype=jnp.float32) - 2.0
  loss, aux = jax.jit(loss_fn)(params, dict(policy_batch, advantages=some_advantages), None)
  np.testing.assert_allclose(loss, -jnp.mean(some_advantages), rtol=1e-5)
  assert float(aux["ratio"]) == pytest.approx(1.0, abs=1e-4)

  # The loss's gradient per position is zero off the thought tokens.
  def per_position(log_probs):
    per_token, _ = algorithms.POLICY_LOSSES.get("ppo_clip")(
        log_probs, policy_batch["behaviour_log_probs"], some_advantages[:, None],
        epsilon_low=0.2, epsilon_high=0.2)
    return algorithms.LOSS_AGGREGATIONS.get("sequence")(per_token,
                                                        policy_batch["action_mask"])[0]
  gradient = np.asarray(jax.grad(per_position)(policy_batch["behaviour_log_probs"]))
  assert (gradient[actions == 0] == 0).all() and (gradient[actions > 0] != 0).any()


def test_step_reward_metric_and_ema_update():
  cfg = mcfg.tiny_transformer(vocab_size=64, d_model=32, mlp_dim=64)
  optimizer = optax.sgd(0.5)
  theta0 = lm.init(jax.random.PRNGKey(1), cfg)
  state = driver.make_state(rlp.RLPState, theta0, optimizer, jax.random.PRNGKey(4),
                            {"ema_params": None})
  state = state.replace(ema_params=jax.tree.map(jnp.zeros_like, theta0))   # φ unset
  host = lambda tree: jax.tree.map(np.asarray, tree)
  theta0 = host(theta0)
  step = jax.jit(rlp.make_rlp_step(cfg, optimizer, CONFIG), donate_argnums=0)
  batch = text_batch()
  # The step's reward is the rollout's with the step's rng and φ = θ on the first batch.
  _, rollout_rng = jax.random.split(state.rng)
  _, rewards_BG, _ = jax.jit(lambda p, r: rlp.rollout(p, p, batch, r, model_cfg=cfg,
                                                      config=CONFIG))(theta0, rollout_rng)
  state, metrics = step(state, batch)
  np.testing.assert_allclose(metrics["reward_mean"], jnp.mean(rewards_BG), rtol=1e-5,
                             atol=1e-6)
  line = metrics_lib.format_line(1, 2, jax.device_get(metrics))
  for shown in ("reward", "truncated", "completion_length", "clip_fraction"):
    assert f"| {shown} " in line, line
  tau = CONFIG.ema_decay
  theta1, phi1 = host(state.params), host(state.ema_params)
  moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), theta1, theta0)
  assert max(jax.tree.leaves(moved)) > 0, "the step should move θ"
  jax.tree.map(lambda phi, t0, t1: np.testing.assert_allclose(
      phi, tau * t0 + (1 - tau) * t1, rtol=1e-6, atol=1e-7), phi1, theta0, theta1)
  state, _ = step(state, text_batch(seed=1))
  jax.tree.map(lambda phi, p1, t2: np.testing.assert_allclose(
      phi, tau * p1 + (1 - tau) * t2, rtol=1e-6, atol=1e-7),
               host(state.ema_params), phi1, host(state.params))


def test_bad_batches_raise_before_the_step():
  with pytest.raises(ValueError, match="non-empty"):
    rlp.check_batch({"tokens": np.zeros((0, 8), np.int32),
                     "segment_ids": np.zeros((0, 8), np.int32)}, CONFIG)
  lonely = {"tokens": np.ones((2, 4), np.int32),
            "segment_ids": np.array([[1, 1, 0, 0], [0, 0, 0, 1]], np.int32)}
  with pytest.raises(ValueError, match=r"rows \[1\]"):
    rlp.check_batch(lonely, CONFIG)
  with pytest.raises(ValueError, match="lacks"):
    rlp.check_batch({"tokens": lonely["tokens"]}, CONFIG)
  rlp.check_batch(text_batch(), CONFIG)
  with pytest.raises(ValueError, match="group_size"):
    rlp.RLPConfig(think_start=THINK, think_end=END_THINK, group_size=1)



# -------------------------------------------------------------------------- learning


def modsum_rows(tokenizer):
  """The shipped "a b c = s" corpus (data/corpus/modsum.jsonl, the paper's toy setting).

  Returns (thinking documents (n, 13): "a b c = <think> (a+b)%10 </think>s" token ids,
  the index of their thought digit, and plain documents (1000, 9) "a b c = s" with
  their segment ids). The corpus writes "</think> s"; the space is dropped so that the
  scored token directly follows "</think>", as RLP scores it.
  """
  with open(data_config.corpus_path("modsum.jsonl"), encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  encode = lambda q, s: tokenizer.encode(q) + tokenizer.encode(" " + s)
  thinking = np.array([encode(r["question"], r["solution"].replace("</think> ", "</think>"))
                       for r in records if tokenizer_lib.THINK_START in r["solution"]], np.int32)
  digit_slot = thinking[0].tolist().index(tokenizer.token_to_id(tokenizer_lib.THINK_START)) + 2
  plain = [encode(r["question"], r["answer"]) for r in records]
  width = max(map(len, plain))
  tokens = np.zeros((len(plain), width), np.int32)
  segment_ids = np.zeros((len(plain), width), np.int32)
  for row, ids in enumerate(plain):
    tokens[row, :len(ids)], segment_ids[row, :len(ids)] = ids, 1
  return thinking, digit_slot, {"tokens": tokens, "segment_ids": segment_ids}


def pretrain_noisy_thinker(tokenizer, thinking, digit_slot, *, steps, noise, seed=0,
                           learning_rate=1e-3):
  """A tiny transformer trained on the thinking documents with a share ``noise`` of the
  thoughts replaced by random digits (the answer recomputed from the wrong thought), so
  its answer follows its thought but its thoughts are right only ~(1 − 0.9·noise)."""
  cfg = mcfg.tiny_transformer(vocab_size=tokenizer.vocab_size, d_model=64, mlp_dim=128,
                              pattern="*-*-*-")
  digits = np.array([tokenizer.token_to_id(str(d)) for d in range(10)])
  digit_value = {int(t): d for d, t in enumerate(digits)}
  c_values = np.array([digit_value[int(t)] for t in thinking[:, 4]])
  n, width = thinking.shape
  loss_mask = np.zeros((n, width), np.float32)
  loss_mask[:, 5:-1] = 1.0                      # targets: every token after "a b c ="
  optimizer = optax.adam(learning_rate)
  state = TrainState.create(lm.init(jax.random.PRNGKey(seed), cfg), optimizer,
                            jax.random.PRNGKey(1))
  step = jax.jit(step_lib.make_train_step(loss_lib.make_lm_loss(cfg), optimizer),
                 donate_argnums=0)
  rng = np.random.default_rng(seed)
  for _ in range(steps):
    rows = rng.choice(n, 128, replace=False)
    tokens = thinking[rows].copy()
    noisy = rng.random(len(rows)) < noise
    wrong = rng.integers(0, 10, int(noisy.sum()))
    tokens[noisy, digit_slot] = digits[wrong]
    tokens[noisy, -1] = digits[(wrong + c_values[rows][noisy]) % 10]
    state, _ = step(state, {"tokens": tokens, "targets": np.roll(tokens, -1, axis=1),
                            "segment_ids": np.ones_like(tokens),
                            "positions": np.broadcast_to(np.arange(width), tokens.shape),
                            "loss_mask": loss_mask[rows]})
  logits, _ = jax.jit(lambda p, t: lm.forward(p, t, cfg))(state.params, thinking)
  answer_follows_thought = float(np.mean(np.argmax(logits[:, -2], -1) == thinking[:, -1]))
  return cfg, state.params, answer_follows_thought


def run_rlp(tokenizer, cfg, params, documents, *, steps, learning_rate, seed=0):
  config = rlp.RLPConfig(
      think_start=tokenizer.token_to_id(tokenizer_lib.THINK_START),
      think_end=tokenizer.token_to_id(tokenizer_lib.THINK_END), pad_id=tokenizer.pad_id,
      group_size=4, thought_len=4, context_len=8, temperature=1.0, ema_decay=0.99,
      positions="document_end")
  optimizer = optax.adam(learning_rate)
  state = driver.make_state(rlp.RLPState, params, optimizer, jax.random.PRNGKey(3 + seed),
                            {"ema_params": None})   # the EMA starts as a copy
  step = jax.jit(rlp.make_rlp_step(cfg, optimizer, config), donate_argnums=0)
  rng = np.random.default_rng(1 + seed)
  rewards = []
  for _ in range(steps):
    rows = rng.choice(len(documents["tokens"]), 32, replace=False)
    batch = {key: value[rows] for key, value in documents.items()}
    rlp.check_batch(batch, config)
    state, metrics = step(state, batch)
    rewards.append(float(metrics["reward_mean"]))
  return rewards


def rlp_learning(tokenizer, *, pretrain_steps, rlp_steps, noise, learning_rate):
  thinking, digit_slot, documents = modsum_rows(tokenizer)
  cfg, params, uses_thought = pretrain_noisy_thinker(tokenizer, thinking, digit_slot,
                                                     steps=pretrain_steps, noise=noise)
  # Measured 0.89-1.0 over seeds and ISAs (default, AVX2): a sanity check with room.
  assert uses_thought > 0.8, f"pretraining did not learn to answer from the thought " \
                             f"({uses_thought:.2f})"
  rewards = run_rlp(tokenizer, cfg, params, documents, steps=rlp_steps,
                    learning_rate=learning_rate)
  means = [np.mean(rewards[i:i + 10]) for i in range(0, len(rewards), 10)]
  print("RLP mean reward per 10 steps:", " ".join(f"{m:.3f}" for m in means))
  return means


def test_rlp_raises_the_information_gain_on_the_shipped_corpus(tokenizer):
  """Mean r = S_pred − S_ema rises as RLP makes the noisy thinker's thoughts right."""
  means = rlp_learning(tokenizer, pretrain_steps=800, rlp_steps=40, noise=0.4,
                       learning_rate=3e-4)
  assert means[-1] > means[0] + 0.4, means    # measured +0.75 to +1.2 over seeds and ISAs


@pytest.mark.slow
def test_rlp_raises_the_information_gain_long(tokenizer):
  means = rlp_learning(tokenizer, pretrain_steps=800, rlp_steps=120, noise=0.4,
                       learning_rate=1e-4)
  assert means[-1] > means[0] + 0.8, means
