"""Defaults shared by every experiment; experiment files override what differs.

The sections are described in ``train/config.py`` (and ``data/config.py``,
``train/optimizer.py``, ``train/evaluate.py`` for theirs). ``loop`` picks the loop
(``train/loops.py``); a loop's own section (``sft``, ``grpo``, ...) is added by its
experiment file.
"""

from __future__ import annotations

import ml_collections

from data import config as data_config
from model import partitioning
from train import config as run_config

# Megatron-style tensor parallelism over heads / MLP width / vocabulary, FSDP over the
# model width, data parallelism over the batch (the model's defaults).
LOGICAL_AXIS_RULES = partitioning.DEFAULT_RULES


def eval_section(**overrides) -> ml_collections.ConfigDict:
  """Held-out loss on the shipped validation text, accuracy on its reasoning problems."""
  section = dict(
      every_steps=0, text_files={
          "english": data_config.corpus_path("english_valid.txt"),
          "reasoning": data_config.corpus_path("reasoning_valid.jsonl")},
      max_text_rows=32, records=data_config.corpus_path("reasoning_valid.jsonl"),
      max_records=32, template="text", thinking="", judge="final",
      samples=0, temperature=1.0, genselect=0, genselect_rounds=4, tool_calls=0,
      tool_timeout_s=10.0, max_new_tokens=96,
      batch_size=32, decode_timing=False, mei_records="")
  section.update(overrides)
  return ml_collections.ConfigDict(section)


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.loop = "pretrain"
  config.init_checkpoint = ""      # a run's workdir or a Hugging Face directory
  config.model = run_config.model_section("tiny")
  config.data = data_config.default_data_config()
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=3e-3, schedule="cosine", warmup_steps=20, decay_fraction=0.2,
      final_lr_fraction=0.1, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1,
      grad_clip_norm=1.0))
  config.train = ml_collections.ConfigDict(dict(
      steps=200, global_batch_size=16, seq_len=128, grad_accum_steps=1, z_loss=1e-4,
      seed=0, log_every=10, read_global_batch=False))
  # topology: the TPU slice the config is sized for (``python -m train.aot`` compiles
  # its step for it without the hardware), e.g. 'v5p:4x4x4'; '' for none.
  config.mesh = ml_collections.ConfigDict(dict(
      data=-1, fsdp=1, tensor=1, logical_axis_rules=LOGICAL_AXIS_RULES, topology=""))
  config.checkpoint = ml_collections.ConfigDict(dict(
      every_steps=100, max_to_keep=2, async_save=True))
  config.eval = eval_section()
  config.sample = ml_collections.ConfigDict(dict(
      prompts=("Once upon a time", "What is 23 + 19?\n", "Mia put the"),
      max_new_tokens=48, temperature=0.0, seed=0))
  return config


def use_constant_learning_rate(config: ml_collections.ConfigDict,
                               learning_rate: float) -> None:
  """The RL papers' optimizer: a constant learning rate, no warmup, no weight decay."""
  config.optimizer.learning_rate = learning_rate
  config.optimizer.schedule = "constant"
  config.optimizer.warmup_steps = 0
  config.optimizer.weight_decay = 0.0
