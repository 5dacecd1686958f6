"""The one driver under every loop: config → checks → mesh, state, batches → jitted steps,
with checkpoints, evaluation, logs and a record of the run.

``config.loop`` picks the loop (``train/loops.py``); what differs between loops (state
type, extra weights, step, batch source) is the loop's, everything here is shared:

  check(config)   every check that needs no data and no compilation: the loop's config
                  sections, every number's range, the model, the mesh and batch split
  build(...)      the parts a compile needs (context, abstract state and shardings, the
                  pure step): used by ``run`` and by ``train/aot.py``
  run(...)        opens the data and the workdir, restores the newest intact checkpoint
                  (exact resume: state, data iterator and host samplers) or initialises,
                  then steps, logging, evaluating and checkpointing.

Failures end the run with one clear line (``train/main.py``) and an intact workdir:
a non-finite loss or gradient norm stops before that state is saved; SIGTERM saves at
the next step boundary and exits cleanly; any error waits for the save in flight.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from data import span_corruption
from data import tokenizer as tokenizer_lib
from model import generate as generate_lib
from model import lm
from model import partitioning
from model.config import ModelConfig
from train import checkpoint as checkpoint_lib
from train import config as config_lib
from train import evaluate as evaluate_lib
from train import generation
from train import loops
from train import metrics as metrics_lib
from train import optimizer as optimizer_lib
from train import sharding
from train import state as state_lib
from train import workdir as workdir_lib
from train import xla_flags
from train.errors import NonFiniteError, Preempted, WorkdirError
from train.loops import Context

# The metrics the non-finite guard checks after every step (param_norm: of the new state),
# on device; the host reads its record when it logs, evaluates or saves.
GUARDED_METRICS = ("loss", "grad_norm", "param_norm")


# ----------------------------------------------------------------------------- checks


def loop_name(config: ml_collections.ConfigDict) -> str:
  return config.get("loop", "pretrain")


def check(config: ml_collections.ConfigDict, num_devices: int
          ) -> tuple[loops.Loop, ModelConfig]:
  """Every check that needs no data and no compilation; (loop, model config)."""
  if not isinstance(config, ml_collections.ConfigDict):
    raise config_lib.ConfigError(f"the config file's get_config() returned a "
                                 f"{type(config).__name__}, not an ml_collections.ConfigDict")
  loop = loops.get(loop_name(config))
  config_lib.check_sections(config, loop_name(config), loop.sections, loop.optional_sections)
  config_lib.check_ranges(config, {**config_lib.RANGES, **loop.ranges})
  model_cfg = loops.model_config(config)
  train = config.train
  optimizer_lib.learning_rate_schedule(config.optimizer, train.steps)
  mesh = sharding.abstract_mesh(config.mesh, num_devices)
  rules = config.mesh.logical_axis_rules
  sharding.param_shardings(model_cfg, mesh, rules)  # every logical axis has a rule
  batch_ways = sharding.batch_parallelism(mesh, rules)
  if train.global_batch_size % (batch_ways * train.grad_accum_steps):
    raise config_lib.ConfigError(
        f"train.global_batch_size={train.global_batch_size} must be a multiple of the "
        f"batch sharding ({batch_ways} ways) times train.grad_accum_steps="
        f"{train.grad_accum_steps}")
  init = config.get("init_checkpoint", "")
  if init and not os.path.isdir(init):
    where = "" if os.path.isabs(init) else f" in {os.getcwd()}"
    raise FileNotFoundError(f"init_checkpoint={init}: no such directory{where}; train that "
                            "run first or pass --config.init_checkpoint=<a run's workdir or a "
                            "Hugging Face directory>")
  return loop, model_cfg


# ------------------------------------------------------------------------------ build


@dataclasses.dataclass(frozen=True)
class Built:
  """What a compile needs: the context, the loop and its step, the state's shapes and
  shardings. Nothing here holds data or device memory."""
  loop: loops.Loop
  ctx: Context
  extra_weights: dict[str, loops.ExtraWeights]
  abstract_state: Any
  state_shardings: Any
  step: loops.StepFn

  @property
  def abstract_state_with_shardings(self):
    return sharding.with_shardings(self.abstract_state, self.state_shardings)

  def batch_shardings(self, abstract_batch: dict) -> dict:
    return {name: self.ctx.row_sharding(len(x.shape)) for name, x in abstract_batch.items()}

  def jit_step(self, abstract_batch: dict):
    """The step jitted with shardings on the run's mesh (``partitioning.jit``); the
    state is donated (updated in place)."""
    return partitioning.jit(
        self.step, self.ctx.mesh, self.ctx.rules,
        in_shardings=(self.state_shardings, self.batch_shardings(abstract_batch)),
        out_shardings=(self.state_shardings, sharding.replicated(self.ctx.mesh)),
        donate_argnums=0)


def make_state(state_type: type, params, optimizer, rng, extra: dict[str, Any]):
  """The loop's state around ``params``; an extra set given as None copies them."""
  extra = {name: jax.tree.map(jnp.copy, params) if value is None else value
           for name, value in extra.items()}
  return state_lib.create(state_type, params, optimizer, rng, **extra)


def build(config: ml_collections.ConfigDict, mesh, tokenizer: tokenizer_lib.Tokenizer,
          workdir: str = "") -> Built:
  """The loop's context, step and state layout on ``mesh`` (a Mesh or AbstractMesh);
  ``workdir``: the run's ('' ahead of time)."""
  loop, model_cfg = check(config, mesh.size)
  optimizer, schedule = optimizer_lib.make_optimizer(config.optimizer, config.train.steps)
  ctx = Context(config=config, model_cfg=model_cfg, tokenizer=tokenizer, mesh=mesh,
                optimizer=optimizer, schedule=schedule, workdir=workdir)
  extra_weights = loop.extra_weights(ctx)
  abstract_extra = {name: lm.abstract_params(w.model_cfg) for name, w in extra_weights.items()}
  abstract = jax.eval_shape(
      lambda params, extra: make_state(loop.state_type, params, optimizer,
                                       jax.random.PRNGKey(0), extra),
      lm.abstract_params(model_cfg), abstract_extra)
  state_shardings = state_lib.state_shardings(
      abstract, ctx.param_shardings(), optimizer, mesh,
      **{name: ctx.param_shardings(w.model_cfg) for name, w in extra_weights.items()})
  return Built(loop=loop, ctx=ctx, extra_weights=extra_weights, abstract_state=abstract,
               state_shardings=state_shardings, step=loop.make_step(ctx))


def load_tokenizer(config: ml_collections.ConfigDict, model_cfg: ModelConfig):
  tokenizer = tokenizer_lib.load_tokenizer(config.data.tokenizer_path)
  config_lib.check_vocabulary(f"data.tokenizer_path={config.data.tokenizer_path}",
                              tokenizer.vocab_size, "model.vocab_size", model_cfg.vocab_size)
  spans = config.data.get("span_corruption")
  if spans is not None and spans.enabled:
    sentinels = span_corruption.sentinel_ids(tokenizer, spans.num_sentinels, spans.sentinels)
    config_lib.check_vocabulary(f"data.span_corruption.sentinels={spans.sentinels!r}",
                                max(sentinels) + 1, "model.vocab_size", model_cfg.vocab_size)
  return tokenizer


# -------------------------------------------------------------------------------- run


def initial_state(built: Built, report: Callable[[str], None]):
  """Fresh state: extras per the loop, then the weights the loop derives from them
  (``Loop.derived_model``), else those of ``init_checkpoint``, else random ones."""
  config, ctx = built.ctx.config, built.ctx
  shardings = built.state_shardings
  seed = config.train.seed
  once = xla_flags.run_once_options()   # each program here runs once: a shorter compile
  extra = {}
  for index, (name, weights) in enumerate(built.extra_weights.items()):
    extra_shardings = getattr(shardings, name)
    if weights.source == "copy":
      extra[name] = None
    elif weights.source:
      extra[name], _ = checkpoint_lib.load_params(weights.source, weights.model_cfg,
                                                  extra_shardings, report=report)
    else:
      extra[name] = jax.jit(functools.partial(lm.init, cfg=weights.model_cfg),
                            out_shardings=extra_shardings,
                            compiler_options=once)(jax.random.PRNGKey(seed + 1 + index))
  derived = built.loop.derived_model(config)
  if derived:
    params = derived.make_params(ctx, extra, report)
  elif config.init_checkpoint:
    params, _ = checkpoint_lib.load_params(config.init_checkpoint, ctx.model_cfg,
                                           shardings.params, report=report)
  else:
    params = jax.jit(functools.partial(lm.init, cfg=ctx.model_cfg),
                     out_shardings=shardings.params,
                     compiler_options=once)(jax.random.PRNGKey(seed))
  make = functools.partial(make_state, built.loop.state_type, optimizer=ctx.optimizer)
  return jax.jit(lambda p, r, e: make(p, rng=r, extra=e), out_shardings=shardings,
                 compiler_options=once)(params, jax.random.PRNGKey(seed), extra)


def _check_fresh_start(directory: workdir_lib.Workdir, checkpoints: str) -> None:
  """WorkdirError if a run that has no checkpoint to resume from would drop a record of
  an earlier one: ``metrics.jsonl`` records (a fresh start rewrites the logs from step
  0) or damaged checkpoints moved aside."""
  logged = metrics_lib.read_records(directory.path("metrics.jsonl"))
  damaged = sorted(name for name in os.listdir(checkpoints)
                   if name.endswith(checkpoint_lib.DAMAGED_SUFFIX))
  held = []
  if logged:
    held.append(f"metrics.jsonl records up to step {logged[-1].get('step')}")
  if damaged:
    held.append(f"damaged checkpoints {', '.join(damaged)} in {checkpoints}")
  if held:
    raise WorkdirError(
        f"workdir {directory.root} holds {' and '.join(held)} but no checkpoint to resume "
        "from; a fresh start would drop that record. To start over deliberately use a new "
        "--workdir, or remove metrics.jsonl, eval.jsonl and the damaged checkpoints")


class _FiniteGuard(NamedTuple):
  """The non-finite guard's record, kept on device so that no step waits for the host:
  the steps done, the first of them with a guarded metric not finite (0: none yet) and
  that step's guarded metrics."""
  steps: Any
  first_bad_step: Any
  bad_metrics: dict[str, Any]


def _start_guard(step: int, mesh) -> _FiniteGuard:
  """The guard of a run whose next step is ``step + 1``, on ``mesh`` as the metrics are."""
  return jax.device_put(_FiniteGuard(np.int32(step), np.int32(0),
                                     {name: np.float32(0) for name in GUARDED_METRICS}),
                        sharding.replicated(mesh))


@jax.jit
def _after_step(guard: _FiniteGuard, metrics: dict) -> _FiniteGuard:
  """``guard`` after one more step with ``metrics`` (a metric it lacks counts as finite)."""
  steps = guard.steps + 1
  now = {name: jnp.asarray(metrics.get(name, 0.0), jnp.float32) for name in GUARDED_METRICS}
  first_bad = (guard.first_bad_step == 0) & ~jnp.all(jnp.isfinite(jnp.stack(list(now.values()))))
  return _FiniteGuard(steps, jnp.where(first_bad, steps, guard.first_bad_step),
                      {name: jnp.where(first_bad, now[name], guard.bad_metrics[name])
                       for name in GUARDED_METRICS})


def _guard(guard: _FiniteGuard, last_saved: Optional[int], directory: str) -> None:
  """Raises NonFiniteError naming the first step whose guarded metrics were not all
  finite; waits for the steps ``guard`` has seen."""
  guard = jax.device_get(guard)
  if not guard.first_bad_step:
    return
  name = next(name for name in GUARDED_METRICS if not np.isfinite(guard.bad_metrics[name]))
  kept = (f"the last checkpoint is step {last_saved} in {directory}"
          if last_saved else "no checkpoint was written")
  raise NonFiniteError(f"step {int(guard.first_bad_step)}: {name} is "
                       f"{float(guard.bad_metrics[name])}; the run stopped without saving "
                       f"this state ({kept}); lower optimizer.learning_rate or check the data")


class _StepLog:
  """Writes the logged steps' metrics, read from the device late: once the next step is
  queued, or at a sync point (evaluation, save), after the guard passed them."""

  def __init__(self, logger: metrics_lib.MetricsLogger, throughput: metrics_lib.Throughput,
               latest: dict):
    self.latest = latest          # the last record written (the summary's 'train')
    self._logger, self._throughput = logger, throughput
    self._pending = None

  def add(self, step: int, metrics: dict, guard: _FiniteGuard, progress: dict) -> None:
    """Logs ``step`` (its device ``metrics`` and ``guard`` after it) at the next flush."""
    self._pending = (step, metrics, guard, progress)

  def flush(self, last_saved: Optional[int], directory: str) -> None:
    """Writes the pending step's record, if any; waits for that step."""
    if self._pending is None:
      return
    step, metrics, guard, progress = self._pending
    self._pending = None
    metrics, guard = jax.device_get((metrics, guard))
    _guard(guard, last_saved, directory)
    self.latest = {**metrics, **self._throughput.measure(step), **progress}
    self._logger.write(step, self.latest)

  def sync(self, guard: _FiniteGuard, last_saved: Optional[int], directory: str) -> None:
    """Flushes, then checks every step ``guard`` has seen: before evaluating or saving."""
    self.flush(last_saved, directory)
    _guard(guard, last_saved, directory)


def _interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


class _Signals:
  """The run's signal handling, for its steps.

  SIGTERM becomes a flag read at the next step boundary (single-process runs;
  multi-process jobs use jax's preemption sync point through orbax). SIGINT (Ctrl-C)
  raises KeyboardInterrupt wherever the main thread is, as Python's default handler does,
  but from a handler asyncio leaves alone: with the default one, an interrupt that
  arrives while orbax runs ``asyncio.run`` on the main thread only cancels orbax's task,
  and the run went on when the task finished anyway.
  """

  def __init__(self):
    self.sigterm = False
    self._previous = {}

  def __enter__(self):
    if jax.process_count() == 1:
      self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._flag_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
      self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupt)
    return self

  def _flag_sigterm(self, signum, frame):
    del signum, frame
    self.sigterm = True

  def __exit__(self, *exc):
    for number, handler in self._previous.items():
      signal.signal(number, handler)


# The record of the changes made to a run's config.json.
CONFIG_HISTORY = "config_history.jsonl"


def config_record(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The run config as ``config.json`` records it (which adds the resolved model)."""
  return json.loads(config.to_json_best_effort())


def recorded_changes(config: ml_collections.ConfigDict, workdir: str
                     ) -> dict[str, tuple[Any, Any]]:
  """The fields in which ``config`` differs from the run ``workdir/config.json`` records,
  {field: (recorded, given)} (``config_lib.changed_fields``); {} if none is recorded."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      recorded = json.load(f)
  except ValueError as e:  # invalid JSON or UTF-8
    raise ValueError(f"{path}: not a run's config ({e}); use another workdir") from None
  recorded = {k: v for k, v in recorded.items()
              if k not in ("model_resolved", "num_params")}
  return config_lib.changed_fields(recorded, config_record(config))


def check_changes(changes: dict[str, tuple[Any, Any]], workdir: str,
                  allow_changes: bool) -> None:
  """ConfigError naming the ``changes`` to the recorded run that change its trajectory
  (``config_lib.trajectory_changes``), unless ``allow_changes``."""
  refused = config_lib.trajectory_changes(changes)
  if refused and not allow_changes:
    raise config_lib.ConfigError(
        f"{os.path.join(workdir, 'config.json')} records a run with other settings: "
        f"{config_lib.describe_changes(refused)}; going on with them would change its "
        "trajectory. Use a new --workdir, or pass --allow_config_changes "
        f"(driver.run(..., allow_changes=True)) to go on, recorded in {CONFIG_HISTORY}")


def record_changes(directory: workdir_lib.Workdir, step: int,
                   changes: dict[str, tuple[Any, Any]]) -> None:
  """Appends the ``changes`` a run starting at ``step`` made to its recorded config to
  CONFIG_HISTORY, so that ``config.json`` can be rewritten and nothing recorded is lost."""
  if not changes:
    return
  record = {"step": step, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "changes": {field: {"from": old, "to": new}
                        for field, (old, new) in changes.items()}}
  with open(directory.path(CONFIG_HISTORY), "a", encoding="utf-8") as f:
    f.write(json.dumps(record) + "\n")


def finished_summary(config: ml_collections.ConfigDict, workdir: str
                     ) -> Optional[dict[str, Any]]:
  """The summary of ``config``'s run in ``workdir`` if it finished: ``config.json``
  records this config (``recorded_changes``), and ``summary.json`` and a checkpoint are
  at ``train.steps``; else None."""
  directory = workdir_lib.Workdir(workdir)
  steps = config.train.steps
  config_path, summary_path = directory.path("config.json"), directory.path("summary.json")
  if not (os.path.exists(config_path) and os.path.exists(summary_path)
          and os.path.isdir(directory.path("checkpoints", str(steps)))):
    return None
  if recorded_changes(config, workdir):
    return None
  with open(summary_path, encoding="utf-8") as f:
    summary = json.load(f)
  return summary if summary.get("step") == steps else None


def run(config: ml_collections.ConfigDict, workdir: str, *, allow_changes: bool = False
        ) -> dict[str, Any]:
  """Runs ``config.loop`` to ``train.steps`` steps in ``workdir`` (resuming if it has
  checkpoints); returns the summary also written to ``workdir/summary.json``, with the
  final state under 'state'. Rerun with the same config after it finished
  (``finished_summary``), it does nothing and returns that summary (no 'state').

  A config that differs from the run ``workdir`` records in a field that decides the
  trajectory (all but ``config_lib.FREE_ON_RESUME``; ``train.steps`` may grow) is
  refused unless ``allow_changes``; every change goes on record in CONFIG_HISTORY.

  Raises ConfigError / ValueError / FileNotFoundError for bad input (before anything is
  written), WorkdirError, CheckpointMismatchError, NonFiniteError (a non-finite step or
  evaluation figure), CheckpointIOError (a checkpoint that cannot be written or read);
  Preempted after a SIGTERM save; Interrupted (Ctrl-C) once the save in flight ended,
  naming the newest checkpoint.
  """
  started = time.time()
  primary = jax.process_index() == 0
  report = (lambda message: print(message, flush=True)) if primary else (lambda message: None)
  name = loop_name(config)
  _, model_cfg = check(config, jax.device_count())
  changes = recorded_changes(config, workdir)
  check_changes(changes, workdir, allow_changes)
  finished = finished_summary(config, workdir)
  if finished is not None:
    report(f"{name}: finished already (step {config.train.steps} of {config.train.steps}); "
           f"its summary is {os.path.join(os.path.abspath(workdir), 'summary.json')}; a "
           "larger --config.train.steps trains on")
    return finished
  tokenizer = load_tokenizer(config, model_cfg)
  built = build(config, sharding.make_mesh(config.mesh), tokenizer, os.path.abspath(workdir))
  ctx = built.ctx
  batches = built.loop.make_batches(ctx)
  evaluator = evaluate_lib.Evaluator.create(ctx)
  abstract_batch = built.loop.abstract_batch(ctx)
  num_rows = next(iter(abstract_batch.values())).shape[0]

  directory = workdir_lib.Workdir(workdir)
  if primary:
    directory.open()
  checkpointer = checkpoint_lib.Checkpointer(
      directory.path("checkpoints"), every_steps=config.checkpoint.every_steps,
      max_to_keep=config.checkpoint.max_to_keep, async_save=config.checkpoint.async_save)
  logger = None
  try:
    if checkpointer.all_steps():
      state, start_step = checkpointer.restore(built.abstract_state_with_shardings, batches,
                                               loop=name, report=report)
      origin = f"resuming at step {start_step}"
    else:
      _check_fresh_start(directory, checkpointer.directory)
      state, start_step = initial_state(built, report), 0
      derived = built.loop.derived_model(config)
      origin = f"from {derived.origin if derived else config.init_checkpoint or 'scratch'}"
    params_count = lm.count_params(model_cfg)
    if primary:
      for kind in ("metrics", "eval"):
        metrics_lib.keep_records_up_to(directory.path(f"{kind}.jsonl"), start_step)
      record_changes(directory, start_step, changes)
      workdir_lib.write_json(directory.path("config.json"), {
          **config_record(config),
          "model_resolved": dataclasses.asdict(model_cfg), "num_params": params_count})
    report(f"{name}: {params_count:,} parameters, mesh {dict(ctx.mesh.shape)}, "
           f"{sharding.bytes_per_device(built.abstract_state, built.state_shardings):,} "
           f"state bytes per device, {origin}")
    logger = metrics_lib.MetricsLogger(directory.root, total_steps=config.train.steps,
                                       start_step=start_step, primary=primary)
    train_step = built.jit_step(abstract_batch)
    throughput = metrics_lib.Throughput(
        tokens_per_step=config.train.global_batch_size * config.train.seq_len,
        flops_per_token=lm.flops_per_token(model_cfg, config.train.seq_len),
        num_devices=ctx.mesh.size, device_kind=jax.devices()[0].device_kind)
    last_saved = checkpointer.latest_step()
    logged = metrics_lib.read_records(directory.path("metrics.jsonl")) if primary else []
    step_log, eval_metrics = _StepLog(logger, throughput, logged[-1] if logged else {}), {}
    guard = _start_guard(start_step, ctx.mesh)
    with _Signals() as signals:
      for step in range(start_step, config.train.steps):
        batch = ctx.to_global(batches(state, step), num_rows)
        state, step_metrics = train_step(state, batch)
        guard = _after_step(guard, step_metrics)
        done = step + 1
        step_log.flush(last_saved, checkpointer.directory)   # the step before, while this runs
        if (done == start_step + 1 or done % config.train.log_every == 0
            or done == config.train.steps):
          step_log.add(done, step_metrics, guard, batches.progress())
        if config.eval.every_steps and done % config.eval.every_steps == 0:
          step_log.sync(guard, last_saved, checkpointer.directory)
          eval_metrics = evaluator(state.params, done)
          logger.write(done, eval_metrics, kind="eval")
        preempted = signals.sigterm or checkpointer.reached_preemption(done)
        if preempted or done == config.train.steps or checkpointer.is_due(done):
          step_log.sync(guard, last_saved, checkpointer.directory)   # never save a NaN
        if checkpointer.save(done, state, batches, loop=name,
                             force=done == config.train.steps or preempted):
          last_saved = done
        if preempted:
          raise Preempted(f"preempted: saved step {done} in {checkpointer.directory}; rerun "
                          "the same command to resume")
    every = config.eval.every_steps
    evaluated_last_step = eval_metrics and every and config.train.steps % every == 0
    if not evaluated_last_step and (evaluator.text or evaluator.records):
      eval_metrics = evaluator(state.params, config.train.steps)
      logger.write(config.train.steps, eval_metrics, kind="eval")
    samples = sample_continuations(ctx, state.params, config.sample,
                                   built.loop.prompt_format(ctx))
    for prompt, continuation in samples:
      report(f"sample: {prompt!r} → {continuation!r}")
    summary = {"loop": name, "step": int(state.step), "num_params": params_count,
               "train": step_log.latest, "eval": eval_metrics,
               "samples": [{"prompt": p, "continuation": c} for p, c in samples],
               "wall_time_s": time.time() - started}
    if primary:
      workdir_lib.write_json(directory.path("summary.json"), metrics_lib.plain(summary))
    summary["state"] = state
    return summary
  except KeyboardInterrupt:
    raise checkpointer.interrupted() from None
  finally:
    try:
      checkpointer.close()
    finally:
      if logger is not None:
        logger.close()
      directory.close()


def sample_continuations(ctx: Context, params, section, prompt_format: loops.PromptFormat
                         ) -> list[tuple[str, str]]:
  """Continuations of ``section.prompts`` (greedy at temperature 0), each prompt
  rendered by ``prompt_format`` (the loop's, e.g. a chat user turn) and stopped at its
  stop tokens; (prompt as written, continuation) pairs. A collective; every process gets
  all of them."""
  prompts = list(section.prompts)
  if not prompts:
    return []
  sampling = generate_lib.SamplingConfig(
      max_new_tokens=section.max_new_tokens, temperature=section.temperature,
      pad_id=ctx.tokenizer.pad_id, stop_tokens=prompt_format.stop_tokens(ctx.tokenizer))
  prompt_ids = [prompt_format.prompt_ids({"question": p}, ctx.tokenizer) for p in prompts]
  rows = generation.generate_rows(ctx, params, prompt_ids, jax.random.PRNGKey(section.seed),
                                  sampling=sampling, all_rows=True)
  texts = [ctx.tokenizer.decode(ids.tolist()) for ids in rows.completions()]
  return list(zip(prompts, texts))
