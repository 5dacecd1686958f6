"""Puzzle's block library: the candidate replacements of each layer of a parent model,
their weights initialised from the parent's, their costs under a budget, and the model
assembled from one candidate per layer (Puzzle, arXiv 2411.19146; Llama-Nemotron,
arXiv 2505.00949). The data-driven search over them is ``train/puzzle.py``.

The candidates of a parent layer (``layer_candidates``), the parent's own first:

  attention '*'   the parent; each divisor of n_heads below its KV-head count, the K and V
                  projections of each run of merged KV heads mean-pooled (Puzzle's GQA
                  init, ``pool_kv_heads``); 'L' a d × d linear layer; removed
  MLP '-'         the parent; widths ``parent × mlp_fractions`` keeping the most important
                  neurons (``keep_neurons``); 'L'; removed
  linear 'L'      the parent; removed
  Mamba 'M'       the parent only

An 'L' candidate starts as the least-squares fit of the parent mixer on calibration
inputs (``fit_linear``). A removed layer is left out of the pattern (the identity).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Optional

import einops
import jax
import jax.numpy as jnp
import numpy as np

from model import lm
from model import params as P
from model.config import LAYER_KINDS, ModelConfig


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One way to fill a parent layer: ``char`` its pattern character ('' removed) and
  ``size`` its KV heads ('*') or MLP width ('-'), 0 for the others."""
  char: str
  size: int = 0

  @property
  def name(self) -> str:
    if self.char == "*":
      return f"attention kv_heads={self.size}"
    if self.char == "-":
      return f"mlp width={self.size}"
    return LAYER_KINDS.get(self.char, "removed")


REMOVED = Candidate("")


def parent_candidate(cfg: ModelConfig, i: int) -> Candidate:
  """Layer i of ``cfg`` as it is."""
  char, layer_cfg = cfg.pattern[i], cfg.layer_config(i)
  return Candidate(char, {"*": layer_cfg.n_kv_heads, "-": layer_cfg.mlp_dim}.get(char, 0))


def layer_candidates(cfg: ModelConfig, i: int, mlp_fractions: Sequence[float] = (0.5, 0.25)
                     ) -> tuple[Candidate, ...]:
  """The candidates for layer i of the parent ``cfg``, the parent's own first, then by
  decreasing size."""
  parent = parent_candidate(cfg, i)
  if parent.char == "M":
    return (parent,)
  if parent.char == "L":
    return (parent, REMOVED)
  if parent.char == "*":
    smaller = [Candidate("*", k) for k in range(parent.size - 1, 0, -1) if cfg.n_heads % k == 0]
  else:
    for fraction in mlp_fractions:
      if not 0 < fraction < 1:
        raise ValueError(f"mlp_fractions={tuple(mlp_fractions)}: each must be in (0, 1)")
    widths = {max(1, int(parent.size * fraction)) for fraction in mlp_fractions}
    smaller = [Candidate("-", f) for f in sorted(widths - {parent.size}, reverse=True)]
  return (parent, *smaller, Candidate("L"), REMOVED)


def candidate_config(layer_cfg: ModelConfig, candidate: Candidate) -> ModelConfig:
  """The uniform layer config the candidate's layer function reads."""
  if candidate.char == "*":
    return layer_cfg.replace(n_kv_heads=candidate.size)
  if candidate.char == "-":
    return layer_cfg.replace(mlp_dim=candidate.size)
  return layer_cfg


def apply_candidate(candidate: Candidate, p, x_BLD, layer_cfg: ModelConfig, positions,
                    segment_ids):
  """The candidate's residual layer on x (b l d); a removed layer is the identity."""
  if not candidate.char:
    return x_BLD
  out_BLD, _ = lm.apply_layer(LAYER_KINDS[candidate.char], p, x_BLD,
                              candidate_config(layer_cfg, candidate), positions, segment_ids)
  return out_BLD


# ------------------------------------------------------------------------------ costs


def _count(specs) -> int:
  return sum(math.prod(s.shape) for s in jax.tree.leaves(specs, is_leaf=P.is_spec))


def candidate_params(candidate: Candidate, layer_cfg: ModelConfig) -> int:
  if not candidate.char:
    return 0
  one_layer = candidate_config(layer_cfg, candidate).replace(pattern=candidate.char)
  return _count(lm.param_specs(one_layer)["layers"])


def candidate_kv_bytes_per_token(candidate: Candidate, layer_cfg: ModelConfig) -> int:
  """Keys and values of one token in the KV cache (in the compute dtype, as
  ``lm.init_cache`` stores them); Mamba's state does not grow with the tokens."""
  if candidate.char != "*":
    return 0
  return 2 * candidate.size * layer_cfg.head_dim * jnp.dtype(layer_cfg.dtype).itemsize


@dataclasses.dataclass(frozen=True)
class Budget:
  """One limit on the searched model: its parameter count (``max_params``, embeddings
  included) or its KV-cache bytes per token over all attention layers
  (``max_kv_bytes_per_token``)."""
  max_params: Optional[int] = None
  max_kv_bytes_per_token: Optional[int] = None

  def __post_init__(self):
    given = {name: value for name, value in dataclasses.asdict(self).items()
             if value is not None}
    if len(given) != 1:
      raise ValueError(f"Budget: set exactly one of max_params and max_kv_bytes_per_token, "
                       f"got {given or 'neither'}")
    (name, value), = given.items()
    if not isinstance(value, (int, np.integer)) or value < 0:
      raise ValueError(f"Budget.{name}={value!r}: must be a non-negative integer")

  @property
  def limit(self) -> int:
    return int(self.max_params if self.max_params is not None
               else self.max_kv_bytes_per_token)

  @property
  def unit(self) -> str:
    return "params" if self.max_params is not None else "kv_bytes_per_token"

  def cost(self, candidate: Candidate, layer_cfg: ModelConfig) -> int:
    if self.max_params is not None:
      return candidate_params(candidate, layer_cfg)
    return candidate_kv_bytes_per_token(candidate, layer_cfg)

  def outside_layers(self, cfg: ModelConfig) -> int:
    """What no layer choice changes: embeddings, LM head and final norm (params)."""
    if self.max_params is None:
      return 0
    specs = lm.param_specs(cfg)
    return _count({name: spec for name, spec in specs.items() if name != "layers"})

  def of_model(self, cfg: ModelConfig) -> int:
    if self.max_params is not None:
      return lm.count_params(cfg)
    return kv_bytes_per_token(cfg)


def kv_bytes_per_token(cfg: ModelConfig) -> int:
  """The KV cache of one token over every attention layer of ``cfg``, in bytes."""
  return sum(candidate_kv_bytes_per_token(parent_candidate(cfg, i), cfg.layer_config(i))
             for i in range(cfg.n_layers))


# ------------------------------------------------------------------ initialisations


def pool_kv_heads(p: dict, n_kv_heads: int) -> dict:
  """Attention weights with each run of k / n_kv_heads consecutive KV heads merged into
  one by the mean of their K and V projections (and biases). Query head j reads KV head
  j // (h / k) before and j // (h / n_kv_heads) after: the run holding its old one."""
  pooled = dict(p)
  for name in ("k", "v"):
    pooled[name] = einops.reduce(p[name], "d (k r) e -> d k e", "mean", k=n_kv_heads)
    if f"{name}_bias" in p:
      pooled[f"{name}_bias"] = einops.reduce(p[f"{name}_bias"], "(k r) e -> k e", "mean",
                                             k=n_kv_heads)
  return pooled


def keep_neurons(p: dict, keep_F) -> dict:
  """MLP weights restricted to the neurons ``keep_F`` (indices into the parent width)."""
  kept = dict(p)
  for name in ("up", "gate"):
    if name in p:
      kept[name] = p[name][:, keep_F]
  kept["down"] = p["down"][keep_F, :]
  return kept


def fit_linear(norm_D, gram_DD, cross_DD, ridge: float = 1e-6) -> dict:
  """The 'L' layer ``{'norm', 'w'}`` whose ``w`` minimises Σ ||h w − z||² over calibration
  tokens: the normal equations (HᵀH + λ I) w = Hᵀ Z, with ``gram_DD`` = HᵀH and
  ``cross_DD`` = HᵀZ summed over tokens, h = rms_norm(x) with the parent's ``norm_D``, z
  the parent mixer's output, and λ = ridge · mean(diag HᵀH) (conditioning only)."""
  gram_DD = gram_DD.astype(jnp.float32)
  d = gram_DD.shape[0]
  damping = ridge * jnp.trace(gram_DD) / d
  w_DD = jnp.linalg.solve(gram_DD + damping * jnp.eye(d, dtype=jnp.float32),
                          cross_DD.astype(jnp.float32))
  return {"norm": norm_D, "w": w_DD.astype(norm_D.dtype)}


# ------------------------------------------------------------------------- assembly


def assemble(parent_params: dict, parent_cfg: ModelConfig, choices: Sequence[Candidate],
             layer_params: Sequence[Optional[dict]]) -> tuple[dict, ModelConfig]:
  """(params, cfg) of the model with ``choices[i]`` (weights ``layer_params[i]``, None
  when removed) in place of parent layer i; embeddings and head are the parent's. Sizes
  that are the same in every layer of a kind are the config's uniform ``n_kv_heads`` or
  ``mlp_dim``, else per-layer ``layer_kv_heads`` or ``layer_mlp_dims``."""
  if len(choices) != parent_cfg.n_layers or len(layer_params) != parent_cfg.n_layers:
    raise ValueError(f"assemble: {len(choices)} choices and {len(layer_params)} layer "
                     f"weights for a parent of {parent_cfg.n_layers} layers")
  kept = [(c, p) for c, p in zip(choices, layer_params) if c.char]
  if not kept:
    raise ValueError("the choice removes every layer; a model needs at least one: "
                     "raise the budget")
  def sizes(char, field, per_layer):
    chosen = tuple(c.size for c, _ in kept if c.char == char)
    if len(set(chosen)) > 1:
      return {per_layer: chosen}
    return {field: chosen[0] if chosen else getattr(parent_cfg, field), per_layer: ()}
  cfg = parent_cfg.replace(pattern="".join(c.char for c, _ in kept),
                           **sizes("*", "n_kv_heads", "layer_kv_heads"),
                           **sizes("-", "mlp_dim", "layer_mlp_dims"))
  return {**parent_params, "layers": [p for _, p in kept]}, cfg


def uniform_under_budget(parent_cfg: ModelConfig, budget: Budget) -> ModelConfig:
  """The parent's pattern with one KV-head count for every attention layer and one width
  for every MLP layer, the largest that fits ``budget``: the uniform baseline a searched
  model is compared with. Under a parameter budget the KV heads stay the parent's (the
  fewest over its layers) while the widest MLP fits, else the next divisor of n_heads;
  under a KV budget the MLP width stays the parent's (the narrowest) and the KV heads are
  the most that fit."""
  kv_heads = [parent_cfg.layer_config(i).n_kv_heads for i, c in enumerate(parent_cfg.pattern)
              if c == "*"]
  widths = [parent_cfg.layer_config(i).mlp_dim for i, c in enumerate(parent_cfg.pattern)
            if c == "-"]
  max_kv, max_width = min(kv_heads, default=parent_cfg.n_kv_heads), min(
      widths, default=parent_cfg.mlp_dim)
  uniform = lambda k, f: parent_cfg.replace(n_kv_heads=k, mlp_dim=f, layer_kv_heads=(),
                                            layer_mlp_dims=())
  for k in (k for k in range(max_kv, 0, -1) if parent_cfg.n_heads % k == 0):
    if budget.max_params is None:
      width = max_width
    else:
      base = budget.of_model(uniform(k, 1))
      per_width = budget.of_model(uniform(k, 2)) - base
      width = max_width if not per_width else min(
          max_width, 1 + (budget.limit - base) // per_width)
    if width >= 1 and budget.of_model(uniform(k, width)) <= budget.limit:
      return uniform(k, width)
  smallest = budget.of_model(uniform(1, 1))
  raise ValueError(f"no uniform model of pattern {parent_cfg.pattern!r} fits {budget.unit} "
                   f"<= {budget.limit}: the smallest (1 KV head, MLP width 1) takes "
                   f"{smallest}")
