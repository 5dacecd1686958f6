"""GRPO: advantages, the surrogate's gradient, rewards, templates, learning, bad input."""

import dataclasses
import importlib

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
from model import generate as gen
from rl import grpo
from rl import policy_update
from data import prompts
from rl import rewards
from rl import runner
from rl import sequences
from train import sft
from rl import state as state_lib
from rl import tasks
from train.state import TrainState

TINY = mcfg.tiny_transformer(vocab_size=64, d_model=32, mlp_dim=64)


@pytest.fixture(scope="module")
def tokenizer():
  return tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))


# ------------------------------------------------------------------- advantages, loss


@pytest.mark.parametrize("name", ["grpo", "rloo"])
def test_advantages_are_zero_mean_per_group(name):
  rewards_PG = jax.random.uniform(jax.random.PRNGKey(0), (5, 6)) * jnp.arange(1, 6)[:, None]
  advantages = algorithms.ADVANTAGE_ESTIMATORS.get(name)(rewards_PG)
  np.testing.assert_allclose(jnp.sum(advantages, axis=-1), 0.0, atol=1e-5)
  if name == "grpo":
    np.testing.assert_allclose(jnp.std(advantages, axis=-1), 1.0, atol=1e-3)
  else:  # r_i minus the mean of the other rewards of the group
    others = (jnp.sum(rewards_PG, -1, keepdims=True) - rewards_PG) / 5
    np.testing.assert_allclose(advantages, rewards_PG - others, atol=1e-5)
  equal = algorithms.ADVANTAGE_ESTIMATORS.get(name)(jnp.ones((2, 4)))
  np.testing.assert_array_equal(equal, 0.0)


def policy_batch(params, rng, *, cfg=TINY, rows=6, prompt_len=5, new=4):
  """A batch whose behaviour log-probs are the current policy's (ρ = 1)."""
  prompt_rng, gen_rng, adv_rng = jax.random.split(rng, 3)
  prompt = jax.random.randint(prompt_rng, (rows, prompt_len), 1, cfg.vocab_size)
  mask = jnp.ones_like(prompt).at[0, :2].set(0)
  out = gen.sample(params, prompt, mask, gen_rng, model_cfg=cfg,
                   sampling=gen.SamplingConfig(max_new_tokens=new, stop_tokens=(3,)))
  batch = sequences.concat_prompt_completion(prompt, mask, out)
  batch["advantages"] = jax.random.normal(adv_rng, (rows,))
  return batch


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_surrogate_gradient_is_reinforce_when_unclipped(aggregation):
  params = lm.init(jax.random.PRNGKey(0), TINY)
  batch = policy_batch(params, jax.random.PRNGKey(1))
  config = policy_update.PolicyLossConfig(aggregation=aggregation)
  loss_fn = policy_update.make_policy_loss(TINY, config)
  surrogate_grad = jax.jit(jax.grad(lambda p: loss_fn(p, batch, None)[0]))(params)

  def reinforce(p):
    """−Σ_i A_i Σ_u w_iu log π(ℓ_iu), w = 1/tokens (token) or 1/(B·|c_i|) (sequence)."""
    log_probs = policy_update.token_log_probs(p, batch["tokens"], batch["segment_ids"],
                                              model_cfg=TINY, temperature=1.0)
    mask = batch["action_mask"]
    if aggregation == "token":
      weights = mask / jnp.sum(mask)
    else:
      weights = mask / jnp.sum(mask, axis=-1, keepdims=True) / mask.shape[0]
    return -jnp.sum(batch["advantages"][:, None] * weights * log_probs)

  hand_grad = jax.jit(jax.grad(reinforce))(params)
  for got, want in zip(jax.tree.leaves(surrogate_grad), jax.tree.leaves(hand_grad)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
  # Clipped regime: ratios above 1+ε with positive advantages give no gradient.
  pushed = dict(batch, behaviour_log_probs=batch["behaviour_log_probs"] - 1.0,
                advantages=jnp.abs(batch["advantages"]))
  clipped_grad = jax.jit(jax.grad(lambda p: loss_fn(p, pushed, None)[0]))(params)
  assert all(float(jnp.max(jnp.abs(g))) == 0 for g in jax.tree.leaves(clipped_grad))
  assert float(loss_fn(params, pushed, None)[1]["clip_fraction"]) == 1.0


def test_kl_to_reference_is_zero_at_the_reference_and_positive_away():
  params = lm.init(jax.random.PRNGKey(0), TINY)
  batch = policy_batch(params, jax.random.PRNGKey(1))
  config = policy_update.PolicyLossConfig(kl_coef=0.1)
  loss_fn = policy_update.make_policy_loss(TINY, config)
  batch["reference_log_probs"] = policy_update.reference_log_probs(
      params, batch, model_cfg=TINY, temperature=1.0)
  assert abs(float(loss_fn(params, batch, None)[1]["kl"])) < 1e-6
  other = lm.init(jax.random.PRNGKey(5), TINY.replace(init_std=0.2))
  batch["reference_log_probs"] = policy_update.reference_log_probs(
      other, batch, model_cfg=TINY, temperature=1.0)
  assert float(loss_fn(params, batch, None)[1]["kl"]) > 1e-3


# ------------------------------------------------------------------ rewards, templates


def test_crossthink_templates():
  mcq = {"kind": "mcq", "question": "What is the capital of France?",
         "options": ["Rome", "Paris", "Oslo"], "answer": "B"}
  text = prompts.prompt_text(mcq)
  assert "A. Rome\nB. Paris\nC. Oslo" in text and "\\boxed{}" in text and "letter" in text
  open_ended = prompts.to_open_ended(mcq)
  assert open_ended == {"kind": "open", "question": mcq["question"], "answer": "Paris"}
  assert "Options" not in prompts.prompt_text(open_ended)
  assert prompts.to_open_ended(dict(mcq, question="Which of the following is a city?")) is None
  assert prompts.to_open_ended(dict(mcq, options=["a", " ".join(["w"] * 11), "c"])) is None


# -------------------------------------------------------------------------- learning


def sft_then_grpo(tokenizer, *, sft_steps, grpo_steps, seed=0):
  """SFT a tiny model briefly on small sums, then GRPO; returns accuracies and rewards."""
  train, held_out = tasks.split(tasks.small_sums(99, 2), 0.2, seed=seed)
  cfg = mcfg.tiny_transformer(vocab_size=tokenizer.vocab_size, d_model=64, mlp_dim=128)
  batches = iter(sft.packed_batches(tasks.chat_records(train), tokenizer, seq_len=64,
                                    batch_size=16, seed=seed))
  optimizer = optax.adam(3e-3)
  state = TrainState.create(lm.init(jax.random.PRNGKey(seed), cfg), optimizer,
                            jax.random.PRNGKey(1))
  sft_step = jax.jit(sft.make_sft_step(cfg, optimizer), donate_argnums=0)
  for _ in range(sft_steps):
    state, _ = sft_step(state, next(batches))

  end = tokenizer.token_to_id(tokenizer_lib.END_OF_TURN)
  config = grpo.GRPOConfig(
      sampling=gen.SamplingConfig(max_new_tokens=4, temperature=1.0, stop_tokens=(end,)),
      group_size=8, max_prompt_len=12, rewards=(("math", 1.0),))
  accuracy = lambda params: grpo.evaluate(params, held_out, tokenizer, model_cfg=cfg,
                                          config=config, batch_size=len(held_out))
  before = accuracy(state.params)
  rl_optimizer = optax.adam(3e-4)
  rl_state = state_lib.create(state_lib.GRPOState, state.params, rl_optimizer,
                              jax.random.PRNGKey(2))
  step = jax.jit(grpo.make_grpo_step(cfg, rl_optimizer, config), donate_argnums=0)
  rng = np.random.default_rng(seed)
  curve = []
  for i in range(grpo_steps):
    examples = [train[j] for j in rng.choice(len(train), 16, replace=False)]
    batch, _ = grpo.collect(rl_state.params, examples, tokenizer, jax.random.PRNGKey(100 + i),
                            model_cfg=cfg, config=config)
    rl_state, metrics = step(rl_state, batch)
    curve.append(float(metrics["reward_mean"]))
  return before, accuracy(rl_state.params), curve


def print_curve(curve, every=10):
  means = [np.mean(curve[i:i + every]) for i in range(0, len(curve), every)]
  print("GRPO reward (mean per", every, "steps):", " ".join(f"{m:.3f}" for m in means))


def test_grpo_raises_held_out_greedy_accuracy(tokenizer):
  before, after, curve = sft_then_grpo(tokenizer, sft_steps=80, grpo_steps=60)
  print_curve(curve)
  print(f"held-out greedy accuracy {before:.3f} → {after:.3f}")
  assert after >= before + 0.08, (before, after)
  assert np.mean(curve[-20:]) > np.mean(curve[:20])


@pytest.mark.slow
def test_grpo_raises_held_out_greedy_accuracy_long(tokenizer):
  before, after, curve = sft_then_grpo(tokenizer, sft_steps=80, grpo_steps=200, seed=1)
  print_curve(curve, every=20)
  print(f"held-out greedy accuracy {before:.3f} → {after:.3f}")
  assert after >= before + 0.15, (before, after)


# ------------------------------------------------------------------------- bad input


def test_bad_input_leaves_the_state_untouched(tokenizer):
  cfg = mcfg.tiny_transformer(vocab_size=tokenizer.vocab_size, d_model=32, mlp_dim=64)
  optimizer = optax.adam(1e-3)
  state = state_lib.create(state_lib.GRPOState, lm.init(jax.random.PRNGKey(0), cfg),
                           optimizer, jax.random.PRNGKey(1))
  embed = np.asarray(state.params["embed"])
  config = grpo.GRPOConfig(sampling=gen.SamplingConfig(max_new_tokens=3), group_size=2,
                           max_prompt_len=8)
  collect = lambda examples, cfg_=config: grpo.collect(
      state.params, examples, tokenizer, jax.random.PRNGKey(0), model_cfg=cfg, config=cfg_)
  with pytest.raises(ValueError, match="empty batch"):
    collect([])
  with pytest.raises(ValueError, match="longer than 8 slots"):
    collect([{"question": "What is " + "1 + " * 20 + "1?", "answer": "21"}])

  @rewards.REWARDS.register("test_broken_reward")
  def broken(completion, example):
    raise KeyError("no such field")

  with pytest.raises(rewards.RewardError, match="test_broken_reward.*KeyError.*sample 0"):
    collect([{"question": "1+1=", "answer": "2"}],
            dataclasses.replace(config, rewards=(("test_broken_reward", 1.0),)))
  with pytest.raises(ValueError, match="unknown reward"):
    dataclasses.replace(config, rewards=(("no_such_reward", 1.0),))
  # Nothing ran: the state's buffers are alive and unchanged, and it still trains.
  np.testing.assert_array_equal(state.params["embed"], embed)
  batch, _ = collect([{"question": "1+1=", "answer": "2"}])
  step = jax.jit(grpo.make_grpo_step(cfg, optimizer, config), donate_argnums=0)
  state, metrics = step(state, batch)
  assert int(state.step) == 1 and np.isfinite(float(metrics["loss"]))


def test_grpo_config_runs_and_resumes_on_a_mesh(tmp_path):
  """configs/grpo.py through the CLI driver (with the KL term): two steps, then a third
  resumed from the checkpoint."""
  config = importlib.import_module("configs.grpo").get_config()
  config.train.steps, config.grpo.prompts_per_step, config.grpo.kl_coef = 2, 4, 0.01
  assert runner.run(config, str(tmp_path))["step"] == 2
  config.train.steps = 3
  result = runner.run(config, str(tmp_path))
  assert result["step"] == 3 and result["metrics"]["kl"] >= 0
