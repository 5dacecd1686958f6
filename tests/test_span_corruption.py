"""Masked-span prediction (data/span_corruption.py) and the passkey task (data/passkey.py)."""

import json
import re

import ml_collections
import numpy as np
import pytest

from data import config as config_lib
from data import passkey
from data import pipeline
from data import sources
from data import span_corruption as sc
from data import tokenizer as tokenizer_lib
from model import config as model_config
from train import config as run_config
from train import driver


class ByteTokenizer:
  """UTF-8 bytes shifted by 4 (pad 0, bos 2, eos 3); ASCII text stays below id 132, so
  the vocabulary's last ids are free for sentinels and the transform inverts exactly."""

  vocab_size, pad_id, bos_id, eos_id = 260, 0, 2, 3

  def encode(self, text):
    return [b + 4 for b in text.encode()]

  def decode(self, ids):
    return bytes(int(i) - 4 for i in ids if 4 <= i < 132).decode()

  def token_to_id(self, token):
    ids = self.encode(token)
    if len(ids) != 1:
      raise ValueError(f"{token!r} is not a single token")
    return ids[0]


class ExtraIdTokenizer(ByteTokenizer):
  """A tokenizer with T5's `<extra_id_i>` tokens at ids 200 + i."""

  def token_to_id(self, token):
    if match := re.fullmatch(r"<extra_id_(\d+)>", token):
      return 200 + int(match.group(1))
    return super().token_to_id(token)


TOKENIZER = ByteTokenizer()
SENTINELS = sc.sentinel_ids(TOKENIZER, 100)
EOS = TOKENIZER.eos_id


def _invert(tokens, weights):
  """The original piece of a corrupted one: each sentinel of the input replaced by its
  span from the targets. Checks the layout on the way."""
  tokens, weights = np.asarray(tokens), np.asarray(weights)
  boundary = int(np.argmax(weights > 0))
  assert not weights[:boundary].any() and weights[boundary:].all()
  inputs, targets = tokens[:boundary].tolist(), tokens[boundary:].tolist()
  assert targets[-1] == EOS
  index = {s: i for i, s in enumerate(SENTINELS)}
  spans = []
  for token in targets[:-1]:
    if token in index:
      assert index[token] == len(spans)  # Sentinels in order, each once.
      spans.append([])
    else:
      spans[-1].append(token)
  assert all(spans)
  used = [index[t] for t in inputs if t in index]
  assert used == list(range(len(spans)))
  out = []
  for token in inputs:
    out.extend(spans[index[token]] if token in index else [token])
  return out, [len(s) for s in spans]


def _corrupt(ids, seed, **settings):
  settings = {"noise_density": 0.15, "mean_span_lengths": (3, 8, 64), **settings}
  return sc.corrupt(np.asarray(ids), np.random.default_rng(seed), sentinel_ids=SENTINELS,
                    eos_id=EOS, **settings)


def test_corrupt_inverts_exactly_with_weights_only_on_the_targets():
  rng = np.random.default_rng(0)
  for trial in range(200):
    length = int(rng.integers(2, 400))
    ids = rng.integers(4, 132, length)
    density = float(rng.choice([0.05, 0.15, 0.5, 0.9]))
    tokens, weights = _corrupt(ids, trial, noise_density=density)
    assert tokens.dtype == np.int32 and weights.shape == tokens.shape
    original, spans = _invert(tokens, weights)
    assert original == ids.tolist()
    assert len(tokens) == length + 2 * len(spans) + 1
    assert weights.sum() == sum(spans) + len(spans) + 1  # Sentinels, span tokens, eos.


def test_spans_cover_the_noise_density_and_mix_short_and_long_lengths():
  ids = np.arange(200) % 128 + 4   # 200 tokens: 30 noise tokens per piece.
  noise, by_mean = 0, {}
  for seed in range(300):
    _, spans = _invert(*_corrupt(ids, seed))
    noise += sum(spans)
    by_mean.setdefault(round(sum(spans) / len(spans)), []).extend(spans)
  assert noise / (300 * len(ids)) == pytest.approx(0.15)
  # Mean 3: 10 spans of 3 on average; mean 8: 4 of 7.5; mean 64: 1 of 30 (the piece's).
  assert set(by_mean) == {3, 8, 30}
  assert all(len(by_mean[m]) > 100 for m in (3, 8))
  assert min(by_mean[3]) == 1 and max(by_mean[3]) > 6   # Lengths vary around the mean.
  assert max(by_mean[8]) > 12 and set(by_mean[30]) == {30}


def test_short_pieces_have_a_defined_outcome_and_bad_settings_name_the_field():
  tokens, weights = _corrupt([10, 11], 0, mean_span_lengths=(64,))
  assert _invert(tokens, weights) == ([10, 11], [1])   # One span, shorter than the mean.
  with pytest.raises(ValueError, match="at least 2 tokens"):
    _corrupt([10], 0)
  for density in (0.0, 1.0, -0.1):
    with pytest.raises(ValueError, match="span_corruption.noise_density"):
      _corrupt(np.arange(4, 40), 0, noise_density=density)
  with pytest.raises(ValueError, match="span_corruption.mean_span_lengths"):
    _corrupt(np.arange(4, 40), 0, mean_span_lengths=(0.5,))
  with pytest.raises(ValueError, match="num_sentinels"):
    sc.corrupt(np.arange(4, 104), np.random.default_rng(0), noise_density=0.5,
               mean_span_lengths=(1,), sentinel_ids=SENTINELS[:3], eos_id=EOS)
  config = sc.default_config()
  config.num_sentinels = 5
  with pytest.raises(ValueError, match=r"span_corruption.num_sentinels=5.*want num_sentinels"):
    sc.CorruptSpans.from_config(config, TOKENIZER, seq_len=512)
  with pytest.raises(ValueError, match="seq_len=4 is too short"):
    sc.CorruptSpans.from_config(sc.default_config(), TOKENIZER, seq_len=4)
  with pytest.raises(ValueError, match="sentinels='extra_id'"):
    sc.sentinel_ids(TOKENIZER, 10, "extra_id")
  with pytest.raises(ValueError, match="sentinels='nope'"):
    sc.sentinel_ids(TOKENIZER, 10, "nope")
  with pytest.raises(ValueError, match="num_sentinels=258"):
    sc.sentinel_ids(TOKENIZER, 258)   # Would reach eos (3).


def test_sentinels_are_extra_ids_when_the_tokenizer_has_them_else_the_vocabulary_end():
  assert SENTINELS[:3] == (259, 258, 257)
  assert sc.sentinel_ids(ExtraIdTokenizer(), 3) == (200, 201, 202)
  assert sc.sentinel_ids(ExtraIdTokenizer(), 3, "vocab_end") == (259, 258, 257)


def test_documents_are_cut_into_pieces_that_fit_and_keep_their_context():
  transform = sc.CorruptSpans.from_config(sc.default_config(), TOKENIZER, seq_len=64)
  assert all(sc.corrupted_length(transform.max_piece, 0.15, m) <= 64
             for m in transform.mean_span_lengths)
  ids = np.concatenate([[TOKENIZER.bos_id], np.arange(4, 304) % 128 + 4, [EOS]])
  weights = np.concatenate([[0], np.ones(301, np.int32)])
  pieces = transform.random_map((ids, weights), np.random.default_rng(0))
  assert all(len(p["tokens"]) <= 64 for p in pieces)
  assert pieces[0]["tokens"][0] == TOKENIZER.bos_id and pieces[0]["target_weights"][0] == 0
  restored = [TOKENIZER.bos_id]
  for piece in pieces:
    context = 1 if piece is pieces[0] else 0
    restored += _invert(piece["tokens"][context:], piece["target_weights"][context:])[0]
  assert restored == ids.tolist()


def _config(tmp_path, documents, **span_settings):
  config = config_lib.default_data_config()
  path = tmp_path / "web.txt"
  path.write_text("\n\n".join(documents) + "\n")
  config.sources = {"web": config_lib.source_config("text", str(path))}
  config.stages = (config_lib.stage_config("only", {"web": 1.0}),)
  config.num_packing_bins = 4
  config.span_corruption.enabled = True
  config.span_corruption.update(span_settings)
  return config


DOCUMENTS = [f"document {i} " + "abcdefghij"[i % 10] * (5 + 13 * i % 150) for i in range(40)]


def _take(iterator, count):
  return [next(iterator) for _ in range(count)]


def test_pipeline_rows_learn_only_the_span_targets(tmp_path):
  config = _config(tmp_path, DOCUMENTS)
  iterator = pipeline.make_iterator(config, seq_len=64, global_batch_size=4,
                                    tokenizer=TOKENIZER, seed=0)
  texts = [d.encode() for d in DOCUMENTS]
  pieces = 0
  for batch in _take(iterator, 12):
    for tokens, targets, segments, mask in zip(batch["tokens"], batch["targets"],
                                               batch["segment_ids"], batch["loss_mask"]):
      assert not mask[segments == 0].any()
      for segment in set(segments[segments > 0].tolist()):
        (where,) = np.nonzero(segments == segment)
        # A token is learned iff its weight is 1: weights[1:] = mask[:-1].
        weights = np.concatenate([[0], mask[where][:-1]]).astype(np.int32)
        assert mask[where][-1] == 0
        np.testing.assert_array_equal(targets[where[:-1]], tokens[where[1:]])
        original, _ = _invert(tokens[where], weights)
        piece = bytes(t - 4 for t in original if t != EOS)
        assert any(piece in text for text in texts)
        pieces += 1
  assert pieces > 40


def test_pipeline_is_deterministic_and_resumes_exactly(tmp_path):
  config = _config(tmp_path, DOCUMENTS)
  make = lambda seed=7: pipeline.make_iterator(config, seq_len=48, global_batch_size=2,
                                               tokenizer=TOKENIZER, seed=seed)
  iterator = make()
  _take(iterator, 5)
  state = json.loads(json.dumps(iterator.get_state()))
  expected = _take(iterator, 6)
  resumed = make()
  resumed.set_state(state)
  for e, a in zip(expected, _take(resumed, 6)):
    for key in e:
      np.testing.assert_array_equal(e[key], a[key], err_msg=key)
  fresh, other = _take(make(), 3), _take(make(seed=8), 3)
  config.read_threads = 2   # Corrupting on grain's threads changes nothing.
  threaded = _take(make(), 3)
  assert all((a["tokens"] == b["tokens"]).all() for a, b in zip(fresh, threaded))
  assert any((a["tokens"] != b["tokens"]).any() for a, b in zip(fresh, other))


def test_only_the_named_sources_are_corrupted(tmp_path):
  config = _config(tmp_path, DOCUMENTS, sources=("web",))
  plain = tmp_path / "plain.txt"
  plain.write_text("\n\n".join(["xyz" * 3] * 5) + "\n")
  config.sources["plain"] = config_lib.source_config("text", str(plain))
  config.stages = (config_lib.stage_config("only", {"web": 0.5, "plain": 0.5}),)
  iterator = pipeline.make_iterator(config, seq_len=48, global_batch_size=8,
                                    tokenizer=TOKENIZER, seed=0)
  kinds = set()
  for batch in _take(iterator, 4):
    for tokens, segments, mask in zip(batch["tokens"], batch["segment_ids"],
                                      batch["loss_mask"]):
      where = segments == 1
      if TOKENIZER.decode(tokens[where][:3]) == "xyz":   # Next-token rows, every target.
        np.testing.assert_array_equal(mask[where], [1] * (where.sum() - 1) + [0])
        kinds.add("plain")
      else:
        assert set(tokens[where].tolist()) & set(SENTINELS)
        kinds.add("web")
  assert kinds == {"plain", "web"}


def test_pipeline_refuses_bad_settings_naming_the_field(tmp_path):
  with pytest.raises(ValueError, match="span_corruption.noise_density=1.5"):
    pipeline.make_iterator(_config(tmp_path, DOCUMENTS, noise_density=1.5), seq_len=48,
                           global_batch_size=2, tokenizer=TOKENIZER, seed=0)
  with pytest.raises(ValueError, match=r"span_corruption.sources=\('nope',\)"):
    pipeline.make_iterator(_config(tmp_path, DOCUMENTS, sources=("nope",)), seq_len=48,
                           global_batch_size=2, tokenizer=TOKENIZER, seed=0)


# ------------------------------------------------------------------------------- passkey


FILLER = passkey.filler_words(config_lib.corpus_path("english.txt"))


def test_passkey_example_has_the_key_at_the_depth_and_the_length_in_characters():
  rng = np.random.default_rng(0)
  for length, depth in [(2000, 0.0), (2000, 0.5), (5000, 1.0), (600, 0.25)]:
    example = passkey.make_example(FILLER, rng, length=length, depth=depth, key="73")
    question = example["question"]
    assert length - 30 < len(question) <= length and example["length"] == len(question)
    key = passkey.KEY_SENTENCE.format(key="73")
    assert question.count(key) == 1 and question.endswith(passkey.QUESTION)
    assert question.startswith(passkey.PREAMBLE) and example["answer"] == "73"
    before = question.index(key) - len(passkey.PREAMBLE) - 1
    filler = len(question) - len(passkey.PREAMBLE) - len(key) - len(passkey.QUESTION) - 3
    assert before / filler == pytest.approx(depth, abs=0.02)
  with pytest.raises(ValueError, match="length=50"):
    passkey.make_example(FILLER, rng, length=50, depth=0.5, key="73")


def test_passkey_build_writes_train_text_and_records_in_tokens(tmp_path):
  tokenizer = tokenizer_lib.load_tokenizer(config_lib.corpus_path("tokenizer.model"))
  figures = passkey.build(str(tmp_path), tokenizer_path="tokenizer.model", short_length=64,
                          long_length=256, train_count=6, eval_count=4, preamble="", seed=1)
  assert figures["unit"] == "tokens"
  for name, length in [("short_train.txt", 64), ("long_train.txt", 256)]:
    texts = sources.read_text_documents(str(tmp_path / name))
    assert len(texts) == 6 == figures["files"][name]["count"]
    for text in texts:
      question, answer = text.rsplit("\n", 1)
      assert passkey.KEY_SENTENCE.format(key=answer) in question
      assert length - 10 < len(tokenizer.encode(question)) <= length
  for name, length in [("dev.jsonl", 256), ("valid.jsonl", 256), ("short_valid.jsonl", 64)]:
    records = sources.read_records(str(tmp_path / name), ("question", "answer", "kind"))
    assert [r["kind"] for r in records] == ["first_block", "near"] * 2
    for record in records:
      assert set(record) == {"question", "answer", "kind"} and 10 <= int(record["answer"]) < 100
      assert not record["question"].startswith(passkey.PREAMBLE)
      assert record["question"].endswith(passkey.QUESTION)
      assert len(tokenizer.encode(record["question"])) <= length
    depth = figures["files"][name]["depth_by_kind"]
    assert depth["first_block"] <= 0.1 and depth["near"] >= 0.9
  dev = (tmp_path / "dev.jsonl").read_text()
  assert dev != (tmp_path / "valid.jsonl").read_text()


def test_passkey_bad_arguments_raise():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="depth=1.5"):
    passkey.make_example(FILLER, rng, length=1000, depth=1.5, key="1")
  with pytest.raises(ValueError, match="key_range"):
    passkey.make_records(FILLER, rng, count=1, length=1000, depths={"a": (0, 1)},
                         key_range=(5, 5))
  with pytest.raises(ValueError, match=r"depths\['a'\]"):
    passkey.make_records(FILLER, rng, count=1, length=1000, depths={"a": (0.5, 0.2)},
                         key_range=(0, 9))


def test_after_vocab_sentinels_are_ids_beyond_the_tokenizer_and_the_driver_checks_room():
  assert sc.sentinel_ids(TOKENIZER, 3, "after_vocab") == (260, 261, 262)
  config = ml_collections.ConfigDict({"data": config_lib.default_data_config()})
  config.data.span_corruption.update(dict(enabled=True, sentinels="after_vocab",
                                          num_sentinels=64))
  tokenizer = tokenizer_lib.SentencePieceTokenizer.load(config.data.tokenizer_path)
  assert driver.load_tokenizer(config, model_config.tiny(vocab_size=1088)).vocab_size == 1024
  with pytest.raises(run_config.ConfigError,
                     match=r"sentinels='after_vocab' has 1088 ids but model.vocab_size=1024"):
    driver.load_tokenizer(config, model_config.tiny(vocab_size=1024))
  assert tokenizer.vocab_size == 1024


def test_concatenate_joins_shuffled_documents_into_one(tmp_path):
  """A source's ``concatenate`` = 3: each row segment is three documents joined by a
  blank line, every document used once per epoch."""
  config = _config(tmp_path, [f"doc{i}" for i in range(30)], enabled=False)
  config.sources["web"].concatenate = 3
  iterator = pipeline.make_iterator(config, seq_len=64, global_batch_size=2,
                                    tokenizer=TOKENIZER, seed=0)
  joined = []
  for batch in _take(iterator, 10):
    for tokens, segments in zip(batch["tokens"], batch["segment_ids"]):
      for segment in set(segments[segments > 0].tolist()):
        joined.append(TOKENIZER.decode(tokens[segments == segment]))
  assert all(re.fullmatch(r"doc\d+\n\ndoc\d+\n\ndoc\d+", text) for text in joined)
  first_epoch = [name for text in joined[:10] for name in text.split("\n\n")]
  assert len(set(first_epoch)) == 30
  with pytest.raises(ValueError, match="concatenate=0 must be a positive integer"):
    config_lib.source_config("text", "x.txt", concatenate=0)
