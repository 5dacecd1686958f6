"""Minitron-SSM importance and pruning (model/pruning.py).

Exactness: a pruned model equals the full model with the pruned units switched off where
that is an exact identity. Dropped MLP neurons and query heads are zero rows of the
down / output projections; dropped layers have a zero output projection. Dropped Mamba
heads and channels get a zero z gate and dropped embedding channels are zero throughout
the residual stream; both then differ only in how many elements an RMSNorm averages
over, which a constant rescales exactly when the norm's eps is negligible (HYBRID's
norm_eps) and every group keeps as many heads (group-aware pruning).
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from model import config as mcfg
from model import hf
from model import lm
from model import params as P
from model import pruning
from model.pruning import Target

HYBRID = mcfg.tiny(vocab_size=64, d_model=32, pattern="M*-L-", n_heads=4, n_kv_heads=2,
                   head_dim=8, mlp_dim=24, ssm_heads=8, ssm_groups=2, ssm_head_dim=8,
                   ssm_state=8, chunk_size=8, norm_eps=1e-12)
LENGTH = 16
REL_TOL = 1e-5
OUTPUTS = ("o", "out", "down", "w")  # each layer kind's projection into the residual stream

_stats = jax.jit(pruning.activation_stats, static_argnames="cfg")
_forward = jax.jit(lm.forward, static_argnames="cfg")


def _params(cfg, seed=0):
  """Random parameters, drawn in numpy (eager lm.init compiles each leaf's initialiser):
  matrices N(0, 0.1²), norm weights and D random too, dt and A in Mamba-2's ranges."""
  rng = np.random.default_rng(seed)
  def draw(path, spec):
    name = jax.tree_util.keystr(path[-1:])[2:-2]
    if "norm" in name:
      return rng.uniform(0.5, 1.5, spec.shape)
    if name == "A_log":
      return np.log(rng.uniform(1.0, 8.0, spec.shape))
    if name == "dt_bias":
      return rng.uniform(-5.0, -1.0, spec.shape)     # softplus ∈ (0.007, 0.3)
    return rng.normal(0.0, 1.0 if name == "D" else 0.1, spec.shape)
  specs = lm.param_specs(cfg)
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32),
                      jax.tree_util.tree_map_with_path(draw, specs, is_leaf=P.is_spec))


def _batch(rows, seed=0):
  """Packed rows: one document; two documents; a document then padding; padding."""
  segments = np.array([[1] * 16, [1] * 10 + [2] * 6, [1] * 12 + [0] * 4, [0] * 16],
                      np.int32)[:rows]
  positions = np.zeros_like(segments)
  for r, row in enumerate(segments):
    for s in set(row) - {0}:
      where = row == s
      positions[r, where] = np.arange(where.sum())
  tokens = np.random.default_rng(seed).integers(0, HYBRID.vocab_size, segments.shape)
  return {"tokens": jnp.asarray(tokens, jnp.int32), "positions": jnp.asarray(positions),
          "segment_ids": jnp.asarray(segments)}


def _rows(batch, rows):
  return {k: v[rows] for k, v in batch.items()}


def _scores(params, cfg=HYBRID):
  return pruning.importance(_stats(params, _batch(4), cfg=cfg))


def _random_scores(cfg, seed=0):
  """Scores of the right shapes, all distinct (as importance would give)."""
  rng = np.random.default_rng(seed)
  def layer(kind, layer_cfg):
    sizes = {"mamba": {"heads": layer_cfg.ssm_heads, "channels": layer_cfg.ssm_head_dim},
             "attention": {"heads": layer_cfg.n_heads},
             "mlp": {"neurons": layer_cfg.mlp_dim}}.get(kind, {})
    return {name: rng.random(size) for name, size in sizes.items()}
  return {"embed": rng.random(cfg.d_model), "depth": rng.random(cfg.n_layers),
          "layers": [layer(kind, cfg.layer_config(i)) for i, kind in enumerate(cfg.layer_kinds)]}


def _rel_diff(a, b):
  return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def _dropped(kept, size):
  return np.setdiff1d(np.arange(size), kept)


def _switched_off(params, cfg, keep, new_cfg):
  """The full-size model that computes what the pruned one does (module docstring)."""
  params = jax.tree.map(jnp.asarray, params)
  layers = [dict(layer) for layer in params["layers"]]
  for i in _dropped(keep["kept_layers"], cfg.n_layers):
    for name in set(OUTPUTS) & set(layers[i]):
      layers[i][name] = jnp.zeros_like(layers[i][name])
  for i, layer_keep in zip(keep["kept_layers"], keep["layers"]):
    layer, layer_cfg = layers[i], cfg.layer_config(i)
    if "mlp" in layer_keep:
      layer["down"] = layer["down"].at[_dropped(layer_keep["mlp"], layer_cfg.mlp_dim)].set(0)
    if "q_heads" in layer_keep:
      layer["o"] = layer["o"].at[_dropped(layer_keep["q_heads"], layer_cfg.n_heads)].set(0)
    if "ssm_heads" in layer_keep or "ssm_head_dim" in layer_keep:
      heads = layer_keep.get("ssm_heads", np.arange(layer_cfg.ssm_heads))
      channels = layer_keep.get("ssm_head_dim", np.arange(layer_cfg.ssm_head_dim))
      on_HP = np.zeros((layer_cfg.ssm_heads, layer_cfg.ssm_head_dim), np.float32)
      on_HP[np.ix_(heads, channels)] = 1.0
      layer["in_z"] = layer["in_z"] * on_HP[None]
      layer["gate_norm"] = layer["gate_norm"] * math.sqrt(
          new_cfg.ssm_inner / layer_cfg.ssm_inner)
  params = {**params, "layers": layers}
  if "embed" in keep["axes"]:
    dropped = _dropped(keep["axes"]["embed"], cfg.d_model)
    scale = math.sqrt(new_cfg.d_model / cfg.d_model)
    params["embed"] = params["embed"].at[:, dropped].set(0)
    params["final_norm"] = params["final_norm"] * scale
    for layer in layers:
      layer["norm"] = layer["norm"] * scale
      for name in set(OUTPUTS) & set(layer):
        layer[name] = layer[name].at[..., dropped].set(0)
  return params


# ----------------------------------------------------------------------------- stats


def test_stats_add_over_row_splits_and_skip_padding():
  params = _params(HYBRID)
  batch = _batch(4)
  whole = _stats(params, batch, cfg=HYBRID)
  chex.assert_trees_all_equal_shapes_and_dtypes(whole, {
      "embed": jnp.zeros(32), "depth": jnp.zeros(5), "tokens": jnp.zeros(()),
      "rows": jnp.zeros(()), "layers": [
          {"head_channels": jnp.zeros((8, 8))}, {"heads": jnp.zeros(4)},
          {"neurons": jnp.zeros(24)}, {}, {"neurons": jnp.zeros(24)}]})
  assert (float(whole["tokens"]), float(whole["rows"])) == (16 + 16 + 12, 3)
  halves = pruning.add_stats(_stats(params, _rows(batch, slice(0, 2)), cfg=HYBRID),
                             _stats(params, _rows(batch, slice(2, 4)), cfg=HYBRID))
  chex.assert_trees_all_close(halves, whole, rtol=1e-5)
  # What padding holds changes nothing.
  noise = np.random.default_rng(1).integers(0, HYBRID.vocab_size, (4, LENGTH))
  repadded = dict(batch, tokens=jnp.where(batch["segment_ids"] > 0, batch["tokens"], noise))
  chex.assert_trees_all_close(_stats(params, repadded, cfg=HYBRID), whole, rtol=1e-6)


def test_importance_ranks_dead_units_lowest():
  params = _params(HYBRID)
  layers = params["layers"]
  layers[2]["up"] = layers[2]["up"].at[:, 5].set(0)           # MLP neuron 5
  layers[0]["in_x"] = layers[0]["in_x"].at[:, 3].set(0)       # Mamba head 3
  scores = _scores(params)
  for score, dead in ((scores["layers"][2]["neurons"], 5),
                      (scores["layers"][0]["heads"], 3)):
    assert float(score[dead]) == 0.0 and int(np.argmin(score)) == dead
  assert np.all(np.asarray(scores["layers"][0]["channels"]) > 0)
  layers[0]["in_x"] = layers[0]["in_x"].at[:, :, 6].set(0)    # channel 6 of every head
  channels = _scores(params)["layers"][0]["channels"]
  assert float(channels[6]) == 0.0 and int(np.argmin(channels)) == 6


# --------------------------------------------------------------------------- pruning


def test_no_op_target_keeps_params_exactly():
  params = _params(HYBRID)
  scores = _random_scores(HYBRID)
  same_sizes = Target(**{axis: getattr(HYBRID, axis)
                         for axis in (*pruning.WIDTH_AXES, "n_layers")})
  for target in (Target(), same_sizes):
    pruned, cfg = pruning.prune(params, HYBRID, scores, target)
    assert cfg == HYBRID
    chex.assert_trees_all_equal(pruned, params)


@pytest.mark.parametrize("target", [
    Target(mlp_dim=10),
    Target(n_heads=2),                     # query heads within each KV group
    Target(n_kv_heads=1, n_heads=1),       # whole KV groups, then heads within them
    Target(ssm_heads=4, ssm_head_dim=5),
    Target(d_model=20),
    Target(n_layers=3),
    Target(d_model=20, mlp_dim=10, ssm_heads=4, ssm_head_dim=5, n_heads=1, n_kv_heads=1,
           n_layers=4),
], ids=["mlp", "q_heads", "kv_and_q_heads", "mamba", "embed", "depth", "all"])
def test_pruned_model_equals_the_switched_off_model(target):
  params = _params(HYBRID)
  if target.n_layers:  # an identity layer (zero output projection): depth importance ~0
    params["layers"][3]["w"] = jnp.zeros_like(params["layers"][3]["w"])
  scores = _scores(params)
  pruned, cfg = pruning.prune(params, HYBRID, scores, target)
  chex.assert_trees_all_equal_shapes(pruned, lm.abstract_params(cfg))
  keep = pruning.keep_indices(HYBRID, scores, target)
  if target.n_layers:
    assert float(scores["depth"][3]) < 1e-12 and 3 not in keep["kept_layers"]
    assert cfg.pattern == "".join(HYBRID.pattern[i] for i in keep["kept_layers"])
  tokens = _batch(4)["tokens"]
  reference, _ = _forward(_switched_off(params, HYBRID, keep, cfg), tokens, cfg=HYBRID)
  logits, _ = _forward(pruned, tokens, cfg=cfg)
  assert _rel_diff(logits, reference) <= REL_TOL


def test_mamba_heads_kept_per_group():
  cfg = mcfg.tiny_mamba(ssm_heads=8, ssm_groups=2)
  scores = _random_scores(cfg)
  for layer in scores["layers"]:  # every top head sits in group 0
    layer["heads"] = np.array([8.0, 7, 6, 5, 1, 2, 3, 4])
  aware = pruning.keep_indices(cfg, scores, Target(ssm_heads=4))
  blind = pruning.keep_indices(cfg, scores, Target(ssm_heads=4, group_aware=False))
  for layer in aware["layers"]:
    np.testing.assert_array_equal(layer["ssm_heads"], [0, 1, 6, 7])
  for layer in blind["layers"]:   # group 0's heads 2, 3 become group 1's
    np.testing.assert_array_equal(layer["ssm_heads"], [0, 1, 2, 3])
  for group_aware in (True, False):
    params, new_cfg = pruning.prune(_params(cfg), cfg, scores,
                                    Target(ssm_heads=4, group_aware=group_aware))
    assert (new_cfg.ssm_heads, new_cfg.ssm_groups) == (4, 2)
    chex.assert_trees_all_equal_shapes(params, lm.abstract_params(new_cfg))


def test_attention_keeps_whole_kv_groups_and_equal_query_heads_per_group():
  cfg = mcfg.tiny_transformer(n_heads=8, n_kv_heads=4)
  scores = _random_scores(cfg)
  scores["layers"][0]["heads"] = np.array([1.0, 2, 9, 9, 0, 0, 5, 1])  # groups of two
  keep = pruning.keep_indices(cfg, scores, Target(n_kv_heads=2))["layers"][0]
  np.testing.assert_array_equal(keep["kv_heads"], [1, 3])
  np.testing.assert_array_equal(keep["q_heads"], [2, 3, 6, 7])
  keep = pruning.keep_indices(cfg, scores, Target(n_heads=4))["layers"][0]
  assert "kv_heads" not in keep
  np.testing.assert_array_equal(keep["q_heads"], [1, 2, 4, 6])  # ties keep the first


def test_heterogeneous_depth_and_query_heads():
  cfg = mcfg.tiny(pattern="*-*-M", n_heads=4, layer_kv_heads=(2, 1), layer_mlp_dims=(64, 32))
  scores = _random_scores(cfg)
  scores["depth"] = np.array([0.1, 0.5, 0.4, 0.05, 0.3])
  target = Target(n_layers=3, n_heads=2)
  params, new_cfg = pruning.prune(_params(cfg), cfg, scores, target)
  assert (new_cfg.pattern, new_cfg.layer_kv_heads, new_cfg.layer_mlp_dims) == (
      "-*M", (1,), (64,))
  chex.assert_trees_all_equal_shapes(params, lm.abstract_params(new_cfg))
  new_cfg = pruning.target_config(cfg, Target(n_heads=2))
  assert [new_cfg.layer_config(i).n_kv_heads for i in (0, 2)] == [2, 1]
  params, _ = pruning.prune(_params(cfg), cfg, scores, Target(n_heads=2))
  chex.assert_trees_all_equal_shapes(params, lm.abstract_params(new_cfg))


@pytest.mark.parametrize("cfg, target, message", [
    (HYBRID, Target(d_model=33), "target d_model=33 exceeds the source's d_model=32"),
    (HYBRID, Target(mlp_dim=0), "target mlp_dim=0 must be a positive integer"),
    (mcfg.nemotron_h_8b(), Target(ssm_heads=100),
     "target ssm_heads=100 is not a multiple of ssm_groups=8"),
    (HYBRID, Target(ssm_head_dim=9), "target ssm_head_dim=9 exceeds the source's "
     "ssm_head_dim=8"),
    (mcfg.tiny(n_heads=8, n_kv_heads=4), Target(n_kv_heads=3, n_heads=4),
     "target n_kv_heads=3 does not divide n_heads=4"),
    (HYBRID, Target(n_heads=3), "target n_heads=3 is not a multiple of n_kv_heads=2"),
    (HYBRID, Target(n_kv_heads=1, n_heads=4),
     "target n_heads=4 exceeds the 2 query heads of n_kv_heads=1 whole KV groups"),
    (HYBRID, Target(n_layers=0), "target n_layers=0 must be a positive integer"),
    (HYBRID, Target(n_layers=6), "target n_layers=6 exceeds the source's n_layers=5"),
    (HYBRID, Target(n_layers=4), "depth pruning needs depth_importance"),
    (HYBRID, Target(n_layers=4, d_model=16), "depth_importance has shape (3,), want one "
     "score per layer (5,)"),
    (mcfg.tiny(layer_mlp_dims=(64, 32)), Target(mlp_dim=16),
     "target mlp_dim=16: the source has per-layer MLP widths (layer_mlp_dims=(64, 32))"),
    (mcfg.tiny(layer_kv_heads=(1,)), Target(n_kv_heads=1),
     "target n_kv_heads=1: the source has per-layer KV heads (layer_kv_heads=(1,))"),
])
def test_target_errors_name_the_axis(cfg, target, message):
  depth = np.ones(3) if "depth_importance has shape" in message else None
  with pytest.raises(ValueError) as error:
    pruning.target_config(cfg, target, depth)
  assert message in str(error.value)


def test_nemotron_h_8b_to_4b_config():
  source = mcfg.nemotron_h_8b()
  cfg = pruning.target_config(source, Target(d_model=3072, mlp_dim=12288, ssm_heads=112))
  assert cfg == mcfg.nemotron_h_4b()
  assert lm.count_params(cfg) == 4_489_223_040
  # The 4B's parameter count as a budget: a common fraction of the three axes fits it.
  target = pruning.target_for_budget(source, lm.count_params(cfg))
  budget_cfg = pruning.target_config(source, target)
  assert 0.99 * lm.count_params(cfg) <= lm.count_params(budget_cfg) <= lm.count_params(cfg)
  assert budget_cfg.ssm_heads % 8 == 0 and budget_cfg.n_layers == source.n_layers
  assert pruning.target_for_budget(source, 10**10) == Target(
      d_model=4096, mlp_dim=21504, ssm_heads=128)
  with pytest.raises(ValueError, match="max_params=1000 is below"):
    pruning.target_for_budget(source, 1000)
  with pytest.raises(ValueError, match=r"axes \['n_kv_heads'\]"):
    pruning.target_for_budget(source, 10**9, axes=("n_kv_heads",))


# ----------------------------------------------------------------- Hugging Face export


@pytest.mark.parametrize("architecture, cfg, target", [
    ("NemotronHForCausalLM",
     mcfg.tiny(pattern="M-*-M-", mlp_activation="relu2", use_rope=False, ssm_heads=8,
               ssm_groups=2, vocab_size=128),
     Target(d_model=48, mlp_dim=40, ssm_heads=4, ssm_head_dim=12, n_heads=2,
            n_kv_heads=1, n_layers=5)),
    ("LlamaForCausalLM",
     mcfg.tiny_transformer(n_heads=8, n_kv_heads=4, vocab_size=128),
     Target(d_model=40, mlp_dim=72, n_heads=4, n_kv_heads=2)),
], ids=["nemotron_h", "llama"])
def test_pruned_model_saves_for_transformers(architecture, cfg, target, tmp_path):
  params, new_cfg = pruning.prune(_params(cfg), cfg, _random_scores(cfg), target)
  path = hf.save_hf_checkpoint(params, new_cfg, str(tmp_path / "hf"),
                               architecture=architecture)
  model = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
  assert type(model).__name__ == architecture
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, LENGTH))
  with torch.no_grad():
    reference = model(torch.tensor(tokens)).logits.float().numpy()
  logits, _ = _forward(params, jnp.asarray(tokens, jnp.int32), cfg=new_cfg)
  assert _rel_diff(logits, reference) <= 1e-4
