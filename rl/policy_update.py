"""The one policy-gradient update path shared by GRPO, RLOO and RLP.

``make_policy_loss(model_cfg, config)`` returns a ``train.loss.LossFn`` over a policy
batch (``rl/sequences.py``); ``train.step.make_train_step`` turns it into the jitted
update. Which surrogate, aggregation and KL weight are used is configuration.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from model import lm
from model.config import ModelConfig
from rl import algorithms
from model import generate as generate_lib
from model import sampling
from train.loss import LossFn


@dataclasses.dataclass(frozen=True)
class PolicyLossConfig:
  """policy_loss: a name in ``algorithms.POLICY_LOSSES``; aggregation: a name in
  ``algorithms.LOSS_AGGREGATIONS`` ('token' or 'sequence'); epsilon_low/high: the
  ratio clip range; kl_coef: weight of the k3 KL to the reference (0 = off);
  temperature: the policy is softmax(logits / temperature), as in the sampler."""
  policy_loss: str = "ppo_clip"
  aggregation: str = "token"
  epsilon_low: float = 0.2
  epsilon_high: float = 0.2
  kl_coef: float = 0.0
  temperature: float = 1.0

  def __post_init__(self):
    algorithms.POLICY_LOSSES.get(self.policy_loss)
    algorithms.LOSS_AGGREGATIONS.get(self.aggregation)
    if self.kl_coef < 0:
      raise ValueError(f"PolicyLossConfig.kl_coef={self.kl_coef}: must be >= 0")


def token_log_probs(params, tokens_BL: jax.Array, segment_ids_BL: jax.Array, *,
                    model_cfg: ModelConfig, temperature: float) -> jax.Array:
  """(b l) log π(tokens[:, j] | tokens[:, <j]) under softmax(logits / temperature);
  column 0 (no context) is 0."""
  segment_ids_BL = segment_ids_BL.astype(jnp.int32)
  logits_BLV, _ = lm.forward(params, tokens_BL, model_cfg,
                             positions=generate_lib.prompt_positions(segment_ids_BL),
                             segment_ids=segment_ids_BL)
  log_probs = sampling.policy_log_probs(logits_BLV[:, :-1], tokens_BL[:, 1:], temperature)
  return jnp.pad(log_probs, ((0, 0), (1, 0)))


def make_policy_loss(model_cfg: ModelConfig, config: PolicyLossConfig) -> LossFn:
  """loss_fn(params, policy_batch, rng) -> (loss, aux).

  aux: 'policy_loss', 'clip_fraction', 'ratio' (means over action tokens), 'kl' when
  kl_coef > 0, and 'weight' for micro-batch accumulation.
  """
  surrogate = algorithms.POLICY_LOSSES.get(config.policy_loss)
  aggregate = algorithms.LOSS_AGGREGATIONS.get(config.aggregation)

  def loss_fn(params, batch, rng):
    del rng
    mask_BL = batch["action_mask"]
    log_probs_BL = token_log_probs(params, batch["tokens"], batch["segment_ids"],
                                   model_cfg=model_cfg, temperature=config.temperature)
    per_token_BL, parts = surrogate(log_probs_BL, batch["behaviour_log_probs"],
                                    batch["advantages"][:, None],
                                    epsilon_low=config.epsilon_low,
                                    epsilon_high=config.epsilon_high)
    token_average = lambda x_BL: algorithms.token_mean(x_BL, mask_BL)[0]
    aux = {"policy_loss": aggregate(per_token_BL, mask_BL)[0],
           "clip_fraction": token_average(parts["clipped"]),
           "ratio": token_average(parts["ratio"])}
    if config.kl_coef > 0:
      kl_BL = algorithms.kl_k3(log_probs_BL, batch["reference_log_probs"])
      per_token_BL = per_token_BL + config.kl_coef * kl_BL
      aux["kl"] = token_average(kl_BL)
    loss, aux["weight"] = aggregate(per_token_BL, mask_BL)
    return loss, aux

  return loss_fn


def reference_log_probs(reference_params, batch: dict, *, model_cfg: ModelConfig,
                        temperature: float) -> jax.Array:
  """(b l) log-probs of the batch's tokens under frozen weights (no gradient)."""
  return jax.lax.stop_gradient(token_log_probs(
      reference_params, batch["tokens"], batch["segment_ids"], model_cfg=model_cfg,
      temperature=temperature))
