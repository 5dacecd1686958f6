"""Tokenizers: sentencepiece training and round trips, special tokens, tokenizer.json."""

import pickle

import pytest
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from data import config as config_lib
from data import tokenizer as tokenizer_lib

TEXTS = ["The cat sat on the mat.\nThe dog ran to the park.",
         "What is 12 + 30? Answer: 42", "Mia and Tom saw a fox in the forest."] * 20
ROUND_TRIP = ["<think> 3 5 </think> 8", "héllo  wörld 😀\n\n  x ", "<|user|>hi<|end|>",
              " leading space", "", "tab\tand\r\nnewlines"]


@pytest.fixture(scope="module")
def trained():
  return tokenizer_lib.train_sentencepiece(TEXTS, vocab_size=400)


@pytest.fixture(scope="module")
def shipped():
  return tokenizer_lib.load_tokenizer(config_lib.corpus_path("tokenizer.model"))


def test_sentencepiece_round_trips_and_special_ids(trained, shipped):
  for tokenizer in (trained, shipped):
    assert isinstance(tokenizer, tokenizer_lib.Tokenizer)
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 2, 3)
    for text in ROUND_TRIP:
      assert tokenizer.decode(tokenizer.encode(text)) == text
    ids = tokenizer.encode("a<think>b")
    assert tokenizer.decode([tokenizer.bos_id, *ids, tokenizer.eos_id, tokenizer.pad_id]) == \
        "a<think>b"
  assert shipped.vocab_size == 1024


def test_special_tokens_are_single_tokens(trained, shipped):
  for tokenizer in (trained, shipped):
    for token in tokenizer_lib.SPECIAL_TOKENS:
      assert tokenizer.encode(token) == [tokenizer.token_to_id(token)]
    ids = tokenizer.encode("x<think>y</think>z")
    assert tokenizer.token_to_id("<think>") in ids and tokenizer.token_to_id("</think>") in ids
    with pytest.raises(ValueError, match="not a single token"):
      tokenizer.token_to_id("<not a token>")


def test_training_is_deterministic_and_save_load_pickle_preserve_the_model(trained, tmp_path):
  assert tokenizer_lib.train_sentencepiece(TEXTS, vocab_size=400).model_proto == \
      trained.model_proto
  path = tmp_path / "t.model"
  trained.save(str(path))
  loaded = tokenizer_lib.load_tokenizer(str(path))
  text = "The cat ran. 123"
  assert loaded.encode(text) == trained.encode(text)
  assert pickle.loads(pickle.dumps(trained)).encode(text) == trained.encode(text)
  (tmp_path / "lines.txt").write_text("\n".join(TEXTS))
  from_files = tokenizer_lib.train_sentencepiece_from_files([str(tmp_path / "lines.txt")],
                                                            vocab_size=400)
  assert from_files.decode(from_files.encode(text)) == text


def test_digits_are_split(shipped):
  pieces = shipped.encode("12345")
  assert len(pieces) == 5


def _hf_tokenizer_json(path):
  tokenizer = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tokenizer.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=300, special_tokens=["<pad>", "<s>", "</s>", *tokenizer_lib.SPECIAL_TOKENS],
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tokenizer.train_from_iterator(TEXTS, trainer)
  tokenizer.save(str(path))


def test_hugging_face_tokenizer_json(tmp_path):
  path = tmp_path / "tokenizer.json"
  _hf_tokenizer_json(path)
  tokenizer = tokenizer_lib.load_tokenizer(str(path))
  assert isinstance(tokenizer, tokenizer_lib.Tokenizer)
  assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2)
  for text in ROUND_TRIP:
    assert tokenizer.decode(tokenizer.encode(text)) == text
  assert tokenizer.decode([1, *tokenizer.encode("the <think>"), 2, 0]) == "the <think>"
  for token in tokenizer_lib.SPECIAL_TOKENS:
    assert tokenizer.encode(token) == [tokenizer.token_to_id(token)]
  assert pickle.loads(pickle.dumps(tokenizer)).encode("the cat") == tokenizer.encode("the cat")
  with pytest.raises(ValueError, match="eos token 'nope'"):
    tokenizer_lib.HuggingFaceTokenizer(str(path), eos_token="nope")


def test_bad_tokenizer_paths(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing.model"):
    tokenizer_lib.load_tokenizer(str(tmp_path / "missing.model"))
  with pytest.raises(FileNotFoundError, match="missing.json"):
    tokenizer_lib.load_tokenizer(str(tmp_path / "missing.json"))
  with pytest.raises(ValueError, match="unknown tokenizer file type"):
    tokenizer_lib.load_tokenizer(str(tmp_path / "vocab.txt"))
