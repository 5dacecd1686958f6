"""The pretraining driver: config → mesh, state, data → jitted steps, logs, checkpoints.

The step itself is ``train.step.make_train_step`` with the LM loss; everything here is
host-side orchestration.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Optional

import jax
import ml_collections
import optax

from configs import base
from data import pipeline
from data import tokenizer as tokenizer_lib
from model import lm
from model.config import ModelConfig
from train import checkpoint as checkpoint_lib
from train import loss as loss_lib
from train import metrics as metrics_lib
from train import optimizer as optimizer_lib
from train import sample as sample_lib
from train import sharding
from train import state as state_lib
from train import step as step_lib


def check_config(config: ml_collections.ConfigDict, num_devices: int) -> ModelConfig:
  """Every check that needs no data and no compilation; returns the model config."""
  model_cfg = base.model_config(config)
  train = config.train
  for name in ("steps", "global_batch_size", "seq_len", "grad_accum_steps", "log_every"):
    if train[name] <= 0:
      raise ValueError(f"train.{name}={train[name]} must be positive")
  optimizer_lib.learning_rate_schedule(config.optimizer, train.steps)
  mesh = sharding.abstract_mesh(config.mesh, num_devices)
  rules = config.mesh.logical_axis_rules
  sharding.param_shardings(model_cfg, mesh, rules)  # every logical axis has a rule
  batch_ways = sharding.batch_parallelism(mesh, rules)
  if train.global_batch_size % (batch_ways * train.grad_accum_steps):
    raise ValueError(
        f"train.global_batch_size={train.global_batch_size} must be a multiple of the "
        f"batch sharding ({batch_ways} ways) times "
        f"train.grad_accum_steps={train.grad_accum_steps}")
  if train.global_batch_size % jax.process_count():
    raise ValueError(f"train.global_batch_size={train.global_batch_size} must be a "
                     f"multiple of the {jax.process_count()} processes")
  return model_cfg


def make_data_iterator(config: ml_collections.ConfigDict, tokenizer):
  """This process's batch iterator (the whole global batch if train.read_global_batch)."""
  whole = config.train.read_global_batch
  return pipeline.make_iterator(
      config.data, seq_len=config.train.seq_len,
      global_batch_size=config.train.global_batch_size, tokenizer=tokenizer,
      seed=config.train.seed, process_index=0 if whole else jax.process_index(),
      process_count=1 if whole else jax.process_count())


@dataclasses.dataclass
class Run:
  """A run set up and checked, its state initialised or restored, its step not compiled."""
  config: ml_collections.ConfigDict
  workdir: str
  model_cfg: ModelConfig
  tokenizer: Any
  data_iterator: Any
  mesh: jax.sharding.Mesh
  optimizer: optax.GradientTransformation
  schedule: optax.Schedule
  abstract_state: state_lib.TrainState
  state_shardings: state_lib.TrainState
  batch_sharding: jax.sharding.NamedSharding
  checkpointer: checkpoint_lib.Checkpointer
  state: state_lib.TrainState


def setup(config: ml_collections.ConfigDict, workdir: str) -> Run:
  """Checks the config, opens the data, builds the mesh, restores or initialises the state.

  Bad inputs (config values, data files, a checkpoint of another model) raise ValueError
  or FileNotFoundError naming the culprit.
  """
  model_cfg = check_config(config, jax.device_count())
  tokenizer = tokenizer_lib.load_tokenizer(config.data.tokenizer_path)
  if tokenizer.vocab_size > model_cfg.vocab_size:
    raise ValueError(f"tokenizer {config.data.tokenizer_path} has {tokenizer.vocab_size} "
                     f"ids but model.vocab_size={model_cfg.vocab_size}")
  data_iterator = make_data_iterator(config, tokenizer)

  mesh = sharding.make_mesh(config.mesh)
  rules = config.mesh.logical_axis_rules
  optimizer, schedule = optimizer_lib.make_optimizer(config.optimizer, config.train.steps)
  abstract = state_lib.abstract_state(model_cfg, optimizer)
  param_shardings = sharding.param_shardings(model_cfg, mesh, rules)
  state_shardings = state_lib.state_shardings(abstract, param_shardings, optimizer, mesh)

  checkpointer = checkpoint_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), every_steps=config.checkpoint.every_steps,
      max_to_keep=config.checkpoint.max_to_keep, async_save=config.checkpoint.async_save)
  if checkpointer.latest_step() is not None:
    state = checkpointer.restore(sharding.with_shardings(abstract, state_shardings),
                                 data_iterator)
  else:
    init = functools.partial(state_lib.init_state, cfg=model_cfg, optimizer=optimizer)
    state = jax.jit(init, out_shardings=state_shardings)(
        jax.random.PRNGKey(config.train.seed))
  return Run(config=config, workdir=workdir, model_cfg=model_cfg, tokenizer=tokenizer,
             data_iterator=data_iterator, mesh=mesh, optimizer=optimizer, schedule=schedule,
             abstract_state=abstract, state_shardings=state_shardings,
             batch_sharding=sharding.batch_sharding(mesh, rules), checkpointer=checkpointer,
             state=state)


def run(r: Run, loss_fn: Optional[loss_lib.LossFn] = None) -> dict[str, Any]:
  """Trains from ``r.state`` to ``train.steps``, checkpointing and logging, then samples.

  ``loss_fn`` replaces the next-token loss (it gets the data iterator's batches).
  Returns {'step', 'metrics' (the last logged), 'samples' [(prompt, continuation)],
  'state' (the final TrainState; ``r.state`` was donated to the first step)}.
  """
  config, primary = r.config, jax.process_index() == 0
  total_steps = config.train.steps
  to_device = (sharding.global_batch_from_full if config.train.read_global_batch
               else sharding.global_batch)
  loss_fn = loss_fn or loss_lib.make_lm_loss(r.model_cfg, config.train.z_loss)
  train_step = step_lib.jit_step(
      step_lib.make_train_step(loss_fn, r.optimizer,
                               grad_accum_steps=config.train.grad_accum_steps,
                               learning_rate_fn=r.schedule),
      r.state_shardings, r.batch_sharding, sharding.replicated(r.mesh))

  state, start_step = r.state, int(r.state.step)
  logger = metrics_lib.MetricsLogger(r.workdir, total_steps=total_steps, primary=primary)
  if primary:
    param_bytes = sharding.bytes_per_device(r.abstract_state.params, r.state_shardings.params)
    optimizer_bytes = sharding.bytes_per_device(r.abstract_state.opt_state,
                                                r.state_shardings.opt_state)
    start = f"resuming at step {start_step}" if start_step else "from scratch"
    print(f"model: {lm.count_params(r.model_cfg):,} parameters, mesh {dict(r.mesh.shape)}, "
          f"{param_bytes:,} parameter and {optimizer_bytes:,} optimizer bytes per device, "
          f"{start}", flush=True)
  throughput = metrics_lib.Throughput(
      tokens_per_step=config.train.global_batch_size * config.train.seq_len,
      flops_per_token=lm.flops_per_token(r.model_cfg, config.train.seq_len),
      num_devices=r.mesh.size, device_kind=jax.devices()[0].device_kind)

  metrics, preempted = {}, False
  for step in range(start_step, total_steps):
    batch = to_device(next(r.data_iterator), r.batch_sharding)
    state, step_metrics = train_step(state, batch)
    done = step + 1
    if done == start_step + 1 or done % config.train.log_every == 0 or done == total_steps:
      metrics = jax.device_get(step_metrics)   # waits for the step
      metrics.update(throughput.measure(done))
      logger.write(done, metrics)
    preempted = r.checkpointer.reached_preemption(done)
    r.checkpointer.save(done, state, r.data_iterator, force=done == total_steps or preempted)
    if preempted:
      break
  r.checkpointer.wait()
  logger.close()
  if preempted:
    if primary:
      print(f"preempted: saved step {done}; rerun the same command to resume", flush=True)
    r.checkpointer.close()
    return {"step": done, "metrics": metrics, "samples": []}

  samples = sample_continuations(state.params, r.model_cfg, r.tokenizer, config.sample)
  if primary:
    print("samples:", flush=True)
    for prompt, continuation in samples:
      print(f"  {prompt!r} → {continuation!r}", flush=True)
  r.checkpointer.close()
  return {"step": int(state.step), "metrics": metrics, "samples": samples, "state": state}


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """``run(setup(config, workdir))``: resumes from ``workdir/checkpoints`` if it has any."""
  return run(setup(config, workdir))


def sample_continuations(params, model_cfg: ModelConfig, tokenizer,
                         sample_config: ml_collections.ConfigDict) -> list[tuple[str, str]]:
  prompts = list(sample_config.prompts)
  continuations = sample_lib.sample(
      params, model_cfg, [tokenizer.encode(p) for p in prompts],
      max_new_tokens=sample_config.max_new_tokens, temperature=sample_config.temperature,
      seed=sample_config.seed, pad_id=tokenizer.pad_id)
  return [(p, tokenizer.decode(c)) for p, c in zip(prompts, continuations)]
