"""One config on 1 device and on an 8-device FSDP x tensor mesh; an 8B step lowered for 64."""

import functools
import importlib

import jax
import numpy as np
import pytest

from configs import base
from train import config as run_config
from configs import nemotron_h_8b
from model import config as mcfg
from model import lm
from model import partitioning
from train import aot
from train import loss as loss_lib
from train import optimizer as optimizer_lib
from train import sharding
from train import state as state_lib
from train import step as step_lib

RULES = base.LOGICAL_AXIS_RULES
CFG = mcfg.tiny(d_model=32, pattern="M*-", mlp_dim=64, ssm_heads=4, n_heads=4,
                n_kv_heads=2, chunk_size=8)


def mesh_config(data, fsdp, tensor):
  return {"data": data, "fsdp": fsdp, "tensor": tensor}


def test_rules_pick_divisible_unused_mesh_axes():
  mesh = sharding.abstract_mesh(mesh_config(1, 4, 2), 8)
  spec = lambda *names_and_shape: sharding.logical_to_mesh_spec(
      jax.sharding.PartitionSpec(*names_and_shape[0]), names_and_shape[1], RULES, mesh)
  assert spec(("embed", "mlp"), (64, 128)) == jax.sharding.PartitionSpec("fsdp", "tensor")
  # ssm_groups=1 cannot split over tensor=2: replicated rather than an error.
  assert spec(("embed", "ssm_groups", "ssm_state"), (64, 1, 16)) == \
      jax.sharding.PartitionSpec("fsdp", None, None)
  # A mesh axis is used once per array: the second 'embed' stays whole.
  assert spec(("embed", "embed"), (64, 64)) == jax.sharding.PartitionSpec("fsdp", None)
  with pytest.raises(ValueError, match="no rule for logical axes"):
    sharding.check_rules(RULES[:3], ["embed", "mlp", "conv_width"])
  with pytest.raises(ValueError, match="unknown mesh axes"):
    sharding.check_rules((("embed", "model"),), ["embed"])


def run_steps(mesh, num_steps=3):
  """Losses of ``num_steps`` train steps of CFG on ``mesh`` and the final state."""
  optimizer, schedule = optimizer_lib.make_optimizer(base.get_config().optimizer, 50)
  abstract = state_lib.abstract_state(CFG, optimizer)
  param_shardings = sharding.param_shardings(CFG, mesh, RULES)
  state_shardings = state_lib.state_shardings(abstract, param_shardings, optimizer, mesh)
  batch_sharding = sharding.batch_sharding(mesh, RULES)
  init = functools.partial(state_lib.init_state, cfg=CFG, optimizer=optimizer)
  state = jax.jit(init, out_shardings=state_shardings)(jax.random.PRNGKey(0))
  # Activations pinned by the same rules (sequence split over 'tensor'), as the driver does.
  step = step_lib.jit_step(
      partitioning.on_mesh(step_lib.make_train_step(loss_lib.make_lm_loss(CFG, 1e-4),
                                                    optimizer, learning_rate_fn=schedule),
                           mesh, RULES),
      state_shardings, batch_sharding, sharding.replicated(mesh))
  rng = np.random.default_rng(0)
  losses = []
  for _ in range(num_steps):
    tokens = rng.integers(0, CFG.vocab_size, (8, 33)).astype(np.int32)
    batch = {"tokens": tokens[:, :-1], "targets": tokens[:, 1:],
             "segment_ids": np.ones((8, 32), np.int32),
             "positions": np.tile(np.arange(32, dtype=np.int32), (8, 1)),
             "loss_mask": np.ones((8, 32), np.float32)}
    state, metrics = step(state, sharding.global_batch(batch, batch_sharding))
    losses.append(float(metrics["loss"]))
  return losses, state


@pytest.fixture(scope="module")
def single_device_run():
  return run_steps(sharding.make_mesh(mesh_config(1, 1, 1), jax.devices()[:1]))


def test_fsdp_and_tensor_parallel_match_one_device(single_device_run):
  assert jax.device_count() == 8
  losses_1, state_1 = single_device_run
  losses_8, state_8 = run_steps(sharding.make_mesh(mesh_config(2, 2, 2)))
  np.testing.assert_allclose(losses_8, losses_1, rtol=2e-5)
  for a, b in zip(jax.tree.leaves(state_8.params), jax.tree.leaves(state_1.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)

  # The parameters and the Adam moments really are split over the mesh.
  in_x = state_8.params["layers"][0]["in_x"]                          # (d h p)
  assert in_x.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor", None)
  assert in_x.addressable_shards[0].data.shape == (16, 2, 16)
  up = state_8.params["layers"][2]["up"]
  assert up.addressable_shards[0].data.shape == (16, 32)
  mu = state_8.opt_state[1][0].mu["layers"][2]["up"]
  assert mu.sharding.spec == up.sharding.spec
  total = sum(x.nbytes for x in jax.tree.leaves(state_8.params))
  on_device_0 = sum(x.addressable_shards[0].data.nbytes
                    for x in jax.tree.leaves(state_8.params))
  assert on_device_0 < total / 3


def test_nemotron_h_8b_step_lowers_for_64_devices():
  config = nemotron_h_8b.get_config()
  lowered, report = aot.lower_train_step(config, num_devices=64)
  assert report["mesh"] == {"data": 1, "fsdp": 16, "tensor": 4}
  params = lm.count_params(run_config.model_config(config.model))
  assert report["params"] == params > 8e9
  # fp32 parameters, two fp32 Adam moments, split 64 ways (a few small vectors replicate).
  assert report["param_bytes_per_device"] < 1.01 * params * 4 / 64
  assert report["optimizer_bytes_per_device"] < 1.01 * 2 * params * 4 / 64
  print(f"nemotron_h_8b on 64 devices: {report['param_bytes_per_device'] / 2**30:.2f} GiB "
        f"params + {report['optimizer_bytes_per_device'] / 2**30:.2f} GiB Adam per device")
  text = lowered.as_text()
  assert "mhlo.num_partitions = 64" in text
  assert 'sdy.sharding<@mesh, [{"fsdp"}, {"tensor"}]>' in text


@pytest.mark.slow
@pytest.mark.parametrize("name, num_devices", [("nemotron_h_4b", 64), ("llama_1b", 8),
                                               ("hybrid_125m", 4)])
def test_other_large_configs_lower(name, num_devices):
  config = importlib.import_module(f"configs.{name}").get_config()
  _, report = aot.lower_train_step(config, num_devices=num_devices)
  params = lm.count_params(run_config.model_config(config.model))
  assert report["param_bytes_per_device"] < 1.05 * params * 4 / num_devices
