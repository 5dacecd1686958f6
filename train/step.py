"""A generic jitted update: ``step(state, batch) -> (state, metrics)``.

Any loop (pretraining, SFT, distillation, GRPO, RLP) supplies its own loss function
``loss_fn(params, batch, rng) -> (loss, aux)`` (see ``train.loss.LossFn``) and reuses
the gradient accumulation, optimizer update and metrics from here; the driver jits it
with the state's shardings (``driver.Built.jit_step``).
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax

from train.loss import LossFn
from train.state import TrainState

StepFn = Callable[[TrainState, dict], tuple[TrainState, dict]]


def split_microbatches(x: jax.Array, num_micro: int) -> jax.Array:
  """(b ...) → (num_micro, b/num_micro, ...); micro-batch i holds rows i, i+k, i+2k...

  Striding (rather than slicing blocks) keeps every micro-batch spread over all the
  devices that hold the batch dimension, so no data moves.
  """
  b = x.shape[0]
  if b % num_micro:
    raise ValueError(f"batch of {b} rows does not split into {num_micro} micro-batches")
  return jnp.swapaxes(x.reshape((b // num_micro, num_micro) + x.shape[1:]), 0, 1)


def loss_and_grads(loss_fn: LossFn, params, batch: dict, rng: jax.Array,
                   num_micro: int = 1) -> tuple[jax.Array, dict, dict]:
  """(loss, grads, aux) over ``batch``, accumulated over ``num_micro`` micro-batches.

  Micro-batch results are averaged with the weights ``aux['weight']`` (1 when absent),
  so a token-mean loss over the full batch is reproduced exactly. Gradients accumulate
  in float32 and come back in the parameters' dtype. ``aux`` returns weighted means.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def weighted(params, micro_batch, micro_rng):
    (loss, aux), grads = grad_fn(params, micro_batch, micro_rng)
    aux = dict(aux)
    weight = jnp.asarray(aux.pop("weight", 1.0), jnp.float32)
    grads = jax.tree.map(lambda g: g.astype(jnp.float32) * weight, grads)
    return weight, (loss * weight, grads, jax.tree.map(lambda a: a * weight, aux))

  if num_micro == 1:
    weight, totals = weighted(params, batch, rng)
  else:
    micro = jax.tree.map(lambda x: split_microbatches(x, num_micro), batch)
    # jit caches the trace that eval_shape makes for the carry's shapes and the scan's
    # body reuses it: the forward and backward are traced once, not twice.
    traced_once = jax.jit(weighted)

    def accumulate(carry, inputs):
      index, micro_batch = inputs
      weight, totals = traced_once(params, micro_batch, jax.random.fold_in(rng, index))
      return jax.tree.map(jnp.add, carry, (weight, totals)), None

    first = jax.tree.map(lambda x: x[0], micro)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                         jax.eval_shape(traced_once, params, first, rng))
    (weight, totals), _ = jax.lax.scan(accumulate, zeros, (jnp.arange(num_micro), micro))

  loss_sum, grad_sum, aux_sum = totals
  denominator = jnp.maximum(weight, jnp.finfo(jnp.float32).tiny)
  grads = jax.tree.map(lambda g, p: (g / denominator).astype(p.dtype), grad_sum, params)
  aux = jax.tree.map(lambda a: a / denominator, aux_sum)
  return loss_sum / denominator, grads, aux


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, *,
                    grad_accum_steps: int = 1,
                    learning_rate_fn: Optional[optax.Schedule] = None) -> StepFn:
  """The pure update ``step(state, batch) -> (state, metrics)``.

  metrics: 'loss', 'grad_norm' (before clipping), 'param_norm', 'learning_rate' (when
  ``learning_rate_fn`` is given, at the step's optimizer count) and the loss's aux
  entries; all scalars.
  """
  def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    rng, step_rng = jax.random.split(state.rng)
    loss, grads, aux = loss_and_grads(loss_fn, state.params, batch, step_rng,
                                      grad_accum_steps)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.global_norm(grads),
               "param_norm": optax.global_norm(params), **aux}
    if learning_rate_fn is not None:
      metrics["learning_rate"] = learning_rate_fn(state.step)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              rng=rng)
    return new_state, metrics
  return step
