"""The state every training loop carries: step, parameters, optimizer state, rng.

A loop that reads a second set of weights (a teacher, a frozen reference, an EMA copy)
subclasses ``TrainState`` with one more field per set, e.g.::

    @flax.struct.dataclass
    class RLPState(TrainState):
      ema_params: Any = None

``create`` and ``state_shardings`` build any such subclass from the extra weights by
name, so the driver handles every loop's state the same way.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from train import sharding


@flax.struct.dataclass
class TrainState:
  """A pytree; jitted steps take it as argument 0 and donate it.

  step: () int32, optimizer updates applied so far.
  params: the model parameter tree (``lm.init`` structure).
  opt_state: the optax state of ``params``.
  rng: (2,) uint32 raw PRNG key, split once per step.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array

  @classmethod
  def create(cls, params, optimizer: optax.GradientTransformation, rng: jax.Array
             ) -> "TrainState":
    """A fresh state around existing ``params`` (e.g. a pretrained or converted model)."""
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               opt_state=optimizer.init(params), rng=rng)


def create(state_type: type, params, optimizer: optax.GradientTransformation,
           rng: jax.Array, **extra_params) -> TrainState:
  """A fresh ``state_type`` around ``params`` and its extra weights, e.g.
  ``teacher_params=...`` for a state type with that field."""
  base = TrainState.create(params, optimizer, rng)
  return state_type(step=base.step, params=base.params, opt_state=base.opt_state,
                    rng=base.rng, **extra_params)


def state_shardings(abstract: TrainState, param_shardings, optimizer: optax.GradientTransformation,
                    mesh, **extra_param_shardings) -> TrainState:
  """Shardings of a TrainState (or subclass): optimizer moments follow their parameters,
  scalars replicate, each extra set of weights gets its given shardings."""
  replicated = sharding.replicated(mesh)
  return type(abstract)(
      step=replicated, params=param_shardings,
      opt_state=sharding.optimizer_state_shardings(optimizer, abstract.opt_state,
                                                   param_shardings, mesh),
      rng=replicated, **extra_param_shardings)
