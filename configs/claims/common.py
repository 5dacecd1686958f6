"""What the claim configs share: the claim model, stage run configs, the claim section.

Every stage is an ordinary run config (``configs/base.py`` and the loop's own file),
trimmed for a claim: the claim model, no samples, one checkpoint at the end, and no
evaluation of its own (``train.stages`` evaluates a stage's final weights afterwards,
with each arm's eval section and the gate's).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Optional

import ml_collections

from configs import base
from configs import distill as distill_config
from configs import grpo as grpo_config
from configs import mae as mae_config
from configs import rlp as rlp_config
from configs import sft as sft_config
from data import config as data_config
from model.config import ModelConfig
from train import config as run_config
from train import prune as prune_lib
from train import stages as stages_lib

# A 3-layer transformer (~0.7M parameters): every claim trains in minutes on a CPU.
MODEL = dict(vocab_size=1024, d_model=128, pattern="*-*-*-", n_heads=4, n_kv_heads=4,
             head_dim=32, mlp_dim=384)
# The compression claims' teacher: a Nemotron-H-style hybrid (~0.9M parameters) whose
# Mamba heads form two B/C groups, squared-ReLU MLPs and one NoPE attention layer.
HYBRID = dict(vocab_size=1024, d_model=128, pattern="M-M*-M-", n_heads=4, n_kv_heads=2,
              head_dim=32, use_rope=False, mlp_dim=384, mlp_activation="relu2",
              ssm_heads=8, ssm_head_dim=16, ssm_state=16, ssm_groups=2, chunk_size=32)

stage = stages_lib.stage
corpus = data_config.corpus_path


def _trim(config: ml_collections.ConfigDict, *, seq_len: int, batch: int,
          learning_rate: float, constant: bool, model: Mapping = MODEL
          ) -> ml_collections.ConfigDict:
  config.model = run_config.model_section("tiny", **model)
  config.train.seq_len = seq_len
  config.train.global_batch_size = batch
  config.train.log_every = 20
  config.train.z_loss = 0.0
  if constant:
    base.use_constant_learning_rate(config, learning_rate)
  else:
    config.optimizer.learning_rate = learning_rate
    config.optimizer.warmup_steps = 20
  config.checkpoint.every_steps = 100_000   # the last step is always saved
  config.checkpoint.max_to_keep = 1
  config.sample.prompts = ()
  return config


def pretrain(weights: Mapping[str, float], *, seq_len: int, batch: int,
             learning_rate: float, constant: bool = False, model: Mapping = MODEL
             ) -> ml_collections.ConfigDict:
  """Next-token training on shipped text: ``weights`` {corpus file: weight} (.txt files
  are blank-line separated documents, .jsonl files their 'text')."""
  config = _trim(base.get_config(), seq_len=seq_len, batch=batch,
                 learning_rate=learning_rate, constant=constant, model=model)
  _mixture(config, weights)
  return config


def _mixture(config: ml_collections.ConfigDict, weights: Mapping[str, float]) -> None:
  """The data of ``config``: ``weights`` {corpus file: weight} (.txt files are blank-line
  separated documents, .jsonl files their 'text')."""
  sources = {}
  for name in weights:
    format_ = "jsonl" if name.endswith(".jsonl") else "text"
    sources[name.split(".")[0]] = data_config.source_config(format_, corpus(name))
  config.data.sources = sources
  config.data.stages = (data_config.stage_config(
      "main", {name.split(".")[0]: w for name, w in weights.items()}),)


def distill(weights: Mapping[str, float], *, teacher: Mapping, seq_len: int, batch: int,
            learning_rate: float, prune: Optional[Mapping] = None,
            student: Optional[ModelConfig] = None) -> ml_collections.ConfigDict:
  """Logit distillation (forward KL) from ``teacher`` (model fields; its checkpoint is
  a stage's, ``stage(..., teacher=...)``) on the mixture ``weights``. The student is
  the teacher pruned to ``prune`` (``train/prune.py`` fields) or, without it, a random
  ``student``. A constant learning rate."""
  config = _trim(distill_config.get_config(), seq_len=seq_len, batch=batch,
                 learning_rate=learning_rate, constant=True, model=teacher)
  config.teacher.model = config.model
  if prune is not None:
    config.model = None
    config.prune = prune_lib.section(**prune)
  else:
    config.model = run_config.model_section("tiny", **dataclasses.asdict(student))
  _mixture(config, weights)
  return config


def sft(records: str, *, seq_len: int, batch: int, learning_rate: float,
        constant: bool = True, **synthesis) -> ml_collections.ConfigDict:
  """Few-example SFT: the records' solutions verbatim (no system prompt), whole
  conversations only; a constant learning rate unless not ``constant`` (warmup, then
  cosine decay). With ``synthesis`` fields (``sft.synthesis``, train/sft.py),
  ``records`` are seed problems whose solutions the stage's starting weights sample
  and the filters keep."""
  config = _trim(sft_config.get_config(), seq_len=seq_len, batch=batch,
                 learning_rate=learning_rate, constant=constant)
  if synthesis:
    config.sft.records = ""
    config.sft.synthesis.update(dict(problems=corpus(records), **synthesis))
  else:
    config.sft.records = corpus(records)
  config.sft.toggle = "none"
  config.sft.whole_conversations = True
  return config


def rlp(text: str, *, seq_len: int, batch: int, learning_rate: float,
        **rlp_fields) -> ml_collections.ConfigDict:
  config = _trim(rlp_config.get_config(), seq_len=seq_len, batch=batch,
                 learning_rate=learning_rate, constant=True)
  config.data.sources = {"text": data_config.source_config("jsonl", corpus(text))}
  config.data.stages = (data_config.stage_config("main", {"text": 1.0}),)
  config.rlp.update(rlp_fields)
  return config


def grpo(records: str, *, seq_len: int, batch: int, learning_rate: float,
         **grpo_fields) -> ml_collections.ConfigDict:
  config = _trim(grpo_config.get_config(), seq_len=seq_len, batch=batch,
                 learning_rate=learning_rate, constant=True)
  config.grpo.records = corpus(records)
  config.grpo.drop_solved_at = 0.75          # Llama-Nemotron's filter
  config.grpo.skip_uniform_groups = True
  for field, value in grpo_fields.items():   # set, not merged: rewards={...} replaces
    config.grpo[field] = value               # the default's {'math': 1.0}
  return config


def mae(*, seq_len: int, batch: int, learning_rate: float,
        **mae_fields) -> ml_collections.ConfigDict:
  """Multi-Agent Evolve (``rl/mae.py``) at a constant learning rate; ``batch`` must be the
  rows of the ``mae_fields``' layout (``configs.mae.batch_rows``)."""
  config = _trim(mae_config.get_config(), seq_len=seq_len, batch=batch,
                 learning_rate=learning_rate, constant=True)
  config.mae.update(mae_fields)
  return config


def claim(name: str, *, seeds: Sequence[int], fast_seeds: Sequence[int], metric: str,
          comparisons: Sequence[tuple[str, str]], stages: Mapping[str, ml_collections.ConfigDict],
          arms: Mapping[str, str], eval_section: ml_collections.ConfigDict,
          gate: ml_collections.ConfigDict, chance: Optional[float],
          arm_eval: Mapping[str, Mapping] | None = None,
          arm_metric: Mapping[str, str] | None = None) -> ml_collections.ConfigDict:
  """A claim config (``train/claims.py``): ``gate`` (``gate(...)``) the skill its arms
  start from, ``chance`` the metric of guessing (None: an open answer), ``arm_metric``
  {arm: the figure compared for it, instead of ``metric``}."""
  return ml_collections.ConfigDict(dict(
      loop="claim", fast=False, cache_dir="",
      claim=dict(name=name, seeds=tuple(seeds), fast_seeds=tuple(fast_seeds), metric=metric,
                 comparisons=tuple(tuple(c) for c in comparisons), gate=gate,
                 chance=chance),
      stages=dict(stages), arms=dict(arms), eval=eval_section,
      arm_eval={arm: dict(fields) for arm, fields in (arm_eval or {}).items()},
      arm_metric=dict(arm_metric or {})))


def gate(*, stages: Sequence[str], metric: str, threshold: float, skill: str,
         eval_section: Optional[ml_collections.ConfigDict] = None
         ) -> ml_collections.ConfigDict:
  """The competence gate of a claim: ``metric`` of every stage in ``stages``, evaluated
  with ``eval_section`` (None: the claim's), must reach ``threshold`` in every seed, or
  the claim is untestable; ``skill`` says in one line what is measured."""
  return ml_collections.ConfigDict(dict(stages=tuple(stages), metric=metric,
                                        threshold=float(threshold), skill=skill,
                                        eval=eval_section))


def eval_section(records: str, **fields) -> ml_collections.ConfigDict:
  """Accuracy on records of the corpus (all of them unless ``max_records``; no held-out
  text loss)."""
  return base.eval_section(**{"text_files": {}, "records": corpus(records),
                              "max_records": 0, **fields})


# ------------------------------------------------------------------ compression claims

# The compression claims' teacher and students read one mixture: synthetic English and
# five-digit sums worked out line by line.
COMPRESSION_DATA = {"english.txt": 0.5, "chain_sums.txt": 0.5}
# The teacher's held-out loss on english_valid.txt it must reach: far below a unigram
# model's (5.45 nats: token frequencies of english.txt) and the untrained 6.93 (ln 1024),
# set before any arm ran.
COMPRESSION_GATE = 1.0


def compression_teacher() -> ml_collections.ConfigDict:
  """The shared teacher stage: the HYBRID model pretrained 600 steps (fast: 200)."""
  run = pretrain(COMPRESSION_DATA, seq_len=128, batch=16, learning_rate=3e-3,
                 model=HYBRID)
  return stage(run, steps=600, fast_steps=200, shared=True)


def compression_arm(*, prune: Optional[Mapping] = None,
                    student: Optional[ModelConfig] = None) -> ml_collections.ConfigDict:
  """A student distilled from the stage 'teacher' for 100 steps (fast: 30) of 16 × 128
  tokens: the teacher pruned to ``prune`` or a random ``student``."""
  run = distill(COMPRESSION_DATA, teacher=HYBRID, seq_len=128, batch=16,
                learning_rate=1e-3, prune=prune, student=student)
  return stage(run, steps=100, fast_steps=30, teacher="teacher")


def compression_eval() -> ml_collections.ConfigDict:
  """Held-out loss on english_valid.txt; greedy pass@1 on 64 held-out sums, whose prompts
  also time decoding (``decode_tokens_per_s``)."""
  return eval_section("chain_sums_valid.jsonl", template="text", max_records=64,
                      text_files={"english": corpus("english_valid.txt")},
                      max_text_rows=64, max_new_tokens=48, batch_size=32,
                      decode_timing=True)


def compression_gate() -> ml_collections.ConfigDict:
  return gate(stages=("teacher",), metric="loss/english", threshold=COMPRESSION_GATE,
              skill="the teacher models the held-out English (loss in nats at most the "
                    "threshold)")


def student_of(prune: Mapping) -> ModelConfig:
  """The student model ``compression_arm(prune=prune)`` trains (for a random one of the
  same shape)."""
  return prune_lib.student_config(compression_arm(prune=prune).run)


def compression_claim(name: str, *, comparison: tuple[str, str],
                      students: Mapping[str, ml_collections.ConfigDict],
                      arms: Optional[Sequence[str]] = None) -> ml_collections.ConfigDict:
  """A compression claim: the shared teacher stage and ``students`` (``compression_arm``
  stages), arms on the stages ``arms`` (default: the students) compared by held-out
  English loss over 5 seeds (fast: 1), the teacher's gate."""
  return claim(
      name, seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="loss/english",
      comparisons=[comparison], stages={"teacher": compression_teacher(), **students},
      arms={arm: arm for arm in (arms or students)}, eval_section=compression_eval(),
      gate=compression_gate(), chance=math.log(1024))
