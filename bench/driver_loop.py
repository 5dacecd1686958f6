r"""Steps/s of the driver's step loop against the bare jitted step it runs: its overhead.

  PYTHONPATH=. python bench/driver_loop.py [--steps=60] [--rounds=3] [--batch=16 --seq_len=128]
  git show HEAD:train/driver.py > /tmp/old_driver.py
  PYTHONPATH=. python bench/driver_loop.py --compare_driver=/tmp/old_driver.py

Every row runs configs/tiny_hybrid.py's step as ``driver.build`` makes it, on one device:

  bare    the jitted step called back to back on one batch, waited for once at the end
  driver  ``driver.run``'s loop: a batch from the data pipeline every step, the
          non-finite guard, a record every ``train.log_every`` steps (10, then 1) and one
          checkpoint at the end; no evaluation and no samples

``--compare_driver`` adds the driver rows of another ``train/driver.py`` (e.g. the last
commit's), loaded beside this tree's other modules and timed in the same rounds.

Each is timed from the second step's call (compiling left out) to the end of the last
step: for the driver, the call of its final save, which waits for that step. Rounds
alternate between the rows and the fastest round of each is reported. The first line
printed names the CPU, its ISA and the XLA flags in effect.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import tempfile
import time
from unittest import mock

import jax
import ml_collections
from absl import app
from absl import flags

from configs import tiny_hybrid
from train import checkpoint as checkpoint_lib
from train import cli
from train import driver
from train import sharding
from train import xla_flags

xla_flags.apply()  # before the first JAX computation starts the CPU backend

_STEPS = flags.DEFINE_integer("steps", 60, "Steps per timed run.")
_BATCH = flags.DEFINE_integer("batch", 16, "Rows a step (the config's 16).")
_SEQ_LEN = flags.DEFINE_integer("seq_len", 128, "Tokens a row (the config's 128).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed rounds; the fastest one is reported.")
_COMPARE_DRIVER = flags.DEFINE_string(
    "compare_driver", "", "Path of another train/driver.py whose loop is timed too.")
LOG_EVERY = (10, 1)


def run_config(steps: int, log_every: int) -> ml_collections.ConfigDict:
  """tiny_hybrid on one device for ``steps`` steps: no evaluation, no samples, one save."""
  config = tiny_hybrid.get_config()
  config.train.update(steps=steps, log_every=log_every, global_batch_size=_BATCH.value,
                      seq_len=_SEQ_LEN.value)
  config.optimizer.warmup_steps = 1
  config.mesh.data = 1
  config.eval.text_files, config.eval.records = {}, ""
  config.sample.prompts = ()
  config.checkpoint.every_steps = steps
  return config


def bare_seconds_per_step(config: ml_collections.ConfigDict) -> float:
  """The built step on one batch of the loop's batch source, one wait at the end."""
  _, model_cfg = driver.check(config, 1)
  built = driver.build(config, sharding.make_mesh(config.mesh),
                       driver.load_tokenizer(config, model_cfg))
  ctx = built.ctx
  state = driver.initial_state(built, report=lambda message: None)
  abstract_batch = built.loop.abstract_batch(ctx)
  num_rows = next(iter(abstract_batch.values())).shape[0]
  batch = ctx.to_global(built.loop.make_batches(ctx)(state, 0), num_rows)
  train_step = built.jit_step(abstract_batch)
  state, metrics = train_step(state, batch)   # compiles
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(config.train.steps - 1):
    state, metrics = train_step(state, batch)
  jax.block_until_ready((state, metrics))
  return (time.perf_counter() - start) / (config.train.steps - 1)


def load_driver(path: str):
  """The driver module in the file ``path``, importing this tree's other modules."""
  spec = importlib.util.spec_from_file_location("compared_driver", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module   # for its dataclasses
  spec.loader.exec_module(module)
  return module


def driver_seconds_per_step(driver_module, config: ml_collections.ConfigDict) -> float:
  """``driver_module.run`` in a fresh workdir, timed by wrapping its jitted step and its
  save."""
  calls, last_save = [], []
  jit_step, save = driver_module.Built.jit_step, checkpoint_lib.Checkpointer.save

  def timed_jit_step(built, abstract_batch):
    train_step = jit_step(built, abstract_batch)

    def timed(*args):
      calls.append(time.perf_counter())
      return train_step(*args)
    return timed

  def timed_save(checkpointer, step, *args, **kwargs):
    if step == config.train.steps:
      last_save.append(time.perf_counter())
    return save(checkpointer, step, *args, **kwargs)

  with (tempfile.TemporaryDirectory() as workdir,
        mock.patch.object(driver_module.Built, "jit_step", timed_jit_step),
        mock.patch.object(checkpoint_lib.Checkpointer, "save", timed_save),
        contextlib.redirect_stdout(io.StringIO())):
    driver_module.run(config, workdir)
  return (last_save[0] - calls[1]) / (len(calls) - 1)


def table(steps: int, rounds: int, compare_driver: str) -> str:
  drivers = {"this tree's": driver}
  if compare_driver:
    drivers[compare_driver] = load_driver(compare_driver)
  runs = {"bare jitted step (one batch, one wait at the end)":
          lambda: bare_seconds_per_step(run_config(steps, LOG_EVERY[0]))}
  for which, module in drivers.items():
    for log_every in LOG_EVERY:
      runs[f"{which} driver.run loop, a record every {log_every} step(s)"] = (
          lambda module=module, log_every=log_every:
          driver_seconds_per_step(module, run_config(steps, log_every)))
  best = dict.fromkeys(runs, float("inf"))
  for _ in range(rounds):
    for name, timed in runs.items():
      best[name] = min(best[name], timed())
  bare = next(iter(best.values()))
  rows = [f"configs/tiny_hybrid.py, {_BATCH.value} x {_SEQ_LEN.value} tokens a step, one "
          f"{jax.devices()[0].device_kind} device, {steps} steps a run (the first not "
          f"timed), best of {rounds} interleaved rounds",
          "",
          "| loop | steps/s | ms/step | time vs bare |",
          "| --- | ---: | ---: | ---: |"]
  for name, seconds in best.items():
    rows.append(f"| {name} | {1 / seconds:.2f} | {seconds * 1e3:.1f} | "
                f"{seconds / bare:.3f}x |")
  return "\n".join(rows)


def main(argv):
  del argv
  cli.quiet_library_logging()   # orbax logs every save
  print(xla_flags.describe())
  print(table(_STEPS.value, _ROUNDS.value, _COMPARE_DRIVER.value))


if __name__ == "__main__":
  app.run(main)
