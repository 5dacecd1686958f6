"""The run config: the model section, and the checks every run passes before compiling.

A run config is an ``ml_collections.ConfigDict`` (one file per experiment in
``configs/``) with these sections, read by the driver for every loop:

  loop             the loop's name in ``train.loops`` (default 'pretrain')
  init_checkpoint  weights to start from: a run's workdir or a Hugging Face directory
  model            ``name`` of a preset in ``model.config.NAMED`` plus one slot per
                   ModelConfig field; None keeps the preset's value (``model_config``)
  data             see ``data/config.py``
  optimizer        see ``train/optimizer.py``
  train            steps, global_batch_size, seq_len, grad_accum_steps, z_loss, seed,
                   log_every, read_global_batch
  mesh             mesh axis sizes and ``logical_axis_rules`` (``train/sharding.py``)
  checkpoint       every_steps, max_to_keep, async_save
  eval             see ``train/evaluate.py``
  sample           prompts continued by the trained model at the end of a run

A loop may read more sections (e.g. ``grpo``); ``check`` refuses a section no part of
the run reads, so a config cannot be run by the wrong loop and silently do something
else. Every number has a range, checked here with the field named. ``fields`` lists a
config's fields (``--print_config``). ``changed_fields`` compares a config with the one a
run recorded; a resume may change only FREE_ON_RESUME fields and grow ``train.steps``
unless told to (``train/driver.py``).

Relative paths the project documents (``configs/<name>.py``, the README's ``runs/tiny``)
work from any directory: ``find_path`` takes them from the working directory when they
are there, else from the repository.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import ml_collections
from ml_collections import config_dict

from model import config as model_config_lib

# The repository (for an installed copy: the directory holding the packages).
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON_SECTIONS = ("loop", "init_checkpoint", "model", "data", "optimizer", "train", "mesh",
                   "checkpoint", "eval", "sample")


@dataclasses.dataclass(frozen=True)
class Range:
  """Allowed values of a number: ``low``/``high`` bounds, each open or closed."""
  low: float = -math.inf
  high: float = math.inf
  low_open: bool = False
  high_open: bool = False
  integer: bool = False

  def why_not(self, value: Any) -> Optional[str]:
    """None if ``value`` is allowed, else what it must be."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      return "must be a number"
    if self.integer and not isinstance(value, int):
      return "must be an integer"
    if math.isnan(value):
      return "must not be NaN"
    too_low = value <= self.low if self.low_open else value < self.low
    too_high = value >= self.high if self.high_open else value > self.high
    if too_low or too_high:
      return f"must be in {self.describe()}"
    return None

  def describe(self) -> str:
    left = "(" if self.low_open else "["
    right = ")" if self.high_open else "]"
    return f"{left}{self.low:g}, {self.high:g}{right}"


POSITIVE_INT = Range(low=1, integer=True)
NON_NEGATIVE_INT = Range(low=0, integer=True)
POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
FRACTION = Range(low=0, high=1)
OPEN_FRACTION = Range(low=0, high=1, high_open=True)

# The common sections' numbers; loops add theirs (``train.loops.Loop.ranges``).
RANGES: dict[str, Range] = {
    "train.steps": POSITIVE_INT,
    "train.global_batch_size": POSITIVE_INT,
    "train.seq_len": Range(low=2, integer=True),
    "train.grad_accum_steps": POSITIVE_INT,
    "train.z_loss": NON_NEGATIVE,
    "train.seed": NON_NEGATIVE_INT,
    "train.log_every": POSITIVE_INT,
    "optimizer.learning_rate": NON_NEGATIVE,
    "optimizer.warmup_steps": NON_NEGATIVE_INT,
    "optimizer.decay_fraction": FRACTION,
    "optimizer.final_lr_fraction": FRACTION,
    "optimizer.b1": OPEN_FRACTION,
    "optimizer.b2": OPEN_FRACTION,
    "optimizer.eps": POSITIVE,
    "optimizer.weight_decay": NON_NEGATIVE,
    "optimizer.grad_clip_norm": NON_NEGATIVE,
    "checkpoint.every_steps": POSITIVE_INT,
    "checkpoint.max_to_keep": POSITIVE_INT,
    "eval.every_steps": NON_NEGATIVE_INT,
    "eval.batch_size": POSITIVE_INT,
    "eval.max_text_rows": NON_NEGATIVE_INT,
    "eval.max_records": NON_NEGATIVE_INT,
    "eval.samples": NON_NEGATIVE_INT,
    "eval.temperature": NON_NEGATIVE,
    "eval.genselect": NON_NEGATIVE_INT,
    "eval.genselect_rounds": POSITIVE_INT,
    "eval.tool_calls": NON_NEGATIVE_INT,
    "eval.tool_timeout_s": POSITIVE,
    "eval.max_new_tokens": POSITIVE_INT,
    "sample.max_new_tokens": POSITIVE_INT,
    "sample.temperature": NON_NEGATIVE,
}


class ConfigError(ValueError):
  """A run config that cannot run; the message names the field."""


# The fields (or sections) a resumed run may change freely: they decide what is logged,
# evaluated, sampled and saved, and how arrays are laid out over devices (a run may
# resume on another slice), not what the steps compute. Every other field decides the
# run's trajectory; ``train.steps`` may grow (the run trains on).
FREE_ON_RESUME = ("train.log_every", "checkpoint", "eval", "sample", "mesh")


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
      raise ConfigError(f"model override {key!r} is not a ModelConfig field")
    section[key] = value
  return section


def model_config(section: ml_collections.ConfigDict) -> model_config_lib.ModelConfig:
  """The frozen ModelConfig of a model section: the preset with every non-None field set."""
  overrides = {key: tuple(value) if isinstance(value, list) else value
               for key, value in section.items() if key != "name" and value is not None}
  return model_config_lib.named(section.name, **overrides)


def recorded_model_config(record: ml_collections.ConfigDict
                          ) -> model_config_lib.ModelConfig:
  """The model of a run's ``config.json``: its model section, or where the run derived
  its model (``model`` None, e.g. a pruned student) the resolved one it recorded."""
  if record.model is not None:
    return model_config(record.model)
  return model_config_lib.ModelConfig(**{
      key: tuple(value) if isinstance(value, list) else value
      for key, value in record.model_resolved.items()})


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  value = config
  for part in dotted.split("."):
    if not isinstance(value, (ml_collections.ConfigDict, Mapping)) or part not in value:
      return _MISSING
    value = value[part]
  return value


_MISSING = object()


def check_ranges(config: ml_collections.ConfigDict, ranges: Mapping[str, Range]) -> None:
  """Raises ConfigError naming the first field outside its range (absent fields pass)."""
  for dotted, allowed in ranges.items():
    value = _get(config, dotted)
    if value is _MISSING or value is None:
      continue
    if (why := allowed.why_not(value)) is not None:
      raise ConfigError(f"{dotted}={value!r} {why}")


def check_vocabulary(tokenizer: str, tokenizer_vocab: int, model: str,
                     model_vocab: int) -> None:
  """ConfigError naming both when the tokenizer (described by ``tokenizer``) has ids
  that the model's embedding (``model``: where its vocab_size is set) does not."""
  if tokenizer_vocab > model_vocab:
    raise ConfigError(
        f"{tokenizer} has {tokenizer_vocab} ids but {model}={model_vocab}: the model has "
        f"no embedding for ids {model_vocab} to {tokenizer_vocab - 1}; use the model's "
        "own tokenizer")


def check_sections(config: ml_collections.ConfigDict, loop_name: str,
                   loop_sections: Sequence[str], optional_sections: Sequence[str] = ()
                   ) -> None:
  """Every section is one the driver or the loop reads, and the loop's (but its
  optional ones) are present."""
  for section in loop_sections:
    if section not in config:
      raise ConfigError(f"loop {loop_name!r} needs a config section {section!r}")
  readers = set(COMMON_SECTIONS) | set(loop_sections) | set(optional_sections)
  for section in config:
    if section not in readers:
      raise ConfigError(
          f"config section {section!r} is not read by loop {loop_name!r} (it reads "
          f"{sorted({*loop_sections, *optional_sections}) or 'only the common sections'}); "
          "set loop= to the loop this config is for, or remove the section")


def _leaves(tree: Mapping, prefix: str = "") -> dict[str, Any]:
  """{dotted field: value} of a nested mapping (a non-empty mapping is a section)."""
  out = {}
  for name, value in tree.items():
    if isinstance(value, Mapping) and value:
      out.update(_leaves(value, f"{prefix}{name}."))
    else:
      out[f"{prefix}{name}"] = value
  return out


def changed_fields(recorded: Mapping, given: Mapping) -> dict[str, tuple[Any, Any]]:
  """{dotted field: (recorded value, given value)} for every field whose value differs
  between two configs as plain nested mappings (e.g. ``config.json``); a field only one
  of them has is None in the other, as a None placeholder means 'the default'."""
  old, new = _leaves(recorded), _leaves(given)
  return {name: (old.get(name), new.get(name)) for name in sorted(old.keys() | new.keys())
          if old.get(name) != new.get(name)}


def trajectory_changes(changes: Mapping[str, tuple[Any, Any]]
                       ) -> dict[str, tuple[Any, Any]]:
  """The ``changed_fields`` that change a resumed run's trajectory: all but those in
  FREE_ON_RESUME and a larger ``train.steps``."""
  def changes_trajectory(name: str, old: Any, new: Any) -> bool:
    if name == "train.steps":
      return not (isinstance(old, int) and isinstance(new, int) and new > old)
    return not any(name == free or name.startswith(free + ".") for free in FREE_ON_RESUME)
  return {name: (old, new) for name, (old, new) in changes.items()
          if changes_trajectory(name, old, new)}


def describe_changes(changes: Mapping[str, tuple[Any, Any]]) -> str:
  """'field old -> new, ...' with long values shortened."""
  def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
  return ", ".join(f"{name} {short(old)} -> {short(new)}"
                   for name, (old, new) in changes.items())


def fields(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """``section.field=value`` for every field of ``config``, sections flattened (what
  ``--config.<section>.<field>=<value>`` sets)."""
  lines = []
  for name, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      lines += fields(value, f"{prefix}{name}.")
    else:
      lines.append(f"{prefix}{name}={_plain(value)!r}")
  return lines


def _plain(value: Any) -> Any:
  """``value`` with the ConfigDicts in it (e.g. in a tuple of stages) as dicts."""
  if isinstance(value, ml_collections.ConfigDict):
    return value.to_dict()
  if isinstance(value, (list, tuple)):
    return type(value)(map(_plain, value))
  return value


def find_path(path: str) -> str:
  """``path`` if it is absolute or exists from the working directory; else the same
  relative path in REPOSITORY if it exists there; else ``path`` unchanged."""
  if os.path.isabs(path) or os.path.exists(path):
    return path
  in_repository = os.path.join(REPOSITORY, path)
  return in_repository if os.path.exists(in_repository) else path
