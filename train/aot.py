"""Ahead-of-time lowering of a config's step for a mesh we do not have.

Everything is abstract (``jax.ShapeDtypeStruct`` on an ``AbstractMesh``): nothing is
allocated, so an 8B model's step lowers for 64 devices on a laptop. The step, state and
shardings come from the driver's ``build``, the code a real run uses, for any loop.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections

from model import lm
from train import driver
from train import sharding


def lower_train_step(config: ml_collections.ConfigDict, num_devices: int,
                     platform: str = "tpu") -> tuple[jax.stages.Lowered, dict[str, Any]]:
  """(lowered step, report) for ``num_devices`` devices of ``platform``.

  report: 'mesh' (axis sizes), 'params' (count), 'param_bytes_per_device',
  'optimizer_bytes_per_device', 'state_bytes_per_device'.
  """
  _, model_cfg = driver.check(config, num_devices)
  mesh = sharding.abstract_mesh(config.mesh, num_devices)
  built = driver.build(config, mesh, driver.load_tokenizer(config, model_cfg))
  abstract_batch = built.loop.abstract_batch(built.ctx)
  batch = sharding.with_shardings(abstract_batch, built.batch_shardings(abstract_batch))
  lowered = built.jit_step(abstract_batch).trace(
      built.abstract_state_with_shardings, batch).lower(lowering_platforms=(platform,))
  state, shardings = built.abstract_state, built.state_shardings
  report = {
      "mesh": dict(mesh.shape),
      "params": lm.count_params(model_cfg),
      "param_bytes_per_device": sharding.bytes_per_device(state.params, shardings.params),
      "optimizer_bytes_per_device": sharding.bytes_per_device(state.opt_state,
                                                              shardings.opt_state),
      "state_bytes_per_device": sharding.bytes_per_device(state, shardings),
  }
  return lowered, report
