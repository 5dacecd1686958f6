"""One config on 1 device and on an 8-device FSDP x tensor mesh; an 8B step lowered for 64."""

import importlib

import jax
import numpy as np
import pytest

from configs import base
from train import config as run_config
from configs import nemotron_h_8b
from model import lm
from train import aot
from train import driver
from train import sharding

RULES = base.LOGICAL_AXIS_RULES


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


def pretrain_config():
  """A tiny hybrid pretraining run of 8 rows of 32 tokens (steps set the schedule)."""
  config = base.get_config()
  config.model = run_config.model_section("tiny", d_model=32, pattern="M*-", mlp_dim=64,
                                          ssm_heads=4, n_heads=4, n_kv_heads=2, chunk_size=8)
  config.train.update(steps=50, global_batch_size=8, seq_len=32)
  return config


def run_steps(mesh, num_steps=3):
  """Losses of ``num_steps`` steps of the driver's pretraining step on ``mesh`` (its
  state, shardings and jit, activations pinned by the same rules) and the final state."""
  built = driver.build(pretrain_config(), mesh, tokenizer=None)  # the step reads no text
  state = driver.initial_state(built, report=print)
  step = built.jit_step(built.loop.abstract_batch(built.ctx))
  rng = np.random.default_rng(0)
  losses = []
  for _ in range(num_steps):
    tokens = rng.integers(0, built.ctx.model_cfg.vocab_size, (8, 33)).astype(np.int32)
    batch = {"tokens": tokens[:, :-1], "targets": tokens[:, 1:],
             "segment_ids": np.ones((8, 32), np.int32),
             "positions": np.tile(np.arange(32, dtype=np.int32), (8, 1)),
             "loss_mask": np.ones((8, 32), np.float32)}
    state, metrics = step(state, built.ctx.to_global(batch, num_rows=8))
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
  # Adam moves a weight whose gradient is near its eps (1e-8) by g / (|g| + eps) of the
  # step: another reduction order changes that fraction (seen: one embedding entry with
  # |g| ~ 1e-9, off by 1.6e-5), so atol is a ninth of the 4.5e-4 three steps can move it.
  for a, b in zip(jax.tree.leaves(state_8.params), jax.tree.leaves(state_1.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=5e-5)

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
