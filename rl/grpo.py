"""GRPO: G samples per prompt, verifiable rewards, group-relative advantages, clipped
importance-ratio surrogate, optional KL to a frozen reference.

One iteration:
  1. ``collect`` (host): template and left-pad B prompts to ``max_prompt_len`` slots,
     repeat each G times, sample with the jitted prefill/decode (``rl.generate``), decode
     the completions and score them with the configured rewards (``rl.rewards``). All
     input errors (empty batch, prompt too long, a reward that raises) surface here,
     before the state is touched.
  2. ``step(state, batch)`` (jitted, state donated): advantages by the registered
     estimator over each prompt's group, reference log-probs when kl_coef > 0, then the
     shared policy update (``rl.policy_update``): per token
     −min(ρ·A, clip(ρ, 1−ε_l, 1+ε_h)·A) with ρ against the sampler's behaviour
     log-probs, aggregated per token or per sequence.
Rows are prompt-major: row i·G + g is sample g of prompt i.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from data import tokenizer as tokenizer_lib
from model.config import ModelConfig
from rl import algorithms
from data import chat
from model import generate as generate_lib
from rl import policy_update
from data import prompts as prompts_lib
from rl import rewards as rewards_lib
from rl import sequences
from rl.state import GRPOState
from train import step as step_lib

TEMPLATES = ("plain", "crossthink")
POLICY_BATCH_KEYS = ("tokens", "segment_ids", "action_mask", "behaviour_log_probs")


@dataclasses.dataclass(frozen=True)
class GRPOConfig:
  """group_size: G samples per prompt; max_prompt_len: prompt slots (longer prompts are
  an error); sampling: the rollout decode (its temperature should equal loss.temperature);
  loss: the policy update; advantage_estimator: a name in ADVANTAGE_ESTIMATORS;
  rewards: ((reward name, weight), ...); template: 'plain' (the question as the user
  turn) or 'crossthink' (``rl.prompts``); thinking: the reasoning toggle of the system
  prompt (None: no system prompt)."""
  sampling: generate_lib.SamplingConfig
  loss: policy_update.PolicyLossConfig = policy_update.PolicyLossConfig()
  group_size: int = 4
  max_prompt_len: int = 64
  advantage_estimator: str = "grpo"
  rewards: tuple[tuple[str, float], ...] = (("math", 1.0),)
  template: str = "plain"
  thinking: Optional[bool] = None

  def __post_init__(self):
    if self.group_size < 2:
      raise ValueError(f"GRPOConfig.group_size={self.group_size}: groups need >= 2 samples")
    if self.template not in TEMPLATES:
      raise ValueError(f"GRPOConfig.template={self.template!r}: want one of {TEMPLATES}")
    algorithms.ADVANTAGE_ESTIMATORS.get(self.advantage_estimator)
    for name, _ in self.rewards:
      rewards_lib.REWARDS.get(name)


def prompt_ids(example: Mapping, tokenizer: tokenizer_lib.Tokenizer,
               config: GRPOConfig) -> list[int]:
  question = (prompts_lib.prompt_text(example) if config.template == "crossthink"
              else example["question"])
  return chat.prompt_ids(question, tokenizer, thinking=config.thinking)


def collect(params, examples: Sequence[Mapping], tokenizer: tokenizer_lib.Tokenizer,
            rng: jax.Array, *, model_cfg: ModelConfig, config: GRPOConfig
            ) -> tuple[dict, dict]:
  """Samples G completions per example and scores them.

  Returns (batch for ``step``: the policy batch (B·G, max_prompt_len + n) and
  'rewards' (B·G,); info: 'completions' (texts) and 'reward_parts' {name: (B·G,)}).
  Raises ValueError (empty batch, prompt too long) or RewardError.
  """
  if not examples:
    raise ValueError("GRPO got an empty batch of prompts")
  prompt_BP, mask_BP = generate_lib.left_pad(
      [prompt_ids(e, tokenizer, config) for e in examples], pad_id=tokenizer.pad_id,
      width=config.max_prompt_len)
  g = config.group_size
  prompt_RP, mask_RP = np.repeat(prompt_BP, g, axis=0), np.repeat(mask_BP, g, axis=0)
  generation = generate_lib.generate(params, prompt_RP, mask_RP, rng, model_cfg=model_cfg,
                                     sampling=config.sampling)
  tokens_RN, mask_RN = np.asarray(generation.tokens), np.asarray(generation.mask)
  completions = [tokenizer.decode(t[m > 0]) for t, m in zip(tokens_RN, mask_RN)]
  rewards_R, parts = rewards_lib.score(dict(config.rewards), completions,
                                       [e for e in examples for _ in range(g)])
  batch = sequences.concat_prompt_completion(jnp.asarray(prompt_RP), jnp.asarray(mask_RP),
                                             generation)
  batch["rewards"] = jnp.asarray(rewards_R)
  return batch, {"completions": completions, "reward_parts": parts}


def make_grpo_step(model_cfg: ModelConfig, optimizer, config: GRPOConfig, *,
                   grad_accum_steps: int = 1, learning_rate_fn=None):
  """``step(state: GRPOState, batch) -> (state, metrics)``; jit it with donation.

  metrics: the update's ('loss', 'policy_loss', 'clip_fraction', 'ratio', 'kl', norms)
  plus 'reward_mean', 'reward_std', 'solved_groups' (share of groups whose rewards are
  all equal, hence zero advantage) and 'completion_length'.
  """
  estimator = algorithms.ADVANTAGE_ESTIMATORS.get(config.advantage_estimator)
  update = step_lib.make_train_step(policy_update.make_policy_loss(model_cfg, config.loss),
                                    optimizer, grad_accum_steps=grad_accum_steps,
                                    learning_rate_fn=learning_rate_fn)
  g = config.group_size

  def step(state: GRPOState, batch: dict):
    rewards_PG = batch["rewards"].reshape(-1, g)
    policy_batch = {key: batch[key] for key in POLICY_BATCH_KEYS}
    policy_batch["advantages"] = estimator(rewards_PG).reshape(-1)
    if config.loss.kl_coef > 0:
      if state.reference_params is None:
        raise ValueError("loss.kl_coef > 0 needs GRPOState.reference_params")
      policy_batch["reference_log_probs"] = policy_update.reference_log_probs(
          state.reference_params, policy_batch, model_cfg=model_cfg,
          temperature=config.loss.temperature)
    state, metrics = update(state, policy_batch)
    metrics.update(
        reward_mean=jnp.mean(rewards_PG), reward_std=jnp.std(rewards_PG),
        solved_groups=jnp.mean(jnp.all(rewards_PG == rewards_PG[:, :1], axis=-1)),
        completion_length=jnp.mean(jnp.sum(batch["action_mask"], axis=-1)))
    return state, metrics

  return step


def evaluate(params, examples: Sequence[Mapping], tokenizer: tokenizer_lib.Tokenizer, *,
             model_cfg: ModelConfig, config: GRPOConfig, batch_size: int = 64) -> float:
  """Mean reward of greedy completions (accuracy for 0/1 rewards)."""
  greedy = dataclasses.replace(config.sampling, temperature=0.0, top_k=0, top_p=1.0)
  scores = []
  for start in range(0, len(examples), batch_size):
    chunk = list(examples[start:start + batch_size])
    prompt_BP, mask_BP = generate_lib.left_pad(
        [prompt_ids(e, tokenizer, config) for e in chunk], pad_id=tokenizer.pad_id,
        width=config.max_prompt_len)
    out = generate_lib.generate(params, prompt_BP, mask_BP, jax.random.PRNGKey(0),
                                model_cfg=model_cfg, sampling=greedy)
    texts = [tokenizer.decode(t[m > 0]) for t, m in zip(np.asarray(out.tokens),
                                                        np.asarray(out.mask))]
    scores.append(rewards_lib.score(dict(config.rewards), texts, chunk)[0])
  return float(np.mean(np.concatenate(scores)))
