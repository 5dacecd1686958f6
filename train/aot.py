"""Ahead-of-time lowering of a config's train step for a mesh we do not have.

Everything is abstract (``jax.ShapeDtypeStruct`` on an ``AbstractMesh``): nothing is
allocated, so an 8B model's step lowers for 64 devices on a laptop. ``lowered.compile``
needs real devices of the target platform.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections

from model import lm
from train import loss as loss_lib
from train import optimizer as optimizer_lib
from train import sharding
from train import state as state_lib
from train import step as step_lib
from train import trainer


def lower_train_step(config: ml_collections.ConfigDict, num_devices: int,
                     platform: str = "tpu") -> tuple[jax.stages.Lowered, dict[str, Any]]:
  """(lowered step, report) for ``num_devices`` devices of ``platform``.

  report: 'mesh' (axis sizes), 'params' (count), 'param_bytes_per_device',
  'optimizer_bytes_per_device'.
  """
  model_cfg = trainer.check_config(config, num_devices)
  mesh = sharding.abstract_mesh(config.mesh, num_devices)
  rules = config.mesh.logical_axis_rules
  optimizer, schedule = optimizer_lib.make_optimizer(config.optimizer, config.train.steps)
  abstract = state_lib.abstract_state(model_cfg, optimizer)
  param_shardings = sharding.param_shardings(model_cfg, mesh, rules)
  state_shardings = state_lib.state_shardings(abstract, param_shardings, optimizer, mesh)
  batch_sharding = sharding.batch_sharding(mesh, rules)
  step = step_lib.jit_step(
      step_lib.make_train_step(loss_lib.make_lm_loss(model_cfg, config.train.z_loss),
                               optimizer, grad_accum_steps=config.train.grad_accum_steps,
                               learning_rate_fn=schedule),
      state_shardings, batch_sharding, sharding.replicated(mesh))
  batch = loss_lib.abstract_lm_batch(config.train.global_batch_size, config.train.seq_len,
                                     batch_sharding)
  lowered = step.trace(sharding.with_shardings(abstract, state_shardings), batch).lower(
      lowering_platforms=(platform,))
  report = {
      "mesh": dict(mesh.shape),
      "params": lm.count_params(model_cfg),
      "param_bytes_per_device": sharding.bytes_per_device(abstract.params, param_shardings),
      "optimizer_bytes_per_device": sharding.bytes_per_device(
          abstract.opt_state, state_shardings.opt_state),
  }
  return lowered, report
