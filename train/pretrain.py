"""Pretraining: next-token loss on the data pipeline's packed rows (the default loop).

Batches come from ``data.pipeline`` (sources → tokenize → pack → mix by stage); each
process reads its own documents and rows, or, with ``train.read_global_batch``, every
process reads the whole batch and keeps its rows (the data then do not depend on the
process count). The step is ``train.step.make_train_step`` over ``train.loss``'s masked
cross-entropy with z-loss. SFT uses the same step on chat rows (``train/sft.py``).
"""

from __future__ import annotations

import jax

from data import pipeline
from train import loss as loss_lib
from train import step as step_lib
from train.config import ConfigError
from train.loops import Context, IteratorBatches, Loop


def make_lm_step(ctx: Context):
  """The update on packed LM rows with the run's optimizer, schedule and accumulation."""
  train = ctx.config.train
  return step_lib.make_train_step(loss_lib.make_lm_loss(ctx.model_cfg, train.z_loss),
                                  ctx.optimizer, grad_accum_steps=train.grad_accum_steps,
                                  learning_rate_fn=ctx.schedule)


def abstract_lm_batch(ctx: Context) -> dict:
  return loss_lib.abstract_lm_batch(ctx.config.train.global_batch_size,
                                    ctx.config.train.seq_len)


def process_share(ctx: Context) -> tuple[int, int, slice]:
  """(process index, process count, rows) by which this process reads its data: its own
  share of documents and rows, or all of them under ``train.read_global_batch``."""
  batch_size = ctx.config.train.global_batch_size
  rows = ctx.process_rows(batch_size)
  if ctx.config.train.read_global_batch:
    return 0, 1, rows
  count = jax.process_count()
  if rows.stop - rows.start != batch_size // count:
    raise ConfigError(
        f"this mesh gives process {jax.process_index()} rows {rows.start}..{rows.stop} of "
        f"train.global_batch_size={batch_size}, not a 1/{count} share: set "
        "train.read_global_batch=True")
  return jax.process_index(), count, None


def make_batches(ctx: Context) -> IteratorBatches:
  config = ctx.config
  index, count, rows = process_share(ctx)
  iterator = pipeline.make_iterator(
      config.data, seq_len=config.train.seq_len,
      global_batch_size=config.train.global_batch_size, tokenizer=ctx.tokenizer,
      seed=config.train.seed, process_index=index, process_count=count)
  return IteratorBatches(iterator, rows=rows)


LOOP = Loop(make_step=make_lm_step, make_batches=make_batches,
            abstract_batch=abstract_lm_batch)
