r"""Puzzle: a budgeted search for a heterogeneous model distilled from a parent, one
candidate block per layer (Puzzle, arXiv 2411.19146; Llama-Nemotron, arXiv 2505.00949).

    params, cfg, report = search(parent_params, parent_cfg, batches, Budget(max_params=N))
    params, cfg = uniform_baseline(parent_params, parent_cfg, batches, budget)

1. Candidates per layer and their weights from the parent's (``model/puzzle.py``): fewer
   KV heads by mean-pooling, narrower MLPs keeping the neurons of highest activation
   importance (``model/pruning.py``, Minitron), 'L' linear layers by least squares on the
   calibration data, removed layers; Mamba layers stay as they are.
2. Blockwise local distillation (BLD): the parent runs once over the calibration batches,
   layer by layer; every candidate of layer i reads the parent's input x to layer i and
   is scored against the parent's output y of that layer by

       error = Σ ||ŷ − y||² / Σ ||y||²      (sums over the valid tokens of every batch)

   the squared error the candidate injects into the residual stream relative to the
   stream itself (0 for the parent's own layer, ||y − x||² / ||y||² for a removed one),
   so errors of different layers add up on one scale (the final RMSNorm sees the stream
   only up to its size). With ``bld_steps`` > 0 each candidate that is not the parent's
   layer first trains on that objective (Adam, one calibration batch a step, in turn);
   the weights with the lower error, trained or initial, are kept. The last
   ``held_out_batches`` batches, when given, only score: the others fit (neuron
   importance, least squares, BLD steps).
3. The choice: one candidate per layer minimising Σ error subject to the budget, a
   multiple-choice knapsack solved exactly by dynamic programming over a discretised
   budget (``choose``).
4. The searched model: the chosen candidates assembled into a heterogeneous ModelConfig
   (pattern, layer_kv_heads, layer_mlp_dims) with their (BLD-trained) weights.

Command: search a run's model and write a directory that ``init_checkpoint`` accepts
(``checkpoints/0`` with the parameters, ``config.json``: the run's config with the
searched model section, ``puzzle.json``: the report):

  python -m train.puzzle --teacher=runs/<name> --max_params=N \
      [--max_kv_bytes_per_token=B instead] [--calibration_batches=K] [--bld_steps=S] \
      --output=<dir>
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from absl import flags

from data import pipeline
from data import tokenizer as tokenizer_lib
from model import layers
from model import lm
from model import pruning
from model import puzzle as blocks
from model.config import ModelConfig
from model.puzzle import Budget, Candidate
from train import checkpoint as checkpoint_lib
from train import cli
from train import config as run_config
from train import export
from train import workdir as workdir_lib


# ------------------------------------------------------------------------ calibration


def calibration_rows(batches: Iterable[dict]) -> dict:
  """The batches' 'tokens', 'positions' and 'segment_ids' stacked (k b l); positions
  default to 0..l-1, segment ids to all ones. ValueError when there are none or their
  shapes differ."""
  rows = []
  for batch in batches:
    tokens = np.asarray(batch["tokens"], np.int32)
    b, l = tokens.shape
    rows.append({
        "tokens": tokens,
        "positions": np.asarray(batch.get("positions", np.broadcast_to(np.arange(l), (b, l))),
                                np.int32),
        "segment_ids": np.asarray(batch.get("segment_ids", np.ones((b, l))), np.int32)})
  if not rows:
    raise ValueError("no calibration batches: the search scores candidates on the "
                     "parent's activations, give it at least one batch")
  shapes = sorted({row["tokens"].shape for row in rows})
  if len(shapes) > 1:
    raise ValueError(f"calibration batches of different shapes {shapes}: give equal ones")
  if not any(row["segment_ids"].any() for row in rows):
    raise ValueError("the calibration batches hold no valid token (every segment id is 0)")
  return {name: jnp.asarray(np.stack([row[name] for row in rows])) for name in rows[0]}


@functools.partial(jax.jit, static_argnames="cfg")
def _neuron_stats(params, rows, cfg: ModelConfig):
  per_batch = jax.lax.map(lambda row: pruning.activation_stats(params, row, cfg), rows)
  return jax.tree.map(lambda a: a.sum(axis=0), per_batch)


def neuron_importance(params, cfg: ModelConfig, rows: dict) -> list:
  """Per layer the MLP neurons' activation importance (Minitron's, ``model/pruning.py``)
  over the calibration rows (from ``calibration_rows``); None for the other layers."""
  if "-" not in cfg.pattern:
    return [None] * cfg.n_layers
  scores = pruning.importance(_neuron_stats(params, rows, cfg))
  return [s.get("neurons") for s in scores["layers"]]


# ------------------------------------------------------------------------------- BLD


@functools.partial(jax.jit, static_argnames=("candidate", "layer_cfg"))
def _outputs(candidate: Candidate, p, x_KBLD, rows, layer_cfg: ModelConfig):
  """The candidate's layer on every calibration batch (k b l d)."""
  return jax.lax.map(lambda a: blocks.apply_candidate(
      candidate, p, a[0], layer_cfg, a[1], a[2]), (x_KBLD, rows["positions"],
                                                   rows["segment_ids"]))


def _squared_errors(candidate: Candidate, p, x_BLD, y_BLD, positions_BL, segment_ids_BL,
                    layer_cfg: ModelConfig):
  """(Σ ||ŷ − y||², Σ ||y||²) over one batch's valid tokens, in fp32."""
  valid_BL = (segment_ids_BL > 0).astype(jnp.float32)
  out_BLD = blocks.apply_candidate(candidate, p, x_BLD, layer_cfg, positions_BL,
                                   segment_ids_BL)
  y32_BLD = y_BLD.astype(jnp.float32)
  error_BL = jnp.sum(jnp.square(out_BLD.astype(jnp.float32) - y32_BLD), axis=-1)
  return jnp.sum(error_BL * valid_BL), jnp.sum(jnp.sum(jnp.square(y32_BLD), -1) * valid_BL)


@functools.partial(jax.jit, static_argnames=("candidate", "layer_cfg"))
def bld_error(candidate: Candidate, p, x_KBLD, y_KBLD, rows, layer_cfg: ModelConfig):
  """Σ ||ŷ − y||² / Σ ||y||² over every calibration batch: ŷ the candidate's output on the
  parent's layer input x, y the parent layer's output. p: None for a removed layer."""
  errors_K, norms_K = jax.lax.map(
      lambda a: _squared_errors(candidate, p, *a, layer_cfg),
      (x_KBLD, y_KBLD, rows["positions"], rows["segment_ids"]))
  return errors_K.sum() / jnp.maximum(norms_K.sum(), 1e-30)


@functools.partial(jax.jit, static_argnames=("candidate", "layer_cfg"))
def bld_train(candidate: Candidate, p, x_KBLD, y_KBLD, rows, layer_cfg: ModelConfig,
              steps, learning_rate):
  """``p`` after ``steps`` Adam steps on the BLD error, step t on calibration batch
  t mod k."""
  optimizer = optax.adam(learning_rate)

  def loss(p, k):
    error, norm = _squared_errors(candidate, p, x_KBLD[k], y_KBLD[k], rows["positions"][k],
                                  rows["segment_ids"][k], layer_cfg)
    return error / jnp.maximum(norm, 1e-30)

  def step(t, carry):
    p, opt_state = carry
    grads = jax.grad(loss)(p, t % x_KBLD.shape[0])
    updates, opt_state = optimizer.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state

  p, _ = jax.lax.fori_loop(0, steps, step, (p, optimizer.init(p)))
  return p


@functools.partial(jax.jit, static_argnames="eps")
def _linear_fit(norm_D, x_KBLD, y_KBLD, segment_ids_KBL, eps: float):
  """The least-squares 'L' layer of the parent mixer z = y − x on h = rms_norm(x)."""
  valid_KBL = (segment_ids_KBL > 0).astype(jnp.float32)
  h_KBLD = layers.rms_norm(x_KBLD, norm_D, eps).astype(jnp.float32)
  z_KBLD = (y_KBLD.astype(jnp.float32) - x_KBLD.astype(jnp.float32))
  hv_KBLD = h_KBLD * valid_KBL[..., None]
  gram_DD = jnp.einsum("kbld,kble->de", hv_KBLD, h_KBLD)
  cross_DD = jnp.einsum("kbld,kble->de", hv_KBLD, z_KBLD)
  return blocks.fit_linear(norm_D, gram_DD, cross_DD)


def initial_weights(candidate: Candidate, parent: Candidate, p: dict,
                    neuron_scores_F=None, fit_linear: Optional[Callable[[], dict]] = None
                    ) -> Optional[dict]:
  """The candidate's weights from the parent layer's ``p`` (None when removed):
  ``neuron_scores_F`` ranks an MLP's neurons; ``fit_linear()`` gives the 'L' layer."""
  if candidate == parent:
    return p
  if not candidate.char:
    return None
  if candidate.char == "*":
    return blocks.pool_kv_heads(p, candidate.size)
  if candidate.char == "-":
    return blocks.keep_neurons(p, pruning.top_indices(neuron_scores_F, candidate.size))
  return fit_linear()


# ---------------------------------------------------------------------------- choice


def choose(costs: Sequence[Sequence[int]], errors: Sequence[Sequence[float]],
           capacity: int, resolution: int = 4096) -> tuple[list[int], int]:
  """One candidate per layer (indices) minimising Σ errors with Σ costs <= capacity, and
  the budget unit the solution was found in.

  A multiple-choice knapsack by dynamic programming over a discretised budget: costs
  (non-negative integers) and capacity are measured in units u = g·m, g the gcd of the
  costs (exact) and m = ceil((capacity / g) / resolution); each cost is rounded up to
  whole units and the capacity down, so every solution of the discrete problem fits the
  real budget, and the discrete problem is solved exactly (O(layers × candidates ×
  resolution)). With capacity / g <= resolution (m = 1) that is the exact optimum;
  otherwise the rounding gives away at most one unit per layer, and when it leaves no
  solution m is halved until one fits (m = 1 always does). When every layer's least
  error fits, that choice is returned as it is (unit 1). Ties keep the earlier candidate.
  ValueError when even the cheapest choice is over the capacity.
  """
  if len(costs) != len(errors) or any(len(c) != len(e) or not c
                                      for c, e in zip(costs, errors)):
    raise ValueError("choose: every layer needs as many costs as errors, at least one")
  if any(cost < 0 for layer in costs for cost in layer):
    raise ValueError("choose: costs must be non-negative")
  cheapest = sum(min(layer) for layer in costs)
  if cheapest > capacity:
    raise ValueError(f"the cheapest choice costs {cheapest}, over the capacity {capacity}")
  best = [int(np.argmin(layer)) for layer in errors]      # no budget: each layer's best
  if sum(layer[k] for layer, k in zip(costs, best)) <= capacity:
    return best, 1
  g = math.gcd(*(int(cost) for layer in costs for cost in layer)) or 1
  m = max(1, -(-(capacity // g) // resolution))
  while True:
    units = [[-(-int(cost) // (g * m)) for cost in layer] for layer in costs]
    picks = _knapsack(units, errors, capacity // (g * m))
    if picks is not None:
      return picks, g * m
    m //= 2


def _knapsack(units: Sequence[Sequence[int]], errors: Sequence[Sequence[float]],
              slots: int) -> Optional[list[int]]:
  """The exact multiple-choice knapsack over integer costs ``units``; None if nothing
  fits in ``slots``."""
  best_S = np.zeros(slots + 1)              # least error of the layers so far in <= s units
  picks_NS = np.zeros((len(units), slots + 1), np.int64)
  for n, (layer_units, layer_errors) in enumerate(zip(units, errors)):
    new_S = np.full(slots + 1, np.inf)
    for k, (w, error) in enumerate(zip(layer_units, layer_errors)):
      if w > slots:
        continue
      total_S = np.full(slots + 1, np.inf)
      total_S[w:] = best_S[:slots + 1 - w] + error
      better_S = total_S < new_S
      new_S[better_S], picks_NS[n, better_S] = total_S[better_S], k
    best_S = new_S
  if not np.isfinite(best_S[slots]):
    return None
  picks, s = [], slots
  for n in range(len(units) - 1, -1, -1):
    k = int(picks_NS[n, s])
    picks.append(k)
    s -= units[n][k]
  return picks[::-1]


# ---------------------------------------------------------------------------- search


def _batches(tree, which: slice):
  return jax.tree.map(lambda a: a[which], tree)


def _layer_candidates(layer: Sequence[Candidate], p: dict, layer_cfg: ModelConfig,
                      neuron_scores_F, fit_data: tuple, score_data: tuple, bld_steps: int,
                      learning_rate: float) -> tuple[list[float], list, list[dict]]:
  """(errors, weights, report entries) of one layer's candidates, the parent's first
  (error 0 by definition): each other initialised from the parent layer's ``p`` on
  ``fit_data`` (x, y, rows), trained there for ``bld_steps``, and scored on
  ``score_data``."""
  parent = layer[0]
  fit = lambda: _linear_fit(p["norm"], fit_data[0], fit_data[1], fit_data[2]["segment_ids"],
                            layer_cfg.norm_eps)
  errors, weights, entries = [], [], []
  for candidate in layer:
    w = initial_weights(candidate, parent, p, neuron_scores_F, fit)
    if candidate == parent:        # ŷ = y: its error is 0, and it is not trained
      errors.append(0.0)
      weights.append(w)
      entries.append(_entry(candidate, layer_cfg, 0.0, 0.0))
      continue
    initial = error = float(bld_error(candidate, w, *score_data, layer_cfg))
    if bld_steps and w is not None:
      trained = bld_train(candidate, w, *fit_data, layer_cfg, bld_steps, learning_rate)
      trained_error = float(bld_error(candidate, trained, *score_data, layer_cfg))
      if trained_error < initial:
        w, error = trained, trained_error
    errors.append(error)
    weights.append(w)
    entries.append(_entry(candidate, layer_cfg, initial, error))
  return errors, weights, entries


def _entry(candidate: Candidate, layer_cfg: ModelConfig, initial_error: float,
           error: float) -> dict:
  return {"name": candidate.name, "params": blocks.candidate_params(candidate, layer_cfg),
          "kv_bytes_per_token": blocks.candidate_kv_bytes_per_token(candidate, layer_cfg),
          "initial_error": initial_error, "error": error}


def search(parent_params: dict, parent_cfg: ModelConfig, batches: Iterable[dict],
           budget: Budget, *, mlp_fractions: Sequence[float] = (0.5, 0.25),
           bld_steps: int = 20, learning_rate: float = 1e-3, held_out_batches: int = 0,
           resolution: int = 4096, log: Callable[[str], None] = lambda _: None
           ) -> tuple[dict, ModelConfig, dict]:
  """(params, cfg, report) of the model of least summed BLD error within ``budget``.

  batches: calibration batches of packed rows ('tokens', optional 'positions' and
  'segment_ids', (b l)), all of one shape. The candidates are initialised (neuron
  importance, least squares) and BLD-trained on all but the last ``held_out_batches``
  and scored on those (on all when 0). The report lists per layer the candidates with
  their costs and errors (initial and after BLD) and the choice, then the totals.
  """
  if bld_steps < 0:
    raise ValueError(f"bld_steps={bld_steps}: must be >= 0")
  candidates = [blocks.layer_candidates(parent_cfg, i, mlp_fractions)
                for i in range(parent_cfg.n_layers)]
  # Each layer's config with its own character as the pattern: the jitted functions
  # compile once per layer shape, whatever the parent's pattern.
  layer_cfgs = [parent_cfg.layer_config(i).replace(pattern=char)
                for i, char in enumerate(parent_cfg.pattern)]
  costs = [[budget.cost(c, layer_cfg) for c in layer]
           for layer, layer_cfg in zip(candidates, layer_cfgs)]
  outside, least = budget.outside_layers(parent_cfg), sum(min(layer) for layer in costs)
  if outside + least > budget.limit:
    raise ValueError(
        f"{budget.unit} budget {budget.limit} is below the smallest model the search can "
        f"make from pattern {parent_cfg.pattern!r}, {outside + least}: every layer but "
        f"the Mamba ones removed ({outside} outside the layers, {least} in Mamba layers)")
  rows = calibration_rows(batches)
  n_batches = rows["tokens"].shape[0]
  if not 0 <= held_out_batches < n_batches:
    raise ValueError(f"held_out_batches={held_out_batches}: must be in [0, {n_batches}) "
                     f"with {n_batches} calibration batches")
  fitted = slice(0, n_batches - held_out_batches)
  scored = slice(fitted.stop, None) if held_out_batches else fitted
  neuron_scores = neuron_importance(parent_params, parent_cfg, _batches(rows, fitted))

  dtype = jnp.dtype(parent_cfg.dtype)
  x_KBLD = jnp.take(parent_params["embed"], rows["tokens"], axis=0).astype(dtype)
  errors, weights, layer_reports = [], [], []
  for i, (layer, layer_cfg) in enumerate(zip(candidates, layer_cfgs)):
    p = parent_params["layers"][i]
    y_KBLD = _outputs(layer[0], p, x_KBLD, rows, layer_cfg)
    data = (x_KBLD, y_KBLD, rows)
    layer_errors, layer_weights, entries = _layer_candidates(
        layer, p, layer_cfg, neuron_scores[i], _batches(data, fitted),
        _batches(data, scored), bld_steps, learning_rate)
    if len(layer) > 1:
      log(f"layer {i} ({layer[0].name}): BLD error " + ", ".join(
          f"{entry['name']} {entry['error']:.4g}" for entry in entries))
    errors.append(layer_errors)
    weights.append(layer_weights)
    layer_reports.append({"layer": i, "parent": layer[0].name, "candidates": entries})
    x_KBLD = y_KBLD

  picks, unit = choose(costs, errors, budget.limit - outside, resolution)
  choices = [layer[k] for layer, k in zip(candidates, picks)]
  params, cfg = blocks.assemble(parent_params, parent_cfg, choices,
                                [w[k] for w, k in zip(weights, picks)])
  for layer_report, k in zip(layer_reports, picks):
    layer_report["choice"] = layer_report["candidates"][k]["name"]
  report = {
      "budget": {"unit": budget.unit, "limit": budget.limit, "discretisation_unit": unit},
      "bld": {"steps": bld_steps, "learning_rate": learning_rate,
              "calibration_batches": n_batches, "held_out_batches": held_out_batches,
              "tokens": int((rows["segment_ids"] > 0).sum())},
      "layers": layer_reports,
      "parent": _totals(parent_cfg),
      "searched": {**_totals(cfg), "error": sum(e[k] for e, k in zip(errors, picks))},
  }
  return params, cfg, report


def _totals(cfg: ModelConfig) -> dict:
  """The pattern, the KV heads of each attention and width of each MLP layer, the sizes."""
  sizes = lambda char: [blocks.parent_candidate(cfg, i).size
                        for i, c in enumerate(cfg.pattern) if c == char]
  return {"pattern": cfg.pattern, "kv_heads": sizes("*"), "mlp_dims": sizes("-"),
          "params": lm.count_params(cfg), "kv_bytes_per_token": blocks.kv_bytes_per_token(cfg)}


def uniform_baseline(parent_params: dict, parent_cfg: ModelConfig, batches: Iterable[dict],
                     budget: Budget) -> tuple[dict, ModelConfig]:
  """The uniform model of ``model.puzzle.uniform_under_budget`` sliced from the parent as
  the search slices its candidates (KV heads mean-pooled, the most important neurons):
  the baseline a searched model is compared with after equal distillation."""
  cfg = blocks.uniform_under_budget(parent_cfg, budget)
  neuron_scores = neuron_importance(parent_params, parent_cfg, calibration_rows(batches))
  choices = [blocks.parent_candidate(cfg, i) for i in range(cfg.n_layers)]
  layer_params = [initial_weights(choice, blocks.parent_candidate(parent_cfg, i), p,
                                  neuron_scores[i])
                  for i, (choice, p) in enumerate(zip(choices, parent_params["layers"]))]
  return blocks.assemble(parent_params, parent_cfg, choices, layer_params)


# --------------------------------------------------------------------------- command


def model_overrides(parent_cfg: ModelConfig, cfg: ModelConfig) -> dict:
  """The model-section fields in which ``cfg`` differs from ``parent_cfg`` (JSON values)."""
  overrides = {}
  for field in dataclasses.fields(ModelConfig):
    value = getattr(cfg, field.name)
    if value != getattr(parent_cfg, field.name):
      overrides[field.name] = list(value) if isinstance(value, tuple) else value
  return overrides


def run_batches(config, count: int, rows_per_batch: Optional[int] = None) -> list[dict]:
  """The first ``count`` batches of a run config's data pipeline (a fresh iterator of its
  seed, every row on this process; the first ``rows_per_batch`` rows of each)."""
  tokenizer = tokenizer_lib.load_tokenizer(config.data.tokenizer_path)
  iterator = pipeline.make_iterator(
      config.data, seq_len=config.train.seq_len,
      global_batch_size=config.train.global_batch_size, tokenizer=tokenizer,
      seed=config.train.seed)
  rows = slice(None, rows_per_batch)
  batches = []
  for number in range(count):
    try:
      batches.append({name: value[rows] for name, value in next(iterator).items()})
    except StopIteration:
      raise ValueError(f"the data schedule ended after {number} of {count} calibration "
                       "batches") from None
  return batches


def search_run(teacher: str, output: str, budget: Budget, *, calibration_batches: int,
               calibration_rows_per_batch: Optional[int] = None, **search_options) -> dict:
  """Searches the model of the run in workdir ``teacher`` on its data pipeline's first
  ``calibration_batches`` batches (their first ``calibration_rows_per_batch`` rows) and
  writes ``output``: ``checkpoints/0`` (the parameters, a start for ``init_checkpoint``),
  ``config.json`` (the run's config with the searched model) and ``puzzle.json`` (the
  report, which it returns)."""
  if os.path.exists(output) and os.listdir(output):
    raise ValueError(f"--output={output} exists and is not empty: choose a new directory")
  if calibration_batches < 1:
    raise ValueError(f"--calibration_batches={calibration_batches}: at least 1")
  config = export.read_run_config(teacher)
  parent_cfg = run_config.recorded_model_config(config)
  parent_params, _ = checkpoint_lib.load_params(teacher, parent_cfg, None)
  batches = run_batches(config, calibration_batches, calibration_rows_per_batch)
  params, cfg, report = search(parent_params, parent_cfg, batches, budget, log=print,
                               **search_options)
  report["teacher"] = os.path.abspath(teacher)
  report["model_overrides"] = model_overrides(parent_cfg, cfg)
  if config.model is not None:      # else the run derived its model: model_resolved says
    config.model.update(report["model_overrides"])
  os.makedirs(output, exist_ok=True)
  checkpointer = checkpoint_lib.Checkpointer(os.path.join(output, "checkpoints"),
                                             async_save=False)
  try:
    checkpointer.save(0, {"params": params}, force=True)
  finally:
    checkpointer.close()
  workdir_lib.write_json(os.path.join(output, "config.json"), {
      **json.loads(config.to_json_best_effort()),
      "model_resolved": dataclasses.asdict(cfg), "num_params": lm.count_params(cfg)})
  workdir_lib.write_json(os.path.join(output, "puzzle.json"), report)
  return report


def main(argv: list[str]) -> None:
  with cli.entry_point(argv):
    budget = Budget(max_params=_MAX_PARAMS.value,
                    max_kv_bytes_per_token=_MAX_KV_BYTES_PER_TOKEN.value)
    report = search_run(_TEACHER.value, _OUTPUT.value, budget,
                        calibration_batches=_CALIBRATION_BATCHES.value,
                        calibration_rows_per_batch=_CALIBRATION_ROWS.value,
                        bld_steps=_BLD_STEPS.value, learning_rate=_LEARNING_RATE.value,
                        held_out_batches=_HELD_OUT_BATCHES.value)
    searched, parent = report["searched"], report["parent"]
    print(f"searched {searched['pattern']!r}: {searched['params']:,} parameters "
          f"(parent {parent['params']:,}), {searched['kv_bytes_per_token']} KV bytes per "
          f"token (parent {parent['kv_bytes_per_token']}), summed BLD error "
          f"{searched['error']:.4g}; wrote {_OUTPUT.value}")
    print(f"train from it with --config.init_checkpoint={_OUTPUT.value} " + " ".join(
        f"--config.model.{field}='{value if isinstance(value, str) else json.dumps(value)}'"
        for field, value in report["model_overrides"].items()))


if __name__ == "__main__":
  _TEACHER = flags.DEFINE_string("teacher", None, "The parent: a run's workdir.")
  _OUTPUT = flags.DEFINE_string("output", None, "The directory to write (new or empty).")
  _MAX_PARAMS = flags.DEFINE_integer("max_params", None, "Parameter budget (embeddings "
                                     "included).")
  _MAX_KV_BYTES_PER_TOKEN = flags.DEFINE_integer(
      "max_kv_bytes_per_token", None, "KV-cache budget in bytes per token (instead of "
      "--max_params).")
  _CALIBRATION_BATCHES = flags.DEFINE_integer("calibration_batches", 4, "Batches of the "
                                              "run's data to score candidates on.")
  _CALIBRATION_ROWS = flags.DEFINE_integer("calibration_rows", None, "Rows of each batch "
                                           "(default: the run's global batch).")
  _BLD_STEPS = flags.DEFINE_integer("bld_steps", 20, "Local distillation steps per "
                                    "candidate.")
  _LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam's for the BLD steps.")
  _HELD_OUT_BATCHES = flags.DEFINE_integer("held_out_batches", 0, "Calibration batches "
                                           "scored on but not fitted to (0: all both).")
  flags.declare_key_flag("traceback")
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.puzzle --teacher=<run dir> --max_params=N --output=<dir>",
      required=("teacher", "output")))
