"""Puzzle: the candidates' initialisations, BLD scoring and training, the knapsack against
brute force, the searched model within its budget, the uniform baseline, bad input."""

import itertools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cli_runs
from model import config as mcfg
from model import layers
from model import lm
from model import puzzle as blocks
from model.puzzle import Budget, Candidate
from train import checkpoint as checkpoint_lib
from train import config as run_config
from train import export
from train import puzzle

VOCAB = 32
# The two parents share every size, so their attention and MLP layers compile once.
SIZES = dict(vocab_size=VOCAB, d_model=16, n_heads=4, n_kv_heads=2, head_dim=4, mlp_dim=32,
             ssm_heads=2, ssm_head_dim=8, ssm_state=8, chunk_size=8, init_std=0.2)
PARENT = mcfg.tiny_transformer(**SIZES)
HYBRID = mcfg.tiny(pattern="M*-", **SIZES)


def calibration(n_batches=3, rows=4, length=16, seed=0):
  keys = jax.random.split(jax.random.key(seed), n_batches)
  segment_ids = np.ones((rows, length), np.int32)
  segment_ids[-1, -2:] = 0                       # padding: left out of every sum
  return [{"tokens": jax.random.randint(key, (rows, length), 0, VOCAB),
           "segment_ids": segment_ids} for key in keys]


def init(cfg, seed):
  return jax.jit(lm.init, static_argnums=1)(jax.random.key(seed), cfg)


def forward(params, tokens, cfg):
  return jax.jit(lm.forward, static_argnums=2)(params, tokens, cfg)[0]


@pytest.fixture(scope="module")
def parent_params():
  return init(PARENT, 0)


@pytest.fixture(scope="module")
def tight_search(parent_params):
  """A search of the transformer at 80% of its parameters, with BLD steps."""
  budget = Budget(max_params=int(0.8 * lm.count_params(PARENT)))
  return budget, puzzle.search(parent_params, PARENT, calibration(), budget, bld_steps=30,
                               learning_rate=3e-3, held_out_batches=1)


def brute_force(costs, errors, capacity):
  best = (np.inf, None)
  for picks in itertools.product(*(range(len(layer)) for layer in costs)):
    if sum(c[k] for c, k in zip(costs, picks)) <= capacity:
      best = min(best, (sum(e[k] for e, k in zip(errors, picks)), picks))
  return best


def test_knapsack_equals_brute_force_on_small_instances():
  rng = np.random.default_rng(0)
  for _ in range(40):
    n_layers = rng.integers(1, 5)
    costs = [list(rng.integers(0, 30, rng.integers(1, 5))) for _ in range(n_layers)]
    errors = [list(rng.random(len(layer))) for layer in costs]
    capacity = int(rng.integers(sum(min(c) for c in costs), sum(max(c) for c in costs) + 1))
    picks, unit = puzzle.choose(costs, errors, capacity)
    best_error, _ = brute_force(costs, errors, capacity)
    assert sum(c[k] for c, k in zip(costs, picks)) <= capacity
    np.testing.assert_allclose(sum(e[k] for e, k in zip(errors, picks)), best_error)
    # A coarse budget grid: feasible, and no better than the exact optimum.
    coarse, unit = puzzle.choose(costs, errors, capacity, resolution=4)
    assert sum(c[k] for c, k in zip(costs, coarse)) <= capacity
    assert sum(e[k] for e, k in zip(errors, coarse)) >= best_error - 1e-12
  # Costs with a common factor are exact at any resolution: units of their gcd.
  costs, errors = [[0, 4096, 8192]] * 3, [[1.0, 0.4, 0.0], [0.9, 0.5, 0.0], [0.3, 0.1, 0.0]]
  picks, unit = puzzle.choose(costs, errors, 3 * 4096, resolution=3)
  assert unit == 4096 and picks == list(brute_force(costs, errors, 3 * 4096)[1])
  with pytest.raises(ValueError, match="cheapest choice"):
    puzzle.choose([[5, 7]], [[0.0, 1.0]], 4)
  # Costs rounded up to units of 12 do not fit 34 though they do: the grid refines.
  picks, unit = puzzle.choose([[11, 100]] * 3 + [[1]], [[0.5, 0.0]] * 3 + [[0.0]], 34,
                              resolution=3)
  assert picks == [0, 0, 0, 0] and unit == 1


def test_pooled_kv_heads_keep_the_parent_and_merge_equal_heads(parent_params):
  p = parent_params["layers"][0]
  for name, value in blocks.pool_kv_heads(p, PARENT.n_kv_heads).items():
    np.testing.assert_array_equal(value, p[name])
  # KV heads that are already equal in each merged pair: the pooled layer is the same map.
  twin = dict(p, k=jnp.repeat(p["k"][:, :1], 2, axis=1), v=jnp.repeat(p["v"][:, 1:], 2, axis=1))
  x_BLD = jax.random.normal(jax.random.key(1), (2, 8, PARENT.d_model))
  positions = jnp.broadcast_to(jnp.arange(8), (2, 8))
  segment_ids = jnp.ones((2, 8), jnp.int32)
  layer_cfg = PARENT.layer_config(0)
  apply = jax.jit(blocks.apply_candidate, static_argnums=(0, 3))
  parent_out = apply(Candidate("*", 2), twin, x_BLD, layer_cfg, positions, segment_ids)
  pooled_out = apply(Candidate("*", 1), blocks.pool_kv_heads(twin, 1), x_BLD, layer_cfg,
                     positions, segment_ids)
  np.testing.assert_allclose(pooled_out, parent_out, atol=1e-5)


def test_candidates_and_costs_match_the_model():
  assert [c.name for c in blocks.layer_candidates(PARENT, 0)] == [
      "attention kv_heads=2", "attention kv_heads=1", "linear", "removed"]
  assert [c.name for c in blocks.layer_candidates(PARENT, 1, (0.5, 0.25))] == [
      "mlp width=32", "mlp width=16", "mlp width=8", "linear", "removed"]
  assert blocks.layer_candidates(HYBRID, 0) == (Candidate("M"),)
  for cfg in (PARENT, HYBRID):
    budget = Budget(max_params=10**9)
    layers_cost = sum(budget.cost(blocks.parent_candidate(cfg, i), cfg.layer_config(i))
                      for i in range(cfg.n_layers))
    assert budget.outside_layers(cfg) + layers_cost == lm.count_params(cfg)
  assert blocks.kv_bytes_per_token(PARENT) == 2 * (2 * 2 * 4 * 4)
  with pytest.raises(ValueError, match="exactly one"):
    Budget(max_params=1, max_kv_bytes_per_token=1)
  with pytest.raises(ValueError, match="exactly one"):
    Budget()


def test_least_squares_linear_layer_beats_a_random_one(parent_params):
  # The search's shapes (layer config, fitted and held-out batches): compiled once.
  rows = puzzle.calibration_rows(calibration())
  x_KBLD = jnp.take(parent_params["embed"], rows["tokens"], axis=0)
  p, layer_cfg = parent_params["layers"][1], PARENT.layer_config(1).replace(pattern="-")
  y_KBLD = puzzle._outputs(Candidate("-", 32), p, x_KBLD, rows, layer_cfg)
  fitted = puzzle._linear_fit(p["norm"], x_KBLD[:2], y_KBLD[:2], rows["segment_ids"][:2],
                              PARENT.norm_eps)
  # It is numpy's least-squares solution on the fitted batches' valid tokens.
  valid = np.asarray(rows["segment_ids"][:2]).reshape(-1) > 0
  h_ND = np.asarray(layers.rms_norm(x_KBLD[:2], p["norm"], PARENT.norm_eps)).reshape(-1, 16)
  z_ND = np.asarray(y_KBLD[:2] - x_KBLD[:2]).reshape(-1, 16)
  expected, *_ = np.linalg.lstsq(h_ND[valid], z_ND[valid], rcond=None)
  np.testing.assert_allclose(fitted["w"], expected, atol=2e-3)
  x_KBLD, y_KBLD, rows = x_KBLD[2:], y_KBLD[2:], jax.tree.map(lambda a: a[2:], rows)
  parent_error = puzzle.bld_error(Candidate("-", 32), p, x_KBLD, y_KBLD, rows, layer_cfg)
  assert float(parent_error) == 0.0
  random = {"norm": p["norm"], "w": 0.2 * jax.random.normal(jax.random.key(2), (16, 16))}
  error = lambda w: float(puzzle.bld_error(Candidate("L"), w, x_KBLD, y_KBLD, rows,
                                           layer_cfg))
  removed = float(puzzle.bld_error(blocks.REMOVED, None, x_KBLD, y_KBLD, rows, layer_cfg))
  assert error(fitted) < min(error(random), removed)



def test_search_scores_the_parent_zero_trains_candidates_and_fits_the_budget(tight_search):
  budget, (params, cfg, report) = tight_search
  for layer in report["layers"]:
    parent, *others = layer["candidates"]
    assert parent["error"] == 0.0, layer
    removed = others[-1]
    assert removed["name"] == "removed" and removed["error"] > 0
    # BLD steps lowered the error of every pooled or narrowed candidate.
    for entry in others[:-2]:
      assert entry["error"] < entry["initial_error"], entry
  assert lm.count_params(cfg) == report["searched"]["params"] <= budget.limit
  assert report["searched"]["error"] == pytest.approx(sum(
      next(c["error"] for c in layer["candidates"] if c["name"] == layer["choice"])
      for layer in report["layers"]))
  json.dumps(report)
  # A valid config whose parameters have its shapes, and whose forward runs.
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, lm.abstract_params(cfg))
  logits = forward(params, calibration()[0]["tokens"], cfg)
  assert logits.shape == (4, 16, VOCAB) and np.all(np.isfinite(logits))


def test_search_with_room_for_the_parent_gives_the_parent(parent_params):
  budget = Budget(max_params=lm.count_params(PARENT))
  params, cfg, report = puzzle.search(parent_params, PARENT, calibration(), budget,
                                      bld_steps=0, held_out_batches=1)
  assert cfg == PARENT
  assert [layer["choice"] for layer in report["layers"]] == [
      c[0].name for c in (blocks.layer_candidates(PARENT, i) for i in range(4))]
  tokens = calibration()[0]["tokens"]
  np.testing.assert_array_equal(forward(params, tokens, cfg),
                                forward(parent_params, tokens, PARENT))


def test_hybrid_search_under_a_kv_budget_keeps_mamba():
  params = init(HYBRID, 3)
  budget = Budget(max_kv_bytes_per_token=0)     # no KV cache: the attention layer goes
  searched, cfg, report = puzzle.search(params, HYBRID, calibration(), budget,
                                        bld_steps=5, held_out_batches=1)
  assert cfg.pattern.count("M") == 1 and "*" not in cfg.pattern
  assert blocks.kv_bytes_per_token(cfg) == 0
  assert report["layers"][0]["candidates"] == [report["layers"][0]["candidates"][0]]
  assert np.all(np.isfinite(forward(searched, calibration()[0]["tokens"], cfg)))


def test_uniform_baseline_is_the_largest_uniform_model_in_budget(parent_params):
  budget = Budget(max_params=int(0.8 * lm.count_params(PARENT)))
  cfg = blocks.uniform_under_budget(PARENT, budget)
  assert cfg.is_uniform and cfg.pattern == PARENT.pattern
  assert cfg.n_kv_heads == PARENT.n_kv_heads and cfg.mlp_dim < PARENT.mlp_dim
  assert lm.count_params(cfg) <= budget.limit < lm.count_params(
      cfg.replace(mlp_dim=cfg.mlp_dim + 1))
  params, sliced_cfg = puzzle.uniform_baseline(parent_params, PARENT, calibration(), budget)
  assert sliced_cfg == cfg
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, lm.abstract_params(cfg))
  kv_cfg = blocks.uniform_under_budget(PARENT, Budget(max_kv_bytes_per_token=100))
  assert kv_cfg.n_kv_heads == 1 and kv_cfg.mlp_dim == PARENT.mlp_dim
  with pytest.raises(ValueError, match="no uniform model"):
    blocks.uniform_under_budget(PARENT, Budget(max_kv_bytes_per_token=63))


def test_bad_input_is_a_clear_error(parent_params):
  outside = Budget(max_params=10**9).outside_layers(PARENT)
  with pytest.raises(ValueError, match="below the smallest model"):
    puzzle.search(parent_params, PARENT, calibration(), Budget(max_params=outside - 1))
  with pytest.raises(ValueError, match="no calibration batches"):
    puzzle.search(parent_params, PARENT, [], Budget(max_params=10**9))
  with pytest.raises(ValueError, match="held_out_batches"):
    puzzle.search(parent_params, PARENT, calibration(1), Budget(max_params=10**9),
                  held_out_batches=1)
  with pytest.raises(ValueError, match="removes every layer"):
    blocks.assemble(parent_params, PARENT, [blocks.REMOVED] * 4, [None] * 4)


@pytest.mark.slow
def test_command_writes_a_start_for_init_checkpoint(reference_run, tmp_path):
  workdir, _ = reference_run("pretrain")
  parent_cfg = run_config.recorded_model_config(export.read_run_config(str(workdir)))
  output = tmp_path / "searched"
  result = subprocess.run(
      [sys.executable, "-m", "train.puzzle", f"--teacher={workdir}", f"--output={output}",
       f"--max_params={int(0.8 * lm.count_params(parent_cfg))}", "--calibration_batches=2",
       "--calibration_rows=2", "--bld_steps=2"],
      cwd=cli_runs.ROOT, env=cli_runs.env(), capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "--config.init_checkpoint=" in result.stdout
  report = json.loads((output / "puzzle.json").read_text())
  cfg = run_config.recorded_model_config(export.read_run_config(str(output)))
  assert cfg.pattern == report["searched"]["pattern"]
  assert lm.count_params(cfg) == report["searched"]["params"]
  params, step = checkpoint_lib.load_params(str(output), cfg, None)
  assert step == 0 and os.path.isdir(output / "checkpoints" / "0")
  logits, _ = lm.forward(params, jnp.zeros((1, 4), jnp.int32), cfg)
  assert np.all(np.isfinite(logits))
