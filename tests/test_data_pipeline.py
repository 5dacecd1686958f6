"""Packing, mixture schedule, resume, sharding and checkpointing of the data iterator."""

import json

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from data import config as config_lib
from data import mixture
from data import packing
from data import pipeline
from data import tokenizer as tokenizer_lib


class ByteTokenizer:
  """UTF-8 bytes shifted by 4 (pad 0, bos 2, eos 3): rows are easy to read in tests."""

  vocab_size, pad_id, bos_id, eos_id = 260, 0, 2, 3

  def encode(self, text):
    return [b + 4 for b in text.encode()]

  def decode(self, ids):
    return bytes(int(i) - 4 for i in ids if i >= 4).decode()

  def token_to_id(self, token):
    (token_id,) = self.encode(token)
    return token_id


TOKENIZER = ByteTokenizer()


def _config(tmp_path, documents_by_source, stages, num_packing_bins=4):
  """A data config over text files holding `documents_by_source`."""
  config = config_lib.default_data_config()
  sources = {}
  for name, documents in documents_by_source.items():
    path = tmp_path / f"{name}.txt"
    path.write_text("\n\n".join(documents) + "\n")
    sources[name] = config_lib.source_config("text", str(path))
  config.sources = sources
  config.stages = tuple(stages)
  config.num_packing_bins = num_packing_bins
  return config


def _letter_documents(letter, count=30):
  """Documents made of one letter, lengths 3..9: a row's source shows in its tokens."""
  return [letter * (3 + i % 7) for i in range(count)]


def _take(iterator, count):
  return [next(iterator) for _ in range(count)]


def _assert_same_batches(expected, actual):
  assert len(expected) == len(actual)
  for e, a in zip(expected, actual):
    assert e.keys() == a.keys()
    for key in e:
      np.testing.assert_array_equal(e[key], a[key], err_msg=key)


def _row_letters(batch):
  """(batch,) the letter of each row's first token (every row holds one source)."""
  return [TOKENIZER.decode([row[0]]) for row in batch["tokens"]]


def test_packed_rows_are_exact_on_a_hand_made_example():
  chunks = [{"tokens": np.array([10, 11, 12], np.int32), "target_weights": np.ones(3, np.int32)},
            {"tokens": np.array([20, 21, 22], np.int32),
             "target_weights": np.array([0, 0, 1], np.int32)},  # SFT: 21 is prompt.
            {"tokens": np.array([30, 31, 32, 33, 34], np.int32),
             "target_weights": np.ones(5, np.int32)}]
  rows = list(packing.pack_chunks(grain.MapDataset.source(chunks).to_iter_dataset(),
                                  seq_len=7, pad_id=0, num_packing_bins=1, seed=0))
  assert len(rows) == 2
  first, second = rows
  np.testing.assert_array_equal(first["tokens"], [10, 11, 12, 20, 21, 22, 0])
  np.testing.assert_array_equal(first["targets"], [11, 12, 0, 21, 22, 0, 0])
  np.testing.assert_array_equal(first["segment_ids"], [1, 1, 1, 2, 2, 2, 0])
  np.testing.assert_array_equal(first["positions"], [0, 1, 2, 0, 1, 2, 0])
  np.testing.assert_array_equal(first["loss_mask"], [1, 1, 0, 0, 1, 0, 0])
  np.testing.assert_array_equal(second["tokens"], [30, 31, 32, 33, 34, 0, 0])
  np.testing.assert_array_equal(second["targets"], [31, 32, 33, 34, 0, 0, 0])
  np.testing.assert_array_equal(second["segment_ids"], [1, 1, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(second["positions"], [0, 1, 2, 3, 4, 0, 0])
  np.testing.assert_array_equal(second["loss_mask"], [1, 1, 1, 1, 0, 0, 0])
  for row in rows:
    assert {k: v.dtype for k, v in row.items()} == {
        "tokens": np.int32, "targets": np.int32, "segment_ids": np.int32,
        "positions": np.int32, "loss_mask": np.float32}


def test_long_documents_are_chunked_so_every_token_is_a_target_once():
  ids = np.arange(100, 125, dtype=np.int32)
  chunks = packing.split_into_chunks(ids, np.ones_like(ids), seq_len=8)
  assert max(len(c["tokens"]) for c in chunks) == 8
  targets = np.concatenate([c["tokens"][1:] for c in chunks])
  np.testing.assert_array_equal(targets, ids[1:])


def test_prompt_tokens_are_context_but_not_targets():
  ids, weights = packing.tokenize_document(("Q?\n", "A."), TOKENIZER, add_bos=True)
  np.testing.assert_array_equal(ids, [2] + TOKENIZER.encode("Q?\nA.") + [3])
  np.testing.assert_array_equal(weights, [0, 0, 0, 0, 1, 1, 1])
  chunks = [{"tokens": ids, "target_weights": weights}]
  (row,) = packing.pack_chunks(grain.MapDataset.source(chunks).to_iter_dataset(), seq_len=8,
                               pad_id=0, num_packing_bins=1, seed=0)
  predicted = row["targets"][row["loss_mask"] > 0]
  np.testing.assert_array_equal(predicted, TOKENIZER.encode("A.") + [3])


def test_pipeline_rows_never_predict_across_documents(tmp_path):
  documents = [letter * (2 + 5 * i % 11) for i, letter in enumerate("abcdefghijklmnopqrstu")]
  config = _config(tmp_path, {"web": documents},
                   [config_lib.stage_config("only", {"web": 1.0})])
  iterator = pipeline.make_iterator(config, seq_len=16, global_batch_size=4,
                                    tokenizer=TOKENIZER, seed=3)
  for batch in _take(iterator, 10):
    assert all(v.shape == (4, 16) for v in batch.values())
    for tokens, targets, segments, positions, mask in zip(
        batch["tokens"], batch["targets"], batch["segment_ids"], batch["positions"],
        batch["loss_mask"]):
      for segment in set(segments[segments > 0].tolist()):
        (where,) = np.nonzero(segments == segment)
        np.testing.assert_array_equal(positions[where], np.arange(len(where)))
        text = TOKENIZER.decode(tokens[where])
        assert text in documents  # A whole document: short ones are never split.
        np.testing.assert_array_equal(targets[where[:-1]], tokens[where[1:]])
        np.testing.assert_array_equal(mask[where], [1] * (len(where) - 1) + [0])
      assert not mask[segments == 0].any()


def test_resume_gives_exactly_the_batches_it_would_have_seen(tmp_path):
  config = _config(tmp_path, {"a": _letter_documents("a"), "b": _letter_documents("b")}, [
      config_lib.stage_config("first", {"a": 0.7, "b": 0.3}, num_steps=4),
      config_lib.stage_config("second", {"a": 0.2, "b": 0.8})])
  make = lambda: pipeline.make_iterator(config, seq_len=12, global_batch_size=4,
                                        tokenizer=TOKENIZER, seed=7)
  iterator = make()
  _take(iterator, 3)
  state = json.loads(json.dumps(iterator.get_state()))
  tokens_seen = iterator.tokens_seen
  expected = _take(iterator, 5)  # Crosses the stage boundary at step 4.
  resumed = make()
  resumed.set_state(state)
  assert resumed.tokens_seen == tokens_seen and resumed.step == 3
  _assert_same_batches(expected, _take(resumed, 5))
  assert resumed.tokens_seen == iterator.tokens_seen
  assert resumed.stage == "second"


def test_mixture_weights_are_honoured_and_tokens_counted(tmp_path):
  config = _config(tmp_path, {"a": _letter_documents("a"), "b": _letter_documents("b")},
                   [config_lib.stage_config("mix", {"a": 0.75, "b": 0.25})])
  iterator = pipeline.make_iterator(config, seq_len=16, global_batch_size=8,
                                    tokenizer=TOKENIZER, seed=0)
  letters, non_padding = [], {"a": 0, "b": 0}
  for batch in _take(iterator, 100):
    for letter, segments in zip(_row_letters(batch), batch["segment_ids"]):
      letters.append(letter)
      non_padding[letter] += int((segments > 0).sum())
  assert letters.count("a") / len(letters) == pytest.approx(0.75, abs=0.05)
  assert iterator.tokens_seen == non_padding


def test_stages_switch_at_the_boundary_and_sources_continue(tmp_path):
  documents = {"a": _letter_documents("a"), "b": _letter_documents("b")}
  seq_len, batch_size = 16, 2
  config = _config(tmp_path, documents, [
      config_lib.stage_config("a1", {"a": 1.0},  # A token budget: ceil -> 2 steps.
                              num_tokens=2 * batch_size * seq_len - 5),
      config_lib.stage_config("b", {"b": 1.0}, num_steps=1),
      config_lib.stage_config("a2", {"a": 1.0}, num_steps=2)])
  iterator = pipeline.make_iterator(config, seq_len=seq_len, global_batch_size=batch_size,
                                    tokenizer=TOKENIZER, seed=1)
  stages, batches = [], []
  while (stage := iterator.stage) is not None:
    stages.append(stage)
    batches.append(next(iterator))
  with pytest.raises(StopIteration):
    next(iterator)
  assert stages == ["a1", "a1", "b", "a2", "a2"]
  assert [set(_row_letters(b)) for b in batches] == [{"a"}, {"a"}, {"b"}, {"a"}, {"a"}]
  only_a = _config(tmp_path, documents, [config_lib.stage_config("a", {"a": 1.0})])
  a_batches = _take(pipeline.make_iterator(only_a, seq_len=seq_len,
                                           global_batch_size=batch_size,
                                           tokenizer=TOKENIZER, seed=1), 4)
  _assert_same_batches(a_batches, batches[:2] + batches[3:])


def test_starting_at_a_named_stage(tmp_path):
  config = _config(tmp_path, {"a": _letter_documents("a"), "b": _letter_documents("b")}, [
      config_lib.stage_config("pre", {"a": 1.0}, num_steps=5),
      config_lib.stage_config("sft", {"b": 1.0})])
  iterator = pipeline.make_iterator(config, seq_len=16, global_batch_size=2,
                                    tokenizer=TOKENIZER, seed=0, stage="sft")
  assert (iterator.step, iterator.stage) == (5, "sft")
  assert set(_row_letters(next(iterator))) == {"b"}


def test_processes_read_disjoint_documents(tmp_path):
  documents = [f"doc{i:02d}" for i in range(40)]
  config = _config(tmp_path, {"web": documents}, [config_lib.stage_config("s", {"web": 1.0})])
  seen = []
  for process_index in range(2):
    iterator = pipeline.make_iterator(config, seq_len=18, global_batch_size=4,
                                      tokenizer=TOKENIZER, seed=0,
                                      process_index=process_index, process_count=2)
    texts = set()
    for batch in _take(iterator, 12):
      for tokens, segments in zip(batch["tokens"], batch["segment_ids"]):
        texts.update(TOKENIZER.decode(tokens[segments == s])
                     for s in set(segments[segments > 0].tolist()))
    seen.append(texts)
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == set(documents)


def test_bad_schedules_and_batch_sizes_raise(tmp_path):
  documents = {"a": _letter_documents("a")}
  stage = config_lib.stage_config
  cases = [
      ([stage("x", {"nope": 1.0})], 2, "unknown sources"),
      ([stage("x", {"a": 1.0}), stage("y", {"a": 1.0})], 2, "only the last stage"),
      ([stage("x", {"a": 0.0})], 2, "positive sum"),
      ([stage("x", {"a": 1.0}, num_steps=1, num_tokens=5)], 2, "not both"),
      ([stage("x", {"a": 1.0})], 3, "not divisible"),
  ]
  for stages, global_batch_size, message in cases:
    config = _config(tmp_path, documents, stages)
    with pytest.raises(ValueError, match=message):
      pipeline.make_iterator(config, seq_len=8, global_batch_size=global_batch_size,
                             tokenizer=TOKENIZER, seed=0, process_count=2)
  config = _config(tmp_path, documents, [stage("x", {"a": 1.0})])
  with pytest.raises(ValueError, match="no stage 'y'"):
    pipeline.make_iterator(config, seq_len=8, global_batch_size=2, tokenizer=TOKENIZER,
                           seed=0, stage="y")
  config = _config(tmp_path, {"a": ["only"]}, [stage("x", {"a": 1.0})])
  with pytest.raises(ValueError, match="fewer than"):
    pipeline.make_iterator(config, seq_len=8, global_batch_size=2, tokenizer=TOKENIZER,
                           seed=0, process_index=1, process_count=2)


def test_resolve_stages_converts_token_budgets_to_steps():
  stages = mixture.resolve_stages(
      [config_lib.stage_config("a", {"x": 3.0, "y": 1.0}, num_tokens=1000),
       config_lib.stage_config("b", {"y": 1.0})], ["x", "y"], tokens_per_step=64)
  assert stages == (mixture.Stage("a", (0.75, 0.25), 16), mixture.Stage("b", (0.0, 1.0), None))
  assert [mixture.stage_index_at(stages, s) for s in (0, 15, 16, 10**9)] == [0, 0, 1, 1]


def test_default_config_on_the_shipped_corpus_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = config_lib.default_data_config()
  tokenizer = tokenizer_lib.load_tokenizer(config.tokenizer_path)
  iterator = pipeline.make_iterator(config, seq_len=64, global_batch_size=4,
                                    tokenizer=tokenizer, seed=0)
  batch = next(iterator)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
      "tokens": ((4, 64), np.int32), "targets": ((4, 64), np.int32),
      "segment_ids": ((4, 64), np.int32), "positions": ((4, 64), np.int32),
      "loss_mask": ((4, 64), np.float32)}
  assert iterator.stage == "pretrain" and set(iterator.tokens_seen) == {"web", "reasoning"}


def test_sft_config_learns_only_the_solution():
  tokenizer = tokenizer_lib.load_tokenizer(config_lib.corpus_path("tokenizer.model"))
  iterator = pipeline.make_iterator(config_lib.sft_data_config(), seq_len=256,
                                    global_batch_size=2, tokenizer=tokenizer, seed=0)
  batch = next(iterator)
  with open(config_lib.corpus_path("reasoning.jsonl")) as f:
    records = [json.loads(line) for line in f]
  by_solution = {r["solution"]: r for r in records}
  for targets, segments, mask in zip(batch["targets"], batch["segment_ids"],
                                     batch["loss_mask"]):
    for segment in set(segments[segments > 0].tolist()):
      learned = targets[(segments == segment) & (mask > 0)]
      assert learned[-1] == tokenizer.eos_id
      assert tokenizer.decode(learned[:-1]) in by_solution  # Whole solution, no question.


def test_orbax_checkpoints_the_iterator_with_the_grain_handler(tmp_path):
  config = _config(tmp_path, {"a": _letter_documents("a"), "b": _letter_documents("b")},
                   [config_lib.stage_config("mix", {"a": 0.5, "b": 0.5})])
  make = lambda: pipeline.make_iterator(config, seq_len=12, global_batch_size=2,
                                        tokenizer=TOKENIZER, seed=0)
  iterator = make()
  _take(iterator, 2)
  manager = ocp.CheckpointManager(tmp_path / "ckpt", options=ocp.CheckpointManagerOptions(
      max_to_keep=1, create=True))
  manager.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
  manager.wait_until_finished()
  expected = _take(iterator, 3)
  resumed = make()
  manager.restore(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(resumed)))
  _assert_same_batches(expected, _take(resumed, 3))
  manager.close()


def test_worker_processes_give_the_same_batches_and_resume(tmp_path):
  config = _config(tmp_path, {"a": _letter_documents("a")},
                   [config_lib.stage_config("only", {"a": 1.0})])
  make = lambda: pipeline.make_iterator(config, seq_len=12, global_batch_size=2,
                                        tokenizer=TOKENIZER, seed=0)
  expected = _take(make(), 4)
  config.num_workers = 1
  with_workers = make()
  _assert_same_batches(expected[:2], _take(with_workers, 2))
  state = with_workers.get_state()
  with_workers.close()
  resumed = make()
  resumed.set_state(json.loads(json.dumps(state)))
  _assert_same_batches(expected[2:], _take(resumed, 2))
  resumed.close()


def test_read_threads_give_the_same_batches_and_resume_across(tmp_path):
  """Tokenizing ahead on threads changes neither the batches nor the iterator state."""
  config = _config(tmp_path, {"a": _letter_documents("a")},
                   [config_lib.stage_config("only", {"a": 1.0})])
  make = lambda: pipeline.make_iterator(config, seq_len=12, global_batch_size=2,
                                        tokenizer=TOKENIZER, seed=0)
  in_order = make()
  expected = _take(in_order, 4)
  config.read_threads = 3
  threaded = make()
  _assert_same_batches(expected[:2], _take(threaded, 2))
  config.read_threads = 0
  resumed = make()
  resumed.set_state(json.loads(json.dumps(threaded.get_state())))
  _assert_same_batches(expected[2:], _take(resumed, 2))
  config.read_threads = -1
  with pytest.raises(ValueError, match="data.read_threads=-1"):
    make()
