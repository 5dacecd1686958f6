"""The state every training loop carries: step, parameters, optimizer state, rng."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from model import lm
from model.config import ModelConfig
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


def init_state(rng: jax.Array, cfg: ModelConfig, optimizer: optax.GradientTransformation
               ) -> TrainState:
  """Randomly initialised parameters; jit it with ``out_shardings`` to create them sharded."""
  init_rng, state_rng = jax.random.split(rng)
  return TrainState.create(lm.init(init_rng, cfg), optimizer, state_rng)


def abstract_state(cfg: ModelConfig, optimizer: optax.GradientTransformation) -> TrainState:
  """ShapeDtypeStruct tree of ``init_state``, without allocating anything."""
  return jax.eval_shape(lambda: init_state(jax.random.PRNGKey(0), cfg, optimizer))


def state_shardings(abstract: TrainState, param_shardings, optimizer: optax.GradientTransformation,
                    mesh) -> TrainState:
  """Shardings of a TrainState: optimizer moments follow their parameters, scalars replicate."""
  replicated = sharding.replicated(mesh)
  return TrainState(
      step=replicated, params=param_shardings,
      opt_state=sharding.optimizer_state_shardings(optimizer, abstract.opt_state,
                                                   param_shardings, mesh),
      rng=replicated)
