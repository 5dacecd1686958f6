"""Multi-Agent Evolve (MAE, arXiv 2510.23595): one model proposes, solves and judges, with
no labelled data; Task-Relative REINFORCE++ over the three roles' rollouts.

One iteration (``LOOP``, ``loop='mae'``; role prompts and tags in ``data/mae.py``):
  1. ``Rollouts`` (host; every process generates and scores every row, so the question
     pool stays the same everywhere, and supplies its own rows):
       proposer  P prompts, a ``reference_share`` of them with a reference question drawn
                 from the pool; each writes <question>…</question>.
       judge     M ratings of each proposed question (quality q = mean v).
       solver    N answers to each proposed question and to each of Q questions drawn
                 from the pool.
       judge     one judgement of each answer: v = clip((X − 1)/9, 0, 1) of <score>X</score>.
     The draws of step t are seeded by (train.seed, t); a question is accepted when
     q >= ``accept_threshold`` (the paper's 0.7) and joins the pool (the newest
     ``pool_size`` are kept), which is saved with every checkpoint.
  2. Rewards (one scalar per response, on its last token):
       proposer  R_P = q/3 + d/3 + f/3, d = 1 − mean_i v(a_i) over its N answers;
                 rejected: R_P = q/3 + f/3; no <question> (or an empty one): R_P = 0
       solver    R_S = 0.5·v + 0.5·f
       judge     R_J = f
     f: ``data.mae.format_score`` (1 for exactly one tag pair, 0.5 for more, else 0).
     A judge without a score gives v = 0 (and R_J = f = 0, as the paper's rules give
     it). Rows with nothing to learn, the ratings, answers and judgements of a proposal
     without a question and the answers and judgements of a rejected one, stay in the
     batch (fixed shapes) with valid 0: no advantage, no loss.
  3. ``step(state, batch)`` (jitted, fixed shapes): Task-Relative REINFORCE++
     (``rl.algorithms.task_relative_advantages``: γ = 1, rewards whitened per role),
     then one PPO-clip update over the concatenated role batch (``rl/policy_update.py``;
     the paper: no KL, temperature 1).

Rows, in order (``train.global_batch_size`` must be their count,
B = P + P·M + 2·N·(P + Q)): P proposals; P·M ratings (question-major); N·(P + Q)
answers (question-major, the P proposals first); N·(P + Q) judgements of those answers.
``train.seq_len`` is the row width: prompt budget plus ``mae.max_new_tokens`` (every
role's response budget). A prompt around generated text (a judge's, with the question
and the answer) is fitted to the budget by cutting that text (``data.mae.fitted``).

The ``mae`` config section: seed_questions (JSONL of {question}: the starting pool, no
answers read), proposals (P), ratings (M), pool_questions (Q), solver_samples (N; the
paper: 5), max_new_tokens, temperature, accept_threshold, pool_size, reference_share,
epsilon_low, epsilon_high, aggregation, difficulty (a name in
``data.mae.DIFFICULTY_FIGURES`` for the log's task-specific figure, '' for none).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from data import mae as roles
from data import sources
from model import generate as generate_lib
from model.config import ModelConfig
from rl import algorithms
from rl import policy_update
from rl import sequences
from train import config as config_lib
from train import generation
from train import step as step_lib
from train.loops import Context, Loop, PromptFormat
from train.state import TrainState

POLICY_BATCH_KEYS = ("tokens", "segment_ids", "action_mask", "behaviour_log_probs")
# Per row: the reward; the role (data.mae.ROLES index); 1 for rows that learn; and what
# the log reads: on proposer rows 1 if accepted, the difficulty d (accepted ones), the
# task's difficulty figure and 1 where it has one; on solver rows the judge's v.
ROW_KEYS = ("rewards", "roles", "valid", "accepted", "difficulty", "question_difficulty",
            "has_question_difficulty", "judge_values")
PROMPT_FORMAT = PromptFormat("text")


# ------------------------------------------------------------------------- rewards


def proposer_reward(question: Optional[str], quality: float, difficulty: float,
                    format_score: float, accept_threshold: float) -> tuple[float, bool]:
  """(R_P, accepted) of one proposal (arXiv 2510.23595): no question → (0, False);
  quality q < threshold → rejected, q/3 + f/3; else q/3 + d/3 + f/3."""
  if question is None:
    return 0.0, False
  if quality < accept_threshold:
    return (quality + format_score) / 3, False
  return (quality + difficulty + format_score) / 3, True


def solver_reward(judge_value: float, format_score: float) -> float:
  """R_S = 0.5·V_J(answer) + 0.5·f."""
  return 0.5 * judge_value + 0.5 * format_score


def judge_reward(format_score: float) -> float:
  """R_J = f."""
  return format_score


def judged(text: str) -> float:
  """v of a judge's response; 0 when it gave no score (the defined outcome)."""
  value = roles.judge_value(text)
  return 0.0 if value is None else value


# ---------------------------------------------------------------------------- step


@dataclasses.dataclass(frozen=True)
class MAEConfig:
  loss: policy_update.PolicyLossConfig = policy_update.PolicyLossConfig()


def role_mean(values_B: jax.Array, weight_B: jax.Array) -> jax.Array:
  """Mean of ``values_B`` over the rows of weight 1 (0 when there are none)."""
  return jnp.sum(values_B * weight_B) / jnp.maximum(jnp.sum(weight_B), 1.0)


def make_mae_step(model_cfg: ModelConfig, optimizer, config: MAEConfig, *,
                  grad_accum_steps: int = 1, learning_rate_fn=None):
  """``step(state, batch) -> (state, metrics)``; jit it with donation.

  batch: the policy batch (``rl/sequences.py``) and ``ROW_KEYS`` (b,). metrics: the
  update's plus 'reward_proposer', 'reward_solver', 'reward_judge' (means over the
  role's valid rows), 'accepted' (share of proposals), 'proposer_difficulty' (mean d of
  the accepted ones), 'solver_score' (mean judge v of the valid answers) and
  'question_difficulty' (the task's figure, mean over proposals that have one).
  """
  update = step_lib.make_train_step(policy_update.make_policy_loss(model_cfg, config.loss),
                                    optimizer, grad_accum_steps=grad_accum_steps,
                                    learning_rate_fn=learning_rate_fn)

  def step(state: TrainState, batch: dict):
    valid_B = batch["valid"]
    role_B = batch["roles"].astype(jnp.int32)
    policy_batch = {key: batch[key] for key in POLICY_BATCH_KEYS}
    policy_batch["action_mask"] = policy_batch["action_mask"] * valid_B[:, None]
    policy_batch["advantages"] = algorithms.task_relative_advantages(
        batch["rewards"], role_B, valid_B, len(roles.ROLES))
    state, metrics = update(state, policy_batch)
    is_role = lambda r: (role_B == r).astype(jnp.float32)
    proposer_B = is_role(roles.PROPOSER)
    for r, name in enumerate(roles.ROLES):
      metrics[f"reward_{name}"] = role_mean(batch["rewards"], is_role(r) * valid_B)
    metrics.update(
        accepted=role_mean(batch["accepted"], proposer_B),
        proposer_difficulty=role_mean(batch["difficulty"], batch["accepted"] * proposer_B),
        solver_score=role_mean(batch["judge_values"], is_role(roles.SOLVER) * valid_B),
        question_difficulty=role_mean(batch["question_difficulty"],
                                      batch["has_question_difficulty"] * proposer_B))
    return state, metrics

  return step


def mae_config(ctx: Context) -> MAEConfig:
  m = ctx.config.mae
  return MAEConfig(loss=policy_update.PolicyLossConfig(
      aggregation=m.aggregation, epsilon_low=m.epsilon_low, epsilon_high=m.epsilon_high,
      temperature=m.temperature))


def make_step(ctx: Context):
  return make_mae_step(ctx.model_cfg, ctx.optimizer, mae_config(ctx),
                       grad_accum_steps=ctx.config.train.grad_accum_steps,
                       learning_rate_fn=ctx.schedule)


# ------------------------------------------------------------------------- rollouts


@dataclasses.dataclass(frozen=True)
class Layout:
  """Row counts of one batch: P proposals, M ratings each, Q pool questions, N answers
  per question."""
  proposals: int
  ratings: int
  pool_questions: int
  solver_samples: int

  @property
  def questions(self) -> int:
    return self.proposals + self.pool_questions

  @property
  def rows(self) -> int:
    return (self.proposals * (1 + self.ratings)
            + 2 * self.solver_samples * self.questions)


def layout(ctx: Context) -> Layout:
  m = ctx.config.mae
  return Layout(m.proposals, m.ratings, m.pool_questions, m.solver_samples)


def prompt_budget(ctx: Context) -> int:
  return ctx.config.train.seq_len - ctx.config.mae.max_new_tokens


class Rollouts:
  """MAE's batches: the three roles' rollouts of the step by the current weights, scored
  by the model's own judge; the question pool is this source's state (checkpointed)."""

  def __init__(self, ctx: Context, pool: list[str]):
    self._ctx = ctx
    self._pool = list(pool)
    m = ctx.config.mae
    self._layout = layout(ctx)
    self._threshold = m.accept_threshold
    self._pool_size = m.pool_size
    self._reference_share = m.reference_share
    self._difficulty = roles.DIFFICULTY_FIGURES[m.difficulty] if m.difficulty else None
    self._budget = prompt_budget(ctx)
    self._sampling = generate_lib.SamplingConfig(
        max_new_tokens=m.max_new_tokens, temperature=m.temperature,
        stop_tokens=PROMPT_FORMAT.stop_tokens(ctx.tokenizer), pad_id=ctx.tokenizer.pad_id)

  @property
  def pool(self) -> list[str]:
    return list(self._pool)

  def _ids(self, text: str) -> list[int]:
    return PROMPT_FORMAT.prompt_ids({"question": text}, self._ctx.tokenizer)

  def prompt_ids(self, render, **fields) -> list[int]:
    """The ids of the role prompt ``render(**fields)``, its fields cut to fit the prompt
    budget (``data.mae.fitted``)."""
    return self._ids(roles.fitted(render, fields,
                                  lambda text: len(self._ids(text)) <= self._budget))

  def _generate(self, params, prompts: Sequence[list[int]], rng):
    """(the rows' policy batch as numpy arrays, their response texts)."""
    rows = generation.generate_rows(self._ctx, params, prompts, rng, sampling=self._sampling,
                                    width=self._budget, all_rows=True)
    texts = [self._ctx.tokenizer.decode(ids.tolist()) for ids in rows.completions()]
    batch = sequences.concat_prompt_completion(rows.prompt, rows.prompt_mask, rows)
    return {key: np.asarray(value) for key, value in batch.items()}, texts

  def draws(self, step: int) -> tuple[list[Optional[str]], list[str]]:
    """(the P proposer prompts' reference questions, None for none; the Q pool questions
    the solver answers) of ``step``, seeded by (train.seed, step)."""
    rng = np.random.default_rng([self._ctx.config.train.seed, step])
    lay = self._layout
    with_reference = rng.random(lay.proposals) < self._reference_share
    references = rng.integers(len(self._pool), size=lay.proposals)
    drawn = rng.integers(len(self._pool), size=lay.pool_questions)
    return ([self._pool[r] if use else None for use, r in zip(with_reference, references)],
            [self._pool[i] for i in drawn])

  def __call__(self, state: TrainState, step: int) -> dict[str, np.ndarray]:
    lay = self._layout
    p, m, n = lay.proposals, lay.ratings, lay.solver_samples
    rng = jax.random.fold_in(jax.random.PRNGKey(self._ctx.config.train.seed), step)
    references, pool_questions = self.draws(step)

    # Proposer.
    proposer_prompts = [self.prompt_ids(roles.proposer_prompt) if ref is None
                        else self.prompt_ids(roles.proposer_prompt, reference=ref)
                        for ref in references]
    proposer_batch, proposals = self._generate(state.params, proposer_prompts,
                                               jax.random.fold_in(rng, 0))
    questions = [roles.first_tagged(text, roles.QUESTION_TAG) for text in proposals]
    asked = [q if q is not None else "" for q in questions] + pool_questions

    # Ratings of the proposals and answers to every question, in one generation.
    rate_prompts = [self.prompt_ids(roles.rate_prompt, question=asked[i])
                    for i in range(p) for _ in range(m)]
    solver_prompts = [self.prompt_ids(roles.solver_prompt, question=q)
                      for q in asked for _ in range(n)]
    middle_batch, middle_texts = self._generate(state.params, rate_prompts + solver_prompts,
                                                jax.random.fold_in(rng, 1))
    ratings, answers = middle_texts[:p * m], middle_texts[p * m:]

    # Judgements of the answers.
    judge_prompts = [self.prompt_ids(roles.judge_prompt, question=asked[j // n],
                                  response=answers[j].strip())
                     for j in range(len(answers))]
    judge_batch, judgements = self._generate(state.params, judge_prompts,
                                             jax.random.fold_in(rng, 2))

    row = self._score(questions, proposals, ratings, answers, judgements)
    batch = {key: np.concatenate([proposer_batch[key], middle_batch[key], judge_batch[key]])
             for key in POLICY_BATCH_KEYS}
    batch.update(row)
    accepted = [q for q, ok in zip(questions, row["accepted"][:p]) if ok]
    self._pool = (self._pool + accepted)[-self._pool_size:]
    rows = self._ctx.process_rows(lay.rows)
    return {key: value[rows] for key, value in batch.items()}

  def _score(self, questions: list[Optional[str]], proposals: list[str], ratings: list[str],
             answers: list[str], judgements: list[str]) -> dict[str, np.ndarray]:
    """``ROW_KEYS`` of every row of the batch (the rewards of the module docstring)."""
    lay = self._layout
    p, m, n, b = lay.proposals, lay.ratings, lay.solver_samples, lay.rows
    out = {key: np.zeros(b, np.float32) for key in ROW_KEYS}
    out["roles"] = np.zeros(b, np.int32)
    quality = np.array([judged(t) for t in ratings], np.float32).reshape(p, m).mean(-1)
    values = np.array([judged(t) for t in judgements], np.float32).reshape(-1, n)
    answer_valid = np.ones(lay.questions, np.float32)   # pool questions: always
    for i, question in enumerate(questions):
      reward, accepted = proposer_reward(
          question, float(quality[i]), 1.0 - float(values[i].mean()),
          roles.format_score(proposals[i], roles.QUESTION_TAG), self._threshold)
      out["rewards"][i], out["accepted"][i], out["valid"][i] = reward, accepted, 1.0
      out["difficulty"][i] = (1.0 - values[i].mean()) if accepted else 0.0
      figure = self._difficulty(question) if self._difficulty and question else None
      if figure is not None:
        out["question_difficulty"][i], out["has_question_difficulty"][i] = figure, 1.0
      out["valid"][p + i * m:p + (i + 1) * m] = question is not None
      answer_valid[i] = accepted
    rating_rows = slice(p, p + p * m)
    out["rewards"][rating_rows] = [judge_reward(roles.format_score(t, roles.SCORE_TAG))
                                   for t in ratings]
    out["roles"][rating_rows] = roles.JUDGE_ROLE
    solver_rows = slice(p + p * m, p + p * m + len(answers))
    judge_rows = slice(solver_rows.stop, b)
    out["rewards"][solver_rows] = [
        solver_reward(v, roles.format_score(t, roles.ANSWER_TAG))
        for v, t in zip(values.reshape(-1), answers)]
    out["judge_values"][solver_rows] = values.reshape(-1)
    out["roles"][solver_rows] = roles.SOLVER
    out["rewards"][judge_rows] = [judge_reward(roles.format_score(t, roles.SCORE_TAG))
                                  for t in judgements]
    out["roles"][judge_rows] = roles.JUDGE_ROLE
    out["valid"][solver_rows] = out["valid"][judge_rows] = np.repeat(answer_valid, n)
    return out

  def get_state(self) -> bytes:
    return json.dumps({"pool": self._pool}).encode()

  def set_state(self, state: bytes) -> None:
    pool = json.loads(state).get("pool")
    if pool:
      self._pool = pool

  def start_prefetch(self) -> None:
    pass

  def progress(self) -> dict[str, Any]:
    return {"pool": len(self._pool)}


def read_seed_questions(path: str) -> list[str]:
  """The questions of ``mae.seed_questions``; errors name the line without one."""
  questions = []
  for where, record in sources.read_located_records(path):
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
      raise ValueError(f"{where}: mae.seed_questions needs a non-empty 'question' "
                       f"(record has {sorted(record)})")
    questions.append(question)
  if not questions:
    raise config_lib.ConfigError(f"mae.seed_questions={path} has no questions")
  return questions


def make_batches(ctx: Context) -> Rollouts:
  m = ctx.config.mae
  lay = layout(ctx)
  rows = ctx.config.train.global_batch_size
  if rows != lay.rows:
    raise config_lib.ConfigError(
        f"train.global_batch_size={rows}: MAE's batch has P + P·M + 2·N·(P + Q) = "
        f"{lay.rows} rows (mae.proposals P={lay.proposals}, mae.ratings M={lay.ratings}, "
        f"mae.solver_samples N={lay.solver_samples}, mae.pool_questions "
        f"Q={lay.pool_questions})")
  if rows % ctx.row_unit():
    raise config_lib.ConfigError(f"train.global_batch_size={rows} must be a multiple of "
                                 f"{ctx.row_unit()} so that the batch shards")
  if prompt_budget(ctx) < 1:
    raise config_lib.ConfigError(f"mae.max_new_tokens={m.max_new_tokens} leaves no room for "
                                 f"a prompt in train.seq_len={ctx.config.train.seq_len}")
  if m.difficulty and m.difficulty not in roles.DIFFICULTY_FIGURES:
    raise config_lib.ConfigError(f"mae.difficulty={m.difficulty!r}: want '' or one of "
                                 f"{sorted(roles.DIFFICULTY_FIGURES)}")
  rollouts = Rollouts(ctx, read_seed_questions(m.seed_questions)[-m.pool_size:])
  rollouts.prompt_ids(roles.proposer_prompt)   # the bare role prompt fits the budget
  return rollouts


def abstract_batch(ctx: Context) -> dict:
  shape = (ctx.config.train.global_batch_size, ctx.config.train.seq_len)
  spec = lambda dtype, s=shape: jax.ShapeDtypeStruct(s, dtype)
  return {"tokens": spec(jnp.int32), "segment_ids": spec(jnp.int32),
          "action_mask": spec(jnp.float32), "behaviour_log_probs": spec(jnp.float32),
          **{key: spec(jnp.int32 if key == "roles" else jnp.float32, shape[:1])
             for key in ROW_KEYS}}


def prompt_format(ctx: Context) -> PromptFormat:
  del ctx
  return PROMPT_FORMAT


LOOP = Loop(
    make_step=make_step, make_batches=make_batches, abstract_batch=abstract_batch,
    sections=("mae",), prompt_format=prompt_format,
    ranges={"mae.proposals": config_lib.POSITIVE_INT,
            "mae.ratings": config_lib.POSITIVE_INT,
            "mae.pool_questions": config_lib.NON_NEGATIVE_INT,
            "mae.solver_samples": config_lib.POSITIVE_INT,
            "mae.max_new_tokens": config_lib.POSITIVE_INT,
            "mae.temperature": config_lib.POSITIVE,
            "mae.accept_threshold": config_lib.FRACTION,
            "mae.pool_size": config_lib.POSITIVE_INT,
            "mae.reference_share": config_lib.FRACTION,
            "mae.epsilon_low": config_lib.NON_NEGATIVE,
            "mae.epsilon_high": config_lib.NON_NEGATIVE})
