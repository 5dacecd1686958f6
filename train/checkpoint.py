"""Orbax checkpoints of a TrainState and the data iterator: async, keep-N, resume.

Layout: ``<directory>/<step>/{state, data}``; ``data`` holds one JSON file of grain
iterator state per process. Orbax writes every checkpoint into
``<step>.orbax-checkpoint-tmp-*`` and renames it to ``<step>`` only once all of it is on
disk, so a save killed mid-way leaves the previous checkpoints intact and is ignored.
"""

from __future__ import annotations

import os
from typing import Optional

import grain
import jax
import orbax.checkpoint as ocp

from train.state import TrainState


class CheckpointMismatchError(ValueError):
  """A checkpoint's arrays do not have the shapes of the state being restored."""


class Checkpointer:
  """Saves every ``every_steps`` steps (and on request), keeps the newest ``max_to_keep``.

  Every process must call ``save`` and ``restore`` (they are collective).
  """

  def __init__(self, directory: str, *, every_steps: int, max_to_keep: int,
               async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self._every_steps = every_steps
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=async_save),
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": grain.checkpoint.CheckpointHandler()})

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: TrainState, data_iterator=None, *,
           force: bool = False) -> bool:
    """Starts saving (returns before the write ends when async); False if not due.

    Due: ``force`` or a multiple of ``every_steps``.
    """
    due = force or step % self._every_steps == 0
    if not due or step in self._manager.all_steps():
      return False
    items = {"state": ocp.args.StandardSave(state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    return self._manager.save(step, args=ocp.args.Composite(**items), force=True)

  def reached_preemption(self, step: int) -> bool:
    """True (on every process at the same step) once the job got a preemption notice.

    Multi-process jobs only (jax's preemption service turns SIGTERM into a sync point).
    """
    return self._manager.reached_preemption(step)

  def check_compatible(self, abstract_state: TrainState, step: int) -> None:
    """Raises CheckpointMismatchError naming the directory and the first differing array."""
    stored = self._manager.item_metadata(step)["state"]
    stored = getattr(stored, "tree", stored)
    expected_shapes = _shapes_by_path({"params": abstract_state.params})
    stored_shapes = _shapes_by_path({"params": stored.get("params", {})})
    where = f"checkpoint {os.path.join(self.directory, str(step))}"
    for path, shape in expected_shapes.items():
      if path not in stored_shapes:
        raise CheckpointMismatchError(
            f"{where} has no parameter {path} (shape {shape}); it was written by a "
            "different model. Use a new workdir or the matching model config.")
      if stored_shapes[path] != shape:
        raise CheckpointMismatchError(
            f"{where}: parameter {path} has shape {stored_shapes[path]} in the checkpoint "
            f"but {shape} in this model. Use a new workdir or the matching model config.")
    extra = sorted(set(stored_shapes) - set(expected_shapes))
    if extra:
      raise CheckpointMismatchError(
          f"{where} has parameters this model lacks, e.g. {extra[0]} "
          f"(shape {stored_shapes[extra[0]]}). Use a new workdir or the matching model "
          "config.")

  def restore(self, abstract_state: TrainState, data_iterator=None,
              step: Optional[int] = None) -> TrainState:
    """The state at ``step`` (default: latest) with the shardings in ``abstract_state``.

    ``abstract_state`` is a tree of ``jax.ShapeDtypeStruct`` with ``sharding`` set
    (``sharding.with_shardings``). ``data_iterator``, when given, is restored in place.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    self.check_compatible(abstract_state, step)
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    return self._manager.restore(step, args=ocp.args.Composite(**items))["state"]

  def wait(self) -> None:
    """Blocks until pending async saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _shapes_by_path(tree) -> dict[str, tuple[int, ...]]:
  """{'params/layers/0/q': shape} with list indices and dict keys alike."""
  leaves = jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
  return {"/".join(_key_name(k) for k in path): tuple(x.shape) for path, x in leaves}


def _key_name(key) -> str:
  for attribute in ("key", "idx", "name"):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)
