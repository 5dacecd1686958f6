"""GRPO: advantages, the surrogate's gradient, rewards, templates, learning, bad input."""

import json
import os
import random
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cli_runs
from configs import grpo as grpo_defaults
from data import config as data_config
from data import prompts
from model import config as mcfg
from model import generate as gen
from model import lm
from rl import algorithms
from rl import grpo
from rl import policy_update
from rl import rewards
from rl import sequences
from train import config as run_config
from train import driver
from train import generation
from train import loops
from train import metrics as metrics_lib
from train import sharding

TINY = mcfg.tiny_transformer(vocab_size=64, d_model=32, mlp_dim=64)


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
  # the float32 mean of three 1.1s is not 1.1: equal groups are zeroed, not rounded
  rounded = jax.jit(algorithms.ADVANTAGE_ESTIMATORS.get(name))(jnp.full((2, 3), 1.1))
  np.testing.assert_array_equal(rounded, 0.0)


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


def test_samples_are_prompted_like_the_rollouts():
  config = grpo_defaults.get_config()
  config.grpo.template = "crossthink"
  tokenizer = driver.load_tokenizer(config, run_config.model_config(config.model))
  ctx = loops.Context(config=config, model_cfg=None, tokenizer=tokenizer, mesh=None,
                      optimizer=None, schedule=None)
  prompt_format = grpo.LOOP.prompt_format(ctx)
  record = {"question": "What is 2+3?"}
  assert prompt_format.prompt_ids(record, tokenizer) == prompts.prompt_ids(
      record, tokenizer, template="crossthink")
  assert prompt_format.stop_tokens(tokenizer) == prompts.stop_token_ids(tokenizer, "crossthink")


# -------------------------------------------------------------------------- learning

def cli(*args):
  result = subprocess.run([sys.executable, "-m", "train.main", *args], cwd=cli_runs.ROOT,
                          env=cli_runs.env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def final_eval(workdir):
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)["eval"]


def sft_then_grpo(workdir, *, sft_steps, grpo_steps, seed=0):
  """SFT a tiny transformer briefly on the shipped small sums, then GRPO from it, both
  through the one CLI; returns the held-out greedy accuracy after each and GRPO's log."""
  sums = data_config.corpus_path("sums.jsonl")
  sums_valid = data_config.corpus_path("sums_valid.jsonl")
  evaluation = [f"--config.eval.records={sums_valid}", "--config.eval.max_records=0",
                "--config.eval.template=chat", "--config.eval.thinking=",
                "--config.eval.max_new_tokens=4",
                "--config.eval.batch_size=64", "--config.eval.max_text_rows=1",
                "--config.sample.max_new_tokens=1", f"--config.train.seed={seed}"]
  cli("--config=configs/sft.py", f"--workdir={workdir}/sft", f"--config.sft.records={sums}",
      f"--config.train.steps={sft_steps}", "--config.train.seq_len=64",
      "--config.optimizer.schedule=constant", "--config.optimizer.warmup_steps=0",
      "--config.checkpoint.every_steps=1000",
      *evaluation)
  cli("--config=configs/grpo.py", f"--workdir={workdir}/grpo",
      f"--config.init_checkpoint={workdir}/sft", f"--config.train.steps={grpo_steps}",
      "--config.checkpoint.every_steps=1000", *evaluation)
  with open(os.path.join(workdir, "grpo", "metrics.jsonl")) as f:
    curve = [r["reward_mean"] for r in map(json.loads, f)]
  return final_eval(f"{workdir}/sft")["pass@1"], final_eval(f"{workdir}/grpo")["pass@1"], curve


def test_grpo_raises_held_out_greedy_accuracy(tmp_path):
  before, after, curve = sft_then_grpo(tmp_path, sft_steps=80, grpo_steps=60)
  print(f"GRPO reward per logged step: {np.round(curve, 3).tolist()}")
  print(f"held-out greedy accuracy {before:.3f} → {after:.3f}")
  # Measured over seeds 0, 1 and ISAs default, AVX2: +0.12 to +0.30 held-out accuracy,
  # the training reward's last two logs 0.13 to 0.19 above its first two.
  assert after >= before + 0.05, (before, after)
  assert np.mean(curve[-2:]) > np.mean(curve[:2]) + 0.05, curve


@pytest.mark.slow
def test_grpo_raises_held_out_greedy_accuracy_long(tmp_path):
  before, after, _ = sft_then_grpo(tmp_path, sft_steps=80, grpo_steps=200, seed=1)
  print(f"held-out greedy accuracy {before:.3f} → {after:.3f}")
  assert after >= before + 0.15, (before, after)


# ------------------------------------------------------------------------- bad input


def grpo_context(tmp_path, records, **grpo_overrides):
  config = grpo_defaults.get_config()
  path = tmp_path / "records.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  config.grpo.records = str(path)
  for field, value in grpo_overrides.items():   # set: rewards={...} replaces {'math': 1}
    config.grpo[field] = value
  config.train.global_batch_size = 2 * config.grpo.group_size
  config.mesh.data = 1
  config.mesh.fsdp = -1
  model_cfg = run_config.model_config(config.model)
  return driver.build(config, sharding.make_mesh(config.mesh),
                      driver.load_tokenizer(config, model_cfg)), path


SUMS = [{"question": f"{a}+1=", "answer": str(a + 1)} for a in range(4)]


def test_bad_records_are_named_before_anything_runs(tmp_path):
  long_question = {"question": "What is " + "1 + " * 20 + "1?", "answer": "21"}
  built, path = grpo_context(tmp_path, SUMS + [long_question])
  with pytest.raises(ValueError, match=f"{path}:5: the prompt has .* tokens, more than the "
                                       "budget of 16"):
    grpo.make_batches(built.ctx)
  built, path = grpo_context(tmp_path, SUMS + [{"question": "1+1="}])
  with pytest.raises(ValueError, match=f"{path}:5: missing field 'answer'"):
    grpo.make_batches(built.ctx)
  built, path = grpo_context(tmp_path, SUMS[:1])
  with pytest.raises(ValueError, match="1 records, fewer than the 2 prompts per step"):
    grpo.make_batches(built.ctx)
  with pytest.raises(ValueError, match="unknown reward 'no_such_reward'"):
    grpo.make_batches(grpo_context(tmp_path, SUMS, rewards={"no_such_reward": 1.0})[0].ctx)


def test_a_reward_that_raises_is_named_and_leaves_the_state_untouched(tmp_path):
  @rewards.REWARDS.register("test_broken_reward")
  def broken(completion, example):
    raise KeyError("no such field")

  built, _ = grpo_context(tmp_path, SUMS, rewards={"test_broken_reward": 1.0})
  rollouts = grpo.make_batches(built.ctx)
  state = driver.initial_state(built, report=print)
  embed = np.asarray(state.params["embed"])
  with pytest.raises(rewards.RewardError, match="test_broken_reward.*KeyError.*sample 0"):
    rollouts(state, 0)
  np.testing.assert_array_equal(state.params["embed"], embed)
  # The step-seeded prompt order: each epoch a permutation, the same on every call.
  assert sorted(rollouts.prompt_indices(0) + rollouts.prompt_indices(1)) == [0, 1, 2, 3]
  assert rollouts.prompt_indices(3) == grpo.make_batches(built.ctx).prompt_indices(3)


# ------------------------------------------------------- prompt filter, uniform groups


def test_skipped_uniform_groups_leave_the_token_mean():
  """Rows 0-2 have different rewards, rows 3-5 equal ones (advantage exactly 0, also
  under jit): skipped, the gradient is the same sum over the first group's tokens,
  divided by fewer tokens."""
  params = lm.init(jax.random.PRNGKey(0), TINY)
  batch = policy_batch(params, jax.random.PRNGKey(1))
  batch = {key: batch[key] for key in grpo.POLICY_BATCH_KEYS}
  batch["rewards"] = jnp.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
  batch["truncated"] = jnp.array([0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
  optimizer = grpo_defaults_optimizer()
  norms = {}
  for skip in (False, True):
    step = grpo.make_grpo_step(TINY, optimizer, grpo.GRPOConfig(group_size=3,
                                                                skip_uniform_groups=skip))
    state = grpo.GRPOState.create(params, optimizer, jax.random.PRNGKey(0))
    _, metrics = jax.jit(step)(state, batch)
    norms[skip] = float(metrics["grad_norm"])
    assert float(metrics["uniform_reward_groups"]) == 0.5
    assert float(metrics["full_reward_groups"]) == 0.5
    assert float(metrics["truncated"]) == pytest.approx(1 / 3)
    line = metrics_lib.format_line(1, 1, jax.device_get(metrics))
    for shown in ("reward 0.667", "truncated 0.333", "completion_length", "clip_fraction 0"):
      assert shown in line, line
  advantages = jax.jit(algorithms.ADVANTAGE_ESTIMATORS.get("grpo"))(
      batch["rewards"].reshape(2, 3))
  assert np.all(np.asarray(advantages[1]) == 0.0)
  mask = np.asarray(batch["action_mask"])
  assert norms[True] == pytest.approx(norms[False] * mask.sum() / mask[:3].sum(), rel=1e-4)


def test_groups_all_wrong_are_uniform_not_full_reward():
  """Every group all wrong (reward_mean 0) has no learning signal, and none is solved."""
  shares = grpo.group_shares(jnp.zeros((4, 3)), full_reward=1.0)
  assert float(shares["uniform_reward_groups"]) == 1.0
  assert float(shares["full_reward_groups"]) == 0.0
  # All wrong, mixed, all right: two uniform groups, one of them all right.
  shares = grpo.group_shares(jnp.array([[0.0] * 3, [1.0, 0.0, 1.0], [1.0] * 3]), 1.0)
  assert float(shares["uniform_reward_groups"]) == pytest.approx(2 / 3)
  assert float(shares["full_reward_groups"]) == pytest.approx(1 / 3)
  # The full reward of weights 0.2 + 0.1, summed in float32 as rewards.score sums it.
  config = grpo.GRPOConfig(rewards=(("math", 0.2), ("format", 0.1), ("open_ended", -1.0)))
  full = np.float32(0.2) * np.float32(1.0) + np.float32(0.1) * np.float32(1.0)
  shares = grpo.group_shares(jnp.full((1, 3), full), config.full_reward)
  assert float(shares["full_reward_groups"]) == 1.0


def grpo_defaults_optimizer():
  import optax  # pylint: disable=import-outside-toplevel
  return optax.sgd(0.0)


def test_truncated_completions_get_the_truncated_reward(tmp_path):
  """A reward of 1 for every completion; those cut at max_new_tokens without the stop
  token get grpo.truncated_reward instead, and the batch marks them."""
  @rewards.REWARDS.register("test_always_right")
  def always_right(completion, example):
    return 1.0

  for truncated_reward in (None, -1.0):
    overrides = {} if truncated_reward is None else {"truncated_reward": truncated_reward}
    built, _ = grpo_context(tmp_path, SUMS, rewards={"test_always_right": 1.0},
                            max_new_tokens=6, **overrides)
    state = driver.initial_state(built, report=print)
    batch = grpo.make_batches(built.ctx)(state, 0)
    mask = batch["action_mask"] > 0
    lengths = mask.sum(axis=-1)
    last_position = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=-1)
    last = batch["tokens"][np.arange(len(mask)), last_position]
    stops = prompts.stop_token_ids(built.ctx.tokenizer, "chat")
    want = (lengths == 6) & ~np.isin(last, stops)
    np.testing.assert_array_equal(batch["truncated"], want.astype(np.float32))
    assert 0 < want.sum(), "an untrained model should run past 6 tokens somewhere"
    expected = np.ones(len(want)) if truncated_reward is None else np.where(want, -1.0, 1.0)
    np.testing.assert_array_equal(batch["rewards"], expected)


def test_a_short_list_padded_to_full_rows_samples_alike_on_the_compiled_program(tmp_path):
  """``generate_rows(pad_to=)``: the last, short chunk of an evaluation or of the GRPO
  filter runs on the program of the full chunks, and its real rows get the tokens they
  get unpadded (sampling at temperature 1)."""
  built, _ = grpo_context(tmp_path, SUMS)
  ctx = built.ctx
  params = driver.initial_state(built, report=print).params
  prompts = [ctx.tokenizer.encode(record["question"]) for record in SUMS]
  sampling = gen.SamplingConfig(max_new_tokens=6, temperature=1.0, pad_id=ctx.tokenizer.pad_id)
  rng = jax.random.PRNGKey(3)
  run = lambda rows, **kw: generation.generate_rows(ctx, params, prompts[:rows], rng,
                                                     sampling=sampling, width=8, **kw)
  # pylint: disable=protected-access
  jitted = generation._jitted_sample(ctx.model_cfg, sampling, ctx.row_sharding(2),
                                     tuple(map(tuple, ctx.rules)))
  full = run(4)
  programs = jitted.jitted._cache_size()
  padded = run(2, pad_to=4)
  assert jitted.jitted._cache_size() == programs
  chex.assert_shape(padded.tokens, (2, 6))
  assert padded.rows == range(0, 2)
  np.testing.assert_array_equal(padded.tokens, full.tokens[:2])
  np.testing.assert_array_equal(padded.tokens, run(2).tokens)


def test_prompt_filter_keeps_unsolved_records_and_restores_them(tmp_path, monkeypatch):
  built, _ = grpo_context(tmp_path, SUMS, drop_solved_at=0.75, group_size=4)
  rollouts = grpo.make_batches(built.ctx)
  state = driver.initial_state(built, report=print)
  solved = rollouts.solved(state.params)          # real samples of an untrained model
  chex.assert_shape(solved, (4,))
  assert solved.dtype == bool
  # Record i's four samples, right (R) or wrong (W): right shares 1, 0.75, 0.5, 0.
  samples = ["RRRR", "RRWR", "WRWR", "WWWW"]
  def fake_sample(params, indices, rng):
    records = [i for i in indices for _ in range(4)]
    return None, records, [samples[i][g] for i in indices for g in range(4)], None
  checked = []
  def fake_is_correct(text, record):
    checked.append(text)
    return text == "R"
  monkeypatch.setattr(rollouts, "_sample", fake_sample)
  monkeypatch.setattr(grpo.answers, "is_correct", fake_is_correct)
  np.testing.assert_array_equal(rollouts.solved(state.params), [True, True, False, False])
  assert len(checked) == 3 + 4 + 3 + 2     # each record checked until its verdict is sure
  monkeypatch.undo()
  rollouts.solved = lambda params: np.array([True, True, False, False])
  rollouts(state, 0)
  assert sorted(rollouts.prompt_indices(0)) == [2, 3]
  restored = grpo.make_batches(built.ctx)
  restored.set_state(rollouts.get_state())
  assert restored.prompt_indices(5) == rollouts.prompt_indices(5)
  rollouts = grpo.make_batches(built.ctx)
  rollouts.solved = lambda params: np.array([True, True, True, False])
  with pytest.raises(ValueError, match="solve all but 1 of the 4 records"):
    rollouts(state, 0)


# ------------------------------------------------------------------ claim stages, metrics


def test_a_claim_grpo_stage_has_exactly_the_rewards_it_names():
  """``configs.claims.common.grpo(rewards=...)`` replaces the GRPO default's
  {'math': 1.0}: merged, the crossthink arms trained on math + crossthink rewards, so a
  completion whose last of several \\boxed{} was right scored 1 (Math-Verify) where the
  CrossThink reward (one \\boxed{}) gives 0."""
  from configs.claims import common  # pylint: disable=import-outside-toplevel
  config = common.grpo("crossthink_blend.jsonl", seq_len=136, batch=64, learning_rate=1e-4,
                       rewards={"crossthink": 1.0})
  assert config.grpo.rewards.to_dict() == {"crossthink": 1.0}
  hedged = "\\boxed{ plum}\\boxed{ pear}<|end|>"
  assert rewards.score(config.grpo.rewards, [hedged], [{"kind": "open", "answer": "pear"}]
                       )[0].tolist() == [0.0]


def test_sampled_entropy_is_the_mean_surprise_of_the_sampled_tokens():
  log_probs_BL = jnp.log(jnp.array([[1.0, 0.5, 0.25], [1.0, 0.125, 1.0]]))
  mask_BL = jnp.array([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
  want = (np.log(2) + np.log(4) + np.log(8)) / 3
  np.testing.assert_allclose(grpo.sampled_entropy(log_probs_BL, mask_BL), want, rtol=1e-6)


# ------------------------------------------------------- learning on generated records


def successor_records(rng, count):
  """'<three filler words>. What comes after k?' → k + 1 (k < 9): the filler makes every
  prompt new, the question is the one skill."""
  words = "red blue green cat dog sun moon tree fish bird rain snow".split()
  out = []
  for _ in range(count):
    k = rng.randrange(9)
    filler = " ".join(rng.choice(words) for _ in range(3))
    out.append({"question": f"{filler}. What comes after {k}?", "answer": str(k + 1)})
  return out


def write_records(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(path)


def test_grpo_corrects_a_biased_sft_model_on_held_out_prompts(tmp_path):
  """SFT on answers that are right only 40% of the time (else one too high), then GRPO
  with the claims' settings (truncated completions scored 0, equal-reward groups
  skipped) on the same training prompts: on 64 held-out prompts of the same
  distribution, the greedy answer flips from the SFT's majority (k + 2) to the rewarded
  one and the share of right samples at temperature 1 rises."""
  rng = random.Random(0)
  train, held_out = successor_records(rng, 256), successor_records(rng, 64)
  biased = [dict(r, answer=str(int(r["answer"]) + (rng.random() > 0.4))) for r in train]
  both = [f"--config.eval.records={write_records(tmp_path / 'held_out.jsonl', held_out)}",
          "--config.eval.max_records=0", "--config.eval.template=chat",
          "--config.eval.thinking=", "--config.eval.max_new_tokens=4",
          "--config.eval.batch_size=64", "--config.eval.samples=4",
          "--config.eval.max_text_rows=1", "--config.sample.max_new_tokens=1",
          "--config.checkpoint.every_steps=1000", "--config.optimizer.learning_rate=1e-3"]
  cli("--config=configs/sft.py", f"--workdir={tmp_path}/sft",
      f"--config.sft.records={write_records(tmp_path / 'sft.jsonl', biased)}",
      "--config.sft.toggle=none", "--config.train.steps=120", "--config.train.seq_len=32",
      "--config.optimizer.schedule=constant", "--config.optimizer.warmup_steps=0",
      "--config.optimizer.weight_decay=0.0", *both)
  cli("--config=configs/grpo.py", f"--workdir={tmp_path}/grpo",
      f"--config.init_checkpoint={tmp_path}/sft",
      f"--config.grpo.records={write_records(tmp_path / 'train.jsonl', train)}",
      "--config.grpo.truncated_reward=0.0", "--config.grpo.skip_uniform_groups=True",
      "--config.train.steps=20", "--config.train.global_batch_size=64",
      "--config.train.seq_len=28", *both)
  before, after = final_eval(f"{tmp_path}/sft"), final_eval(f"{tmp_path}/grpo")
  print(f"held-out greedy pass@1 {before['pass@1']:.3f} → {after['pass@1']:.3f}, right "
        f"samples {before['sample_accuracy']:.3f} → {after['sample_accuracy']:.3f}")
  # Measured with train.seed 0, 1, 2 (seed 0 also under --xla_cpu_max_isa=AVX2): greedy
  # 0.11-0.28 → 0.92-1.0, right samples 0.15-0.23 → 0.43-0.51. ~55 CPU-seconds.
  assert after["pass@1"] >= before["pass@1"] + 0.4, (before, after)
  assert after["sample_accuracy"] >= before["sample_accuracy"] + 0.1, (before, after)
