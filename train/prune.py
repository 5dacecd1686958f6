"""Prune, then distil: the student of a distillation run is its teacher pruned to a
target shape by activation importance on a calibration set (Minitron, arXiv 2407.14679;
the group-aware Mamba rules of Minitron-SSM, arXiv 2504.11409), then distilled from the
unpruned teacher with the logit KL of ``train/distill.py``.

The ``prune`` section of a distillation run config (``loop='distill'``; 0 or () keeps the
teacher's size):

  d_model, mlp_dim, ssm_heads, ssm_head_dim, n_heads, n_kv_heads
                       target widths (``model.pruning.Target``)
  n_layers             depth: keep the n layers of highest depth importance; only where
                       every choice gives one student (the teacher has one layer kind)
  layers               depth: the teacher's layers to keep, by index (for hybrids, whose
                       pattern would otherwise depend on the data)
  max_params           a parameter budget instead of widths: the widest student that
                       shrinks ``budget_axes`` by one fraction (``target_for_budget``)
  budget_axes          the widths a budget shrinks
  group_aware          rank Mamba heads within their B/C group, every group keeping as
                       many (Minitron-SSM), or globally (the baseline that ignores groups)
  calibration_batches  batches of the run's own data pipeline (train.global_batch_size x
                       train.seq_len rows, sharded like training) the importance is
                       measured on
  method               'minitron' (activation importance) or 'puzzle': a heterogeneous
                       student searched within a budget (``train/puzzle.py``, Puzzle,
                       arXiv 2411.19146): per-layer candidates scored by blockwise local
                       distillation on the calibration batches, one chosen per layer
  max_kv_bytes_per_token  'puzzle': a KV-cache budget instead of ``max_params``
  bld_steps, held_out_batches  'puzzle': local distillation steps per candidate, and the
                       last calibration batches that only score

The student's ModelConfig is a function of the run config alone (``student_config``:
teacher.model and the target), so checks, ``build`` and ``train/aot.py`` need no data
and no weights; the run config's ``model`` is left None. Scoring happens once, when a
run starts without a checkpoint (``pruned_student``, which the driver calls through
the distill loop's ``derived_model`` where it makes the starting weights): a resumed run
restores the student from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import time
from typing import Any, Callable, Optional

import jax
import ml_collections
import numpy as np

from data import pipeline
from model import lm
from model import partitioning
from model import pruning
from model.config import ModelConfig
from train import checkpoint as checkpoint_lib
from train import config as config_lib
from train import pretrain
from train import puzzle
from train import sharding
from train import step as step_lib
from train import workdir as workdir_lib
from train import xla_flags
from train.config import ConfigError
from train.loops import Context

SECTION = "prune"
METHODS = ("minitron", "puzzle")
RANGES = {f"{SECTION}.{field}": config_lib.NON_NEGATIVE_INT
          for field in (*pruning.WIDTH_AXES, "n_layers", "max_params", "calibration_batches",
                        "max_kv_bytes_per_token", "bld_steps", "held_out_batches")}
# The features of a batch the importance reads.
CALIBRATION_FEATURES = ("tokens", "positions", "segment_ids")


def section(**overrides) -> ml_collections.ConfigDict:
  """The ``prune`` section: no target (every field keeps the teacher's size) unless
  ``overrides`` give one."""
  fields = dict({axis: 0 for axis in pruning.WIDTH_AXES}, n_layers=0, layers=(),
                max_params=0, budget_axes=("d_model", "mlp_dim", "ssm_heads"),
                group_aware=True, calibration_batches=8, method="minitron",
                max_kv_bytes_per_token=0, bld_steps=20, held_out_batches=1)
  unknown = sorted(set(overrides) - set(fields))
  if unknown:
    raise ConfigError(f"prune fields {unknown} do not exist; known: {sorted(fields)}")
  return ml_collections.ConfigDict({**fields, **overrides})


def _teacher_config(config: ml_collections.ConfigDict) -> ModelConfig:
  return config_lib.model_config(config.teacher.model)


def _named(error: ValueError, prune: ml_collections.ConfigDict) -> ConfigError:
  """A ValueError of ``model.pruning`` or ``ModelConfig`` as a ConfigError naming the
  ``prune`` field it is about ('target ssm_heads=3 ...' → 'prune.ssm_heads=3: ...')."""
  match = re.match(r"(?:target |ModelConfig\.)?(\w+)=", str(error))
  field = match.group(1) if match and prune.get(match.group(1)) else ""
  named = f"prune.{field}={prune[field]!r}" if field else "prune"
  return ConfigError(f"{named}: {error}")


def _check_section(config: ml_collections.ConfigDict, teacher_cfg: ModelConfig) -> None:
  """ConfigError for what the prune section cannot do with this run, before any work."""
  prune = config[SECTION]
  if prune.method not in METHODS:
    raise ConfigError(f"prune.method={prune.method!r}: want one of {METHODS}")
  if config.get("model") is not None:
    raise ConfigError("model: a prune run's model is its teacher pruned to the target "
                      "(teacher.model, prune.*); leave the model section None")
  if config.init_checkpoint:
    raise ConfigError(f"init_checkpoint={config.init_checkpoint} and a prune section are "
                      "both set: a prune run starts from teacher.checkpoint pruned; clear "
                      "init_checkpoint")
  if not prune.calibration_batches:
    raise ConfigError("prune.calibration_batches=0: the calibration set is empty; score on "
                      "at least one batch of the run's data")
  if "M" in teacher_cfg.pattern and config.train.seq_len < teacher_cfg.chunk_size:
    raise ConfigError(
        f"train.seq_len={config.train.seq_len}: the calibration rows are shorter than a "
        f"chunk of the teacher's Mamba scan (teacher.model.chunk_size="
        f"{teacher_cfg.chunk_size}); use rows of at least a chunk")
  widths = [axis for axis in pruning.WIDTH_AXES if prune[axis]]
  if prune.method == "puzzle":
    _check_puzzle(config, widths)
    return
  if prune.max_kv_bytes_per_token:
    raise ConfigError(f"prune.max_kv_bytes_per_token={prune.max_kv_bytes_per_token}: a "
                      "KV-cache budget is the 'puzzle' method's; set prune.method='puzzle' "
                      "or give prune.max_params")
  if prune.max_params and widths:
    raise ConfigError(f"prune.max_params={prune.max_params} and prune.{widths[0]}="
                      f"{prune[widths[0]]} are both set: give a parameter budget or widths")
  unknown = sorted(set(prune.budget_axes) - set(pruning.BUDGET_AXES))
  if unknown:
    raise ConfigError(f"prune.budget_axes={tuple(prune.budget_axes)}: {unknown} cannot be "
                      f"budgeted; want some of {pruning.BUDGET_AXES}")
  layers = tuple(prune.layers)
  if layers:
    if list(layers) != sorted(set(layers)) or not 0 <= layers[0] <= layers[-1] < len(
        teacher_cfg.pattern):
      raise ConfigError(f"prune.layers={layers}: want increasing indices of the teacher's "
                        f"{len(teacher_cfg.pattern)} layers")
    if prune.n_layers not in (0, len(layers)):
      raise ConfigError(f"prune.n_layers={prune.n_layers} and prune.layers={layers} "
                        "disagree: give one of them")
  elif 0 < prune.n_layers < len(teacher_cfg.pattern) and (
      len(set(teacher_cfg.pattern)) > 1 or not teacher_cfg.is_uniform):
    raise ConfigError(
        f"prune.n_layers={prune.n_layers}: which of the teacher's layers stay would decide "
        f"the student's pattern ({teacher_cfg.pattern!r}), so the student would depend on "
        "the calibration data; name the layers to keep in prune.layers (the calibration "
        "reports each layer's depth importance)")
  if not (widths or prune.max_params or layers or prune.n_layers):
    raise ConfigError("prune: no target; set widths (prune.d_model, prune.mlp_dim, "
                      "prune.ssm_heads, ...), prune.max_params or prune.n_layers/layers")


def _check_puzzle(config: ml_collections.ConfigDict, widths: list[str]) -> None:
  prune = config[SECTION]
  given = [name for name in ("max_params", "max_kv_bytes_per_token") if prune[name]]
  if len(given) != 1:
    raise ConfigError(f"prune.method='puzzle' searches within one budget: set exactly one "
                      f"of prune.max_params and prune.max_kv_bytes_per_token (set: "
                      f"{given or 'neither'})")
  chosen = widths + [name for name in ("n_layers", "layers") if prune[name]]
  if chosen:
    raise ConfigError(f"prune.{chosen[0]}={prune[chosen[0]]!r}: the 'puzzle' method chooses "
                      "every layer's shape itself; leave the widths and depth unset")
  if not config.teacher.checkpoint:
    raise ConfigError("prune.method='puzzle' searches the trained teacher's layers: set "
                      "teacher.checkpoint")
  if not prune.held_out_batches < prune.calibration_batches:
    raise ConfigError(f"prune.held_out_batches={prune.held_out_batches}: fewer than "
                      f"prune.calibration_batches={prune.calibration_batches}, which also "
                      "fit the candidates")


def _depth_choice(prune: ml_collections.ConfigDict, teacher_cfg: ModelConfig
                  ) -> Optional[np.ndarray]:
  """A depth importance that keeps the layers the config decides: 1 on ``prune.layers``,
  0 elsewhere; zeros where any choice of ``n_layers`` gives the same student; None
  without a depth target."""
  if prune.layers:
    return np.isin(np.arange(len(teacher_cfg.pattern)), prune.layers).astype(np.float32)
  if prune.n_layers:
    return np.zeros(len(teacher_cfg.pattern), np.float32)
  return None


def target(config: ml_collections.ConfigDict) -> pruning.Target:
  """The run's ``pruning.Target``: the section's widths, or the widths its parameter
  budget allows at the target depth."""
  prune, teacher_cfg = config[SECTION], _teacher_config(config)
  depth = pruning.Target(n_layers=len(prune.layers) or prune.n_layers or None,
                         group_aware=prune.group_aware)
  if not prune.max_params:
    return dataclasses.replace(depth, **{axis: prune[axis] or None
                                         for axis in pruning.WIDTH_AXES})
  shallow_cfg = pruning.target_config(teacher_cfg, depth, _depth_choice(prune, teacher_cfg))
  widths = pruning.target_for_budget(shallow_cfg, prune.max_params,
                                     tuple(prune.budget_axes))
  return dataclasses.replace(depth, **{axis: getattr(widths, axis)
                                       for axis in pruning.WIDTH_AXES})


def student_config(config: ml_collections.ConfigDict) -> ModelConfig:
  """The student's ModelConfig: ``teacher.model`` pruned to the run's target. A
  ConfigError names the field of anything the run cannot do (before any work)."""
  teacher_cfg = _teacher_config(config)
  _check_section(config, teacher_cfg)
  prune = config[SECTION]
  if prune.method == "puzzle":
    return searched_student(config).model_cfg
  try:
    return pruning.target_config(teacher_cfg, target(config),
                                 _depth_choice(prune, teacher_cfg))
  except ValueError as e:
    raise _named(e, prune) from None


def _calibration_step(ctx: Context, teacher_cfg: ModelConfig):
  """(``step(stats, params, batch) -> stats`` plus the batch's activation statistics,
  jitted with the teacher's and the rows' shardings; the zero stats to start from). A
  batch runs in ``train.grad_accum_steps`` micro-batches, as a training step does."""
  train = ctx.config.train
  stats_of = functools.partial(pruning.activation_stats, cfg=teacher_cfg)

  def step(total, params, batch):
    def add(total, micro_batch):
      return pruning.add_stats(total, stats_of(params, micro_batch)), None
    micro = jax.tree.map(lambda x: step_lib.split_microbatches(x, train.grad_accum_steps),
                         batch)
    return jax.lax.scan(add, total, micro)[0]

  micro_batch = {name: jax.ShapeDtypeStruct(
      (train.global_batch_size // train.grad_accum_steps, train.seq_len), np.int32)
                 for name in CALIBRATION_FEATURES}
  replicated = sharding.replicated(ctx.mesh)
  zeros = jax.tree.map(lambda s: jax.device_put(np.zeros(s.shape, s.dtype), replicated),
                       jax.eval_shape(stats_of, lm.abstract_params(teacher_cfg), micro_batch))
  rows = {name: ctx.row_sharding(2) for name in CALIBRATION_FEATURES}
  jitted = partitioning.jit(step, ctx.mesh, ctx.rules,
                            in_shardings=(replicated, ctx.param_shardings(teacher_cfg), rows),
                            out_shardings=replicated, donate_argnums=0,
                            compiler_options=xla_flags.run_once_options())   # a few batches
  return jitted, zeros


def calibrate(ctx: Context, teacher_params, teacher_cfg: ModelConfig,
              report: Callable[[str], None] = print) -> dict:
  """Importance scores (``pruning.importance``) of the teacher's units on
  ``prune.calibration_batches`` batches of the run's data pipeline, read from a fresh
  iterator (the training batches are untouched) and sharded like training batches.
  A collective: every process calls it and gets the scores. ValueError if the batches
  hold no valid token."""
  config = ctx.config
  count, batch_size = config[SECTION].calibration_batches, config.train.global_batch_size
  index, processes, rows = pretrain.process_share(ctx)
  iterator = pipeline.make_iterator(
      config.data, seq_len=config.train.seq_len, global_batch_size=batch_size,
      tokenizer=ctx.tokenizer, seed=config.train.seed, process_index=index,
      process_count=processes)
  step, stats = _calibration_step(ctx, teacher_cfg)
  report(f"prune: scoring the teacher's units on {count} calibration batches of "
         f"{batch_size} x {config.train.seq_len} tokens")
  started = time.time()
  for number in range(1, count + 1):
    try:
      batch = next(iterator)
    except StopIteration:
      raise ValueError(f"the data schedule ended after {number - 1} of "
                       f"prune.calibration_batches={count} batches") from None
    local = {name: batch[name] if rows is None else batch[name][rows]
             for name in CALIBRATION_FEATURES}
    stats = step(stats, teacher_params, ctx.to_global(local, batch_size))
    report(f"prune: calibration batch {number}/{count} ({time.time() - started:.1f} s)")
  stats = jax.device_get(stats)
  if not stats["tokens"]:
    raise ValueError(f"the calibration set is empty: the {count} batches of the run's data "
                     "(prune.calibration_batches) hold no valid token")
  scores = jax.tree.map(np.asarray, pruning.importance(stats))
  report(f"prune: scored on {int(stats['tokens']):,} tokens in {int(stats['rows']):,} rows; "
         "layers by depth importance, most important first: "
         f"{np.argsort(-scores['depth'], kind='stable').tolist()}")
  return scores


def _describe(teacher_cfg: ModelConfig, student_cfg: ModelConfig) -> str:
  changed = [f"{axis} {getattr(teacher_cfg, axis)}→{getattr(student_cfg, axis)}"
             for axis in (*pruning.WIDTH_AXES, "n_layers", "pattern", "layer_kv_heads",
                          "layer_mlp_dims")
             if getattr(teacher_cfg, axis) != getattr(student_cfg, axis)]
  return (f"{lm.count_params(teacher_cfg):,} → {lm.count_params(student_cfg):,} parameters"
          f" ({', '.join(changed)})")


@dataclasses.dataclass(frozen=True)
class Searched:
  """A Puzzle search's student: its config, its weights (host arrays) and the report."""
  model_cfg: ModelConfig
  params: Any
  report: dict


_SEARCHES: dict[str, Searched] = {}


def searched_student(config: ml_collections.ConfigDict,
                     report: Callable[[str], None] = print) -> Searched:
  """The 'puzzle' student of ``config``: ``puzzle.search`` of the teacher's weights on
  the first ``prune.calibration_batches`` batches of the run's data, within the budget.
  Searched once per process for the same teacher, data and prune fields."""
  key = json.dumps({name: json.loads(config[name].to_json_best_effort())
                    for name in ("teacher", "data", SECTION)}
                   | {"train": [config.train.seq_len, config.train.global_batch_size,
                                config.train.seed]}, sort_keys=True)
  if key not in _SEARCHES:
    prune, teacher_cfg = config[SECTION], _teacher_config(config)
    budget = puzzle.Budget(max_params=prune.max_params or None,
                           max_kv_bytes_per_token=prune.max_kv_bytes_per_token or None)
    teacher_params, _ = checkpoint_lib.load_params(config.teacher.checkpoint, teacher_cfg,
                                                   None, report=report)
    report(f"prune: searching the teacher's layers within {budget.unit} {budget.limit:,} "
           f"on {prune.calibration_batches} calibration batches (Puzzle)")
    started = time.time()
    params, model_cfg, search_report = puzzle.search(
        teacher_params, teacher_cfg, puzzle.run_batches(config, prune.calibration_batches),
        budget, bld_steps=prune.bld_steps, held_out_batches=prune.held_out_batches)
    found = search_report["searched"]
    report(f"prune: searched {found['pattern']!r} (KV heads {found['kv_heads']}, MLP widths "
           f"{found['mlp_dims']}) in {time.time() - started:.0f} s")
    _SEARCHES[key] = Searched(model_cfg, jax.device_get(params), search_report)
  return _SEARCHES[key]


def searched_params(ctx: Context, report: Callable[[str], None] = print) -> Any:
  """The 'puzzle' student's starting weights, placed with its shardings; the search's
  report goes to the run's ``puzzle.json``."""
  searched = searched_student(ctx.config, report)
  if ctx.workdir and jax.process_index() == 0:
    workdir_lib.write_json(os.path.join(ctx.workdir, "puzzle.json"), searched.report)
  report(f"prune: the student is the teacher's searched layers, "
         f"{_describe(_teacher_config(ctx.config), ctx.model_cfg)}")
  return jax.device_put(searched.params, ctx.param_shardings())


def pruned_student(ctx: Context, teacher_params,
                   report: Callable[[str], None] = print) -> Any:
  """The student's starting weights: the teacher's (placed with the teacher's
  shardings) scored by ``calibrate`` and pruned to the run's target, placed with the
  student's shardings (``ctx.model_cfg``, which ``student_config`` derived); with
  method 'puzzle' the searched layers' weights (``searched_params``)."""
  config = ctx.config
  if config[SECTION].method == "puzzle":
    return searched_params(ctx, report)
  teacher_cfg = _teacher_config(config)
  scores = calibrate(ctx, teacher_params, teacher_cfg, report)
  if config[SECTION].layers:   # the config's choice of layers, not the data's
    scores = {**scores, "depth": _depth_choice(config[SECTION], teacher_cfg)}
  goal = target(config)
  cut = jax.jit(lambda params: pruning.prune(params, teacher_cfg, scores, goal)[0],
                out_shardings=ctx.param_shardings())
  params = cut(teacher_params)
  report(f"prune: the student is the teacher pruned, {_describe(teacher_cfg, ctx.model_cfg)}")
  return params
