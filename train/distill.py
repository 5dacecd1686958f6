"""Knowledge distillation: the teacher's forward pass runs inside the student's jitted step.

Token-level (word-level) distillation on packed LM batches (``data.packing`` rows):

    loss = (1 − α)·D(teacher ‖ student) + α·CE(student, targets),   α = hard_label_weight

with D a registered divergence over the vocabulary at every loss position, logits
divided by ``temperature`` (τ) and the divergence scaled by τ² (Hinton et al.):
  forward_kl   KL(p_T ‖ p_S) = Σ_v p_T (log p_T − log p_S)          (mean-seeking)
  reverse_kl   KL(p_S ‖ p_T) = Σ_v p_S (log p_S − log p_T)          (mode-seeking)
  top_k_kl     KL(p̃_T ‖ p_S) over the teacher's k most likely tokens, p̃_T the teacher
               renormalised on them (what a stored top-k logit cache allows); k = vocab
               gives forward_kl exactly.
Teacher and student may differ in family and size; they must share the vocabulary.

Sequence-level distillation (Kim & Rush, arXiv 1606.07947): the teacher samples
completions of prompts (``model.generate``) and the student trains on them
(``sequence_batch``), usually with α = 1 (pure hard labels on the teacher's tokens).

The loop (``LOOP``, ``loop='distill'``): the state carries the teacher's weights
(``DistillState.teacher_params``, from ``teacher.checkpoint``: a run's workdir or a
Hugging Face directory). Config sections: ``teacher`` (model, checkpoint) and
``distill`` (mode 'logits' on the data pipeline's rows or 'sequence' on teacher
samples of ``prompts_path`` questions; divergence, top_k, temperature,
hard_label_weight, max_new_tokens, sample_temperature, thinking), and optionally
``prune``: the student is then the teacher pruned to a target shape (``train/prune.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from data import chat
from data import prompts as prompts_lib
from data import sources
from model import generate as generate_lib
from model import lm
from model.config import ModelConfig
from train import config as config_lib
from train import generation
from train import loss as loss_lib
from train import pretrain
from train import prune
from train import step as step_lib
from train.loops import Context, DerivedModel, ExtraWeights, Loop, StepSeededBatches
from train.registry import Registry
from train.state import TrainState

DIVERGENCES = Registry("distillation divergence")


@DIVERGENCES.register("forward_kl")
def forward_kl(student_logits: jax.Array, teacher_logits: jax.Array, top_k: int = 0
               ) -> jax.Array:
  """KL(p_T ‖ p_S) per position. logits (... v) → (...)."""
  del top_k
  teacher_log_p = jax.nn.log_softmax(teacher_logits, axis=-1)
  student_log_p = jax.nn.log_softmax(student_logits, axis=-1)
  return jnp.sum(jnp.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)


@DIVERGENCES.register("reverse_kl")
def reverse_kl(student_logits: jax.Array, teacher_logits: jax.Array, top_k: int = 0
               ) -> jax.Array:
  """KL(p_S ‖ p_T) per position: forward KL with the roles swapped."""
  return forward_kl(teacher_logits, student_logits, top_k)


@DIVERGENCES.register("top_k_kl")
def top_k_kl(student_logits: jax.Array, teacher_logits: jax.Array, top_k: int = 0
             ) -> jax.Array:
  """KL(p̃_T ‖ p_S) over the teacher's top-k tokens (p̃_T renormalised on them)."""
  if top_k <= 0:
    raise ValueError(f"top_k_kl needs top_k >= 1, got {top_k}")
  top_logits_K, top_ids_K = jax.lax.top_k(teacher_logits, top_k)
  teacher_log_p_K = jax.nn.log_softmax(top_logits_K, axis=-1)
  student_log_p_K = jnp.take_along_axis(jax.nn.log_softmax(student_logits, axis=-1),
                                        top_ids_K, axis=-1)
  return jnp.sum(jnp.exp(teacher_log_p_K) * (teacher_log_p_K - student_log_p_K), axis=-1)


@dataclasses.dataclass(frozen=True)
class DistillConfig:
  """divergence: a name in DIVERGENCES; top_k: for top_k_kl; temperature: τ;
  hard_label_weight: α of the cross-entropy on the data's own targets."""
  divergence: str = "forward_kl"
  top_k: int = 0
  temperature: float = 1.0
  hard_label_weight: float = 0.0

  def __post_init__(self):
    DIVERGENCES.get(self.divergence)
    if self.divergence == "top_k_kl" and self.top_k < 1:
      raise ValueError("DistillConfig: divergence 'top_k_kl' needs top_k >= 1")
    if not 0.0 <= self.hard_label_weight <= 1.0:
      raise ValueError(f"DistillConfig.hard_label_weight={self.hard_label_weight}: "
                       "must be in [0, 1]")
    if self.temperature <= 0:
      raise ValueError(f"DistillConfig.temperature={self.temperature}: must be > 0")


def check_compatible(student_cfg: ModelConfig, teacher_cfg: ModelConfig) -> None:
  if student_cfg.vocab_size != teacher_cfg.vocab_size:
    raise ValueError(f"teacher vocab_size={teacher_cfg.vocab_size} != student "
                     f"vocab_size={student_cfg.vocab_size}: distillation compares "
                     "distributions over the same vocabulary")


def make_distill_loss(teacher_params, student_cfg: ModelConfig, teacher_cfg: ModelConfig,
                      config: DistillConfig):
  """loss_fn(params, batch, rng) over packed rows; the teacher runs without gradient.

  aux: 'distill' (the divergence, token mean), 'cross_entropy', 'accuracy', 'weight'.
  """
  check_compatible(student_cfg, teacher_cfg)
  divergence = DIVERGENCES.get(config.divergence)
  tau = config.temperature

  def loss_fn(params, batch, rng):
    del rng
    inputs = dict(positions=batch["positions"], segment_ids=batch["segment_ids"])
    student_BLV, _ = lm.forward(params, batch["tokens"], student_cfg, **inputs)
    teacher_BLV, _ = lm.forward(teacher_params, batch["tokens"], teacher_cfg, **inputs)
    teacher_BLV = jax.lax.stop_gradient(teacher_BLV)
    per_token_BL = tau ** 2 * divergence(student_BLV / tau, teacher_BLV / tau, config.top_k)
    mask_BL = batch["loss_mask"]
    weight = jnp.sum(mask_BL)
    distill = jnp.sum(per_token_BL * mask_BL) / jnp.maximum(weight, 1.0)
    ce, ce_aux = loss_lib.cross_entropy(student_BLV, batch["targets"], mask_BL)
    alpha = config.hard_label_weight
    aux = {"distill": distill, "cross_entropy": ce, "accuracy": ce_aux["accuracy"],
           "weight": weight}
    return (1.0 - alpha) * distill + alpha * ce, aux

  return loss_fn


def make_distill_step(student_cfg: ModelConfig, teacher_cfg: ModelConfig, optimizer,
                      config: DistillConfig, *, grad_accum_steps: int = 1,
                      learning_rate_fn: Optional = None):
  """``step(state: DistillState, batch) -> (state, metrics)``; the teacher's weights are
  read from the state (an argument of the jitted step, never a captured constant)."""
  check_compatible(student_cfg, teacher_cfg)

  def step(state: DistillState, batch: dict):
    loss_fn = make_distill_loss(state.teacher_params, student_cfg, teacher_cfg, config)
    return step_lib.make_train_step(loss_fn, optimizer, grad_accum_steps=grad_accum_steps,
                                    learning_rate_fn=learning_rate_fn)(state, batch)

  return step


def sequence_batch(prompt_BP, prompt_mask_BP, tokens_BN, mask_BN, pad_id: int) -> dict:
  """Packed-row features (``data.packing.ROW_FEATURES``) of left-padded prompts followed
  by sampled tokens (``mask_BN`` 1 on them), the loss on the samples only. (b, p + n)."""
  prompt_mask_BP = jnp.asarray(prompt_mask_BP, jnp.int32)
  mask_BN = jnp.asarray(mask_BN, jnp.int32)
  tokens_BL = jnp.concatenate([jnp.asarray(prompt_BP, jnp.int32),
                               jnp.asarray(tokens_BN, jnp.int32)], axis=1)
  segment_ids_BL = jnp.concatenate([prompt_mask_BP, mask_BN], axis=1)
  is_sample_BL = jnp.concatenate([jnp.zeros_like(prompt_mask_BP), mask_BN], axis=1)
  loss_mask_BL = jnp.pad(is_sample_BL[:, 1:], ((0, 0), (0, 1))).astype(jnp.float32)
  targets_BL = jnp.where(loss_mask_BL > 0, jnp.roll(tokens_BL, -1, axis=1), pad_id)
  return {"tokens": tokens_BL, "targets": targets_BL.astype(jnp.int32),
          "segment_ids": segment_ids_BL,
          "positions": generate_lib.prompt_positions(segment_ids_BL),
          "loss_mask": loss_mask_BL}


# ------------------------------------------------------------------------------ the loop


@flax.struct.dataclass
class DistillState(TrainState):
  teacher_params: Any = None


MODES = ("logits", "sequence")


def teacher_config(ctx: Context) -> ModelConfig:
  return config_lib.model_config(ctx.config.teacher.model)


def distill_config(ctx: Context) -> DistillConfig:
  d = ctx.config.distill
  return DistillConfig(divergence=d.divergence, top_k=d.top_k, temperature=d.temperature,
                       hard_label_weight=d.hard_label_weight)


def make_step(ctx: Context):
  train = ctx.config.train
  return make_distill_step(ctx.model_cfg, teacher_config(ctx), ctx.optimizer,
                           distill_config(ctx), grad_accum_steps=train.grad_accum_steps,
                           learning_rate_fn=ctx.schedule)


class TeacherSamples(StepSeededBatches):
  """Sequence-level batches: each step the teacher samples answers to prompts drawn by
  a step-seeded generator (so a resume sees the same prompts and samples)."""

  def __init__(self, ctx: Context, prompts: list[list[int]]):
    self._ctx = ctx
    self._prompts = prompts
    d = ctx.config.distill
    self._prompt_len = ctx.config.train.seq_len - d.max_new_tokens
    self._sampling = generate_lib.SamplingConfig(
        max_new_tokens=d.max_new_tokens, temperature=d.sample_temperature,
        stop_tokens=chat.stop_token_ids(ctx.tokenizer), pad_id=ctx.tokenizer.pad_id)
    self._teacher_cfg = teacher_config(ctx)

  def __call__(self, state: DistillState, step: int) -> dict[str, np.ndarray]:
    seed = self._ctx.config.train.seed
    chosen = np.random.default_rng([seed, step]).choice(
        len(self._prompts), self._ctx.config.train.global_batch_size)
    rows = generation.generate_rows(
        self._ctx, state.teacher_params, [self._prompts[i] for i in chosen],
        jax.random.fold_in(jax.random.PRNGKey(seed), step), sampling=self._sampling,
        model_cfg=self._teacher_cfg, width=self._prompt_len)
    batch = sequence_batch(rows.prompt, rows.prompt_mask, rows.tokens, rows.mask,
                           self._ctx.tokenizer.pad_id)
    return {name: np.asarray(value) for name, value in batch.items()}


def make_batches(ctx: Context):
  d = ctx.config.distill
  if d.mode not in MODES:
    raise config_lib.ConfigError(f"distill.mode={d.mode!r}: want one of {MODES}")
  if d.mode == "logits":
    return pretrain.make_batches(ctx)
  prompt_len = ctx.config.train.seq_len - d.max_new_tokens
  if prompt_len < 1:
    raise config_lib.ConfigError(f"distill.max_new_tokens={d.max_new_tokens} leaves no room "
                                 f"for a prompt in train.seq_len={ctx.config.train.seq_len}")
  prompts = []
  for where, record in sources.read_located_records(d.prompts_path):
    if "question" not in record:
      raise ValueError(f"{where}: missing field 'question'")
    ids = prompts_lib.prompt_ids(record, ctx.tokenizer, template="chat", thinking=d.thinking)
    if len(ids) <= prompt_len:
      prompts.append(ids)
  if not prompts:
    raise config_lib.ConfigError(
        f"no prompt of distill.prompts_path={d.prompts_path} fits {prompt_len} tokens "
        "(train.seq_len - distill.max_new_tokens)")
  return TeacherSamples(ctx, prompts)


def pruned_student(config) -> Optional[DerivedModel]:
  """With a ``prune`` section the student is the teacher pruned to its target, scored
  on the run's data when the run starts (``train/prune.py``); else None."""
  if prune.SECTION not in config:
    return None
  return DerivedModel(
      model_cfg=prune.student_config(config),
      origin=f"the teacher {config.teacher.checkpoint or '(random)'} pruned",
      make_params=lambda ctx, extra, report: prune.pruned_student(
          ctx, extra["teacher_params"], report))


def extra_weights(ctx: Context) -> dict[str, ExtraWeights]:
  teacher = teacher_config(ctx)
  check_compatible(ctx.model_cfg, teacher)
  return {"teacher_params": ExtraWeights(teacher, source=ctx.config.teacher.checkpoint)}


LOOP = Loop(
    make_step=make_step, make_batches=make_batches, abstract_batch=pretrain.abstract_lm_batch,
    state_type=DistillState, extra_weights=extra_weights, sections=("distill", "teacher"),
    optional_sections=(prune.SECTION,), derived_model=pruned_student,
    ranges={"distill.top_k": config_lib.NON_NEGATIVE_INT,
            "distill.temperature": config_lib.POSITIVE,
            "distill.hard_label_weight": config_lib.FRACTION,
            "distill.max_new_tokens": config_lib.POSITIVE_INT,
            "distill.sample_temperature": config_lib.NON_NEGATIVE, **prune.RANGES})
