"""The loop registry: what a training loop contributes, and the context it is built in.

``config.loop`` names a loop; ``get(name)`` imports the module registered for it and
returns its ``LOOP``. A loop is a ``Loop``: its state type and the extra weights that
state carries (teacher, reference, EMA), a step builder (the pure ``step(state, batch)
-> (state, metrics)`` the driver jits with shardings), a batch source (host-side, with a
checkpointable state), the abstract batch the step takes (for ahead-of-time
compilation) and how its model is prompted (``PromptFormat``). Everything else (mesh,
shardings, state, checkpoints, logging, evaluation) is the driver's
(``train/driver.py``), written once for every loop.

A new loop is a module defining ``LOOP = Loop(...)`` plus one line in ``LOOP_MODULES``.
``train/`` finds the loops in ``rl/`` by module path, so it never imports them
statically.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Optional, Protocol

import jax
import ml_collections
import numpy as np
import optax

from data import prompts as prompts_lib
from data import tokenizer as tokenizer_lib
from model.config import ModelConfig
from train import config as config_lib
from train import sharding
from train.config import ConfigError, Range
from train.state import TrainState

LOOP_MODULES = {
    "pretrain": "train.pretrain",
    "sft": "train.sft",
    "distill": "train.distill",
    "grpo": "rl.grpo",
    "rlp": "rl.rlp",
    "mae": "rl.mae",
}

StepFn = Callable[[Any, dict], tuple[Any, dict]]


@dataclasses.dataclass(frozen=True)
class Context:
  """A run config and what is derived from it once, for every loop's builders; the
  run's workdir ('' outside a run, e.g. ahead of time), where a batch source may keep
  what it derives before the first step (the SFT loop's synthesised records)."""
  config: ml_collections.ConfigDict
  model_cfg: ModelConfig
  tokenizer: tokenizer_lib.Tokenizer
  mesh: Any                      # jax.sharding.Mesh, or an AbstractMesh ahead of time
  optimizer: optax.GradientTransformation
  schedule: optax.Schedule
  workdir: str = ""

  @property
  def rules(self):
    """The logical axis rules as tuples (a config read back from JSON has lists)."""
    return tuple((name, tuple(axes) if isinstance(axes, (list, tuple)) else axes)
                 for name, axes in self.config.mesh.logical_axis_rules)

  def param_shardings(self, model_cfg: Optional[ModelConfig] = None):
    return sharding.param_shardings(model_cfg or self.model_cfg, self.mesh, self.rules)

  def row_sharding(self, rank: int) -> jax.sharding.NamedSharding:
    """Sharding of a (rows, ...) array of rank ``rank``: rows over the batch axes."""
    return sharding.row_sharding(self.mesh, self.rules, rank)

  @property
  def batch_parallelism(self) -> int:
    return sharding.batch_parallelism(self.mesh, self.rules)

  def process_rows(self, num_rows: int) -> slice:
    """The rows of a (num_rows, ...) batch this process supplies and reads back."""
    return sharding.process_rows(self.row_sharding(2), num_rows)

  def row_unit(self, row_multiple: int = 1) -> int:
    """The smallest row count that splits evenly over the batch shards and gives every
    process a multiple of ``row_multiple`` rows (e.g. whole groups of samples)."""
    blocks = sharding.process_blocks(self.row_sharding(2))
    return math.lcm(self.batch_parallelism, blocks * row_multiple)

  def to_global(self, local_batch: Mapping[str, np.ndarray], num_rows: int
                ) -> dict[str, jax.Array]:
    """Global arrays of a batch from this process's rows (``process_rows(num_rows)``)."""
    return {name: jax.make_array_from_process_local_data(
        self.row_sharding(np.ndim(value)), np.asarray(value),
        (num_rows,) + np.shape(value)[1:]) for name, value in local_batch.items()}


@dataclasses.dataclass(frozen=True)
class ExtraWeights:
  """A second set of weights a loop's state carries, under the state field of its name.

  model_cfg: its model (a teacher may differ from the student). source: 'copy' (a copy
  of the starting weights, e.g. a frozen reference or an EMA), a checkpoint path (a
  run's workdir or a Hugging Face directory) or '' (random: smoke runs only).
  """
  model_cfg: ModelConfig
  source: str = "copy"


class BatchSource(Protocol):
  """Host-side batches of one loop, resumable exactly.

  ``__call__(state, step)`` returns this process's rows (``Context.process_rows``) of
  the batch for ``step`` as numpy arrays (GRPO generates them with ``state.params``).
  ``get_state`` / ``set_state`` (bytes) are saved with every checkpoint (one file per
  process), so the batch after a resume is the batch an uninterrupted run would see.
  ``progress()`` gives what the log line shows (data stage, tokens seen per source).
  """

  def __call__(self, state: TrainState, step: int) -> dict[str, np.ndarray]: ...

  def get_state(self) -> bytes: ...

  def set_state(self, state: bytes) -> None: ...

  def progress(self) -> dict[str, Any]: ...


class IteratorBatches:
  """A ``BatchSource`` over a grain iterator of batches (the data pipeline's).

  keys: the features the step reads (None: all). rows: the process's rows of each batch
  when the iterator yields whole global batches (``train.read_global_batch``).
  """

  def __init__(self, iterator, *, keys: Optional[tuple[str, ...]] = None,
               rows: Optional[slice] = None):
    self.iterator = iterator
    self.rows = rows
    self._keys = keys

  def __call__(self, state, step: int) -> dict[str, np.ndarray]:
    del state, step
    try:
      batch = next(self.iterator)
    except StopIteration:
      raise ValueError("the data schedule ended before train.steps: give its last stage no "
                       "budget, or lower train.steps") from None
    keys = self._keys or tuple(batch)
    return {key: batch[key] if self.rows is None else batch[key][self.rows] for key in keys}

  def get_state(self) -> bytes:
    return json.dumps(self.iterator.get_state()).encode()

  def set_state(self, state: bytes) -> None:
    self.iterator.set_state(json.loads(state))

  def start_prefetch(self) -> None:  # grain's checkpoint handler calls it after a restore
    pass

  def progress(self) -> dict[str, Any]:
    """Tokens seen per source and, when the data schedule has several stages, the
    current one's name ('data_stage')."""
    out = {}
    stage = getattr(self.iterator, "stage", None)
    if stage is not None and getattr(self.iterator, "num_stages", 1) > 1:
      out["data_stage"] = stage
    for name, count in getattr(self.iterator, "tokens_seen", {}).items():
      out[f"tokens_seen/{name}"] = count
    return out


class StepSeededBatches:
  """Base of batch sources whose batch is a function of the state and the step alone
  (e.g. prompts drawn by a step-seeded generator): nothing to save, exact on resume."""

  def get_state(self) -> bytes:
    return b"{}"

  def set_state(self, state: bytes) -> None:
    del state

  def start_prefetch(self) -> None:
    pass

  def progress(self) -> dict[str, Any]:
    return {}


@dataclasses.dataclass(frozen=True)
class PromptFormat:
  """How a loop's model is asked: a ``data/prompts.py`` template ('text', 'chat',
  'crossthink') with its reasoning toggle ('on', 'off', ''), or template '' for text the
  model continues as it is."""
  template: str = ""
  thinking: str = ""

  def prompt_ids(self, record: Mapping, tokenizer: tokenizer_lib.Tokenizer) -> list[int]:
    """Token ids of the prompt of a record ({'question': ...[, 'kind', 'options']})."""
    if not self.template:
      return tokenizer.encode(record["question"])
    return prompts_lib.prompt_ids(record, tokenizer, template=self.template,
                                  thinking=self.thinking)

  def stop_tokens(self, tokenizer: tokenizer_lib.Tokenizer) -> tuple[int, ...]:
    """The ids that end a completion: eos for text, also the end of turn for chat."""
    return prompts_lib.stop_token_ids(tokenizer, self.template or "text")


@dataclasses.dataclass(frozen=True)
class DerivedModel:
  """A model a loop derives from its extra weights instead of reading ``config.model``
  (a distillation student pruned from its teacher: ``train/prune.py``).

  model_cfg: its config, a function of the run config alone (checks and ahead-of-time
    compiles need no data and no weights).
  origin: where its starting weights come from, for the log.
  make_params(ctx, extra, report): its starting weights, placed with
    ``ctx.param_shardings()``, from the extra weights loaded from checkpoints or
    initialised (sets that copy the starting weights are not there yet).
  """
  model_cfg: ModelConfig
  origin: str
  make_params: Callable[[Context, dict[str, Any], Callable[[str], None]], Any]


def _no_derived_model(config: ml_collections.ConfigDict) -> Optional[DerivedModel]:
  del config
  return None


def _no_extra_weights(ctx: Context) -> dict[str, ExtraWeights]:
  del ctx
  return {}


def _plain_text(ctx: Context) -> PromptFormat:
  del ctx
  return PromptFormat()


@dataclasses.dataclass(frozen=True)
class Loop:
  """What a loop contributes to the one driver.

  make_step(ctx): the pure step ``(state, batch) -> (state, metrics)``; metrics must
    include 'loss' and 'grad_norm' (the non-finite guard reads them).
  make_batches(ctx): its ``BatchSource``.
  abstract_batch(ctx): ShapeDtypeStructs of one global batch (ahead-of-time compiles).
  state_type: ``TrainState`` or a subclass with one field per extra set of weights.
  extra_weights(ctx): field name → ``ExtraWeights`` (only the sets this run uses).
  sections: run-config sections the loop reads beyond the common ones.
  ranges: allowed values of the numbers in those sections ('section.field' → Range).
  prompt_format(ctx): how the run's model is prompted (the samples printed at the end
    of a run): plain text to continue unless the loop trains on templated prompts.
  optional_sections: run-config sections the loop reads when they are there.
  derived_model(config): the model the loop derives from its extra weights for this
    config (``DerivedModel``), or None: ``config.model``, from ``init_checkpoint`` or
    random.
  """
  make_step: Callable[[Context], StepFn]
  make_batches: Callable[[Context], BatchSource]
  abstract_batch: Callable[[Context], dict]
  state_type: type = TrainState
  extra_weights: Callable[[Context], dict[str, ExtraWeights]] = _no_extra_weights
  sections: tuple[str, ...] = ()
  ranges: Mapping[str, Range] = dataclasses.field(default_factory=dict)
  prompt_format: Callable[[Context], PromptFormat] = _plain_text
  optional_sections: tuple[str, ...] = ()
  derived_model: Callable[[ml_collections.ConfigDict], Optional[DerivedModel]] = (
      _no_derived_model)


def model_config(config: ml_collections.ConfigDict) -> ModelConfig:
  """A run config's model: the one its loop derives (``Loop.derived_model``, e.g. a
  student pruned from its teacher), else its ``model`` section."""
  derived = get(config.get("loop", "pretrain")).derived_model(config)
  return derived.model_cfg if derived else config_lib.model_config(config.model)


def get(name: str) -> Loop:
  """The registered loop ``name``; a ConfigError lists the known ones."""
  if name == "claim":
    raise ConfigError("loop='claim' is a claim config: run it with python -m train.main "
                      "(train/claims.py), not as one run")
  if name not in LOOP_MODULES:
    raise ConfigError(f"loop={name!r} is not a registered loop; known: {sorted(LOOP_MODULES)}")
  return importlib.import_module(LOOP_MODULES[name]).LOOP
