"""Checkpoints that prove themselves: orbax saves with a content checksum, verified on restore.

Layout: ``<directory>/<step>/{state, data, meta}``. ``state`` is the loop's TrainState
(parameters, optimizer state, step, rng and the loop's extra weights), ``data`` one file
per process with its batch source's state (data iterator position, host-side samplers),
``meta`` the loop's name and a checksum of every array of the state. Orbax writes each
checkpoint into ``<step>.orbax-checkpoint-tmp-*`` and renames it to ``<step>`` once all
of it is on disk, so a save killed half-way is never seen.

``restore`` takes the newest checkpoint that restores and whose arrays match their
checksums; a damaged one (a truncated or altered file) is reported by name, moved aside
to ``<step>.damaged`` and the next older one is tried. A checkpoint of another model, of
another loop or with another optimizer structure is not damage: it stops the run with the
first differing key named.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from typing import Any, Callable, Optional

import grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from model import hf
from model import lm
from model.config import ModelConfig
from train import xla_flags

DAMAGED_SUFFIX = ".damaged"


class _NoReadOnlyNotice(logging.Filter):
  """orbax warns 'Given directory is read only' whenever it opens one read-only, which
  reading another run's weights always does."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Given directory is read only")


logging.getLogger("absl").addFilter(_NoReadOnlyNotice())

# JSON files of a checkpoint whose names do not end in .json (orbax's and ours).
_JSON_FILES = ("_CHECKPOINT_METADATA", "_METADATA", "metadata")


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit the state being restored (model, loop or optimizer)."""


class CheckpointDamagedError(ValueError):
  """A checkpoint's files are unreadable or its arrays do not match their checksums."""


# ------------------------------------------------------------------------- checksums


def _words(x: jax.Array) -> jax.Array:
  """The array's bits as flat uint32 words (one per element of up to 4 bytes)."""
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  size = jnp.dtype(x.dtype).itemsize
  if size in (1, 2):
    unsigned = jnp.dtype(f"uint{8 * size}")
    return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32).reshape(-1)
  return jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(-1)


def _checksum(x: jax.Array) -> jax.Array:
  """Σ_i w_i·(2i+1) mod 2³² over the array's words w: any single changed word changes it
  (2i+1 is odd, so w·(2i+1) ≡ 0 mod 2³² only for w ≡ 0)."""
  words = _words(x)
  weights = 2 * jnp.arange(words.shape[0], dtype=jnp.uint32) + 1
  return jnp.sum(words * weights, dtype=jnp.uint32)


@functools.cache
def _checksums():
  # Integer sums mod 2**32: any compiler option gives the same result.
  return jax.jit(lambda tree: jax.tree.map(_checksum, tree),
                 compiler_options=xla_flags.run_once_options())


def checksums(tree) -> dict[str, int]:
  """{'params/embed': checksum, ...} of every array in ``tree`` (a global computation:
  every process must call it)."""
  sums = jax.device_get(_checksums()(tree))
  return {path: int(value) for path, value in _by_path(sums).items()}


def _by_path(tree, is_leaf: Optional[Callable[[Any], bool]] = None) -> dict[str, Any]:
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]
  return {"/".join(_key_name(k) for k in path): x for path, x in leaves}


def _key_name(key) -> str:
  for attribute in ("key", "idx", "name"):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  return {path: tuple(x.shape) for path, x in
          _by_path(tree, is_leaf=lambda x: hasattr(x, "shape")).items()}


def _first_line(error: BaseException) -> str:
  """The error in one short line (TensorStore's details are left out)."""
  text = " ".join(str(error).split()).split(" See full TensorStore details")[0]
  return f"{type(error).__name__}: {text[:240]}"


# ------------------------------------------------------------------------ checkpointer


class Checkpointer:
  """Saves every ``every_steps`` steps (and on request), keeps the newest ``max_to_keep``.

  Every process must call ``save`` and ``restore`` (they are collective). With
  ``read_only`` nothing is created or changed on disk (starting weights of another run).
  """

  def __init__(self, directory: str, *, every_steps: int = 1, max_to_keep: int = 1,
               async_save: bool = True, read_only: bool = False):
    self.directory = os.path.abspath(directory)
    self._every_steps = every_steps
    # Read-only: the options orbax would otherwise set itself, with a warning each.
    self._options = ocp.CheckpointManagerOptions(
        max_to_keep=None if read_only else max_to_keep, create=not read_only,
        read_only=read_only, save_interval_steps=0 if read_only else 1,
        enable_async_checkpointing=async_save)
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        self.directory, options=self._options,
        item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                       "data": grain.checkpoint.CheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()})

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def is_due(self, step: int) -> bool:
    return step % self._every_steps == 0

  def save(self, step: int, state, batch_source=None, *, loop: str = "",
           force: bool = False) -> bool:
    """Starts saving (returns before the write ends when async); False if not due.

    Due: ``force`` or a multiple of ``every_steps``. The state's checksums are computed
    first (on device), so the save never waits on a later step.
    """
    if not (force or self.is_due(step)) or step in self._manager.all_steps():
      return False
    items = {"state": ocp.args.PyTreeSave(state),
             "meta": ocp.args.JsonSave({"loop": loop, "checksums": checksums(state)})}
    if batch_source is not None:
      items["data"] = grain.checkpoint.CheckpointSave(batch_source)
    return self._manager.save(step, args=ocp.args.Composite(**items), force=True)

  def reached_preemption(self, step: int) -> bool:
    """True (on every process at the same step) once a multi-process job got a
    preemption notice (jax's preemption service turns SIGTERM into a sync point)."""
    return self._manager.reached_preemption(step)

  # ------------------------------------------------------------------------ restore

  def _meta(self, step: int) -> dict:
    try:
      meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax wraps read errors in many types
      raise CheckpointDamagedError(
          f"{os.path.join(self.path(step), 'meta')} is unreadable ({_first_line(e)})") from e
    meta = meta["meta"]
    if not isinstance(meta, dict) or "checksums" not in meta:
      raise CheckpointDamagedError(f"{os.path.join(self.path(step), 'meta')} has no checksums")
    return meta

  def check_compatible(self, abstract_state, step: int, loop: str = "") -> None:
    """Raises CheckpointMismatchError naming the checkpoint and the first differing key."""
    where = f"checkpoint {self.path(step)}"
    stored_loop = self._meta(step).get("loop", "")
    if loop and stored_loop and stored_loop != loop:
      raise CheckpointMismatchError(
          f"{where} was written by loop {stored_loop!r}, this run is loop {loop!r}: use a "
          f"new workdir and start from it with init_checkpoint={os.path.dirname(self.directory)}")
    try:
      stored = self._manager.item_metadata(step)["state"]
    except Exception as e:
      raise CheckpointDamagedError(f"{where}: state metadata unreadable "
                                   f"({_first_line(e)})") from e
    stored_shapes = _shapes(getattr(stored, "tree", stored))
    expected_shapes = _shapes(abstract_state)
    for path, shape in expected_shapes.items():
      if path not in stored_shapes:
        raise CheckpointMismatchError(
            f"{where} has no {path} (shape {shape}); {_what_differs(path)}")
      if stored_shapes[path] != shape:
        raise CheckpointMismatchError(
            f"{where}: {path} has shape {stored_shapes[path]} in the checkpoint but {shape} "
            f"in this run; {_what_differs(path)}")
    extra = sorted(set(stored_shapes) - set(expected_shapes))
    if extra:
      raise CheckpointMismatchError(
          f"{where} has {extra[0]} (shape {stored_shapes[extra[0]]}) that this run lacks; "
          f"{_what_differs(extra[0])}")

  def _check_json_files(self, step: int) -> None:
    """Raises CheckpointDamagedError naming a checkpoint's JSON file that does not parse
    (orbax's metadata, our meta, the batch sources' states)."""
    for root, _, names in os.walk(self.path(step)):
      for name in names:
        if name.endswith(".json") or name in _JSON_FILES:
          path = os.path.join(root, name)
          try:
            with open(path, encoding="utf-8") as f:
              json.load(f)
          except (ValueError, UnicodeDecodeError) as e:
            raise CheckpointDamagedError(f"{path} is damaged ({_first_line(e)})") from None

  def _restore_step(self, abstract_state, batch_source, step: int, loop: str):
    self._check_json_files(step)
    meta = self._meta(step)
    self.check_compatible(abstract_state, step, loop)
    items = {"state": _restore_args(abstract_state)}
    if batch_source is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(batch_source)
    try:
      state = self._manager.restore(step, args=ocp.args.Composite(**items))["state"]
    except Exception as e:
      raise CheckpointDamagedError(f"checkpoint {self.path(step)} does not restore "
                                   f"({_first_line(e)})") from e
    _verify(checksums(state), meta["checksums"], self.path(step))
    return state

  def restore(self, abstract_state, batch_source=None, *, loop: str = "",
              report: Callable[[str], None] = print):
    """(state, step) of the newest intact checkpoint, with the shardings in
    ``abstract_state`` (ShapeDtypeStructs with ``sharding`` set); ``batch_source`` is
    restored in place. Damaged checkpoints are reported, moved aside and skipped.
    Raises FileNotFoundError when there is none, CheckpointDamagedError when none is
    intact, CheckpointMismatchError when one does not fit this run.
    """
    steps = self.all_steps()[::-1]
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    damaged = []
    for step in steps:
      try:
        state = self._restore_step(abstract_state, batch_source, step, loop)
      except CheckpointDamagedError as e:
        damaged.append(step)
        report(f"warning: {e}; it is moved to {self.path(step)}{DAMAGED_SUFFIX}")
        self._set_aside(step)
        continue
      if damaged:
        report(f"resuming from the newest intact checkpoint, step {step}")
      return state, step
    raise CheckpointDamagedError(f"no intact checkpoint in {self.directory} (damaged steps "
                                 f"{damaged}, moved aside)")

  def _set_aside(self, step: int) -> None:
    if jax.process_index() == 0 and not self._options.read_only:
      target = self.path(step) + DAMAGED_SUFFIX
      shutil.rmtree(target, ignore_errors=True)
      os.rename(self.path(step), target)
    self._manager.close()
    self._manager = self._open()

  def restore_params(self, abstract_params, *, step: Optional[int] = None,
                     report: Callable[[str], None] = print):
    """(parameters, step) of the newest intact checkpoint (a run's starting weights), or
    of checkpoint ``step`` (damaged: CheckpointDamagedError), placed with the shardings
    in ``abstract_params``; nothing else is read."""
    steps = self.all_steps()[::-1]
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    which = "" if step is None else f" of step {step}"
    if step is not None:
      if step not in steps:
        raise FileNotFoundError(f"no checkpoint{which} in {self.directory} (steps: "
                                f"{steps[::-1]})")
      steps = [step]
    for step in steps:
      where = f"checkpoint {self.path(step)}"
      try:
        self._check_json_files(step)
        meta = self._meta(step)
        stored = self._manager.item_metadata(step)["state"]
        stored_shapes = _shapes(getattr(stored, "tree", stored))
        for path, shape in _shapes({"params": abstract_params}).items():
          if stored_shapes.get(path) != shape:
            raise CheckpointMismatchError(
                f"{where}: {path} has shape {stored_shapes.get(path)} there but {shape} in "
                "this model; use init_checkpoint of the same model or set model.* to match")
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=_restore_args({"params": abstract_params}, partial=True)))["state"]
        expected = {path: value for path, value in meta["checksums"].items()
                    if path.startswith("params/")}
        _verify(checksums({"params": restored["params"]}), expected, self.path(step))
        return restored["params"], step
      except CheckpointMismatchError:
        raise
      except Exception as e:  # a damaged step: try the next older one
        report(f"warning: {where} is damaged ({_first_line(e)}); trying an older one")
    raise CheckpointDamagedError(f"no intact checkpoint{which} in {self.directory}")

  def wait(self) -> None:
    """Blocks until pending async saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves, then releases the manager."""
    self._manager.close()


def _restore_args(abstract_tree, partial: bool = False) -> ocp.args.PyTreeRestore:
  """Restore ``abstract_tree`` (ShapeDtypeStructs, with shardings where given); partial:
  only the leaves it names (e.g. the parameters of a full state)."""
  return ocp.args.PyTreeRestore(
      item=abstract_tree, partial_restore=partial,
      restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_tree))


def _verify(got: dict[str, int], expected: dict[str, int], where: str) -> None:
  for path, value in expected.items():
    if got.get(path) != value:
      raise CheckpointDamagedError(
          f"checkpoint {where}: {path} does not match its checksum (the file changed after "
          "it was written)")


def _what_differs(path: str) -> str:
  if path.startswith("params/"):
    return "it was written by a different model: use a new workdir or the matching model config"
  if path.startswith("opt_state/"):
    return ("the optimizer settings changed since it was written: restore them or use a new "
            "workdir (start from it with init_checkpoint=)")
  return ("it was written by another loop or loop settings: use a new workdir (start from it "
          "with init_checkpoint=)")


# -------------------------------------------------------------------- starting weights


def is_hf_directory(path: str) -> bool:
  """A Hugging Face model directory: a config.json beside safetensors files."""
  return (os.path.isfile(os.path.join(path, "config.json"))
          and any(name.endswith(".safetensors") for name in os.listdir(path)))


def load_params(path: str, model_cfg: ModelConfig, shardings,
                report: Callable[[str], None] = print, *, step: Optional[int] = None
                ) -> tuple[dict, Optional[int]]:
  """(weights of ``model_cfg`` stored at ``path`` placed with ``shardings``, the step of
  the checkpoint they come from or None).

  path: a run's workdir (its newest intact checkpoint, or checkpoint ``step``; only the
  parameters are read), its ``checkpoints`` folder, or a Hugging Face directory
  (config.json + safetensors), whose model must equal ``model_cfg`` up to run choices
  (dtypes, kernels, remat).
  shardings: a tree of shardings like the parameters, or None: every array on this
  process's first device.
  """
  if not os.path.isdir(path):
    raise FileNotFoundError(f"init_checkpoint={path}: no such directory")
  if shardings is None:
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    shardings = jax.tree.map(lambda _: device, lm.abstract_params(model_cfg))
  if is_hf_directory(path):
    params, hf_cfg = hf.load_hf_checkpoint(path, dtype=model_cfg.param_dtype)
    _check_same_model(hf_cfg, model_cfg, path)
    return jax.device_put(params, shardings), None
  folder = os.path.join(path, "checkpoints")
  folder = folder if os.path.isdir(folder) else path
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          lm.abstract_params(model_cfg), shardings)
  checkpointer = Checkpointer(folder, read_only=True)
  try:
    return checkpointer.restore_params(abstract, step=step, report=report)
  finally:
    checkpointer.close()


# Fields that are run choices, not properties of the weights.
_RUN_CHOICES = ("ssm_impl", "remat", "dtype", "param_dtype", "init_std", "chunk_size",
                "dt_min", "dt_max")


def _check_same_model(stored: ModelConfig, wanted: ModelConfig, path: str) -> None:
  for field in type(wanted).__dataclass_fields__:
    if field in _RUN_CHOICES:
      continue
    if getattr(stored, field) != getattr(wanted, field):
      raise CheckpointMismatchError(
          f"init_checkpoint={path} has model.{field}={getattr(stored, field)!r}, the run "
          f"config has {getattr(wanted, field)!r}: set --config.model.{field} to match")
