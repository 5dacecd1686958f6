"""Checkpoints that prove themselves: orbax saves with a content checksum, verified on restore.

Layout: ``<directory>/<step>/{state, data, meta}``. ``state`` is the loop's TrainState
(parameters, optimizer state, step, rng and the loop's extra weights), ``data`` one file
per process with its batch source's state (data iterator position, host-side samplers),
``meta`` the loop's name and a checksum of every array of the state. Orbax writes each
checkpoint into ``<step>.orbax-checkpoint-tmp-*`` and renames it to ``<step>`` once all
of it is on disk, so a save killed half-way is never seen.

``restore`` takes the newest checkpoint that restores and whose arrays match their
checksums; a damaged one (an array that does not match its checksum, a truncated or
missing file, unreadable metadata) is reported naming the file or array, moved aside to
``<step>.damaged`` and the next older one is tried. Anything else that stops a read (an
I/O error, too little memory) may pass and leaves the checkpoint where it is: the error
(CheckpointIOError) names the step. A checkpoint of another model, of another loop or with
another optimizer structure is not damage either: it stops the run with the first
differing key named.

A save that cannot be written (an unwritable directory) stops the run at once with
CheckpointIOError; a Ctrl-C as a save starts is held until orbax has handed the write to
its thread, so that the save completes (``Checkpointer.interrupted``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import threading
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


class _SaveErrors(logging.Filter):
  """Takes the errors that orbax logs with their tracebacks while a save is in flight
  (from its threads, which may then go on as if the save were done) off the log, for
  ``Checkpointer.wait`` to raise in one line."""

  def __init__(self):
    super().__init__()
    self.errors: list[BaseException] = []

  def filter(self, record: logging.LogRecord) -> bool:
    if (record.levelno >= logging.ERROR and record.exc_info
        and f"{os.sep}orbax{os.sep}" in record.pathname):
      self.errors.append(record.exc_info[1])
      return False
    return True

# JSON files of a checkpoint whose names do not end in .json (orbax's and ours).
_JSON_FILES = ("_CHECKPOINT_METADATA", "_METADATA", "metadata")
# Files every checkpoint has (inside its step directory).
_REQUIRED_FILES = (os.path.join("state", "_METADATA"), os.path.join("meta", "metadata"))
# TensorStore's status codes for array data that is missing or not what was written
# (truncated, cut short); others (UNKNOWN for an I/O error, UNAVAILABLE,
# RESOURCE_EXHAUSTED, ...) may pass. Data that does not decode comes without a code.
_DAMAGE_CODES = ("DATA_LOSS:", "OUT_OF_RANGE:", "NOT_FOUND:", "FAILED_PRECONDITION:")
_UNDECODABLE = "Error decoding "


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit the state being restored (model, loop or optimizer)."""


class CheckpointDamagedError(ValueError):
  """A checkpoint's files are missing or unreadable, or its arrays do not match their
  checksums."""


class CheckpointIOError(OSError):
  """A checkpoint could not be written, or read for a reason that is not damage (an
  unwritable directory, an I/O error, too little memory); nothing on disk was moved."""


class Interrupted(KeyboardInterrupt):
  """Ctrl-C; the message says how the save in flight ended and which checkpoint is the
  newest (``Checkpointer.interrupted``)."""


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
  text = text.split(" [tensorstore_spec=")[0]
  return f"{type(error).__name__}: {text[:400]}"


def _root_cause(error: BaseException) -> BaseException:
  """The first exception of ``error``'s chain: orbax wraps TensorStore's, which names the
  array and the file ("Encountered error while reading array index" names neither)."""
  while (error.__cause__ or error.__context__) is not None:
    error = error.__cause__ or error.__context__
  return error


def _is_damage(error: BaseException) -> bool:
  """Whether a failed read shows damage: a missing file, unreadable metadata or array
  data that is missing or not what was written. Anything else (an I/O error, too little
  memory) may pass; the checkpoint may be intact."""
  cause = _root_cause(error)
  if isinstance(cause, (FileNotFoundError, NotADirectoryError, json.JSONDecodeError,
                        UnicodeDecodeError)):
    return True
  text = str(cause)
  return type(cause) is ValueError and (text.startswith(_DAMAGE_CODES) or _UNDECODABLE in text)


@contextlib.contextmanager
def _reading(what: str):
  """Raises a failed read of ``what`` (a checkpoint's part) as CheckpointDamagedError if it
  shows damage, else as CheckpointIOError, naming the file or array at fault."""
  try:
    yield
  except (CheckpointDamagedError, CheckpointMismatchError):
    raise
  except Exception as e:  # orbax wraps read errors in many types
    detail = _first_line(_root_cause(e))
    if _is_damage(e):
      raise CheckpointDamagedError(f"{what} ({detail})") from e
    raise CheckpointIOError(f"{what} ({detail}); that is no sign of damage, so nothing was "
                            "moved: rerun once it has passed") from e


@contextlib.contextmanager
def _ctrl_c_held():
  """Holds a Ctrl-C (SIGINT) that comes while a save starts until orbax has handed the
  write to its thread, then raises it: interrupted half-way, orbax leaves a temporary
  directory and no checkpoint, and its close can hang. A second Ctrl-C interrupts at
  once. (Only the main thread gets signals; an ignored SIGINT stays ignored.)"""
  handler = signal.getsignal(signal.SIGINT)
  if threading.current_thread() is not threading.main_thread() or not callable(handler):
    yield
    return
  held = []

  def hold(signum, frame):
    del frame
    if held:
      raise KeyboardInterrupt
    held.append(signum)

  signal.signal(signal.SIGINT, hold)
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, handler)
  if held:
    raise KeyboardInterrupt


# ------------------------------------------------------------------------ checkpointer


class Checkpointer:
  """Saves every ``every_steps`` steps (and on request), keeps the newest ``max_to_keep``.

  Every process must call ``save`` and ``restore`` (they are collective). With
  ``read_only`` nothing is created or changed on disk (starting weights of another run).
  A save's step directory is created before ``save`` returns (not in orbax's thread), so
  an unwritable directory is an error there, not a hang.
  """

  def __init__(self, directory: str, *, every_steps: int = 1, max_to_keep: int = 1,
               async_save: bool = True, read_only: bool = False):
    self.directory = os.path.abspath(directory)
    self._every_steps = every_steps
    # Read-only: the options orbax would otherwise set itself, with a warning each.
    self._options = ocp.CheckpointManagerOptions(
        max_to_keep=None if read_only else max_to_keep, create=not read_only,
        read_only=read_only, save_interval_steps=0 if read_only else 1,
        enable_async_checkpointing=async_save,
        async_options=ocp.AsyncOptions(create_directories_asynchronously=False))
    self._manager = self._open()
    self._in_flight: Optional[int] = None   # the step of the save not yet waited for
    self._abandoned = False                 # a second Ctrl-C stopped waiting for it
    self._save_errors = _SaveErrors()

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

  def _newest_step(self) -> Optional[int]:
    """The step of the newest finished checkpoint on disk (read again, not remembered)."""
    return max(self._manager.all_steps(read=True), default=None)

  def _newest(self) -> str:
    """Which checkpoint is the newest on disk, in words."""
    step = self._newest_step()
    if step is None:
      return f"no checkpoint was written in {self.directory}"
    return f"the newest checkpoint is step {step} in {self.directory}"

  def save(self, step: int, state, batch_source=None, *, loop: str = "",
           force: bool = False) -> bool:
    """Starts saving (returns before the write ends when async); False if not due.

    Due: ``force`` or a multiple of ``every_steps``. The save before must have reached
    the disk, and this one's directory must be writable: else CheckpointIOError. The
    state's checksums are computed first (on device), so the save never waits on a later
    step.
    """
    if not (force or self.is_due(step)) or step in self._manager.all_steps():
      return False
    self.wait()
    with _ctrl_c_held():
      items = {"state": ocp.args.PyTreeSave(state),
               "meta": ocp.args.JsonSave({"loop": loop, "checksums": checksums(state)})}
      if batch_source is not None:
        items["data"] = grain.checkpoint.CheckpointSave(batch_source)
      logging.getLogger("absl").addFilter(self._save_errors)
      try:
        started = self._manager.save(step, args=ocp.args.Composite(**items), force=True)
      except OSError as e:
        logging.getLogger("absl").removeFilter(self._save_errors)
        raise CheckpointIOError(f"saving checkpoint step {step} in {self.directory} failed "
                                f"({_first_line(e)}); {self._newest()}") from e
      self._in_flight = step if started else None
    return started

  def reached_preemption(self, step: int) -> bool:
    """True (on every process at the same step) once a multi-process job got a
    preemption notice (jax's preemption service turns SIGTERM into a sync point)."""
    return self._manager.reached_preemption(step)

  # ------------------------------------------------------------------------ restore

  def _meta(self, step: int) -> dict:
    where = os.path.join(self.path(step), "meta")
    with _reading(f"{where} does not read"):
      meta = self._manager.restore(
          step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if not isinstance(meta, dict) or "checksums" not in meta:
      raise CheckpointDamagedError(f"{where} has no checksums")
    return meta

  def _stored_shapes(self, step: int) -> dict[str, tuple[int, ...]]:
    """{path: shape} of the checkpoint's state arrays, from their metadata."""
    with _reading(f"checkpoint {self.path(step)}: the state's metadata does not read"):
      stored = self._manager.item_metadata(step)["state"]
    return _shapes(getattr(stored, "tree", stored))

  def check_compatible(self, abstract_state, step: int, loop: str = "") -> None:
    """Raises CheckpointMismatchError naming the checkpoint and the first differing key."""
    where = f"checkpoint {self.path(step)}"
    stored_loop = self._meta(step).get("loop", "")
    if loop and stored_loop and stored_loop != loop:
      raise CheckpointMismatchError(
          f"{where} was written by loop {stored_loop!r}, this run is loop {loop!r}: use a "
          f"new workdir and start from it with init_checkpoint={os.path.dirname(self.directory)}")
    stored_shapes = self._stored_shapes(step)
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

  def _check_files(self, step: int, data: bool = False) -> None:
    """Raises CheckpointDamagedError naming a checkpoint's file that is missing (of
    _REQUIRED_FILES, and the batch sources' states with ``data``) or a JSON file that does
    not parse (orbax's metadata, our meta, the batch sources' states)."""
    for name in _REQUIRED_FILES + (("data",) if data else ()):
      if not os.path.exists(os.path.join(self.path(step), name)):
        raise CheckpointDamagedError(f"{os.path.join(self.path(step), name)} is missing")
    for root, _, names in os.walk(self.path(step)):
      for name in names:
        if name.endswith(".json") or name in _JSON_FILES:
          path = os.path.join(root, name)
          with _reading(f"{path} does not read"), open(path, encoding="utf-8") as f:
            json.load(f)

  def _restore_step(self, abstract_state, batch_source, step: int, loop: str):
    self._check_files(step, data=batch_source is not None)
    meta = self._meta(step)
    self.check_compatible(abstract_state, step, loop)
    items = {"state": _restore_args(abstract_state)}
    if batch_source is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(batch_source)
    with _reading(f"checkpoint {self.path(step)} does not restore"):
      state = self._manager.restore(step, args=ocp.args.Composite(**items))["state"]
    _verify(checksums(state), meta["checksums"], self.path(step))
    return state

  def restore(self, abstract_state, batch_source=None, *, loop: str = "",
              report: Callable[[str], None] = print):
    """(state, step) of the newest intact checkpoint, with the shardings in
    ``abstract_state`` (ShapeDtypeStructs with ``sharding`` set); ``batch_source`` is
    restored in place. Damaged checkpoints are reported, moved aside and skipped.
    Raises FileNotFoundError when there is none, CheckpointDamagedError when none is
    intact, CheckpointMismatchError when one does not fit this run, CheckpointIOError
    (nothing moved) when one cannot be read for another reason.
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
    in ``abstract_params``; nothing else is read. A read that fails for another reason
    (CheckpointIOError) stops, not falling back to older weights."""
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
        self._check_files(step)
        meta = self._meta(step)
        stored_shapes = self._stored_shapes(step)
        for path, shape in _shapes({"params": abstract_params}).items():
          if stored_shapes.get(path) != shape:
            raise CheckpointMismatchError(
                f"{where}: {path} has shape {stored_shapes.get(path)} there but {shape} in "
                "this model; use a checkpoint of this model, or set the config of the model "
                "it is read into (model.*, teacher.model.*) to match")
        with _reading(f"{where} does not restore"):
          restored = self._manager.restore(step, args=ocp.args.Composite(
              state=_restore_args({"params": abstract_params}, partial=True)))["state"]
        expected = {path: value for path, value in meta["checksums"].items()
                    if path.startswith("params/")}
        _verify(checksums({"params": restored["params"]}), expected, self.path(step))
        return restored["params"], step
      except CheckpointDamagedError as e:  # try the next older one
        report(f"warning: {e}; trying an older one")
    raise CheckpointDamagedError(f"no intact checkpoint{which} in {self.directory}")

  def wait(self) -> None:
    """Blocks until the save in flight is on disk; CheckpointIOError, with the error of
    orbax's thread, if it failed or did not get there."""
    failure = None
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # the error of orbax's thread, raised again
      failure = e
    finally:
      logging.getLogger("absl").removeFilter(self._save_errors)
    step, self._in_flight = self._in_flight, None
    errors, self._save_errors.errors = self._save_errors.errors, []
    if failure is None and (step is None or os.path.isdir(self.path(step))):
      return
    why = _first_line(failure or errors[0]) if failure or errors else "orbax gave no error"
    raise CheckpointIOError(f"saving checkpoint step {step} in {self.directory} failed "
                            f"({why}); {self._newest()}") from failure

  def interrupted(self) -> Interrupted:
    """After a Ctrl-C: waits for the save in flight (a second Ctrl-C stops waiting) and
    says how it ended and which checkpoint is the newest."""
    step = self._in_flight
    try:
      self.wait()
      ended = "" if step is None else f"the save of step {step} finished; "
    except CheckpointIOError:
      ended = f"the save of step {step} failed; "
    except KeyboardInterrupt:
      self._abandoned = True
      ended = "a second Ctrl-C stopped the wait for the save in flight; "
    go_on = "; rerun the same command to go on" if self._newest_step() is not None else ""
    return Interrupted(f"interrupted; {ended}{self._newest()}{go_on}")

  def close(self) -> None:
    """Waits for the save in flight (CheckpointIOError if it did not reach the disk),
    then releases the manager; after a wait a second Ctrl-C stopped, nothing (the save
    ends before the process does)."""
    if self._abandoned:
      return
    try:
      self.wait()
    finally:
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
                "dt_min", "dt_max", "attention_impl", "attention_block", "attention",
                "layer_attention", "local_block", "pool_kernel", "pool_stride", "max_seq_len")
# Sizes the weights have layer by layer: (per-layer field, its layers' pattern character,
# the uniform field it overrides). n_kv_heads=2 and layer_kv_heads=(2, 2) are one model.
_LAYER_SIZES = (("layer_kv_heads", "*", "n_kv_heads"), ("layer_mlp_dims", "-", "mlp_dim"))


def _check_same_model(stored: ModelConfig, wanted: ModelConfig, path: str) -> None:
  def mismatch(field, stored_value, wanted_value):
    raise CheckpointMismatchError(
        f"init_checkpoint={path} has model.{field}={stored_value!r}, the run config has "
        f"{wanted_value!r}: set --config.model.{field} to match")

  compared_per_layer = {name for per_layer, _, uniform in _LAYER_SIZES
                        for name in (per_layer, uniform)}
  for field in type(wanted).__dataclass_fields__:
    if field not in _RUN_CHOICES and field not in compared_per_layer and (
        getattr(stored, field) != getattr(wanted, field)):
      mismatch(field, getattr(stored, field), getattr(wanted, field))
  for per_layer, char, uniform in _LAYER_SIZES:
    sizes = [tuple(getattr(cfg.layer_config(i), uniform)
                   for i, c in enumerate(cfg.pattern) if c == char)
             for cfg in (stored, wanted)]
    if sizes[0] != sizes[1]:
      if stored.is_uniform and wanted.is_uniform:
        mismatch(uniform, getattr(stored, uniform), getattr(wanted, uniform))
      mismatch(per_layer, *sizes)
