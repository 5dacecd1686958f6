"""RLP: reinforcement as a pretraining objective (arXiv 2510.01265).

One network θ thinks before predicting the next token of ordinary text; a thought is
rewarded by how much it raises the log-likelihood of the real next token over a
no-think EMA baseline φ. Everything below runs inside one jitted step with fixed shapes:

  1. Contexts. For each row of the batch pick one position t uniformly among the tokens
     that have at least one earlier token of the same document ('uniform'), or among
     the last tokens of documents before their end-of-sequence token ('document_end',
     the toy "a b c = s" setting: s, not the eos the data pipeline appends). The
     context x_<t is the last ``context_len`` tokens of that document before t,
     left-padded; x_t is the target.
  2. Thoughts. θ_old = θ (the step's incoming weights) samples G thoughts per context
     after ``<think>`` at ``temperature``, at least one token, at most ``thought_len``,
     stopping at ``</think>``; a thought that hits the budget is closed with a forced
     ``</think>``. The sampled ``</think>`` counts as a thought token (the policy chose
     to stop); the forced one does not.
  3. Rewards (teacher-forced, constant, no gradient):
        S_pred = log p_θ(x_t | x_<t, <think> c </think>)     (temperature 1)
        S_ema  = log p̄_φ(x_t | x_<t)                         (no thought)
        r(c)   = S_pred − S_ema
  4. Advantages: the registered estimator, by default 'rloo':
        A_i = G/(G−1)·(r_i − mean_j r_j)                      (stop-gradient)
  5. Update (``rl.policy_update``, the path GRPO uses): per thought token
        ρ_u = exp(log π_θ(ℓ_u|prefix_u) − log π_θold(ℓ_u|prefix_u))
     and per thought L_i = −(1/|c_i|) Σ_u min(ρ_u·A_i, clip(ρ_u, 1−ε_l, 1+ε_h)·A_i),
     L = mean over the B·G thoughts ('sequence' aggregation); one optimizer step.
     Only thought tokens carry loss (no next-token term). π is the policy at the sampling
     temperature, the same definition in the sampler and in the update.
  6. EMA: φ ← θ on the first batch (state.step == 0, before S_ema is computed); after
     every optimizer step φ ← τ·φ + (1−τ)·θ.

Paper defaults: G = 16, thought length 2048, temperature 0.7, β = 0, τ = 0.999. ε is not
given in the paper: 0.2 on both sides here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from data import tokenizer as tokenizer_lib
from model import generate as generate_lib
from model import lm
from model.config import ModelConfig
from rl import algorithms
from rl import policy_update
from rl import sequences
from train import config as config_lib
from train import pretrain
from train import step as step_lib
from train.loops import Context, ExtraWeights, IteratorBatches, Loop
from train.state import TrainState

POSITION_MODES = ("uniform", "document_end")


@flax.struct.dataclass
class RLPState(TrainState):
  ema_params: Any = None           # the no-think EMA baseline φ


@dataclasses.dataclass(frozen=True)
class RLPConfig:
  """think_start / think_end: the ids of ``<think>`` / ``</think>``; pad_id: padding;
  eos_id: end of sequence, never a 'document_end' target (-1: none)."""
  think_start: int
  think_end: int
  pad_id: int = 0
  eos_id: int = -1
  group_size: int = 16
  thought_len: int = 2048
  context_len: int = 2048
  temperature: float = 0.7
  ema_decay: float = 0.999
  epsilon_low: float = 0.2
  epsilon_high: float = 0.2
  advantage_estimator: str = "rloo"
  positions: str = "uniform"

  def __post_init__(self):
    if self.group_size < 2:
      raise ValueError(f"RLPConfig.group_size={self.group_size}: leave-one-out needs >= 2")
    if self.thought_len < 1 or self.context_len < 1:
      raise ValueError("RLPConfig.thought_len and context_len must be >= 1")
    if not 0.0 <= self.ema_decay < 1.0:
      raise ValueError(f"RLPConfig.ema_decay={self.ema_decay}: must be in [0, 1)")
    if self.temperature <= 0:
      raise ValueError(f"RLPConfig.temperature={self.temperature}: must be > 0 (sampling)")
    if self.positions not in POSITION_MODES:
      raise ValueError(f"RLPConfig.positions={self.positions!r}: want one of {POSITION_MODES}")
    algorithms.ADVANTAGE_ESTIMATORS.get(self.advantage_estimator)

  @property
  def sampling(self) -> generate_lib.SamplingConfig:
    return generate_lib.SamplingConfig(
        max_new_tokens=self.thought_len, temperature=self.temperature,
        stop_tokens=(self.think_end,), min_new_tokens=1, pad_id=self.pad_id)

  @property
  def loss(self) -> policy_update.PolicyLossConfig:
    return policy_update.PolicyLossConfig(
        policy_loss="ppo_clip", aggregation="sequence", epsilon_low=self.epsilon_low,
        epsilon_high=self.epsilon_high, kl_coef=0.0, temperature=self.temperature)


def candidate_positions(tokens_BL: jax.Array, segment_ids_BL: jax.Array, mode: str,
                        eos_id: int = -1) -> jax.Array:
  """(b l) bool: positions t that may be scored (a real token with a same-document
  predecessor; in 'document_end' mode also the last token of its document that is not
  ``eos_id``: a packed document ends in eos, ``data.packing``)."""
  previous_BL = jnp.pad(segment_ids_BL[:, :-1], ((0, 0), (1, 0)))
  has_context_BL = (segment_ids_BL > 0) & (previous_BL == segment_ids_BL)
  if mode == "uniform":
    return has_context_BL
  following_BL = jnp.pad(segment_ids_BL[:, 1:], ((0, 0), (0, 1)))
  last_BL = following_BL != segment_ids_BL
  final_eos_BL = last_BL & (tokens_BL == eos_id)
  before_final_eos_BL = jnp.pad(final_eos_BL[:, 1:], ((0, 0), (0, 1)))
  return has_context_BL & ~final_eos_BL & (last_BL | before_final_eos_BL)


def check_batch(batch: dict, config: RLPConfig) -> None:
  """Host-side, before the step: raises ValueError for a missing key, an empty batch or
  a row without a position to score (the jitted step cannot raise)."""
  missing = [key for key in ("tokens", "segment_ids") if key not in batch]
  if missing:
    raise ValueError(f"RLP batch lacks {missing}")
  segment_ids = np.asarray(batch["segment_ids"])
  if segment_ids.ndim != 2 or segment_ids.shape[0] == 0 or segment_ids.shape[1] < 2:
    raise ValueError(f"RLP needs a non-empty (batch, length >= 2) batch, got segment_ids "
                     f"of shape {segment_ids.shape}")
  scorable = np.asarray(candidate_positions(jnp.asarray(batch["tokens"]),
                                            jnp.asarray(segment_ids), config.positions,
                                            config.eos_id))
  if not scorable.any(axis=-1).all():
    raise ValueError(f"rows {np.flatnonzero(~scorable.any(axis=-1)).tolist()} have no "
                     f"position to score in {config.positions!r} mode")


def sample_contexts(rng: jax.Array, tokens_BL: jax.Array, segment_ids_BL: jax.Array, *,
                    context_len: int, mode: str, pad_id: int, eos_id: int = -1):
  """(context (b c) left-padded, context mask (b c), target x_t (b,), t (b,))."""
  l = tokens_BL.shape[1]
  allowed_BL = candidate_positions(tokens_BL, segment_ids_BL, mode, eos_id)
  t_B = jax.random.categorical(rng, jnp.where(allowed_BL, 0.0, -jnp.inf), axis=-1)
  take = lambda x_BL, i_BC: jnp.take_along_axis(x_BL, i_BC, axis=-1)
  document_B1 = take(segment_ids_BL, t_B[:, None])
  slots_BC = t_B[:, None] - context_len + jnp.arange(context_len)[None]
  clipped_BC = jnp.clip(slots_BC, 0, l - 1)
  mask_BC = ((slots_BC >= 0) & (take(segment_ids_BL, clipped_BC) == document_B1))
  context_BC = jnp.where(mask_BC, take(tokens_BL, clipped_BC), pad_id)
  return context_BC, mask_BC.astype(jnp.int32), take(tokens_BL, t_B[:, None])[:, 0], t_B


def next_token_log_prob(params, tokens_BL, segment_ids_BL, target_B, *, model_cfg):
  """log p(target | the row's tokens), read at the last slot (rows are left-padded)."""
  logits_BLV, _ = lm.forward(params, tokens_BL, model_cfg,
                             positions=generate_lib.prompt_positions(segment_ids_BL),
                             segment_ids=segment_ids_BL)
  log_p_BV = jax.nn.log_softmax(logits_BLV[:, -1].astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(log_p_BV, target_B[:, None], axis=-1)[:, 0]


def rollout(params, ema_params, batch: dict, rng: jax.Array, *, model_cfg: ModelConfig,
            config: RLPConfig) -> tuple[dict, jax.Array, dict]:
  """Steps 1–4: (policy batch (b·G, c + 1 + thought_len + 2) with 'advantages',
  rewards (b, G), diagnostics). Pure; called inside the jitted step."""
  g = config.group_size
  context_rng, thought_rng = jax.random.split(rng)
  context_BC, context_mask_BC, target_B, _ = sample_contexts(
      context_rng, batch["tokens"], batch["segment_ids"], context_len=config.context_len,
      mode=config.positions, pad_id=config.pad_id, eos_id=config.eos_id)
  b = context_BC.shape[0]
  ones_B1 = jnp.ones((b, 1), jnp.int32)
  prompt_BP = jnp.concatenate([context_BC, config.think_start * ones_B1], axis=1)
  prompt_mask_BP = jnp.concatenate([context_mask_BC, ones_B1], axis=1)
  repeat = lambda x: jnp.repeat(x, g, axis=0)                       # row i·G + g
  prompt_RP, prompt_mask_RP, target_R = repeat(prompt_BP), repeat(prompt_mask_BP), repeat(target_B)
  thought = generate_lib.sample(params, prompt_RP, prompt_mask_RP, thought_rng,
                                model_cfg=model_cfg, sampling=config.sampling)
  closed_R = jnp.any((thought.tokens == config.think_end) & (thought.mask > 0), axis=-1)
  r_rows = b * g
  column = lambda value, dtype=jnp.int32: jnp.full((r_rows, 1), value, dtype)
  sequence = sequences.concat_prompt_completion(prompt_RP, prompt_mask_RP, thought)
  mask_RS = jnp.concatenate([sequence["segment_ids"], (~closed_R)[:, None].astype(jnp.int32),
                             column(1)], axis=1)
  arrays = {
      "tokens": jnp.concatenate([sequence["tokens"], column(config.think_end),
                                 target_R[:, None]], axis=1),
      "action_mask": jnp.concatenate([sequence["action_mask"],
                                      column(0.0, jnp.float32), column(0.0, jnp.float32)], axis=1),
      "behaviour_log_probs": jnp.concatenate([sequence["behaviour_log_probs"],
                                              column(0.0, jnp.float32),
                                              column(0.0, jnp.float32)], axis=1),
  }
  segment_ids_RS, policy_batch = sequences.right_align(mask_RS, arrays)
  policy_batch["tokens"] = jnp.where(segment_ids_RS > 0, policy_batch["tokens"], config.pad_id)
  policy_batch["segment_ids"] = segment_ids_RS
  chex.assert_shape(segment_ids_RS, (r_rows, config.context_len + 2 + config.thought_len + 1))

  # S_pred: the scorer reads x_t after "</think>", the second-to-last slot predicting it.
  s_pred_R = jax.lax.stop_gradient(next_token_log_prob(
      params, policy_batch["tokens"][:, :-1], segment_ids_RS[:, :-1], target_R,
      model_cfg=model_cfg))
  s_ema_B = jax.lax.stop_gradient(next_token_log_prob(
      ema_params, context_BC, context_mask_BC, target_B, model_cfg=model_cfg))
  rewards_BG = s_pred_R.reshape(b, g) - s_ema_B[:, None]
  estimator = algorithms.ADVANTAGE_ESTIMATORS.get(config.advantage_estimator)
  policy_batch["advantages"] = jax.lax.stop_gradient(estimator(rewards_BG)).reshape(-1)
  diagnostics = {"s_pred": jnp.mean(s_pred_R), "s_ema": jnp.mean(s_ema_B),
                 "completion_length": jnp.mean(jnp.sum(policy_batch["action_mask"], axis=-1)),
                 "truncated": jnp.mean((~closed_R).astype(jnp.float32))}
  return policy_batch, rewards_BG, diagnostics


def ema_update(ema_params, params, decay: float):
  """φ ← τ·φ + (1−τ)·θ, leaf by leaf, in φ's dtype."""
  return jax.tree.map(
      lambda e, p: (decay * e.astype(jnp.float32)
                    + (1.0 - decay) * p.astype(jnp.float32)).astype(e.dtype),
      ema_params, params)


def make_rlp_step(model_cfg: ModelConfig, optimizer, config: RLPConfig, *,
                  learning_rate_fn=None):
  """``step(state: RLPState, batch) -> (state, metrics)``; batch: 'tokens' and
  'segment_ids' (b l) of ordinary text (packed rows are fine). Jit with donation.

  metrics: the update's plus 'reward_mean', 'reward_std', 's_pred', 's_ema',
  'completion_length' (thought tokens, a sampled ``</think>`` included) and 'truncated'
  (share of thoughts that ran out of budget and got the forced ``</think>``).
  """
  update = step_lib.make_train_step(policy_update.make_policy_loss(model_cfg, config.loss),
                                    optimizer, learning_rate_fn=learning_rate_fn)

  def step(state: RLPState, batch: dict):
    rng, rollout_rng = jax.random.split(state.rng)
    first_batch = state.step == 0
    ema_params = jax.tree.map(lambda e, p: jnp.where(first_batch, p.astype(e.dtype), e),
                              state.ema_params, state.params)        # φ ← θ on batch 1
    policy_batch, rewards_BG, diagnostics = rollout(
        state.params, ema_params, batch, rollout_rng, model_cfg=model_cfg, config=config)
    state, metrics = update(state.replace(rng=rng), policy_batch)
    state = state.replace(ema_params=ema_update(ema_params, state.params, config.ema_decay))
    metrics.update(diagnostics, reward_mean=jnp.mean(rewards_BG),
                   reward_std=jnp.mean(jnp.std(rewards_BG, axis=-1)))
    return state, metrics

  return step


# ------------------------------------------------------------------------------ the loop


def rlp_config(ctx: Context) -> RLPConfig:
  r = ctx.config.rlp
  return RLPConfig(
      think_start=ctx.tokenizer.token_to_id(tokenizer_lib.THINK_START),
      think_end=ctx.tokenizer.token_to_id(tokenizer_lib.THINK_END),
      pad_id=ctx.tokenizer.pad_id, eos_id=ctx.tokenizer.eos_id, group_size=r.group_size,
      thought_len=r.thought_len, context_len=r.context_len, temperature=r.temperature,
      ema_decay=r.ema_decay,
      epsilon_low=r.epsilon, epsilon_high=r.epsilon, positions=r.positions)


def make_step(ctx: Context):
  return make_rlp_step(ctx.model_cfg, ctx.optimizer, rlp_config(ctx),
                       learning_rate_fn=ctx.schedule)


class TextRows(IteratorBatches):
  """Rows of ordinary text from the data pipeline, checked before the step."""

  def __init__(self, iterator, *, rows, config: RLPConfig):
    super().__init__(iterator, keys=("tokens", "segment_ids"), rows=rows)
    self._config = config

  def __call__(self, state, step: int) -> dict[str, np.ndarray]:
    batch = super().__call__(state, step)
    check_batch(batch, self._config)
    return batch


def make_batches(ctx: Context) -> TextRows:
  iterator_batches = pretrain.make_batches(ctx)
  return TextRows(iterator_batches.iterator, rows=iterator_batches.rows, config=rlp_config(ctx))


def abstract_batch(ctx: Context) -> dict:
  batch = pretrain.abstract_lm_batch(ctx)
  return {key: batch[key] for key in ("tokens", "segment_ids")}


def extra_weights(ctx: Context) -> dict[str, ExtraWeights]:
  return {"ema_params": ExtraWeights(ctx.model_cfg, source="copy")}


LOOP = Loop(
    make_step=make_step, make_batches=make_batches, abstract_batch=abstract_batch,
    state_type=RLPState, extra_weights=extra_weights, sections=("rlp",),
    ranges={"rlp.group_size": config_lib.Range(low=2, integer=True),
            "rlp.thought_len": config_lib.POSITIVE_INT,
            "rlp.context_len": config_lib.POSITIVE_INT,
            "rlp.temperature": config_lib.POSITIVE,
            "rlp.ema_decay": config_lib.OPEN_FRACTION,
            "rlp.epsilon": config_lib.NON_NEGATIVE})
