"""Weighted mixtures of row sources under a per-stage schedule, with tokens-seen counts.

A schedule is a list of stages, each with mixture weights over the sources and a
budget in steps (a token budget is converted with the global tokens per step, so every
process switches at the same step). The last stage may be unbounded; if every stage is
bounded the iterator stops after the last.

`MixtureIterator` owns one row iterator per source for the whole run, so a source
continues where it stopped when a later stage uses it again. Each row of the batch at
step `t` comes from a source drawn with the stage's weights by a generator seeded with
`(seed, t)`: the draw depends only on the step, so resuming is exact. Weights count rows
(= tokens up to padding), and zero weights are allowed.

Why not `grain.IterDataset.mix`: it rejects zero weights, and carrying source positions
from one stage's mix into the next would depend on its private state layout.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import grain
import numpy as np

from data import packing


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of the schedule.

  Attributes:
    name: shown in logs (`MixtureIterator.stage`).
    weights: probability of each source, in the iterator's source order; sums to 1.
    num_steps: steps in this stage, None for an unbounded last stage.
  """

  name: str
  weights: tuple[float, ...]
  num_steps: Optional[int]


def resolve_stages(stage_configs: Sequence[Any], source_names: Sequence[str],
                   tokens_per_step: int) -> tuple[Stage, ...]:
  """Stages from config entries `{name, weights: {source: w}, num_steps | num_tokens}`.

  Args:
    stage_configs: ConfigDicts (or dicts) in schedule order. At most one of
      `num_steps`, `num_tokens` is set (None or absent = unset); only the last
      stage may leave both unset.
    source_names: the sources, in the order the weights are returned.
    tokens_per_step: global_batch_size * seq_len; a token budget becomes
      ceil(num_tokens / tokens_per_step) steps.
  """
  if not stage_configs:
    raise ValueError("the data schedule has no stages")
  stages = []
  for index, config in enumerate(stage_configs):
    name = config["name"]
    weights = dict(config["weights"])
    unknown = sorted(set(weights) - set(source_names))
    if unknown:
      raise ValueError(f"stage {name!r}: weights name unknown sources {unknown}; "
                       f"sources are {list(source_names)}")
    vector = np.array([float(weights.get(s, 0.0)) for s in source_names])
    if (vector < 0).any() or vector.sum() <= 0:
      raise ValueError(f"stage {name!r}: weights must be >= 0 with a positive sum, got {weights}")
    num_steps, num_tokens = config.get("num_steps"), config.get("num_tokens")
    if num_steps is not None and num_tokens is not None:
      raise ValueError(f"stage {name!r}: set num_steps or num_tokens, not both")
    if num_tokens is not None:
      num_steps = math.ceil(num_tokens / tokens_per_step)
    if num_steps is None and index != len(stage_configs) - 1:
      raise ValueError(f"stage {name!r}: only the last stage may have no budget")
    if num_steps is not None and num_steps <= 0:
      raise ValueError(f"stage {name!r}: budget must be positive, got {num_steps} steps")
    stages.append(Stage(name, tuple(vector / vector.sum()), num_steps))
  return tuple(stages)


def stage_start_step(stages: Sequence[Stage], name: str) -> int:
  """The first step of the stage called `name`."""
  start = 0
  for stage in stages:
    if stage.name == name:
      return start
    if stage.num_steps is None:
      break
    start += stage.num_steps
  raise ValueError(f"no stage {name!r} in the schedule {[s.name for s in stages]}")


def stage_index_at(stages: Sequence[Stage], step: int) -> Optional[int]:
  """Index of the stage that step `step` belongs to; None after a bounded schedule."""
  end = 0
  for index, stage in enumerate(stages):
    if stage.num_steps is None:
      return index
    end += stage.num_steps
    if step < end:
      return index
  return None


class MixtureIterator(grain.DatasetIterator):
  """Batches of `packing.ROW_FEATURES`, each (batch_size, seq_len), mixed by schedule.

  `get_state()` / `set_state()` hold the step, the tokens seen and every source's
  state (JSON-serializable, so `grain.checkpoint.CheckpointSave` can store it).
  """

  def __init__(self, sources: Mapping[str, grain.IterDataset], stages: Sequence[Stage], *,
               batch_size: int, seed: int, start_step: int = 0):
    self._names = tuple(sources)
    self._sources = {name: iter(dataset) for name, dataset in sources.items()}
    super().__init__(list(self._sources.values()))
    self._stages = tuple(stages)
    self._batch_size = batch_size
    self._seed = seed
    self._step = start_step
    self._tokens_seen = dict.fromkeys(self._names, 0)

  @property
  def step(self) -> int:
    """Batches produced (counting from the schedule's start)."""
    return self._step

  @property
  def stage(self) -> Optional[str]:
    """Name of the stage the next batch comes from; None once a bounded schedule ends."""
    index = stage_index_at(self._stages, self._step)
    return None if index is None else self._stages[index].name

  @property
  def num_stages(self) -> int:
    """Stages in the schedule (with one, ``stage`` never changes)."""
    return len(self._stages)

  @property
  def tokens_seen(self) -> dict[str, int]:
    """Non-padding tokens (segment_ids > 0) per source so far, in this process."""
    return dict(self._tokens_seen)

  def __next__(self) -> dict[str, np.ndarray]:
    stage_index = stage_index_at(self._stages, self._step)
    if stage_index is None:
      raise StopIteration
    rng = np.random.default_rng([self._seed, self._step])
    choices = rng.choice(len(self._names), size=self._batch_size,
                         p=self._stages[stage_index].weights)
    rows = [next(self._sources[self._names[c]]) for c in choices]
    for c, row in zip(choices, rows):
      self._tokens_seen[self._names[c]] += int(np.count_nonzero(row["segment_ids"]))
    self._step += 1
    return {k: np.stack([row[k] for row in rows]) for k in packing.ROW_FEATURES}

  def get_state(self) -> dict[str, Any]:
    return {
        "step": self._step,
        "tokens_seen": dict(self._tokens_seen),
        "sources": {name: it.get_state() for name, it in self._sources.items()},
    }

  def set_state(self, state: dict[str, Any]) -> None:
    """Restores a `get_state()`; sources absent from it (added since) start fresh."""
    self._step = state["step"]
    for name, it in self._sources.items():
      if name in state["sources"]:
        it.set_state(state["sources"][name])
      self._tokens_seen[name] = state["tokens_seen"].get(name, 0)
