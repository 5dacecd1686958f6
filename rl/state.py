"""Post-training states: the pretraining ``TrainState`` plus the second set of weights
each loop reads. They are pytrees, donated to the jitted steps like ``TrainState``.

  DistillState.teacher_params    frozen teacher (any family and size, same vocabulary)
  GRPOState.reference_params     frozen reference for the KL term (None when unused)
  RLPState.ema_params            the EMA no-think baseline φ (methods.md §1)
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import optax

from train import state as state_lib
from train.state import TrainState


@flax.struct.dataclass
class DistillState(TrainState):
  teacher_params: Any = None


@flax.struct.dataclass
class GRPOState(TrainState):
  reference_params: Any = None


@flax.struct.dataclass
class RLPState(TrainState):
  ema_params: Any = None


def create(state_type: type, params, optimizer: optax.GradientTransformation,
           rng: jax.Array, **second_params) -> TrainState:
  """A fresh state of ``state_type`` around ``params`` and e.g. ``teacher_params=...``."""
  base = TrainState.create(params, optimizer, rng)
  return state_type(step=base.step, params=base.params, opt_state=base.opt_state,
                    rng=base.rng, **second_params)


def shardings(abstract, param_shardings, optimizer: optax.GradientTransformation, mesh,
              **second_param_shardings) -> TrainState:
  """Shardings of a post-training state: ``TrainState``'s, plus one tree per second set
  of weights, e.g. ``teacher_params=train.sharding.param_shardings(teacher_cfg, mesh,
  rules)`` (None for an unused one)."""
  train = state_lib.state_shardings(abstract, param_shardings, optimizer, mesh)
  return type(abstract)(step=train.step, params=train.params, opt_state=train.opt_state,
                        rng=train.rng, **second_param_shardings)
