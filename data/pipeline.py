"""The training data iterator: sources -> tokenize -> pack -> mix by stage -> batch.

Per source and process (grain):
  documents[process_index::process_count]   disjoint documents per process
  .shuffle(seed).repeat()                   a new global shuffle every epoch
  .batch(n).map(JoinDocuments)              with a source's concatenate = n > 1: n
                                            documents joined into one
  .map(TokenizeDocument)                    ids + eos (and bos if `add_bos`)
  read_in_order(read_threads)               (grain prefetch threads; 0: none)
  FlatMapIterDataset(SplitIntoChunks)       long documents cut into seq_len chunks
    (with data.span_corruption.enabled: .random_map(CorruptSpans) before reading, then
    FlatMapIterDataset(EachPiece): documents cut into pieces, each corrupted into
    input + span targets of at most seq_len tokens, data/span_corruption.py)
  FirstFitPackIterDataset + row features    rows of seq_len, bins shuffled
  .mp_prefetch(num_workers)                 if num_workers > 0
then `mixture.MixtureIterator` draws each row's source by the stage weights and stacks
per_process_batch = global_batch_size // process_count rows into a batch. There is no
separate row shuffle: documents are shuffled globally, so neighbouring rows are already
independent draws.

Checkpointing with orbax (grain 0.2.18 provides the handler and args):

  it = make_iterator(...)
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(train_state), data=grain.checkpoint.CheckpointSave(it)))
  manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      data=grain.checkpoint.CheckpointRestore(it)))   # restores `it` in place

It writes `process_{i}-of-{n}.json` per process (i, n from jax.process_index/count).
Without orbax: `json.dumps(it.get_state())` and `it.set_state(json.loads(...))`.
"""

from __future__ import annotations

from typing import Optional

import grain
import ml_collections
import numpy as np

from data import config as config_lib
from data import mixture
from data import packing
from data import sources
from data import span_corruption as span_corruption_lib
from data import tokenizer as tokenizer_lib

# Tags of the seed streams (nonzero: SeedSequence ignores trailing zeros).
_MIXTURE, _SOURCE, _SHUFFLE, _PACKING, _SPANS = 1, 2, 3, 4, 5
_PREFETCH_PER_THREAD = 16   # elements in flight per read thread


def derive_seed(seed: int, *stream: int) -> int:
  """A 32-bit seed for one random stream of the pipeline (grain wants < 2**32)."""
  return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


def read_in_order(dataset: grain.MapDataset, read_threads: int = 0) -> grain.IterDataset:
  """``dataset`` as an iterator dataset, its elements computed on ``read_threads`` grain
  prefetch threads (0: on the thread that iterates).

  Not grain's default of 16 threads with 500 elements in flight: on a few cores their
  bookkeeping costs more than the tokenization they overlap (the claims' batches of short
  documents, bench/RESULTS.md). Threads pay where looking an element up is slow C++
  (grain's index shuffle of a short list, as in train/sft.py). The order and the iterator
  state do not depend on them.
  """
  if read_threads < 0:
    raise ValueError(f"data.read_threads={read_threads}: must be >= 0")
  return dataset.to_iter_dataset(grain.ReadOptions(
      num_threads=read_threads, prefetch_buffer_size=_PREFETCH_PER_THREAD * read_threads))


class JoinDocuments(grain.transforms.Map):
  """grain transform: a list of pretraining `Document`s -> one, the texts joined by a
  blank line (module level: workers pickle it)."""

  def map(self, documents: list[sources.Document]) -> sources.Document:
    return "", "\n\n".join(text for _, text in documents)


def source_rows(documents: grain.MapDataset, *, name: str,
                tokenizer: tokenizer_lib.Tokenizer, seq_len: int, seed: int,
                process_index: int, process_count: int, add_bos: bool,
                num_packing_bins: int, num_workers: int, read_threads: int = 0,
                span_corruption: Optional[ml_collections.ConfigDict] = None,
                concatenate: int = 1) -> grain.IterDataset:
  """Endless packed rows (dicts of `packing.ROW_FEATURES`, each (seq_len,)) of one source;
  with an enabled `span_corruption` section, rows of masked-span prediction pieces; with
  `concatenate` > 1, documents joined that many at a time (`JoinDocuments`)."""
  shard = documents[process_index::process_count]
  if len(shard) == 0:  # pylint: disable=g-explicit-length-test
    raise ValueError(f"source {name!r} has {len(documents)} documents, fewer than the "
                     f"{process_count} processes")
  shuffled = shard.shuffle(derive_seed(seed, _SHUFFLE)).repeat()
  if concatenate > 1:
    shuffled = shuffled.batch(concatenate, batch_fn=list).map(JoinDocuments())
  tokenized = shuffled.map(packing.TokenizeDocument(tokenizer, add_bos))
  if span_corruption is not None and span_corruption.enabled:
    tokenized = tokenized.random_map(
        span_corruption_lib.CorruptSpans.from_config(span_corruption, tokenizer, seq_len),
        seed=derive_seed(seed, _SPANS))
    split = span_corruption_lib.EachPiece()
  else:
    split = packing.SplitIntoChunks(seq_len)
  chunks = grain.experimental.FlatMapIterDataset(read_in_order(tokenized, read_threads), split)
  rows = packing.pack_chunks(chunks, seq_len=seq_len, pad_id=tokenizer.pad_id,
                             num_packing_bins=num_packing_bins,
                             seed=derive_seed(seed, _PACKING))
  if num_workers > 0:
    rows = rows.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return rows


def make_iterator(data_config: ml_collections.ConfigDict, *, seq_len: int,
                  global_batch_size: int, tokenizer: tokenizer_lib.Tokenizer, seed: int,
                  process_index: int = 0, process_count: int = 1,
                  stage: Optional[str] = None) -> mixture.MixtureIterator:
  """This process's iterator of batches for the schedule in `data_config`.

  Args:
    data_config: see `data/config.py`.
    seq_len: tokens per row.
    global_batch_size: rows per step over all processes; divisible by process_count.
    tokenizer: e.g. `tokenizer.load_tokenizer(data_config.tokenizer_path)`.
    seed: run seed; the document order, packing and mixture draws derive from it.
    process_index: this process (`jax.process_index()`).
    process_count: all processes (`jax.process_count()`); each reads disjoint documents.
    stage: start at the first step of this stage (fresh sources), e.g. for a
      separate SFT job; None starts at the beginning of the schedule.

  Returns:
    A grain `DatasetIterator` of dicts of (global_batch_size // process_count, seq_len)
    arrays: tokens, targets, segment_ids, positions (int32), loss_mask (float32).
    It has `.step`, `.stage` and `.tokens_seen` (per source, this process) and exact
    `get_state()` / `set_state()`.
  """
  if global_batch_size % process_count:
    raise ValueError(f"global_batch_size {global_batch_size} is not divisible by "
                     f"process_count {process_count}")
  data_config = config_lib.with_mixture_files(data_config)
  names = tuple(data_config.sources.keys())
  spans = data_config.get("span_corruption")
  stages = mixture.resolve_stages(data_config.stages, names, global_batch_size * seq_len)
  rows = {
      name: source_rows(
          sources.open_source(data_config.sources[name]), name=name, tokenizer=tokenizer,
          seq_len=seq_len, seed=derive_seed(seed, _SOURCE, index), process_index=process_index,
          process_count=process_count, add_bos=data_config.add_bos,
          num_packing_bins=data_config.num_packing_bins,
          num_workers=data_config.num_workers,
          read_threads=data_config.get("read_threads", 0),
          span_corruption=(spans if span_corruption_lib.corrupts_source(spans, name, names)
                           else None),
          concatenate=data_config.sources[name].get("concatenate", 1))
      for index, name in enumerate(names)
  }
  start_step = 0 if stage is None else mixture.stage_start_step(stages, stage)
  return mixture.MixtureIterator(
      rows, stages, batch_size=global_batch_size // process_count,
      seed=derive_seed(seed, _MIXTURE, process_index), start_step=start_step)
