"""MAE (rl/mae.py, data/mae.py): tag formats, the paper's rewards and rejection rule,
per-role whitening, a scripted batch (missing tags, a judge without a score), fixed
shapes, the question pool's exact resume, bad input, and (slow) the driver killed and
resumed."""

import functools
import json
import os
import random
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import cli_runs
from configs import mae as mae_defaults
from configs.claims import mae as mae_claim
from data import answers
from data import mae as roles
from model import config as mcfg
from model import lm
from rl import algorithms
from rl import mae
from rl import policy_update
from train import claims
from train import config as run_config
from train import driver
from train import sharding
from train import state as train_state

# --------------------------------------------------------------------- tags, rewards


def test_format_score_counts_balanced_tag_pairs():
  q = roles.QUESTION_TAG
  assert roles.format_score("<question>1+2</question>", q) == 1.0
  assert roles.format_score("so <question>1+2</question> done", q) == 1.0
  assert roles.format_score("<question>1</question><question>2</question>", q) == 0.5
  for unbalanced in ("", "1+2", "<question>1+2", "1+2</question>",
                     "</question><question>1+2</question>",
                     "<question><question>1</question></question>",
                     "<question>1</question><question>2"):
    assert roles.format_score(unbalanced, q) == 0.0, unbalanced
  assert roles.format_score("<answer>4</answer>", roles.ANSWER_TAG, expected=2) == 0.0
  assert roles.first_tagged("a <question> 3+4 </question><question>5</question>", q) == "3+4"
  assert roles.first_tagged("<question> </question>", q) is None
  assert roles.first_tagged("<question>1", q) is None


def test_judge_value_is_the_clipped_normalised_score_or_none():
  assert roles.judge_value("7+3=10 <score>10</score>") == 1.0
  assert roles.judge_value("<score>1</score>") == 0.0
  assert roles.judge_value("<score> 5.5 </score>") == pytest.approx(0.5)
  assert roles.judge_value("<score>12</score>") == 1.0          # clipped
  assert roles.judge_value("<score>0</score>") == 0.0
  assert roles.judge_value("<score>2</score> then <score>10</score>") == 1.0   # the last
  for no_score in ("", "looks right", "<score>ten</score>", "<score>7"):
    assert roles.judge_value(no_score) is None, no_score
  assert mae.judged("no score at all") == 0.0                    # the defined outcome


def test_rewards_follow_the_paper_including_the_rejection_rule():
  # No <question>: R_P = 0 whatever the judges said.
  assert mae.proposer_reward(None, 1.0, 1.0, 1.0, 0.7) == (0.0, False)
  # Rejected (q < 0.7): difficulty does not count, R_P = q/3 + f/3.
  reward, accepted = mae.proposer_reward("1+2", 0.6, 1.0, 1.0, 0.7)
  assert not accepted and reward == pytest.approx((0.6 + 1.0) / 3)
  # Accepted: R_P = q/3 + d/3 + f/3 (the threshold itself accepts).
  reward, accepted = mae.proposer_reward("1+2", 0.7, 0.4, 0.5, 0.7)
  assert accepted and reward == pytest.approx((0.7 + 0.4 + 0.5) / 3)
  assert mae.solver_reward(1.0, 0.5) == pytest.approx(0.75)
  assert mae.solver_reward(0.0, 0.0) == 0.0
  assert mae.judge_reward(0.5) == 0.5


def test_task_relative_advantages_whiten_each_role_over_its_valid_rows():
  rewards = jnp.array([0.0, 1.0, 2.0, 5.0, 0.5, 0.9, 0.1, 3.0, 0.3, 0.3])
  task = jnp.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
  valid = jnp.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 0], jnp.float32)
  advantages = np.asarray(jax.jit(algorithms.task_relative_advantages, static_argnums=3)(
      rewards, task, valid, 4))
  assert np.all(np.isfinite(advantages))
  for t in (0, 1):
    rows = np.flatnonzero((np.asarray(task) == t) & (np.asarray(valid) > 0))
    np.testing.assert_allclose(advantages[rows].mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(advantages[rows].std(), 1.0, atol=1e-4)
  # The invalid rows, the task with one valid row, and the empty task 3: exactly 0.
  assert advantages[3] == 0.0 and advantages[9] == 0.0 and advantages[8] == 0.0
  # Whitening per role: the same rewards shifted in one role leave its advantages alone.
  shifted = algorithms.task_relative_advantages(rewards + 10.0 * (task == 1), task, valid, 4)
  np.testing.assert_allclose(shifted, advantages, atol=1e-4)
  equal = algorithms.task_relative_advantages(jnp.full((4,), 1.1), jnp.zeros(4, jnp.int32),
                                              jnp.ones(4), 3)
  np.testing.assert_array_equal(equal, 0.0)


def test_answers_extracts_the_solver_and_judge_tags():
  assert answers.final_answer("<answer>14</answer>") == "14"
  assert answers.final_answer("5+2=7 7+7=14 <score>10</score>") == "10"
  assert answers.final_answer("\\boxed{3} <answer>4</answer>") == "3"   # boxed first


def test_role_documents_teach_each_role_its_format():
  rng = random.Random(0)
  held_out = frozenset({"1+2", "3+4+5"})
  docs = roles.role_documents(rng, 400, solver_error=0.4, exclude=held_out)
  by_role = {}
  for doc in docs:
    prompt, response = doc.split("\n")
    by_role.setdefault(prompt.split(" ")[0].rstrip(":"), []).append((prompt, response))
  assert {k: len(v) for k, v in by_role.items()} == {"Propose": 100, "Rate": 100,
                                                      "Solve": 100, "Judge": 100}
  for prompt, response in by_role["Propose"]:
    assert roles.well_formed_sum(roles.first_tagged(response, roles.QUESTION_TAG))
  right = 0
  for prompt, response in by_role["Solve"]:
    question = prompt.split(" ", 1)[1]
    assert question not in held_out
    right += roles.first_tagged(response, roles.ANSWER_TAG) == str(roles.sum_value(question))
  assert 0.45 < right / 100 < 0.75                      # 40% of the answers are wrong
  for prompt, response in by_role["Judge"]:
    question, answer = prompt.split(" ")[1:]
    claimed = int(roles.first_tagged(answer, roles.ANSWER_TAG))
    assert roles.format_score(response, roles.SCORE_TAG) == 1.0
    assert response.split(" <score>")[0].endswith("=0") == (claimed == roles.sum_value(question))
    assert roles.judge_value(response) == float(claimed == roles.sum_value(question))
  assert roles.judge_reasoning("5+2+7", 15) == "15-5=10 10-2=8 8-7=1"


# ------------------------------------------------------------- a scripted rollout


LAYOUT = dict(proposals=4, ratings=2, pool_questions=1, solver_samples=2)
ROWS = mae_defaults.batch_rows(**LAYOUT)     # 4·3 + 2·2·5 = 32
PROPOSALS = ["<question>3+4</question>",                      # accepted, solved: d = 0
             "I would rather not",                            # no question: R_P = 0
             "<question>9+</question>",                       # rated bad: rejected
             "<question>1+2+3</question><question>5</question>"]   # f = 0.5, judge mute


def oracle(prompt: str) -> str:
  """A scripted model: the proposals above in order, ratings by well-formedness, right
  answers, judgements that compare; the judge of "1+2+3" writes no score."""
  role, _, rest = prompt.partition(" ")
  if role.startswith("Propose"):
    return ""   # filled in by order
  if role == "Rate:":
    return "good <score>10</score>" if roles.well_formed_sum(rest) else "bad <score>1</score>"
  if role == "Solve:":
    value = roles.sum_value(rest) if roles.well_formed_sum(rest) else "?"
    return roles.tagged(str(value), roles.ANSWER_TAG)
  question, _, response = rest.partition(" ")
  if question == "1+2+3":
    return "it looks fine"
  right = (roles.well_formed_sum(question) and roles.first_tagged(response, roles.ANSWER_TAG)
           == str(roles.sum_value(question)))
  return roles.tagged("10" if right else "1", roles.SCORE_TAG)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("mae")
  seeds = tmp / "seeds.jsonl"
  seeds.write_text(json.dumps({"question": "5+5"}) + "\n")
  config = mae_defaults.get_config()
  config.mae.update(dict(seed_questions=str(seeds), **LAYOUT))
  config.train.global_batch_size = ROWS
  config.mesh.data = 1
  config.mesh.fsdp = -1
  model_cfg = run_config.model_config(config.model)
  return driver.build(config, sharding.make_mesh(config.mesh),
                      driver.load_tokenizer(config, model_cfg))


def scripted(rollouts, ctx, calls):
  """Replaces the rollouts' generation by ``oracle`` (rows of zeros, fixed widths)."""
  width = ctx.config.train.seq_len

  def generate(params, prompts, rng):
    del params, rng
    texts = [ctx.tokenizer.decode(ids)[:-1] for ids in prompts]   # without the newline
    calls.append(texts)
    out = [oracle(t) for t in texts]
    if texts[0].startswith("Propose"):
      out = PROPOSALS[:len(texts)]
    batch = {key: np.zeros((len(prompts), width), np.float32)
             for key in mae.POLICY_BATCH_KEYS}
    batch["tokens"] = batch["tokens"].astype(np.int32)
    batch["segment_ids"] = batch["segment_ids"].astype(np.int32)
    return batch, out
  rollouts._generate = generate   # pylint: disable=protected-access


@pytest.fixture(scope="module")
def first_batch(built):
  rollouts = mae.make_batches(built.ctx)
  calls = []
  scripted(rollouts, built.ctx, calls)
  state = types.SimpleNamespace(params=None)   # the scripted model has no weights
  return rollouts, calls, rollouts(state, 0), state


def test_a_scripted_step_scores_every_row_by_the_rules(first_batch):
  rollouts, calls, batch, _ = first_batch
  p, m, n = 4, 2, 2
  assert [len(c) for c in calls] == [p, p * m + n * 5, n * 5]
  assert calls[2][0] == "Judge: 3+4 <answer>7</answer>"
  rewards, valid = batch["rewards"], batch["valid"]
  np.testing.assert_allclose(rewards[:p], [2 / 3, 0.0, 1 / 3, 2.5 / 3], atol=1e-6)
  np.testing.assert_array_equal(batch["accepted"][:p], [1, 0, 0, 1])
  np.testing.assert_allclose(batch["difficulty"][:p], [0.0, 0.0, 0.0, 1.0])
  np.testing.assert_array_equal(batch["question_difficulty"][:p], [2, 0, 0, 3])
  np.testing.assert_array_equal(batch["has_question_difficulty"][:p], [1, 0, 0, 1])
  ratings = slice(p, p + p * m)
  np.testing.assert_array_equal(valid[ratings], [1, 1, 0, 0, 1, 1, 1, 1])   # no question
  np.testing.assert_array_equal(rewards[ratings], 1.0)
  answers_, judgements = slice(p + p * m, p + p * m + 10), slice(p + p * m + 10, ROWS)
  # Questions: 3+4 (accepted), none, 9+ (rejected), 1+2+3 (accepted), pool 5+5.
  want_valid = np.repeat([1, 0, 0, 1, 1], n)
  np.testing.assert_array_equal(valid[answers_], want_valid)
  np.testing.assert_array_equal(valid[judgements], want_valid)
  # Judged right: v = 1, R_S = 1; the mute judge of 1+2+3: v = 0, R_S = 0.5, R_J = 0.
  np.testing.assert_allclose(batch["judge_values"][answers_][want_valid > 0],
                             [1, 1, 0, 0, 1, 1])
  np.testing.assert_allclose(rewards[answers_][want_valid > 0], [1, 1, .5, .5, 1, 1])
  np.testing.assert_allclose(rewards[judgements][want_valid > 0], [1, 1, 0, 0, 1, 1])
  np.testing.assert_array_equal(batch["roles"],
                                [0] * p + [2] * (p * m) + [1] * 10 + [2] * 10)
  assert rollouts.pool == ["5+5", "3+4", "1+2+3"]   # accepted questions join the pool


def test_the_batch_has_the_abstract_shapes_and_the_step_learns_per_role(built, first_batch):
  _, _, batch, _ = first_batch
  abstract = mae.abstract_batch(built.ctx)
  assert set(batch) == set(abstract)
  for key, spec in abstract.items():
    chex.assert_shape(batch[key], spec.shape)
    assert batch[key].dtype == spec.dtype, key
  # The step on this batch's rewards and roles over random sequences whose last four
  # tokens are actions sampled with the current weights' log-probs (ratio 1).
  cfg = mcfg.tiny_transformer(vocab_size=64, d_model=32, mlp_dim=64)
  params = jax.jit(lm.init, static_argnums=1)(jax.random.PRNGKey(0), cfg)
  tokens = jax.random.randint(jax.random.PRNGKey(1), (ROWS, 8), 1, cfg.vocab_size)
  policy = {"tokens": tokens, "segment_ids": jnp.ones_like(tokens),
            "action_mask": jnp.zeros((ROWS, 8)).at[:, 4:].set(1.0)}
  log_probs = jax.jit(functools.partial(policy_update.token_log_probs, model_cfg=cfg,
                                        temperature=1.0))
  policy["behaviour_log_probs"] = policy["action_mask"] * log_probs(
      params, tokens, policy["segment_ids"])
  rows = {key: batch[key] for key in mae.ROW_KEYS}
  step = jax.jit(mae.make_mae_step(cfg, optax.sgd(1.0), mae.MAEConfig()))
  state = train_state.TrainState.create(params, optax.sgd(1.0), jax.random.PRNGKey(0))
  _, metrics = step(state, {**policy, **rows})
  assert float(metrics["reward_proposer"]) == pytest.approx((2 / 3 + 1 / 3 + 2.5 / 3) / 4)
  assert float(metrics["reward_solver"]) == pytest.approx(5 / 6)
  assert float(metrics["accepted"]) == 0.5
  assert float(metrics["proposer_difficulty"]) == 0.5
  assert float(metrics["solver_score"]) == pytest.approx(4 / 6)
  assert float(metrics["question_difficulty"]) == 2.5
  assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
  # Rows that do not learn carry no gradient: changing their tokens changes nothing.
  invalid = np.flatnonzero(rows["valid"] == 0)
  other = dict(policy, tokens=policy["tokens"].at[invalid].set(7))
  _, other_metrics = step(state, {**other, **rows})
  assert float(other_metrics["grad_norm"]) == pytest.approx(float(metrics["grad_norm"]),
                                                            rel=1e-5)


def test_the_pool_resumes_exactly(built, first_batch):
  _, _, _, state = first_batch
  rollouts = mae.make_batches(built.ctx)
  scripted(rollouts, built.ctx, [])
  rollouts(state, 0)
  resumed = mae.make_batches(built.ctx)
  scripted(resumed, built.ctx, [])
  assert resumed.pool == ["5+5"]
  resumed.set_state(rollouts.get_state())
  assert resumed.pool == rollouts.pool
  assert resumed.draws(7) == rollouts.draws(7)
  for step in (1, 2):
    a, b = rollouts(state, step), resumed(state, step)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  assert resumed.get_state() == rollouts.get_state()
  assert resumed.progress() == {"pool": len(rollouts.pool)}


def test_bad_input_is_named(built, tmp_path):
  config = built.ctx.config
  bad = tmp_path / "bad.jsonl"
  bad.write_text(json.dumps({"question": "1+1"}) + "\n" + json.dumps({"answer": "2"}) + "\n")
  with pytest.raises(ValueError, match=f"{bad}:2: mae.seed_questions needs a non-empty "
                                       "'question'"):
    mae.read_seed_questions(str(bad))
  wrong_rows = config.copy_and_resolve_references()
  wrong_rows.train.global_batch_size = ROWS + 1
  ctx = built.ctx.__class__(**{**built.ctx.__dict__, "config": wrong_rows})
  with pytest.raises(run_config.ConfigError, match=r"global_batch_size=33: MAE's batch has "
                                                   r"P \+ P·M \+ 2·N·\(P \+ Q\) = 32 rows"):
    mae.make_batches(ctx)


def test_claim_configs_check():
  for which in ("", "difficulty"):
    config = mae_claim.get_config(which)
    claims.check(config)
  with pytest.raises(ValueError, match="want '' .* or 'difficulty'"):
    mae_claim.get_config("other")


# -------------------------------------------------------------------- the driver


@pytest.mark.slow
def test_the_driver_runs_mae_and_a_killed_run_resumes_exactly(tmp_path):
  """configs/mae.py for 6 steps, checkpoints every 2; killed after step 5 and rerun:
  every later step logs what the uninterrupted run logged (the pool restored)."""
  common = ["--config=configs/mae.py", "--config.train.steps=6",
            "--config.checkpoint.every_steps=2", "--config.train.log_every=1",
            "--config.eval.max_records=8", "--config.sample.prompts=()"]
  run = lambda workdir, *extra, fault=None: cli_runs.subprocess.run(
      [cli_runs.sys.executable,
       *(["-m", "train.main"] if fault is None else
         [os.path.join(cli_runs.ROOT, "tests", "faulty_run.py"), *fault]),
       *common, f"--workdir={workdir}", *extra],
      cwd=cli_runs.ROOT, env=cli_runs.env(), capture_output=True, text=True, timeout=600)
  reference = run(tmp_path / "reference")
  assert reference.returncode == 0, reference.stderr[-3000:]
  killed = run(tmp_path / "killed", fault=("KILL", "5"))
  assert killed.returncode == -9, killed.stderr[-3000:]
  resumed = run(tmp_path / "killed")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  start = int(resumed.stdout.split("resuming at step ")[1].split()[0])
  assert start == 4
  expected, got = cli_runs.by_step(tmp_path / "reference"), cli_runs.by_step(tmp_path / "killed")
  assert sorted(got) == list(range(1, 7))
  for step in range(start + 1, 7):
    assert got[step] == expected[step], step
