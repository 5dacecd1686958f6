"""GRPO (arXiv 2402.03300): G samples per prompt, verifiable rewards, group-relative
advantages, clipped importance-ratio surrogate, optional KL to a frozen reference.

One iteration (``LOOP``, ``loop='grpo'``):
  1. ``Rollouts`` (host, every process its share of the prompts): draw B/G prompts by a
     step-seeded order over the records (each epoch a new permutation), template them
     (``data/prompts.py``), sample G completions each with the current weights as one
     sharded generation (``train/generation.py``), decode and score them with the
     configured rewards (``rl/rewards.py``). Input errors (a prompt over budget, too few
     records, a reward that raises) surface before the state is touched.
  2. ``step(state, batch)`` (jitted, state donated): advantages by the registered
     estimator over each prompt's group, reference log-probs when kl_coef > 0, then the
     shared policy update (``rl/policy_update.py``): per token
     −min(ρ·A, clip(ρ, 1−ε_l, 1+ε_h)·A) with ρ against the sampler's behaviour
     log-probs, aggregated per token or per sequence.
Rows are prompt-major: row i·G + g is sample g of prompt i. ``train.global_batch_size``
counts sequences (B = prompts × G); ``train.seq_len`` is the row width, prompt budget
plus ``grpo.max_new_tokens``.

The ``grpo`` config section: records (JSONL of {question, answer[, kind, options]}),
group_size, max_new_tokens, temperature, top_k, top_p, advantage_estimator,
aggregation, epsilon_low, epsilon_high, kl_coef, rewards ({name: weight}), template
('chat' or 'crossthink'), thinking, and three optional fields:

  drop_solved_at       Llama-Nemotron's prompt filter (arXiv 2505.00949): before the
                       first step, G samples per record by the starting weights; records
                       answered right at a rate >= this are dropped (0 or absent: keep
                       all). The kept records are saved with every checkpoint.
  skip_uniform_groups  groups whose G rewards are all equal (zero advantage) leave the
                       loss's denominator too, so they do not dilute the others
                       (otherwise they only add zero to the numerator).
  truncated_reward     the reward of a completion that reaches max_new_tokens without
                       its template's stop token, whatever the rewards would give it
                       (absent: scored like the others). Without it a policy is free to
                       keep writing after its answer, which a reward reading the answer
                       alone cannot see; DAPO (arXiv 2503.14476, Sec. 3.4) shapes the
                       reward of over-long samples for the same reason.
  tool_calls           tool-integrated rollouts (AIMO-2, arXiv 2504.16891): the prompt
                       states this budget of code executions and a completion that
                       closes a ```python block continues after the sandbox's output
                       (``train.generation.generate_with_tools``, timeout
                       ``tool_timeout_s``). The tool's tokens are context, not actions:
                       they are neither trained nor counted in the ratios (0 or absent:
                       no tool).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from data import answers
from data import prompts as prompts_lib
from data import sources
from data import tir
from model import generate as generate_lib
from model.config import ModelConfig
from rl import algorithms
from rl import policy_update
from rl import rewards as rewards_lib
from rl import sequences
from train import config as config_lib
from train import generation
from train import step as step_lib
from train.loops import Context, ExtraWeights, Loop, PromptFormat, StepSeededBatches
from train.state import TrainState

POLICY_BATCH_KEYS = ("tokens", "segment_ids", "action_mask", "behaviour_log_probs")
# Per row, beside the policy batch: the total reward, and 1.0 where the completion ran to
# max_new_tokens without a stop token.
ROW_KEYS = ("rewards", "truncated")


@flax.struct.dataclass
class GRPOState(TrainState):
  reference_params: Any = None     # the frozen starting weights, when kl_coef > 0


@dataclasses.dataclass(frozen=True)
class GRPOConfig:
  """group_size: G samples per prompt; loss: the policy update; advantage_estimator: a
  name in ADVANTAGE_ESTIMATORS; rewards: ((reward name, weight), ...)."""
  loss: policy_update.PolicyLossConfig = policy_update.PolicyLossConfig()
  group_size: int = 4
  advantage_estimator: str = "grpo"
  rewards: tuple[tuple[str, float], ...] = (("math", 1.0),)
  skip_uniform_groups: bool = False

  def __post_init__(self):
    if self.group_size < 2:
      raise ValueError(f"GRPOConfig.group_size={self.group_size}: groups need >= 2 samples")
    algorithms.ADVANTAGE_ESTIMATORS.get(self.advantage_estimator)
    for name, _ in self.rewards:
      rewards_lib.REWARDS.get(name)

  @property
  def full_reward(self) -> float:
    """The best total reward (each registered reward scores 0 to 1): the sum of the
    positive weights."""
    return sum(max(weight, 0.0) for _, weight in self.rewards)


def group_shares(rewards_PG: jax.Array, full_reward: float) -> dict[str, jax.Array]:
  """'uniform_reward_groups': the share of groups whose G rewards are all equal (zero
  advantage: all right, all wrong or all alike); 'full_reward_groups': the share whose
  every sample earned ``full_reward`` (all right)."""
  full_PG = (rewards_PG > full_reward) | jnp.isclose(rewards_PG, full_reward)
  return {"uniform_reward_groups": jnp.mean(algorithms.uniform_groups(rewards_PG)),
          "full_reward_groups": jnp.mean(jnp.all(full_PG, axis=-1))}


def sampled_entropy(behaviour_log_probs_BL: jax.Array, action_mask_BL: jax.Array) -> jax.Array:
  """The policy's entropy per generated token, estimated from the rollouts: the mean of
  −log π(token) over the sampled tokens (an unbiased estimate of the entropy of the
  sampling policy; with top-k or top-p, the cross-entropy of the filtered samples under
  the unfiltered policy)."""
  return -algorithms.token_mean(behaviour_log_probs_BL, action_mask_BL)[0]


def make_grpo_step(model_cfg: ModelConfig, optimizer, config: GRPOConfig, *,
                   grad_accum_steps: int = 1, learning_rate_fn=None):
  """``step(state: GRPOState, batch) -> (state, metrics)``; jit it with donation.

  batch: the policy batch (``rl/sequences.py``), 'rewards' (b,) and 'truncated' (b,).
  metrics: the update's ('loss', 'policy_loss', 'clip_fraction', 'ratio', 'kl', norms)
  plus 'reward_mean', 'reward_std', the ``group_shares`` ('uniform_reward_groups',
  'full_reward_groups'), 'completion_length' (tokens, the stop token included),
  'truncated' (share of completions cut at the token budget) and 'entropy'
  (``sampled_entropy``).
  """
  estimator = algorithms.ADVANTAGE_ESTIMATORS.get(config.advantage_estimator)
  update = step_lib.make_train_step(policy_update.make_policy_loss(model_cfg, config.loss),
                                    optimizer, grad_accum_steps=grad_accum_steps,
                                    learning_rate_fn=learning_rate_fn)
  g = config.group_size

  def step(state: GRPOState, batch: dict):
    rewards_PG = batch["rewards"].reshape(-1, g)
    uniform_P = algorithms.uniform_groups(rewards_PG)
    policy_batch = {key: batch[key] for key in POLICY_BATCH_KEYS}
    policy_batch["advantages"] = estimator(rewards_PG).reshape(-1)
    if config.skip_uniform_groups:
      keep_B = jnp.repeat(~uniform_P, g).astype(policy_batch["action_mask"].dtype)
      policy_batch["action_mask"] = policy_batch["action_mask"] * keep_B[:, None]
    if config.loss.kl_coef > 0:
      if state.reference_params is None:
        raise ValueError("loss.kl_coef > 0 needs GRPOState.reference_params")
      policy_batch["reference_log_probs"] = policy_update.reference_log_probs(
          state.reference_params, policy_batch, model_cfg=model_cfg,
          temperature=config.loss.temperature)
    state, metrics = update(state, policy_batch)
    metrics.update(
        group_shares(rewards_PG, config.full_reward),
        reward_mean=jnp.mean(rewards_PG), reward_std=jnp.std(rewards_PG),
        completion_length=jnp.mean(jnp.sum(batch["action_mask"], axis=-1)),
        truncated=jnp.mean(batch["truncated"]),
        entropy=sampled_entropy(batch["behaviour_log_probs"], batch["action_mask"]))
    return state, metrics

  return step


# ------------------------------------------------------------------------------ the loop


def grpo_config(ctx: Context) -> GRPOConfig:
  g = ctx.config.grpo
  return GRPOConfig(
      loss=policy_update.PolicyLossConfig(
          aggregation=g.aggregation, epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high,
          kl_coef=g.kl_coef, temperature=g.temperature),
      group_size=g.group_size, advantage_estimator=g.advantage_estimator,
      rewards=tuple((name, float(weight)) for name, weight in g.rewards.items()),
      skip_uniform_groups=bool(g.get("skip_uniform_groups", False)))


def make_step(ctx: Context):
  return make_grpo_step(ctx.model_cfg, ctx.optimizer, grpo_config(ctx),
                        grad_accum_steps=ctx.config.train.grad_accum_steps,
                        learning_rate_fn=ctx.schedule)


def prompt_format(ctx: Context) -> PromptFormat:
  """The records' prompts: ``grpo.template`` with ``grpo.thinking``."""
  return PromptFormat(ctx.config.grpo.template, ctx.config.grpo.thinking)


def prompt_budget(ctx: Context) -> int:
  return ctx.config.train.seq_len - ctx.config.grpo.max_new_tokens


def tool_calls(ctx: Context) -> int:
  return ctx.config.grpo.get("tool_calls", 0) or 0


def read_examples(ctx: Context) -> tuple[list[dict], list[list[int]]]:
  """(records, their prompt ids); errors name the line of a record without a question
  or answer, of an unknown kind, or whose prompt exceeds the budget."""
  g = ctx.config.grpo
  budget = prompt_budget(ctx)
  examples, prompts = [], []
  for where, record in sources.read_located_records(g.records):
    for field in ("question", "answer"):
      if field not in record:
        raise ValueError(f"{where}: missing field {field!r} (record has {sorted(record)})")
    if record.get("kind", "math") == "mcq" and not record.get("options"):
      raise ValueError(f"{where}: an 'mcq' record needs 'options'")
    ids = prompt_format(ctx).prompt_ids(tir.budgeted(record, tool_calls(ctx)), ctx.tokenizer)
    if len(ids) > budget:
      raise ValueError(
          f"{where}: the prompt has {len(ids)} tokens, more than the budget of {budget} "
          f"(train.seq_len={ctx.config.train.seq_len} - grpo.max_new_tokens="
          f"{g.max_new_tokens}): raise train.seq_len or drop the record")
    examples.append(dict(record, kind=answers.record_kind(record)))
    prompts.append(ids)
  return examples, prompts


class Rollouts(StepSeededBatches):
  """GRPO's batches: completions of the step's prompts by the current weights, scored.

  The prompts of step t are positions t·P .. t·P+P−1 of an endless sequence of
  permutations of the records (permutation e seeded by (seed, e)), so every record is
  used once per epoch and a resumed run draws what an uninterrupted one would. With
  ``grpo.drop_solved_at``, the records are those the starting weights did not solve
  (chosen at the first step, restored with the checkpoint).
  """

  def __init__(self, ctx: Context, examples: list[dict], prompts: list[list[int]]):
    self._ctx = ctx
    self._examples = examples
    self._prompts = prompts
    g = ctx.config.grpo
    self._config = grpo_config(ctx)
    self._group_size = g.group_size
    self._prompts_per_step = ctx.config.train.global_batch_size // g.group_size
    self._drop_solved_at = g.get("drop_solved_at", 0.0) or 0.0
    self._truncated_reward = g.get("truncated_reward")
    self._kept = None if self._drop_solved_at else list(range(len(examples)))
    self._sampling = generate_lib.SamplingConfig(
        max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_k=g.top_k,
        top_p=g.top_p, stop_tokens=prompt_format(ctx).stop_tokens(ctx.tokenizer),
        pad_id=ctx.tokenizer.pad_id)
    self._tools = None
    if tool_calls(ctx):
      self._tools = generation.ToolUse(calls=tool_calls(ctx), timeout_s=g.tool_timeout_s)
      self._reply_ids = generation.reply_ids_for(ctx.tokenizer, g.template)

  @functools.lru_cache(maxsize=4)
  def _permutation(self, epoch: int) -> np.ndarray:
    seed = self._ctx.config.train.seed
    return np.random.default_rng([seed, epoch]).permutation(len(self._kept))

  def prompt_indices(self, step: int) -> list[int]:
    n, p = len(self._kept), self._prompts_per_step
    positions = range(step * p, (step + 1) * p)
    return [self._kept[int(self._permutation(s // n)[s % n])] for s in positions]

  def _sample(self, params, indices: list[int], rng):
    """G samples per record index: (rows of this process, each row's record index, each
    row's completion text, (rows,) bool: the row ran to max_new_tokens without stopping)."""
    chosen = [i for i in indices for _ in range(self._group_size)]
    kwargs = dict(sampling=self._sampling, width=prompt_budget(self._ctx),
                  pad_to=self._prompts_per_step * self._group_size,
                  row_multiple=self._group_size)
    prompts = [self._prompts[i] for i in chosen]
    if self._tools:
      rows = generation.generate_with_tools(self._ctx, params, prompts, rng, tools=self._tools,
                                            reply_ids=self._reply_ids, **kwargs)
    else:
      rows = generation.generate_rows(self._ctx, params, prompts, rng, **kwargs)
    completions = rows.completions()
    texts = [self._ctx.tokenizer.decode(ids.tolist()) for ids in completions]
    # A row ends before max_new_tokens only on a stop token, which it keeps.
    truncated = np.array([int(ids[-1]) not in self._sampling.stop_tokens for ids in completions])
    return rows, [chosen[r] for r in rows.rows], texts, truncated

  def solved(self, params) -> np.ndarray:
    """(records,) bool: ``params`` answers the record right in at least
    ``drop_solved_at`` of G samples (a collective). A record's samples are checked only
    until that is decided (with G = 4 and 0.75, two wrong answers settle it)."""
    g = self._group_size
    needed = next(right for right in range(g + 1) if right / g >= self._drop_solved_at)

    def solves(record: tuple[int, list[str]]) -> bool:
      i, group = record
      right = wrong = 0
      for text in group:
        if right >= needed or wrong > g - needed:
          break
        if answers.is_correct(text, self._examples[i]):
          right += 1
        else:
          wrong += 1
      return right >= needed

    solved = np.zeros(len(self._examples))
    rng = jax.random.PRNGKey(self._ctx.config.train.seed + 1)
    for start in range(0, len(self._examples), self._prompts_per_step):
      indices = list(range(start, min(start + self._prompts_per_step, len(self._examples))))
      _, records, texts, _ = self._sample(params, indices, jax.random.fold_in(rng, start))
      samples = {}
      for i, text in zip(records, texts):
        samples.setdefault(i, []).append(text)
      groups = list(samples.items())
      for (i, _), done in zip(groups, answers.map_checks(solves, groups)):
        solved[i] = done
    if jax.process_count() > 1:   # a record's samples are all on one process
      solved = np.asarray(multihost_utils.process_allgather(solved)).sum(axis=0)
    return solved > 0

  def _filter(self, params) -> None:
    solved = self.solved(params)
    self._kept = [i for i, done in enumerate(solved) if not done]
    if len(self._kept) < self._prompts_per_step:
      raise ValueError(
          f"grpo.drop_solved_at={self._drop_solved_at}: the starting weights solve all but "
          f"{len(self._kept)} of the {len(solved)} records of grpo.records, fewer than the "
          f"{self._prompts_per_step} prompts per step")

  def get_state(self) -> bytes:
    return json.dumps({"kept": self._kept}).encode()

  def set_state(self, state: bytes) -> None:
    kept = json.loads(state).get("kept")
    if kept is not None:
      self._kept = kept

  def progress(self) -> dict[str, Any]:
    return {"prompts": len(self._kept)} if self._drop_solved_at and self._kept else {}

  def __call__(self, state: GRPOState, step: int) -> dict[str, np.ndarray]:
    if self._kept is None:
      self._filter(state.params)
    rng = jax.random.fold_in(jax.random.PRNGKey(self._ctx.config.train.seed), step)
    rows, records, texts, truncated = self._sample(state.params, self.prompt_indices(step), rng)
    examples = [self._examples[i] for i in records]
    if self._truncated_reward is None:
      rewards, _ = rewards_lib.score(dict(self._config.rewards), texts, examples)
    else:   # truncated rows get their reward unchecked
      rewards = np.full(len(texts), self._truncated_reward, np.float32)
      if scored := np.flatnonzero(~truncated).tolist():
        rewards[scored], _ = rewards_lib.score(dict(self._config.rewards),
                                               [texts[r] for r in scored],
                                               [examples[r] for r in scored])
    batch = sequences.concat_prompt_completion(rows.prompt, rows.prompt_mask, rows,
                                               tool_BN=rows.tool)
    batch = {name: np.asarray(value) for name, value in batch.items()}
    batch["rewards"] = rewards
    batch["truncated"] = truncated.astype(np.float32)
    return batch


def make_batches(ctx: Context) -> Rollouts:
  g = ctx.config.grpo
  grpo_config(ctx)  # unknown rewards or estimators fail here, naming them
  if g.template not in prompts_lib.TEMPLATES:
    raise config_lib.ConfigError(f"grpo.template={g.template!r}: want one of "
                                 f"{prompts_lib.TEMPLATES}")
  rows = ctx.config.train.global_batch_size
  unit = ctx.row_unit(g.group_size)
  if rows % unit:
    raise config_lib.ConfigError(
        f"train.global_batch_size={rows} (sequences: prompts × grpo.group_size="
        f"{g.group_size}) must be a multiple of {unit}, so that the batch shards and every "
        "process gets whole groups")
  if prompt_budget(ctx) < 1:
    raise config_lib.ConfigError(f"grpo.max_new_tokens={g.max_new_tokens} leaves no room for "
                                 f"a prompt in train.seq_len={ctx.config.train.seq_len}")
  examples, prompts = read_examples(ctx)
  if len(examples) < rows // g.group_size:
    raise config_lib.ConfigError(
        f"grpo.records={g.records} has {len(examples)} records, fewer than the "
        f"{rows // g.group_size} prompts per step (train.global_batch_size / "
        "grpo.group_size)")
  return Rollouts(ctx, examples, prompts)


def abstract_batch(ctx: Context) -> dict:
  shape = (ctx.config.train.global_batch_size, ctx.config.train.seq_len)
  spec = lambda dtype, s=shape: jax.ShapeDtypeStruct(s, dtype)
  return {"tokens": spec(jnp.int32), "segment_ids": spec(jnp.int32),
          "action_mask": spec(jnp.float32), "behaviour_log_probs": spec(jnp.float32),
          **{key: spec(jnp.float32, shape[:1]) for key in ROW_KEYS}}


def extra_weights(ctx: Context) -> dict[str, ExtraWeights]:
  if ctx.config.grpo.kl_coef > 0:
    return {"reference_params": ExtraWeights(ctx.model_cfg, source="copy")}
  return {}


LOOP = Loop(
    make_step=make_step, make_batches=make_batches, abstract_batch=abstract_batch,
    state_type=GRPOState, extra_weights=extra_weights, sections=("grpo",),
    prompt_format=prompt_format,
    ranges={"grpo.group_size": config_lib.Range(low=2, integer=True),
            "grpo.max_new_tokens": config_lib.POSITIVE_INT,
            "grpo.temperature": config_lib.POSITIVE,
            "grpo.top_k": config_lib.NON_NEGATIVE_INT,
            "grpo.top_p": config_lib.Range(low=0, high=1, low_open=True),
            "grpo.epsilon_low": config_lib.NON_NEGATIVE,
            "grpo.epsilon_high": config_lib.NON_NEGATIVE,
            "grpo.kl_coef": config_lib.NON_NEGATIVE,
            "grpo.drop_solved_at": config_lib.FRACTION,
            "grpo.tool_calls": config_lib.NON_NEGATIVE_INT,
            "grpo.tool_timeout_s": config_lib.POSITIVE})
