"""AdamW with a warmup+cosine or warmup-stable-decay schedule, clipping and a decay mask.

Reads the ``optimizer`` section of a run config:

    learning_rate      peak learning rate
    schedule           'cosine' | 'wsd' | 'constant' (all after a linear warmup from 0)
    warmup_steps       linear warmup length
    decay_fraction     wsd: the last fraction of the run that decays linearly to the end
    final_lr_fraction  end learning rate as a fraction of the peak (cosine and wsd)
    b1, b2, eps        Adam moments
    weight_decay       decoupled weight decay, only on matrices (see ``decay_mask``)
    grad_clip_norm     global-norm clipping threshold; 0 disables clipping
"""

from __future__ import annotations

import jax
import optax

SCHEDULES = ("cosine", "wsd", "constant")
# Leaves whose name contains one of these are never decayed, whatever their rank.
NO_DECAY_NAME_PARTS = ("norm", "bias")


def learning_rate_schedule(config, total_steps: int) -> optax.Schedule:
  """The learning rate as a function of the optimizer step."""
  peak, warmup = config.learning_rate, config.warmup_steps
  end = peak * config.final_lr_fraction
  if config.schedule not in SCHEDULES:
    raise ValueError(f"optimizer.schedule={config.schedule!r}: must be one of {SCHEDULES}")
  if warmup >= total_steps and config.schedule != "constant":
    raise ValueError(f"optimizer.warmup_steps={warmup} must be below train.steps="
                     f"{total_steps}: add --config.optimizer.warmup_steps="
                     f"{total_steps // 10} (a tenth of the run) or another value below "
                     f"{total_steps}")
  warmup_fn = optax.linear_schedule(0.0, peak, max(warmup, 1))
  if config.schedule == "constant":
    return optax.join_schedules([warmup_fn, optax.constant_schedule(peak)], [warmup])
  if config.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total_steps, end)
  decay_steps = max(1, int(round(config.decay_fraction * total_steps)))
  stable_steps = total_steps - warmup - decay_steps
  if stable_steps < 0:
    raise ValueError(f"optimizer: warmup_steps={warmup} plus decay_fraction="
                     f"{config.decay_fraction} of {total_steps} steps exceed the run")
  return optax.join_schedules(
      [warmup_fn, optax.constant_schedule(peak), optax.linear_schedule(peak, end, decay_steps)],
      [warmup, warmup + stable_steps])


def decay_mask(params):
  """True for leaves that get weight decay: arrays of rank ≥ 2 that are not norms/biases."""
  def decays(path, x):
    name = str(getattr(path[-1], "key", getattr(path[-1], "name", "")))
    return x.ndim >= 2 and not any(part in name for part in NO_DECAY_NAME_PARTS)
  return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(config, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(optimizer, learning-rate schedule) from the ``optimizer`` config section."""
  schedule = learning_rate_schedule(config, total_steps)
  adamw = optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                      weight_decay=config.weight_decay, mask=decay_mask)
  # Always a chain, so that the optimizer state's structure (what a checkpoint holds) does
  # not depend on whether clipping is on: 0 clips at infinity, i.e. never.
  clip_norm = config.grad_clip_norm if config.grad_clip_norm > 0 else float("inf")
  return optax.chain(optax.clip_by_global_norm(clip_norm), adamw), schedule
