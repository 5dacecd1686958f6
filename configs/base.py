"""Defaults shared by every experiment; experiment files override what differs.

Sections of a run config:
  model       ``name`` of a preset in ``model.config.NAMED`` plus one typed slot per
              ModelConfig field; None keeps the preset's value (``model_config``).
  data        see ``data/config.py``.
  optimizer   see ``train/optimizer.py``.
  train       steps, global_batch_size, seq_len, grad_accum_steps, z_loss, seed, log_every,
              read_global_batch (every process reads the whole batch and keeps its rows:
              the data then do not depend on the process count, at more input cost).
  mesh        sizes of the mesh axes data/fsdp/tensor (-1: the remaining devices) and
              ``logical_axis_rules``, logical axis name → mesh axes (see train/sharding.py).
  checkpoint  every_steps, max_to_keep, async_save.
  sample      prompts continued by the trained model at the end of a run.
"""

from __future__ import annotations

import dataclasses

import ml_collections
from ml_collections import config_dict

from data import config as data_config
from model import config as model_config_lib

# Megatron-style tensor parallelism over heads / MLP width / vocabulary, FSDP over the
# model width, data parallelism over the batch. A name listed twice is tried in order.
LOGICAL_AXIS_RULES = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("ssm_heads", "tensor"),
    ("ssm_head_dim", None),
    ("ssm_groups", "tensor"),
    ("ssm_state", None),
    ("conv_width", None),
)


def model_section(name: str, **overrides) -> ml_collections.ConfigDict:
  """``name`` of a model preset and a typed slot per ModelConfig field (None = preset)."""
  model_config_lib.named(name)  # fails early on an unknown name
  section = ml_collections.ConfigDict({"name": name})
  fields = {field.name: field for field in dataclasses.fields(model_config_lib.ModelConfig)}
  for field in fields.values():
    kind = tuple if field.default is None else type(field.default)
    section[field.name] = config_dict.placeholder(kind)
  for key, value in overrides.items():
    if key not in fields:
      raise ValueError(f"model override {key!r} is not a ModelConfig field")
    section[key] = value
  return section


def model_config(config: ml_collections.ConfigDict) -> model_config_lib.ModelConfig:
  """The frozen ModelConfig of a run config: the preset with every non-None field set."""
  section = config.model
  overrides = {key: tuple(value) if isinstance(value, list) else value
               for key, value in section.items() if key != "name" and value is not None}
  return model_config_lib.named(section.name, **overrides)


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.model = model_section("tiny")
  config.data = data_config.default_data_config()
  config.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=3e-3, schedule="cosine", warmup_steps=20, decay_fraction=0.2,
      final_lr_fraction=0.1, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1,
      grad_clip_norm=1.0))
  config.train = ml_collections.ConfigDict(dict(
      steps=200, global_batch_size=16, seq_len=128, grad_accum_steps=1, z_loss=1e-4,
      seed=0, log_every=10, read_global_batch=False))
  config.mesh = ml_collections.ConfigDict(dict(
      data=-1, fsdp=1, tensor=1, logical_axis_rules=LOGICAL_AXIS_RULES))
  config.checkpoint = ml_collections.ConfigDict(dict(
      every_steps=100, max_to_keep=2, async_save=True))
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
