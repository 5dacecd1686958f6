"""Registered RL pieces: advantage estimators, per-token policy losses, loss aggregations.

A loop picks each by a config string (``ADVANTAGE_ESTIMATORS.get('grpo')``), so GRPO,
RLOO and RLP share one update path (``rl/policy_update.py``). Shapes: b sequences,
l tokens, g samples per group (rewards are (prompts g)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from train.registry import Registry

ADVANTAGE_ESTIMATORS = Registry("advantage estimator")
POLICY_LOSSES = Registry("policy loss")
LOSS_AGGREGATIONS = Registry("loss aggregation")


def uniform_groups(rewards_PG: jax.Array) -> jax.Array:
  """(P,) bool: the groups whose G rewards are all equal (no learning signal)."""
  return jnp.all(rewards_PG == rewards_PG[:, :1], axis=-1)


@ADVANTAGE_ESTIMATORS.register("grpo")
def group_normalized_advantages(rewards_PG: jax.Array, eps: float = 1e-6) -> jax.Array:
  """GRPO: A_i = (r_i − mean_j r_j) / (std_j r_j + eps) within each prompt's group.

  The population std (ddof 0) is used; a group with equal rewards gets exactly A = 0
  (under jit the mean of equal rewards can round off them, and eps alone would turn that
  rounding into advantages of ~0.1).
  """
  rewards_PG = rewards_PG.astype(jnp.float32)
  mean_P1 = jnp.mean(rewards_PG, axis=-1, keepdims=True)
  std_P1 = jnp.std(rewards_PG, axis=-1, keepdims=True)
  uniform_P1 = uniform_groups(rewards_PG)[:, None]
  return jnp.where(uniform_P1, 0.0, (rewards_PG - mean_P1) / (std_P1 + eps))


@ADVANTAGE_ESTIMATORS.register("rloo")
def leave_one_out_advantages(rewards_PG: jax.Array) -> jax.Array:
  """RLOO / RLP (arXiv 2510.01265): A_i = G/(G−1)·(r_i − mean_j r_j).

  Equal to r_i minus the mean of the other G−1 rewards of the group; a group with equal
  rewards gets exactly A = 0 (the mean of three rewards of 1.1 rounds to 1.1 − 1.2e-7
  in float32, which would otherwise become advantages of ~1e-7).
  """
  g = rewards_PG.shape[-1]
  if g < 2:
    raise ValueError(f"leave-one-out advantages need at least 2 samples per group, got {g}")
  rewards_PG = rewards_PG.astype(jnp.float32)
  advantages_PG = g / (g - 1) * (rewards_PG - jnp.mean(rewards_PG, axis=-1, keepdims=True))
  return jnp.where(uniform_groups(rewards_PG)[:, None], 0.0, advantages_PG)


def task_relative_advantages(rewards_B: jax.Array, task_B: jax.Array, valid_B: jax.Array,
                             num_tasks: int, eps: float = 1e-6) -> jax.Array:
  """Task-Relative REINFORCE++ (MAE, arXiv 2510.23595): with one scalar reward per
  sequence and γ = 1 every token's return is the reward R; it is whitened within its
  task (MAE's role): A = (R − μ_task) / (σ_task + eps) over the valid rows of the task.

  task_B: int task ids in [0, num_tasks); valid_B: 1 for rows that learn, 0 for rows with
  nothing to learn (their A is exactly 0, never NaN). A task whose valid rewards are all
  equal, or that has no valid row, gets A = 0 (population std, ddof 0, as 'grpo').
  """
  rewards_B = rewards_B.astype(jnp.float32)
  member_BT = jax.nn.one_hot(task_B, num_tasks, dtype=jnp.float32) * valid_B[:, None]
  count_T = jnp.maximum(jnp.sum(member_BT, axis=0), 1.0)
  rewards_B1 = rewards_B[:, None]
  mean_1T = (jnp.sum(member_BT * rewards_B1, axis=0) / count_T)[None, :]
  centered_BT = (rewards_B1 - mean_1T) * member_BT
  std_1T = jnp.sqrt(jnp.sum(centered_BT ** 2, axis=0) / count_T)[None, :]
  highest_T = jnp.max(jnp.where(member_BT > 0, rewards_B1, -jnp.inf), axis=0)
  lowest_T = jnp.min(jnp.where(member_BT > 0, rewards_B1, jnp.inf), axis=0)
  spread_1T = (highest_T > lowest_T)[None, :]      # False when uniform or empty
  advantages_BT = jnp.where(spread_1T, centered_BT / (std_1T + eps), 0.0)
  return jnp.sum(advantages_BT * member_BT, axis=-1)


@POLICY_LOSSES.register("ppo_clip")
def clipped_surrogate(log_probs_BL: jax.Array, behaviour_log_probs_BL: jax.Array,
                      advantages_B1: jax.Array, *, epsilon_low: float, epsilon_high: float
                      ) -> tuple[jax.Array, dict]:
  """Per-token −min(ρ·A, clip(ρ, 1−ε_l, 1+ε_h)·A), ρ = exp(log π_θ − log π_behaviour).

  Returns (loss (b l), {'clipped': (b l) 1 where the clipped term is the active one,
  'ratio': ρ (b l)}).
  """
  ratio_BL = jnp.exp(log_probs_BL - behaviour_log_probs_BL)
  unclipped_BL = ratio_BL * advantages_B1
  clipped_BL = jnp.clip(ratio_BL, 1.0 - epsilon_low, 1.0 + epsilon_high) * advantages_B1
  return -jnp.minimum(unclipped_BL, clipped_BL), {
      "clipped": (clipped_BL < unclipped_BL).astype(jnp.float32), "ratio": ratio_BL}


def kl_k3(log_probs: jax.Array, reference_log_probs: jax.Array) -> jax.Array:
  """Per-token KL(π_θ ‖ π_ref) estimate exp(d) − d − 1, d = log π_ref − log π_θ (≥ 0)."""
  delta = reference_log_probs - log_probs
  return jnp.exp(delta) - delta - 1.0


@LOSS_AGGREGATIONS.register("token")
def token_mean(per_token_BL: jax.Array, mask_BL: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean over all action tokens of the batch (DAPO). Returns (value, weight = tokens)."""
  mask_BL = mask_BL.astype(jnp.float32)
  weight = jnp.sum(mask_BL)
  return jnp.sum(per_token_BL * mask_BL) / jnp.maximum(weight, 1.0), weight


@LOSS_AGGREGATIONS.register("sequence")
def sequence_mean(per_token_BL: jax.Array, mask_BL: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean over tokens within each sequence, then over sequences (GRPO, RLP's
  L = mean_i (1/|c_i|) Σ_u ...). Returns (value, weight = sequences)."""
  mask_BL = mask_BL.astype(jnp.float32)
  per_sequence_B = (jnp.sum(per_token_BL * mask_BL, axis=-1)
                    / jnp.maximum(jnp.sum(mask_BL, axis=-1), 1.0))
  return jnp.mean(per_sequence_B), jnp.asarray(per_token_BL.shape[0], jnp.float32)
