"""Structured pruning by activation importance: Minitron (arXiv 2407.14679) with the
group-aware Mamba rules of Minitron-SSM (arXiv 2504.11409).

    stats = activation_stats(params, batch, cfg)      # per batch, jittable; add_stats sums
    scores = importance(stats)
    params, cfg = prune(params, cfg, scores, Target(d_model=48, ssm_heads=4))

Importance comes from activations on a calibration set. Each unit's per-row score is a
mean over the row's valid tokens (segment id 0 is padding), aggregated over rows by an L2
norm; the stats hold sums of squares so batches add. Units and their scores:

  embedding channels   |RMSNorm output| of every layer's input norm and the final norm
  Mamba heads          |in_x projection| (b l h p): L2 over the head's channels
  Mamba head channels  the same activations: L2 over heads (one channel set for all heads)
  attention heads      L2 norm of each query head's output before the output projection
  MLP neurons          |activation the down projection reads|
  layers (depth)       mean over tokens of 1 - cos(layer input, layer output)

Pruning keeps the top units and slices every parameter along each dimension whose
logical axis (model/params.py) names a pruned unit, so all parameters of a unit go
together. Rules:

  * Mamba heads are ranked within their B/C group and every group keeps the same number,
    in their original order, so each kept head still reads its own group's B and C.
    ``Target(group_aware=False)`` ranks heads globally instead and lets the kept heads
    fall into groups by position: the baseline that ignores groups. Groups, B, C and the
    state size are never pruned.
  * Attention is GQA-aware: fewer KV heads keeps the KV groups whose query heads score
    highest in sum, whole; fewer query heads keeps the same number in every KV group.
  * Depth drops the layers of lowest importance; kept indices always stay in order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from model import layers
from model import lm
from model import params as P
from model.config import ModelConfig

# The widths a Target may shrink (ModelConfig fields).
WIDTH_AXES = ("d_model", "mlp_dim", "ssm_heads", "ssm_head_dim", "n_heads", "n_kv_heads")
# Those target_for_budget scales (fewer KV heads there would mean fewer query heads too).
BUDGET_AXES = WIDTH_AXES[:-1]


# ---------------------------------------------------------------------------- stats


def _row_means(a_BL_, valid_BL):
  """Mean over each row's valid tokens of a (b l ...) in fp32: (b ...); 0 for empty rows."""
  weights_BL = valid_BL / jnp.maximum(valid_BL.sum(axis=1, keepdims=True), 1.0)
  return jnp.einsum("bl,bl...->b...", weights_BL, a_BL_.astype(jnp.float32))


def _one_minus_cosine(x_BLD, y_BLD):
  """1 - cos(x, y) per token as |x̂ - ŷ|² / 2, which does not cancel: rounding-small
  (not ~1e-7) where y == x."""
  def unit(v):
    v = v.astype(jnp.float32)
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-30)
  return 0.5 * jnp.sum(jnp.square(unit(x_BLD) - unit(y_BLD)), axis=-1)


def activation_stats(params: dict, batch: dict, cfg: ModelConfig) -> dict:
  """Sums of squared per-row importances over one batch of packed rows (fp32).

  batch: 'tokens', 'positions', 'segment_ids' (b l). Returns {'embed' (d,), 'layers':
  [{'head_channels' (h p)} | {'heads' (h,)} | {'neurons' (f,)} | {}], 'depth'
  (n_layers,) (sums over valid tokens of 1 - cos), 'tokens', 'rows' (valid counts)}.
  Jittable with cfg static.
  """
  positions, segment_ids = batch["positions"], batch["segment_ids"]
  valid_BL = (segment_ids > 0).astype(jnp.float32)
  sum_sq = lambda a_B_: jnp.sum(jnp.square(a_B_), axis=0)
  x_BLD = jnp.take(params["embed"], batch["tokens"], axis=0).astype(jnp.dtype(cfg.dtype))
  embed_BD = jnp.zeros((x_BLD.shape[0], cfg.d_model), jnp.float32)
  layer_stats, depth = [], []
  for i, kind in enumerate(cfg.layer_kinds):
    p, layer_cfg = params["layers"][i], cfg.layer_config(i)
    h_BLD = layers.rms_norm(x_BLD, p["norm"], cfg.norm_eps)
    embed_BD = embed_BD + _row_means(jnp.abs(h_BLD), valid_BL)
    if kind == "mamba":
      x_BLHP = layers.dense(h_BLD, p["in_x"].astype(h_BLD.dtype))
      layer_stats.append({"head_channels": sum_sq(_row_means(jnp.abs(x_BLHP), valid_BL))})
    elif kind == "attention":
      heads_BLHE, _ = layers.attention_heads(p, h_BLD, layer_cfg, positions=positions,
                                             segment_ids=segment_ids)
      norms_BLH = jnp.linalg.norm(heads_BLHE.astype(jnp.float32), axis=-1)
      layer_stats.append({"heads": sum_sq(_row_means(norms_BLH, valid_BL))})
    elif kind == "mlp":
      hidden_BLF = layers.mlp_hidden(p, h_BLD, layer_cfg)
      layer_stats.append({"neurons": sum_sq(_row_means(jnp.abs(hidden_BLF), valid_BL))})
    else:
      layer_stats.append({})
    y_BLD, _ = lm.apply_layer(kind, p, x_BLD, layer_cfg, positions, segment_ids)
    depth.append(jnp.sum(_one_minus_cosine(x_BLD, y_BLD) * valid_BL))
    x_BLD = y_BLD
  h_BLD = layers.rms_norm(x_BLD, params["final_norm"], cfg.norm_eps)
  embed_BD = embed_BD + _row_means(jnp.abs(h_BLD), valid_BL)
  return {"embed": sum_sq(embed_BD), "layers": layer_stats, "depth": jnp.stack(depth),
          "tokens": valid_BL.sum(), "rows": jnp.sum(valid_BL.max(axis=1))}


def add_stats(a: dict, b: dict) -> dict:
  return jax.tree.map(jnp.add, a, b)


def importance(stats: dict) -> dict:
  """Scores from summed stats: L2 over rows (sqrt of the sums of squares) per unit, and
  depth as the mean over tokens of 1 - cos. Returns {'embed', 'layers': [{'heads',
  'channels'} (Mamba) | {'heads'} (attention) | {'neurons'} (MLP) | {}], 'depth'}."""
  def layer_scores(s):
    if "head_channels" in s:
      return {"heads": jnp.sqrt(s["head_channels"].sum(axis=1)),
              "channels": jnp.sqrt(s["head_channels"].sum(axis=0))}
    return {name: jnp.sqrt(v) for name, v in s.items()}
  return {"embed": jnp.sqrt(stats["embed"]),
          "layers": [layer_scores(s) for s in stats["layers"]],
          "depth": stats["depth"] / jnp.maximum(stats["tokens"], 1.0)}


# --------------------------------------------------------------------------- targets


@dataclasses.dataclass(frozen=True)
class Target:
  """Sizes of the pruned model; None keeps the source's. ``n_kv_heads`` without
  ``n_heads`` keeps whole KV groups (their query heads with them). ``n_layers`` keeps
  that many layers, the most important by depth importance."""
  d_model: Optional[int] = None
  mlp_dim: Optional[int] = None
  ssm_heads: Optional[int] = None
  ssm_head_dim: Optional[int] = None
  n_heads: Optional[int] = None
  n_kv_heads: Optional[int] = None
  n_layers: Optional[int] = None
  group_aware: bool = True


def _kv_heads_per_layer(cfg: ModelConfig) -> list[int]:
  return [cfg.layer_config(i).n_kv_heads for i, c in enumerate(cfg.pattern) if c == "*"]


def _new_n_heads(cfg: ModelConfig, target: Target) -> int:
  if target.n_heads is not None:
    return target.n_heads
  if target.n_kv_heads is not None:
    return target.n_kv_heads * (cfg.n_heads // cfg.n_kv_heads)
  return cfg.n_heads


def _check(cfg: ModelConfig, target: Target):
  """ValueError naming the axis and sizes of the first thing ``target`` cannot do."""
  for axis in (*WIDTH_AXES, "n_layers"):
    value, source = getattr(target, axis), getattr(cfg, axis)
    if value is None:
      continue
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"target {axis}={value!r} must be a positive integer")
    if value > source:
      raise ValueError(f"target {axis}={value} exceeds the source's {axis}={source}: "
                       "pruning only shrinks")
  if target.ssm_heads is not None and target.ssm_heads % cfg.ssm_groups:
    raise ValueError(f"target ssm_heads={target.ssm_heads} is not a multiple of "
                     f"ssm_groups={cfg.ssm_groups} (every group keeps as many heads)")
  if target.n_kv_heads is not None and cfg.layer_kv_heads:
    raise ValueError(f"target n_kv_heads={target.n_kv_heads}: the source has per-layer KV "
                     f"heads (layer_kv_heads={cfg.layer_kv_heads}); prune them per layer")
  if target.mlp_dim is not None and cfg.layer_mlp_dims:
    raise ValueError(f"target mlp_dim={target.mlp_dim}: the source has per-layer MLP "
                     f"widths (layer_mlp_dims={cfg.layer_mlp_dims}); prune them per layer")
  n_heads = _new_n_heads(cfg, target)
  if target.n_kv_heads is not None:
    kv_heads = target.n_kv_heads
    whole_groups = kv_heads * (cfg.n_heads // cfg.n_kv_heads)
    if n_heads % kv_heads:
      raise ValueError(f"target n_kv_heads={kv_heads} does not divide n_heads={n_heads} "
                       "(GQA groups must be equal)")
    if n_heads > whole_groups:
      raise ValueError(f"target n_heads={n_heads} exceeds the {whole_groups} query heads "
                       f"of n_kv_heads={kv_heads} whole KV groups")
  elif target.n_heads is not None:
    for kv_heads in _kv_heads_per_layer(cfg) or [cfg.n_kv_heads]:
      if n_heads % kv_heads:
        raise ValueError(f"target n_heads={n_heads} is not a multiple of n_kv_heads="
                         f"{kv_heads} (every KV group keeps as many query heads)")


def kept_layers(depth_importance, n_layers: int) -> tuple[int, ...]:
  """Indices of the ``n_layers`` layers of highest depth importance, in order (ties keep
  the earlier layer)."""
  scores = np.asarray(depth_importance)
  if not 1 <= n_layers <= scores.shape[0]:
    raise ValueError(f"target n_layers={n_layers} must be in [1, {scores.shape[0]}]")
  return tuple(int(i) for i in top_indices(scores, n_layers))


def target_config(cfg: ModelConfig, target: Target, depth_importance=None) -> ModelConfig:
  """The pruned config. Depth pruning (target.n_layers below cfg.n_layers) needs
  ``depth_importance`` (n_layers,) to choose the layers; per-layer sizes follow them."""
  _check(cfg, target)
  changes = {axis: getattr(target, axis) for axis in WIDTH_AXES
             if getattr(target, axis) is not None}
  changes["n_heads"] = _new_n_heads(cfg, target)
  if target.n_layers is not None and target.n_layers < cfg.n_layers:
    if depth_importance is None:
      raise ValueError(f"target n_layers={target.n_layers} < {cfg.n_layers}: depth pruning "
                       "needs depth_importance to choose the layers")
    if np.shape(depth_importance) != (cfg.n_layers,):
      raise ValueError(f"depth_importance has shape {np.shape(depth_importance)}, want one "
                       f"score per layer ({cfg.n_layers},)")
    kept = kept_layers(depth_importance, target.n_layers)
    nth = lambda i: cfg.pattern[:i].count(cfg.pattern[i])
    changes["pattern"] = "".join(cfg.pattern[i] for i in kept)
    for field, char in (("layer_kv_heads", "*"), ("layer_mlp_dims", "-")):
      if getattr(cfg, field):
        changes[field] = tuple(getattr(cfg, field)[nth(i)] for i in kept
                               if cfg.pattern[i] == char)
  return cfg.replace(**changes)


def target_for_budget(cfg: ModelConfig, max_params: int,
                      axes: Sequence[str] = ("d_model", "mlp_dim", "ssm_heads")) -> Target:
  """The widest Target that shrinks ``axes`` by one common fraction (each rounded down:
  ssm_heads to a multiple of ssm_groups, n_heads of n_kv_heads) with at most
  ``max_params`` parameters (``lm.count_params``)."""
  unknown = sorted(set(axes) - set(BUDGET_AXES))
  if unknown:
    raise ValueError(f"target_for_budget axes {unknown}: want some of {BUDGET_AXES}")
  steps = {"ssm_heads": cfg.ssm_groups,
           "n_heads": math.lcm(*(_kv_heads_per_layer(cfg) or [cfg.n_kv_heads]))}

  def target_at(fraction):
    def size(axis):
      step = steps.get(axis, 1)
      return max(step, int(fraction * getattr(cfg, axis)) // step * step)
    return Target(**{axis: size(axis) for axis in axes})

  count = lambda fraction: lm.count_params(target_config(cfg, target_at(fraction)))
  if count(1.0) <= max_params:
    return target_at(1.0)
  if count(0.0) > max_params:
    raise ValueError(f"max_params={max_params} is below {count(0.0)}, the parameters left "
                     f"with {list(axes)} at their smallest")
  low, high = 0.0, 1.0
  for _ in range(40):
    mid = (low + high) / 2
    low, high = (mid, high) if count(mid) <= max_params else (low, mid)
  return target_at(low)


# --------------------------------------------------------------------------- pruning


def top_indices(scores, k: int) -> np.ndarray:
  """Indices of the k highest scores, sorted (ties keep the lower index)."""
  return np.sort(np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k])


def _top_per_group(scores, n_groups: int, k_per_group: int) -> np.ndarray:
  """The top ``k_per_group`` of each of ``n_groups`` equal, consecutive groups."""
  grouped = np.asarray(scores).reshape(n_groups, -1)
  return np.concatenate([g * grouped.shape[1] + top_indices(group, k_per_group)
                         for g, group in enumerate(grouped)])


def _layer_keep(kind: str, layer_cfg: ModelConfig, scores: dict, new_cfg: ModelConfig,
                group_aware: bool) -> dict:
  """{logical axis: kept indices} of one layer; layer_cfg and new_cfg are its source and
  pruned ``layer_config``."""
  keep = {}
  if kind == "mamba":
    if new_cfg.ssm_heads < layer_cfg.ssm_heads:
      keep["ssm_heads"] = (
          _top_per_group(scores["heads"], layer_cfg.ssm_groups,
                         new_cfg.ssm_heads // layer_cfg.ssm_groups)
          if group_aware else top_indices(scores["heads"], new_cfg.ssm_heads))
    if new_cfg.ssm_head_dim < layer_cfg.ssm_head_dim:
      keep["ssm_head_dim"] = top_indices(scores["channels"], new_cfg.ssm_head_dim)
  elif kind == "attention":
    kv_heads, group_size = layer_cfg.n_kv_heads, layer_cfg.n_heads // layer_cfg.n_kv_heads
    new_kv_heads = new_cfg.n_kv_heads
    heads_KG = np.asarray(scores["heads"]).reshape(kv_heads, group_size)
    kept_groups = top_indices(heads_KG.sum(axis=1), new_kv_heads)
    per_group = new_cfg.n_heads // new_kv_heads
    if new_kv_heads < kv_heads:
      keep["kv_heads"] = kept_groups
    if new_cfg.n_heads < layer_cfg.n_heads:
      keep["q_heads"] = np.concatenate([k * group_size + top_indices(heads_KG[k], per_group)
                                        for k in kept_groups])
  elif kind == "mlp" and new_cfg.mlp_dim < layer_cfg.mlp_dim:
    keep["mlp"] = top_indices(scores["neurons"], new_cfg.mlp_dim)
  return keep


def keep_indices(cfg: ModelConfig, scores: dict, target: Target) -> dict:
  """Which units survive: {'kept_layers': source indices of the kept layers, 'axes':
  {'embed': channels} (model-wide), 'layers': [{logical axis: kept indices}] one per
  kept layer}. Only pruned axes appear; indices are sorted numpy arrays."""
  new_cfg = target_config(cfg, target, scores["depth"])
  kept = (kept_layers(scores["depth"], target.n_layers)
          if target.n_layers is not None else tuple(range(cfg.n_layers)))
  model_axes = {}
  if new_cfg.d_model < cfg.d_model:
    model_axes["embed"] = top_indices(scores["embed"], new_cfg.d_model)
  layer_axes = [_layer_keep(cfg.layer_kinds[i], cfg.layer_config(i), scores["layers"][i],
                            new_cfg.layer_config(j), target.group_aware)
                for j, i in enumerate(kept)]
  return {"kept_layers": kept, "axes": model_axes, "layers": layer_axes}


def _slice(x, spec: P.ParamSpec, keep: dict):
  for dim, axis in enumerate(spec.axes):
    if axis in keep:
      x = jnp.take(x, keep[axis], axis=dim)
  return x


def prune(params: dict, cfg: ModelConfig, scores: dict, target: Target
          ) -> tuple[dict, ModelConfig]:
  """Slices ``params`` to ``target`` keeping the units ``scores`` (from ``importance``)
  rank highest. Returns (pruned params, pruned config)."""
  new_cfg = target_config(cfg, target, scores["depth"])
  keep = keep_indices(cfg, scores, target)
  specs = lm.param_specs(cfg)
  pruned = {name: _slice(params[name], specs[name], keep["axes"])
            for name in params if name != "layers"}
  pruned["layers"] = [
      jax.tree.map(lambda spec, x, k=layer_keep: _slice(x, spec, {**keep["axes"], **k}),
                   specs["layers"][i], params["layers"][i], is_leaf=P.is_spec)
      for i, layer_keep in zip(keep["kept_layers"], keep["layers"])]
  return pruned, new_cfg
