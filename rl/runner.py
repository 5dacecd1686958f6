"""The post-training driver: config → mesh, state, batches → the loop's jitted step.

One ``run(config, workdir)`` serves every loop; ``config.loop`` picks the builder that
supplies the loop's state, step and host-side batch source:

  sft      chat-templated packed batches → ``rl.sft`` step (masked LM loss)
  distill  packed LM batches (token level) or teacher samples (sequence level) →
           ``rl.distill`` step with the teacher inside
  grpo     ``rl.grpo.collect`` (sampling + rewards on the host) → ``rl.grpo`` step
  rlp      rows of ordinary text → ``rl.rlp`` step (sampling, rewards, update, EMA inside)

Weights start from ``config.init_checkpoint`` (a ``train.main`` or ``rl.main`` workdir's
checkpoints; only the parameters are read) or at random. A run resumes from
``workdir/checkpoints``. Host-side batch production (GRPO rollouts, teacher samples) is
single-process; the steps themselves are sharded by the mesh rules like pretraining.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from configs import base
from data import pipeline
from data import tokenizer as tokenizer_lib
from model import lm
from model.config import ModelConfig
from data import chat
from train import distill
from model import generate as generate_lib
from rl import grpo
from rl import policy_update
from rl import rlp
from train import sft
from rl import state as state_lib
from rl import tasks
from train import checkpoint as checkpoint_lib
from train import metrics as metrics_lib
from train import optimizer as optimizer_lib
from train import sharding
from train import step as step_lib

LOOPS = ("sft", "distill", "grpo", "rlp")


@dataclasses.dataclass
class Context:
  """What every builder needs."""
  config: ml_collections.ConfigDict
  model_cfg: ModelConfig
  mesh: Any
  rules: Any
  optimizer: Any
  schedule: Any
  tokenizer: tokenizer_lib.Tokenizer


@dataclasses.dataclass
class Loop:
  """A loop's pieces. ``second_params``: name → (params, model config) of the extra
  weights its state carries; ``next_batch(state, step)`` makes the host batch."""
  state_type: type
  second_params: dict[str, tuple[Any, ModelConfig]]
  step: Callable
  next_batch: Callable[[Any, int], dict]
  check_batch: Callable[[dict], None] = lambda batch: None


def restore_params(directory: str, model_cfg: ModelConfig, shardings) -> dict:
  """The parameters of the latest checkpoint under ``directory`` (a workdir or its
  ``checkpoints`` folder), placed with ``shardings``; the optimizer state is not read."""
  folder = os.path.join(directory, "checkpoints")
  folder = folder if os.path.isdir(folder) else directory
  manager = ocp.CheckpointManager(os.path.abspath(folder))
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no checkpoint under {directory}")
  abstract = {"params": lm.abstract_params(model_cfg)}
  restore_args = jax.tree.map(lambda _, s: ocp.ArrayRestoreArgs(sharding=s), abstract,
                              {"params": shardings})
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
      item=abstract, restore_args=restore_args, partial_restore=True)))
  return restored["state"]["params"]


def initial_params(checkpoint: str, model_cfg: ModelConfig, shardings, seed: int) -> dict:
  if checkpoint:
    return restore_params(checkpoint, model_cfg, shardings)
  return jax.jit(functools.partial(lm.init, cfg=model_cfg), out_shardings=shardings)(
      jax.random.PRNGKey(seed))


def _host(batch: dict) -> dict:
  return {name: np.asarray(value) for name, value in batch.items()}


# ------------------------------------------------------------------------- builders


def sft_records(section: ml_collections.ConfigDict) -> list[dict]:
  """'small_sums' as chat records, else the JSONL file ``section.records``."""
  if section.records == "small_sums":
    return tasks.chat_records(task_examples(section))
  return sft.read_records(section.records)


def build_sft(ctx: Context) -> Loop:
  c = ctx.config
  batches = iter(sft.packed_batches(
      sft_records(c.sft), ctx.tokenizer, seq_len=c.train.seq_len,
      batch_size=c.train.global_batch_size, toggle=c.sft.toggle, seed=c.train.seed,
      num_packing_bins=c.sft.num_packing_bins))
  step = sft.make_sft_step(ctx.model_cfg, ctx.optimizer, z_loss=c.train.z_loss,
                           grad_accum_steps=c.train.grad_accum_steps,
                           learning_rate_fn=ctx.schedule)
  return Loop(state_lib.TrainState, {}, step, lambda state, i: next(batches))


def build_distill(ctx: Context) -> Loop:
  c = ctx.config
  teacher_cfg = base.model_config(ml_collections.ConfigDict({"model": c.teacher.model}))
  distill.check_compatible(ctx.model_cfg, teacher_cfg)
  teacher_params = initial_params(
      c.teacher.checkpoint, teacher_cfg,
      sharding.param_shardings(teacher_cfg, ctx.mesh, ctx.rules), c.train.seed + 1)
  config = distill.DistillConfig(
      divergence=c.distill.divergence, top_k=c.distill.top_k,
      temperature=c.distill.temperature, hard_label_weight=c.distill.hard_label_weight)
  step = distill.make_distill_step(ctx.model_cfg, teacher_cfg, ctx.optimizer, config,
                                   grad_accum_steps=c.train.grad_accum_steps,
                                   learning_rate_fn=ctx.schedule)
  if c.distill.mode == "logits":
    data = pipeline.make_iterator(c.data, seq_len=c.train.seq_len,
                                  global_batch_size=c.train.global_batch_size,
                                  tokenizer=ctx.tokenizer, seed=c.train.seed)
    next_batch = lambda state, i: next(data)
  elif c.distill.mode == "sequence":
    prompt_len = c.train.seq_len - c.distill.max_new_tokens
    prompts = [chat.prompt_ids(r["question"], ctx.tokenizer, thinking=c.distill.thinking)
               for r in sft.read_records(c.distill.prompts_path)]
    prompts = [p for p in prompts if len(p) <= prompt_len]
    if not prompts:
      raise ValueError(f"no prompt of {c.distill.prompts_path} fits {prompt_len} tokens "
                       "(train.seq_len - distill.max_new_tokens)")
    sampling = generate_lib.SamplingConfig(
        max_new_tokens=c.distill.max_new_tokens, temperature=c.distill.sample_temperature,
        stop_tokens=(ctx.tokenizer.token_to_id(tokenizer_lib.END_OF_TURN),),
        pad_id=ctx.tokenizer.pad_id)
    rng = np.random.default_rng(c.train.seed)

    def next_batch(state, i):
      chosen = rng.choice(len(prompts), c.train.global_batch_size)
      prompt, mask = generate_lib.left_pad([prompts[j] for j in chosen],
                                           pad_id=ctx.tokenizer.pad_id, width=prompt_len)
      samples = generate_lib.generate(state.teacher_params, prompt, mask,
                                      jax.random.PRNGKey(c.train.seed * 100003 + i),
                                      model_cfg=teacher_cfg, sampling=sampling)
      return _host(distill.sequence_batch(jnp.asarray(prompt), jnp.asarray(mask), samples,
                                          ctx.tokenizer.pad_id))
  else:
    raise ValueError(f"distill.mode={c.distill.mode!r}: want 'logits' or 'sequence'")
  return Loop(state_lib.DistillState, {"teacher_params": (teacher_params, teacher_cfg)},
              step, next_batch)


def grpo_config(c: ml_collections.ConfigDict, tokenizer) -> grpo.GRPOConfig:
  g = c.grpo
  return grpo.GRPOConfig(
      sampling=generate_lib.SamplingConfig(
          max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_k=g.top_k,
          top_p=g.top_p, stop_tokens=(tokenizer.token_to_id(tokenizer_lib.END_OF_TURN),),
          pad_id=tokenizer.pad_id),
      loss=policy_update.PolicyLossConfig(
          aggregation=g.aggregation, epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high,
          kl_coef=g.kl_coef, temperature=g.temperature),
      group_size=g.group_size, max_prompt_len=g.max_prompt_len,
      advantage_estimator=g.advantage_estimator,
      rewards=tuple((name, float(weight)) for name, weight in g.rewards.items()),
      template=g.template, thinking=g.thinking)


def task_examples(section: ml_collections.ConfigDict) -> list[dict]:
  """``section.records``: 'small_sums' (the training split of ``rl.tasks.small_sums``
  with ``section.max_a``/``max_b``) or a JSONL path of question/answer(/kind) records."""
  if section.records != "small_sums":
    return [dict({"kind": "math"}, **r) for r in sft.read_records(section.records)]
  train, _ = tasks.split(tasks.small_sums(section.max_a, section.max_b), 0.2)
  return train


def build_grpo(ctx: Context) -> Loop:
  c = ctx.config
  config = grpo_config(c, ctx.tokenizer)
  examples = task_examples(c.grpo)
  rng = np.random.default_rng(c.train.seed)
  reference = {}
  if config.loss.kl_coef > 0:
    reference = {"reference_params": (None, ctx.model_cfg)}   # a copy of the start weights
  step = grpo.make_grpo_step(ctx.model_cfg, ctx.optimizer, config,
                             grad_accum_steps=c.train.grad_accum_steps,
                             learning_rate_fn=ctx.schedule)

  def next_batch(state, i):
    chosen = rng.choice(len(examples), c.grpo.prompts_per_step, replace=False)
    batch, info = grpo.collect(state.params, [examples[j] for j in chosen], ctx.tokenizer,
                               jax.random.PRNGKey(c.train.seed * 100003 + i),
                               model_cfg=ctx.model_cfg, config=config)
    if i % c.train.log_every == 0:
      print(f"  completion: {info['completions'][0]!r}", flush=True)
    return _host(batch)

  return Loop(state_lib.GRPOState, reference, step, next_batch)


def build_rlp(ctx: Context) -> Loop:
  c = ctx.config
  r = c.rlp
  config = rlp.RLPConfig(
      think_start=ctx.tokenizer.token_to_id(tokenizer_lib.THINK_START),
      think_end=ctx.tokenizer.token_to_id(tokenizer_lib.THINK_END),
      pad_id=ctx.tokenizer.pad_id, group_size=r.group_size, thought_len=r.thought_len,
      context_len=r.context_len, temperature=r.temperature, ema_decay=r.ema_decay,
      epsilon_low=r.epsilon, epsilon_high=r.epsilon, positions=r.positions)
  data = pipeline.make_iterator(c.data, seq_len=c.train.seq_len,
                                global_batch_size=c.train.global_batch_size,
                                tokenizer=ctx.tokenizer, seed=c.train.seed)
  step = rlp.make_rlp_step(ctx.model_cfg, ctx.optimizer, config,
                           learning_rate_fn=ctx.schedule)
  next_batch = lambda state, i: {key: value for key, value in next(data).items()
                                 if key in ("tokens", "segment_ids")}
  return Loop(state_lib.RLPState, {"ema_params": (None, ctx.model_cfg)}, step, next_batch,
              check_batch=lambda batch: rlp.check_batch(batch, config))


BUILDERS = {"sft": build_sft, "distill": build_distill, "grpo": build_grpo, "rlp": build_rlp}


# --------------------------------------------------------------------------- driver


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs ``config.loop`` for ``config.train.steps`` steps (resuming if possible).

  Returns {'step', 'metrics': the last logged scalars}.
  """
  if config.loop not in BUILDERS:
    raise ValueError(f"loop={config.loop!r}: want one of {LOOPS}")
  model_cfg = base.model_config(config)
  tokenizer = tokenizer_lib.load_tokenizer(config.data.tokenizer_path)
  if tokenizer.vocab_size > model_cfg.vocab_size:
    raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but model.vocab_size="
                     f"{model_cfg.vocab_size}")
  mesh = sharding.make_mesh(config.mesh)
  rules = config.mesh.logical_axis_rules
  optimizer, schedule = optimizer_lib.make_optimizer(config.optimizer, config.train.steps)
  ctx = Context(config, model_cfg, mesh, rules, optimizer, schedule, tokenizer)
  loop = BUILDERS[config.loop](ctx)

  param_shardings = sharding.param_shardings(model_cfg, mesh, rules)
  second_shardings = {name: sharding.param_shardings(cfg, mesh, rules)
                      for name, (_, cfg) in loop.second_params.items()}

  def make_state(params):
    """The loop's state around ``params``; a second set given as None copies them."""
    second = {name: (jax.tree.map(jnp.copy, params) if value is None else value)
              for name, (value, _) in loop.second_params.items()}
    return state_lib.create(loop.state_type, params, optimizer,
                            jax.random.PRNGKey(config.train.seed), **second)

  abstract = jax.eval_shape(make_state, lm.abstract_params(model_cfg))
  state_shardings = state_lib.shardings(abstract, param_shardings, optimizer, mesh,
                                        **second_shardings)
  checkpointer = checkpoint_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), every_steps=config.checkpoint.every_steps,
      max_to_keep=config.checkpoint.max_to_keep, async_save=config.checkpoint.async_save)
  if checkpointer.latest_step() is not None:
    state = checkpointer.restore(sharding.with_shardings(abstract, state_shardings))
  else:
    state = jax.device_put(make_state(initial_params(
        config.init_checkpoint, model_cfg, param_shardings, config.train.seed)),
                           state_shardings)
  batch_axes = sharding.batch_sharding(mesh, rules).spec[0]
  leaf_sharding = lambda x: jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec(batch_axes, *([None] * (np.ndim(x) - 1))))
  step = None
  logger = metrics_lib.MetricsLogger(workdir, total_steps=config.train.steps)
  if int(state.step):
    start = f"resuming at step {int(state.step)}"
  else:
    start = f"from {config.init_checkpoint or 'scratch'}"
  print(f"{config.loop}: {lm.count_params(model_cfg):,} parameters, mesh {dict(mesh.shape)}, "
        f"{start}", flush=True)
  metrics = {}
  for i in range(int(state.step), config.train.steps):
    batch = loop.next_batch(state, i)
    loop.check_batch(batch)
    batch_shardings = {name: leaf_sharding(value) for name, value in batch.items()}
    if step is None:   # jitted once, for the batch's structure (ranks differ per key)
      step = step_lib.jit_step(loop.step, state_shardings, batch_shardings,
                               sharding.replicated(mesh))
    state, step_metrics = step(state, {name: jax.make_array_from_process_local_data(
        batch_shardings[name], value) for name, value in batch.items()})
    done = i + 1
    if done % config.train.log_every == 0 or done == config.train.steps:
      metrics = jax.device_get(step_metrics)
      logger.write(done, metrics)
    checkpointer.save(done, state, force=done == config.train.steps)
  checkpointer.wait()
  checkpointer.close()
  logger.close()
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  return {"step": int(state.step), "metrics": metrics}
