"""The loss, the generic train step (gradient accumulation), the optimizer and metrics."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tensorboard_events

from configs import base
from model import config as mcfg
from model import lm
from train import driver
from train import loss as loss_lib
from train import metrics as metrics_lib
from train import optimizer as optimizer_lib
from train import sharding
from train import state as state_lib
from train import step as step_lib
from train.errors import NonFiniteError

CFG = mcfg.tiny(d_model=32, pattern="M*-", mlp_dim=64, ssm_heads=2, n_heads=2,
                n_kv_heads=1, chunk_size=8)


def optimizer_config(**changes):
  config = base.get_config().optimizer
  config.update(changes)
  return config


def random_batch(rng, b=4, l=16, vocab=CFG.vocab_size):
  tokens = rng.integers(0, vocab, (b, l + 1)).astype(np.int32)
  loss_mask = (rng.random((b, l)) > 0.3).astype(np.float32)
  segment_ids = np.ones((b, l), np.int32)
  segment_ids[:, l // 2:] = 2
  positions = np.concatenate([np.arange(l // 2), np.arange(l - l // 2)])[None].repeat(b, 0)
  return {"tokens": tokens[:, :-1], "targets": tokens[:, 1:], "loss_mask": loss_mask,
          "segment_ids": segment_ids, "positions": positions.astype(np.int32)}


def test_cross_entropy_is_a_masked_token_mean_with_z_loss():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 7)).astype(np.float32)
  targets = rng.integers(0, 7, (2, 5)).astype(np.int32)
  mask = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 1, 0]], np.float32)
  loss, aux = loss_lib.cross_entropy(jnp.asarray(logits), targets, mask, z_loss=1e-2)
  log_z = np.log(np.exp(logits).sum(-1))
  token_ce = log_z - np.take_along_axis(logits, targets[..., None], -1)[..., 0]
  expected_ce = (token_ce * mask).sum() / mask.sum()
  expected_z = 1e-2 * (log_z ** 2 * mask).sum() / mask.sum()
  np.testing.assert_allclose(aux["cross_entropy"], expected_ce, rtol=1e-5)
  np.testing.assert_allclose(loss, expected_ce + expected_z, rtol=1e-5)
  assert aux["weight"] == mask.sum()


@pytest.fixture(scope="module")
def tiny_state():
  optimizer, schedule = optimizer_lib.make_optimizer(optimizer_config(), 100)
  state = state_lib.TrainState.create(lm.init(jax.random.PRNGKey(0), CFG), optimizer,
                                      jax.random.PRNGKey(1))
  return state, optimizer, schedule


def test_gradient_accumulation_reproduces_the_full_batch(tiny_state):
  state, _, _ = tiny_state
  batch = random_batch(np.random.default_rng(1))
  loss_fn = loss_lib.make_lm_loss(CFG, z_loss=1e-4)
  rng = jax.random.PRNGKey(0)
  full = jax.jit(lambda p, b: step_lib.loss_and_grads(loss_fn, p, b, rng, 1))
  accumulated = jax.jit(lambda p, b: step_lib.loss_and_grads(loss_fn, p, b, rng, 4))
  loss_1, grads_1, aux_1 = full(state.params, batch)
  loss_4, grads_4, aux_4 = accumulated(state.params, batch)
  np.testing.assert_allclose(loss_4, loss_1, rtol=1e-5)
  np.testing.assert_allclose(aux_4["accuracy"], aux_1["accuracy"], rtol=1e-5)
  for g4, g1 in zip(jax.tree.leaves(grads_4), jax.tree.leaves(grads_1)):
    np.testing.assert_allclose(g4, g1, rtol=2e-4, atol=1e-7)
  assert "weight" not in aux_1


def test_train_step_updates_state_and_reports_metrics(tiny_state):
  state, optimizer, schedule = tiny_state
  step = jax.jit(step_lib.make_train_step(loss_lib.make_lm_loss(CFG), optimizer,
                                          learning_rate_fn=schedule))
  batch = random_batch(np.random.default_rng(2))
  losses = []
  for _ in range(4):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert int(state.step) == 4
  assert set(metrics) >= {"loss", "grad_norm", "param_norm", "learning_rate",
                          "cross_entropy", "z_loss", "accuracy"}
  np.testing.assert_allclose(metrics["learning_rate"], schedule(3))
  assert losses[-1] < losses[0]


def test_the_guard_names_the_first_non_finite_step_when_read_later():
  """The driver's non-finite guard runs on device after every step and is read only at
  log, evaluation and save steps: then it names the step that went non-finite."""
  # pylint: disable=protected-access
  mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
  scalars = lambda **values: {name: jnp.float32(v) for name, v in values.items()}
  guard = driver._start_guard(10, mesh)
  for loss, grad_norm in [(2.0, 1.0), (np.inf, np.nan), (np.nan, 1.0)]:   # steps 11-13
    guard = driver._after_step(guard, scalars(loss=loss, grad_norm=grad_norm))
  with pytest.raises(NonFiniteError, match=r"^step 12: loss is inf; the run stopped without "
                                           r"saving this state \(the last checkpoint is step "
                                           r"10 in /ckpt\)"):
    driver._guard(guard, 10, "/ckpt")
  driver._guard(driver._after_step(driver._start_guard(0, mesh), scalars(loss=1.0)), None,
                "/ckpt")


def test_weight_decay_skips_norms_biases_and_vectors():
  mask = optimizer_lib.decay_mask(lm.abstract_params(CFG))
  mamba, attention, mlp = mask["layers"]
  assert mask["embed"] and mask["lm_head"] and not mask["final_norm"]
  assert mamba["in_x"] and mamba["out"] and mamba["conv_x"]
  assert not any(mamba[k] for k in ("norm", "gate_norm", "conv_x_bias", "A_log", "D",
                                    "dt_bias"))
  assert attention["q"] and not attention["norm"] and mlp["up"] and not mlp["norm"]


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_schedules_warm_up_then_follow_their_shape(schedule):
  config = optimizer_config(schedule=schedule, learning_rate=1.0, warmup_steps=10,
                            decay_fraction=0.2, final_lr_fraction=0.1)
  lr = optimizer_lib.learning_rate_schedule(config, 100)
  assert float(lr(0)) == 0.0 and math.isclose(float(lr(5)), 0.5, rel_tol=1e-6)
  assert math.isclose(float(lr(10)), 1.0, rel_tol=1e-6)
  if schedule == "wsd":
    assert float(lr(79)) == 1.0 and math.isclose(float(lr(90)), 0.55, rel_tol=1e-5)
  if schedule != "constant":
    assert math.isclose(float(lr(100)), 0.1, rel_tol=1e-5)
  else:
    assert float(lr(100)) == 1.0
  with pytest.raises(ValueError, match="warmup_steps"):
    optimizer_lib.learning_rate_schedule(optimizer_config(warmup_steps=100), 100)


def test_gradient_clipping_bounds_the_update():
  config = optimizer_config(grad_clip_norm=1.0, weight_decay=0.0, learning_rate=1.0,
                            warmup_steps=0, schedule="constant")
  optimizer, _ = optimizer_lib.make_optimizer(config, 10)
  params = {"w": jnp.zeros((3, 3))}
  grads = {"w": jnp.full((3, 3), 100.0)}
  clipped, _ = optax.clip_by_global_norm(1.0).update(grads, None)
  assert math.isclose(float(optax.global_norm(clipped)), 1.0, rel_tol=1e-5)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  assert np.all(np.isfinite(updates["w"]))


def test_mfu_needs_a_known_device_peak():
  assert metrics_lib.peak_flops_per_device("NVIDIA H100 80GB HBM3") == 989e12
  assert metrics_lib.peak_flops_per_device("TPU v5 lite") == 197e12
  assert metrics_lib.peak_flops_per_device("cpu") is None
  throughput = metrics_lib.Throughput(tokens_per_step=1000, flops_per_token=1e9,
                                      num_devices=2, device_kind="NVIDIA H100 80GB HBM3")
  throughput.start(0)
  measured = throughput.measure(10)
  assert measured["tokens_per_s"] > 0
  assert math.isclose(measured["mfu"], measured["tokens_per_s"] * 1e9 / (2 * 989e12))
  cpu = metrics_lib.Throughput(tokens_per_step=1, flops_per_token=1, num_devices=1,
                               device_kind="cpu")
  cpu.start(0)
  assert "mfu" not in cpu.measure(1)


def test_metrics_go_to_jsonl_tensorboard_and_the_console(tmp_path, capsys):
  logger = metrics_lib.MetricsLogger(str(tmp_path), total_steps=10)
  logger.write(5, {"loss": 2.5, "learning_rate": 1e-3, "data_stage": "pretrain",
                   "step_time_s": 0.5})
  logger.write(10, {"loss": 1.5, "learning_rate": 5e-4})
  logger.write(10, {"loss/english": 3.0}, kind="eval")
  logger.close()
  lines = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert lines == [{"step": 5, "loss": 2.5, "learning_rate": 1e-3, "data_stage": "pretrain",
                    "step_time_s": 0.5},
                   {"step": 10, "loss": 1.5, "learning_rate": 5e-4}]
  assert [json.loads(line) for line in open(tmp_path / "eval.jsonl")] == [
      {"step": 10, "loss/english": 3.0}]
  scalars = tensorboard_events.read_scalars(tmp_path / "tensorboard")
  assert {(10, "loss", 1.5), (5, "loss", 2.5), (10, "eval/loss/english", 3.0)} <= set(scalars)
  assert not any(tag == "data_stage" for _, tag, _ in scalars)
  printed = capsys.readouterr().out.splitlines()
  assert printed[0] == ("step 5/10 | loss 2.5 | lr 1.00e-03 | 0.5 s/step | data_stage pretrain"
                        " | ETA 0:00:02")
  assert printed[2] == "step 10/10 | eval | loss/english 3"


def test_a_run_starts_without_importing_torch_or_math_verify(tmp_path):
  """A run's start-up imports neither (~2 s and ~0.7 s): tensorboardX would import torch
  if it were not hidden, and Math-Verify waits for the first answer check. torch stays
  importable afterwards."""
  script = (
      "import sys\n"
      "import train.main\n"
      "from train import metrics\n"
      f"logger = metrics.MetricsLogger({str(tmp_path)!r}, total_steps=1)\n"
      "logger.write(1, {'loss': 1.0})\n"
      "logger.close()\n"
      "print(sorted(m for m in ('torch', 'math_verify') if m in sys.modules))\n"
      "import torch\n")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=root))
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.splitlines()[-1] == "[]"


def test_a_resumed_run_drops_the_records_it_will_log_again(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 8)))
  metrics_lib.keep_records_up_to(str(path), 4)
  assert [r["step"] for r in metrics_lib.read_records(str(path))] == [1, 2, 3, 4]
