"""Tokenizers: sentencepiece training and round trips, special tokens, tokenizer.json,
and both kinds saved as a Hugging Face tokenizer that gives the same ids."""

import json
import os
import pickle

import pytest
import tokenizers
import transformers
from sentencepiece import sentencepiece_model_pb2
from tokenizers import decoders, models, pre_tokenizers, trainers

from data import config as config_lib
from data import sources
from data import tokenizer as tokenizer_lib

TEXTS = ["The cat sat on the mat.\nThe dog ran to the park.",
         "What is 12 + 30? Answer: 42", "Mia and Tom saw a fox in the forest."] * 20
ROUND_TRIP = ["<think> 3 5 </think> 8", "héllo  wörld 😀\n\n  x ", "<|user|>hi<|end|>",
              " leading space", "", "tab\tand\r\nnewlines"]
# English, digits, the special tokens, characters only byte fallback encodes.
MIXED = ROUND_TRIP + [
    "The cat sat on the mat. Mia and Tom saw 12 foxes in 2024.",
    "What is 12345 + 678? Answer: 13023", "0.5 * 40 = 20.00",
    "<|system|>detailed thinking on<|end|><|user|>What is 2+3?<|end|><|assistant|><think>2 "
    "plus 3 is 5</think>5<|end|>", "<think><think></think>x</think>",
    "日本語 ∑x² — naïve café 🦊🦊", "  two  spaces   three\u00a0nbsp\t\ttabs \n"]
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"


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


def test_a_corrupt_tokenizer_is_one_line_naming_the_file_and_what_it_is_not(shipped,
                                                                            tmp_path):
  """Not sentencepiece's C++ internals, nor a bare Exception from tokenizers."""
  files = {"truncated.model": shipped.model_proto[:200], "empty.model": b"",
           "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"'}
  for name, data in files.items():
    (tmp_path / name).write_bytes(data)
  expected = {
      "truncated.model": "not a sentencepiece model (sentencepiece cannot read its 200 "
                         "bytes: a truncated file, or another kind of file?)",
      "empty.model": "not a sentencepiece model (the file is empty)",
      "tokenizer.json": "not a Hugging Face tokenizer.json (tokenizers cannot read it: EOF "
                        "while parsing an object at line 1 column 42)"}
  for name, message in expected.items():
    with pytest.raises(ValueError) as error:
      tokenizer_lib.load_tokenizer(str(tmp_path / name))
    assert str(error.value) == f"{tmp_path / name}: {message}"
  good = tmp_path / "good"
  good.mkdir()
  _hf_tokenizer_json(good / "tokenizer.json")
  (good / "tokenizer_config.json").write_text('{"eos_token": ')
  with pytest.raises(ValueError, match=r"tokenizer_config.json: not a tokenizer config: "
                                       r"not JSON \(Expecting value: line 1 column 15"):
    tokenizer_lib.load_tokenizer(str(good / "tokenizer.json"))


def test_sentencepiece_saves_a_tokenizer_json_with_the_same_ids(trained, shipped, tmp_path):
  valid = sources.read_text_documents(config_lib.corpus_path("english_valid.txt"))
  with open(config_lib.corpus_path("reasoning_valid.jsonl"), encoding="utf-8") as f:
    valid += f.read().splitlines()   # JSON lines: digits, punctuation, escapes
  assert len(shipped.encode("🦊")) == 4   # byte fallback: its four UTF-8 bytes
  for name, tokenizer in (("trained", trained), ("shipped", shipped)):
    directory = str(tmp_path / name)
    tokenizer.save_hf(directory)
    saved = tokenizer_lib.load_tokenizer(os.path.join(directory, "tokenizer.json"))
    fast = transformers.AutoTokenizer.from_pretrained(directory)
    assert (saved.bos_id, saved.eos_id, saved.pad_id) == (
        fast.bos_token_id, fast.eos_token_id, fast.pad_token_id) == (2, 3, 0)
    for text in MIXED + valid:
      ids = tokenizer.encode(text)
      assert saved.encode(text) == ids, text
      assert fast(text)["input_ids"] == ids, text
      assert saved.decode(ids) == fast.decode(ids) == text
    ids = [2, *tokenizer.encode("a<think>b"), 3, 0]
    assert fast.decode(ids, skip_special_tokens=True) == saved.decode(ids) == "a<think>b"


def test_save_hf_refuses_other_sentencepiece_settings(trained, tmp_path):
  model = sentencepiece_model_pb2.ModelProto.FromString(trained.model_proto)
  model.normalizer_spec.add_dummy_prefix = True
  with pytest.raises(ValueError, match="normalizer_spec.add_dummy_prefix=True"):
    tokenizer_lib.SentencePieceTokenizer(model.SerializeToString()).save_hf(str(tmp_path))
  assert not os.listdir(tmp_path)


def test_hugging_face_tokenizer_saves_itself_with_its_config(tmp_path):
  source = tmp_path / "source"
  source.mkdir()
  _hf_tokenizer_json(source / "tokenizer.json")
  (source / "tokenizer_config.json").write_text(json.dumps(
      {"eos_token": "</s>", "chat_template": CHAT_TEMPLATE, "model_max_length": 512}))
  tokenizer = tokenizer_lib.load_tokenizer(str(source / "tokenizer.json"))
  tokenizer.save_hf(str(tmp_path / "saved"))
  saved = tokenizer_lib.load_tokenizer(str(tmp_path / "saved" / "tokenizer.json"))
  assert saved.chat_template == CHAT_TEMPLATE
  assert saved.special_tokens_map == tokenizer.special_tokens_map
  assert (saved.bos_id, saved.eos_id, saved.pad_id) == (1, 2, 0)
  config = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
  assert config["model_max_length"] == 512 and config["bos_token"] == "<s>"
  fast = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
  assert fast.chat_template == CHAT_TEMPLATE
  for text in MIXED:
    assert saved.encode(text) == fast(text)["input_ids"] == tokenizer.encode(text), text
