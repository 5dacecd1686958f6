"""A declarative stage pipeline: pretrain → RLP or continued pretraining → SFT → GRPO,
each stage trained once per content and reused.

A stage (``stage(...)``) is a run config of the one driver (any loop, its own mixture in
``data.stages`` or records in its loop's section) plus:

  after       the stage whose final weights it starts from (its ``init_checkpoint``);
              '' keeps the run config's own ``init_checkpoint`` (or scratch)
  teacher     the stage whose final weights are its ``teacher.checkpoint`` (a
              distillation stage, e.g. a pruned student and its unpruned teacher); ''
              keeps the run config's own
  steps       its optimizer steps (``train.steps``)
  fast_steps  its steps in a reduced run (``fast=True``)
  shared      trained once with ``train.seed=0`` and reused by every seed of a claim
              (e.g. one pretrained base); it may only start after shared stages

A pipeline is a ``{name: stage}`` mapping; the ``after`` links make a tree, so stages
that several branches share (one pretrained base for every arm) run once. A ``teacher``
stage is trained before the stages it teaches.

Stages reused by content. A stage's key is the sha256 of its identity: its resolved run
config as JSON (steps and seed resolved, the eval section removed, ``init_checkpoint``
replaced by the key of the stage it starts after, ``teacher.checkpoint`` by the key of
its teacher stage, and every string that names an
existing file replaced by the sha256 of that file's bytes) and the code version (the
sha256 of the ``.py`` sources of model/, train/, rl/ and data/). Stages train without
evaluation, as ordinary ``train.driver.run`` runs, in the stage cache::

  <cache>/<key>/            the driver's workdir (config.json, metrics.jsonl, checkpoints/,
                            summary.json, ...)
  <cache>/<key>/stage.json  the inputs: name, key, parent key, run config, file digests,
                            code version
  <cache>/<key>/evals/<eval key>.json   an evaluation of its final weights with one eval
                            section (``evaluate``; eval key: the section's sha256, its
                            records file by content): {"eval", "figures"}
  <cache>/<key>.lock        held (``flock``) while a process trains or evaluates it

A finished entry is read back, not trained again: by a rerun, by another seed with the
same inputs (a shared stage) or by another claim with an identical stage; a changed
config field, data file or code version gives another key, so that stage (and the
stages after it) train again. A killed stage resumes from its newest checkpoint (the
driver resumes a workdir; one killed before its first save starts over); two processes
wanting one entry take turns on its lock. The cache is ``cache_root(...)``: a claim's
``cache_dir``, else ``$REASONAX_STAGE_CACHE``, else ``~/.cache/reasonax/stages``. The
untrained model of a stage (``untrained``) has an entry of its own, for its evaluations
only.

Tokens: a step of any loop reads ``train.global_batch_size × train.seq_len`` global
tokens (rows of text, SFT conversations or rollouts, padding included, as the data
budgets of ``data/config.py`` count them); ``tokens_seen`` of a stage is that times its
steps, plus what the stages it starts from saw.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional

import jax
import ml_collections

from model import lm
from train import checkpoint as checkpoint_lib
from train import config as config_lib
from train import driver
from train import evaluate as evaluate_lib
from train import loops
from train import metrics as metrics_lib
from train import sharding
from train import workdir as workdir_lib

CACHE_ENV = "REASONAX_STAGE_CACHE"
DEFAULT_CACHE = os.path.join("~", ".cache", "reasonax", "stages")
# The packages whose sources make the code version.
CODE_PACKAGES = ("model", "train", "rl", "data")


def stage(run: ml_collections.ConfigDict, *, steps: int, fast_steps: Optional[int] = None,
          after: str = "", teacher: str = "", shared: bool = False
          ) -> ml_collections.ConfigDict:
  """One stage: ``run`` (a run config) for ``steps`` steps (``fast_steps`` when fast,
  default ``steps``), starting from the stage ``after``, taught by the stage
  ``teacher``; ``shared``: once for every seed."""
  return ml_collections.ConfigDict(dict(
      run=run, steps=steps, after=after, teacher=teacher, shared=shared,
      fast_steps=steps if fast_steps is None else fast_steps))


def chain(stages: Mapping[str, Any], name: str) -> list[str]:
  """The stages ``name`` runs after, first the root, ``name`` last; a ConfigError names
  an unknown stage or a cycle."""
  names = []
  while name:
    if name not in stages:
      raise config_lib.ConfigError(f"stages: {names[-1] if names else 'arms'} starts after "
                                   f"unknown stage {name!r}; known: {sorted(stages)}")
    if name in names:
      raise config_lib.ConfigError(f"stages: {' → '.join(reversed(names))} → {name} is a cycle")
    names.append(name)
    name = stages[name].after
  return names[::-1]


def check_shared(stages: Mapping[str, Any]) -> None:
  """ConfigError for a teacher that is not a stage, and for a shared stage that starts
  after or is taught by a stage that is not shared (its weights would differ per
  seed)."""
  for name, spec in stages.items():
    teacher = spec.get("teacher", "")
    if teacher and teacher not in stages:
      raise config_lib.ConfigError(f"stages.{name}.teacher={teacher!r} is not a stage; "
                                   f"known: {sorted(stages)}")
    for link in ("after", "teacher"):
      parent = spec.get(link, "")
      if spec.shared and parent and not stages[parent].shared:
        how = "starts after" if link == "after" else "is taught by"
        raise config_lib.ConfigError(
            f"stages.{name} is shared but {how} {parent!r}, which is not: a stage shared "
            "by every seed may only depend on shared stages")


def stage_tokens(run: ml_collections.ConfigDict) -> int:
  """Global tokens one run reads: steps × batch rows × row length."""
  return run.train.steps * run.train.global_batch_size * run.train.seq_len


def run_config(spec: ml_collections.ConfigDict, *, seed: int, fast: bool,
               init_checkpoint: str = "", teacher_checkpoint: str = ""
               ) -> ml_collections.ConfigDict:
  """The run config of stage ``spec``: its steps, ``train.seed`` (0 for a shared stage),
  ``init_checkpoint`` (if it starts after a stage), ``teacher.checkpoint`` (if a stage
  teaches it) and no evaluation."""
  run = copy.deepcopy(spec.run)
  with run.unlocked():
    run.train.steps = spec.fast_steps if fast else spec.steps
    run.train.seed = 0 if spec.shared else seed
    if spec.after:
      run.init_checkpoint = init_checkpoint
    if spec.get("teacher", ""):
      run.teacher.checkpoint = teacher_checkpoint
    run.eval.text_files = {}
    run.eval.records = ""
  return run


# ---------------------------------------------------------------------------- identity


def cache_root(configured: str = "") -> str:
  """The stage cache: ``configured``, else $REASONAX_STAGE_CACHE, else
  ~/.cache/reasonax/stages."""
  return os.path.abspath(os.path.expanduser(
      configured or os.environ.get(CACHE_ENV, "") or DEFAULT_CACHE))


@functools.cache
def code_version() -> str:
  """sha256 over the ``.py`` sources of CODE_PACKAGES (relative path and bytes of each)."""
  digest = hashlib.sha256()
  for package in CODE_PACKAGES:
    for folder, subfolders, files in sorted(os.walk(os.path.join(config_lib.REPOSITORY,
                                                                 package))):
      subfolders.sort()
      for name in sorted(f for f in files if f.endswith(".py")):
        path = os.path.join(folder, name)
        digest.update(os.path.relpath(path, config_lib.REPOSITORY).encode() + b"\0")
        with open(path, "rb") as f:
          digest.update(f.read() + b"\0")
  return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
  del mtime_ns, size  # the cache key: a rewritten file is read again
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def file_sha256(path: str) -> str:
  status = os.stat(path)
  return _file_sha256(os.path.abspath(path), status.st_mtime_ns, status.st_size)


def with_file_digests(value: Any, files: dict[str, str]) -> Any:
  """``value`` (JSON) with every string that names an existing file replaced by
  'sha256:<digest of its bytes>'; ``files`` gets {path: digest}. Directories are kept
  as their path."""
  if isinstance(value, dict):
    return {key: with_file_digests(item, files) for key, item in value.items()}
  if isinstance(value, list):
    return [with_file_digests(item, files) for item in value]
  if isinstance(value, str) and value and os.path.isfile(config_lib.find_path(value)):
    files[value] = file_sha256(config_lib.find_path(value))
    return f"sha256:{files[value]}"
  return value


def sha256_json(value: Any) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def identity(run: ml_collections.ConfigDict, parent_key: str, teacher_key: str = ""
             ) -> tuple[dict, dict[str, str]]:
  """(what a stage's key is the hash of, {data file: sha256}) for ``run`` starting from
  the stage keyed ``parent_key`` ('' for a root stage), taught by the stage keyed
  ``teacher_key`` ('' for none)."""
  record = driver.config_record(run)
  record.pop("eval", None)
  if parent_key:
    record["init_checkpoint"] = parent_key
  if teacher_key:
    record["teacher"]["checkpoint"] = teacher_key
  files = {}
  return {"config": with_file_digests(record, files), "code": code_version()}, files


def eval_key(section: ml_collections.ConfigDict) -> str:
  """The sha256 of an eval section, its files by content."""
  return sha256_json(with_file_digests(json.loads(section.to_json_best_effort()), {}))


# ---------------------------------------------------------------------------- resolved


@dataclasses.dataclass(frozen=True)
class Stage:
  """A stage resolved for one seed: its run config (``init_checkpoint`` the entry of the
  stage it starts after), its key and cache entry, and the tokens it and its parents
  read."""
  name: str
  run: ml_collections.ConfigDict
  key: str
  parent_key: str
  files: dict[str, str]
  directory: str
  tokens_seen: int
  shared: bool


def resolve(stages: Mapping[str, Any], targets: Sequence[str], cache: str, *, seed: int,
            fast: bool) -> dict[str, Stage]:
  """Every stage ``targets`` need (the stages they start after and their teachers),
  each before the stages that need it, resolved for ``seed`` in the cache ``cache``:
  {name: Stage}."""
  out, pending = {}, []

  def add(name):
    if name in pending:
      raise config_lib.ConfigError(f"stages: {' → '.join(pending)} → {name}: a stage "
                                   "is taught by a stage that needs it")
    pending.append(name)
    for link in chain(stages, name):
      if link in out:
        continue
      spec = stages[link]
      teacher = spec.get("teacher", "")
      if teacher:
        add(teacher)
      parent = out[spec.after] if spec.after else None
      taught_by = out[teacher] if teacher else None
      run = run_config(spec, seed=seed, fast=fast,
                       init_checkpoint=parent.directory if parent else "",
                       teacher_checkpoint=taught_by.directory if taught_by else "")
      inputs, files = identity(run, parent.key if parent else "",
                               taught_by.key if taught_by else "")
      key = sha256_json(inputs)
      out[link] = Stage(name=link, run=run, key=key,
                        parent_key=parent.key if parent else "", files=files,
                        directory=os.path.join(cache, key),
                        tokens_seen=stage_tokens(run) + (parent.tokens_seen if parent else 0),
                        shared=bool(spec.shared))
    pending.pop()

  for target in targets:
    add(target)
  return out


def untrained(stages: Mapping[str, Any], name: str, cache: str,
              teachers: Optional[Mapping[str, Stage]] = None) -> Stage:
  """The randomly initialised model of the root of stage ``name`` (``train.seed=0``, no
  step): an entry for its evaluations (``evaluate``). A root taught by a stage takes its
  teacher from ``teachers`` (resolved stages by name): the shape of a student may depend
  on its teacher's weights (a Puzzle search)."""
  spec = stages[chain(stages, name)[0]]
  teacher = (teachers or {}).get(spec.get("teacher", ""))
  run = run_config(spec, seed=0, fast=False,
                   teacher_checkpoint=teacher.directory if teacher else "")
  with run.unlocked():
    run.train.steps = 0
  inputs, files = identity(run, "", teacher.key if teacher else "")
  key = sha256_json({**inputs, "untrained": True})
  return Stage(name="untrained", run=run, key=key, parent_key="", files=files,
               directory=os.path.join(cache, key), tokens_seen=0, shared=True)


# ------------------------------------------------------------------------------ datasets

DATASET_PREFIX = "dataset:"


def build_dataset(name: str, section: ml_collections.ConfigDict, cache: str,
                  report: Callable[[str], None] = print) -> tuple[str, dict]:
  """(directory, figures) of the dataset ``name``: ``section.build`` ('module:function')
  called as ``function(directory, **section.args)`` once per content (build, args, code
  version) in ``<cache>/datasets/``, into a temporary directory renamed when it returns
  (a killed build starts over); its returned figures (JSON) are kept beside the files."""
  from data import curate  # pylint: disable=g-import-not-at-top
  build = curate.load_plugin(section.build, f"datasets.{name}.build")
  args = section.get("args", ml_collections.ConfigDict()).to_dict()
  key = sha256_json({"build": section.build, "args": args, "code": code_version()})
  directory = os.path.join(cache, "datasets", f"{name}-{key[:16]}")
  figures_path = os.path.join(directory, "figures.json")
  with _locked(f"{directory}.lock"):
    if os.path.exists(figures_path):
      report(f"dataset {name}: read back from {directory}")
    else:
      report(f"dataset {name}: building in {directory}")
      partial = f"{directory}.partial"
      shutil.rmtree(partial, ignore_errors=True)
      os.makedirs(partial)
      figures = build(partial, **args) or {}
      workdir_lib.write_json(os.path.join(partial, "figures.json"), figures)
      shutil.rmtree(directory, ignore_errors=True)
      os.replace(partial, directory)
  with open(figures_path, encoding="utf-8") as f:
    return directory, json.load(f)


def with_datasets(value: Any, directories: Mapping[str, str], where: str = "") -> Any:
  """``value`` (a config as plain data) with every string 'dataset:<name>/<file>'
  replaced by that file's path in the built dataset ``name`` (ConfigDicts in it, e.g.
  the stages of a ``data`` section, as dicts)."""
  if isinstance(value, (Mapping, ml_collections.ConfigDict)):
    return {k: with_datasets(v, directories, f"{where}.{k}".lstrip(".")) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(with_datasets(v, directories, where) for v in value)
  if isinstance(value, str) and value.startswith(DATASET_PREFIX):
    name, _, rest = value[len(DATASET_PREFIX):].partition("/")
    if name not in directories:
      raise config_lib.ConfigError(f"{where}={value!r}: no dataset {name!r}; the claim's "
                                   f"datasets: {sorted(directories)}")
    return os.path.join(directories[name], rest)
  return value


# ------------------------------------------------------------------------ train, evaluate


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
  """Holds an exclusive ``flock`` on ``path`` (waits for another holder)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a", encoding="utf-8") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def is_trained(stage_: Stage) -> bool:
  """Whether the entry holds the stage's finished run: its last checkpoint and a
  ``summary.json`` at that step."""
  steps = stage_.run.train.steps
  summary = os.path.join(stage_.directory, "summary.json")
  if not (os.path.isdir(os.path.join(stage_.directory, "checkpoints", str(steps)))
          and os.path.exists(summary)):
    return False
  with open(summary, encoding="utf-8") as f:
    return json.load(f).get("step") == steps


def _drop_unresumable(directory: str) -> None:
  """Removes an entry that holds no checkpoint (an attempt killed before its first save,
  whose logs the driver would refuse to overwrite): it starts over."""
  folder = os.path.join(directory, "checkpoints")
  saved = os.path.isdir(folder) and any(name.isdigit() for name in os.listdir(folder))
  if os.path.isdir(directory) and not saved:
    shutil.rmtree(directory)


def train(stage_: Stage, report: Callable[[str], None] = print) -> float:
  """Trains ``stage_`` into its entry unless it is there (resuming from its newest
  checkpoint); the seconds it took (0: read back)."""
  describe = (f"stage {stage_.name} ({driver.loop_name(stage_.run)}, "
              f"{stage_.run.train.steps} steps, seed {stage_.run.train.seed})")
  with _locked(f"{stage_.directory}.lock"):
    if is_trained(stage_):
      report(f"{describe}: read back from {stage_.directory}")
      return 0.0
    report(f"{describe}: training in {stage_.directory}")
    started = time.time()
    if jax.process_index() == 0:
      _drop_unresumable(stage_.directory)
      os.makedirs(stage_.directory, exist_ok=True)
      workdir_lib.write_json(os.path.join(stage_.directory, "stage.json"), {
          "name": stage_.name, "key": stage_.key, "parent_key": stage_.parent_key,
          "config": driver.config_record(stage_.run), "files": stage_.files,
          "code_version": code_version()})
    # Same key, same trajectory: a resume may only differ in where files are (a moved
    # cache or checkout), which the driver would otherwise refuse.
    driver.run(stage_.run, stage_.directory, allow_changes=True)
    return time.time() - started


def _figures(run: ml_collections.ConfigDict, params_of: Callable[[loops.Context], tuple]
             ) -> dict[str, float]:
  """The figures of ``run``'s eval section for the weights ``params_of(context)`` gives
  as (params, step)."""
  model_cfg = loops.model_config(run)
  ctx = loops.Context(config=run, model_cfg=model_cfg,
                      tokenizer=driver.load_tokenizer(run, model_cfg),
                      mesh=sharding.make_mesh(run.mesh), optimizer=None, schedule=None)
  evaluator = evaluate_lib.Evaluator.create(ctx)
  params, step = params_of(ctx)
  return metrics_lib.plain(evaluator(params, step))


def _trained_params(directory: str, report: Callable[[str], None]):
  def params_of(ctx):
    params, step = checkpoint_lib.load_params(directory, ctx.model_cfg,
                                              ctx.param_shardings(), report=report)
    return params, step or 0
  return params_of


def _initial_params(ctx: loops.Context):
  """The weights ``train.driver`` starts a run from scratch with."""
  init = jax.jit(functools.partial(lm.init, cfg=ctx.model_cfg),
                 out_shardings=ctx.param_shardings())
  return init(jax.random.PRNGKey(ctx.config.train.seed)), 0


def evaluate(stage_: Stage, section: ml_collections.ConfigDict,
             report: Callable[[str], None] = print) -> tuple[dict[str, float], float]:
  """(figures of ``stage_``'s final weights with the eval section ``section``, seconds
  it took: 0 when read back from the entry's ``evals/``). The untrained entry
  (``untrained``) is evaluated at its initial weights."""
  path = os.path.join(stage_.directory, "evals", f"{eval_key(section)}.json")
  with _locked(f"{stage_.directory}.lock"):
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        return json.load(f)["figures"], 0.0
    report(f"evaluating {stage_.name} with {section.records}")
    started = time.time()
    run = copy.deepcopy(stage_.run)
    with run.unlocked():
      run.eval = copy.deepcopy(section)
    trained = stage_.run.train.steps > 0
    figures = _figures(run, _trained_params(stage_.directory, report) if trained
                       else _initial_params)
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      workdir_lib.write_json(path, {"eval": json.loads(section.to_json_best_effort()),
                                    "figures": figures})
    return figures, time.time() - started


def link(stage_: Stage, path: str) -> None:
  """``path`` a symbolic link to the stage's entry (a claim's ``seed<k>/<stage>``)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if os.path.islink(path):
    os.remove(path)
  if not os.path.lexists(path):
    os.symlink(stage_.directory, path)
