"""Tokenizers: one small protocol, a sentencepiece BPE and a Hugging Face loader.

Trained sentencepiece models fix the special ids (pad 0, unk 1, bos 2, eos 3) and make
`SPECIAL_TOKENS` (thought and chat-role markers) single tokens. Digits are split one per
token, normalization is the identity and byte fallback covers any unseen character, so
`decode(encode(text)) == text` for all text. A Hugging Face `tokenizer.json` loads with
the `tokenizer_config.json` beside it: its chat template (see `data/chat.py`) and its
special-token names. Either kind saves itself as a Hugging Face `tokenizer.json` with
its `tokenizer_config.json` (`save_hf`), which `transformers.AutoTokenizer` loads.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Optional, Protocol, runtime_checkable

import sentencepiece as spm
import tokenizers
from sentencepiece import sentencepiece_model_pb2
from tokenizers import decoders
from tokenizers import models
from tokenizers import normalizers

THINK_START = "<think>"
THINK_END = "</think>"
SYSTEM, USER, ASSISTANT, END_OF_TURN = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIAL_TOKENS = (THINK_START, THINK_END, SYSTEM, USER, ASSISTANT, END_OF_TURN)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@runtime_checkable
class Tokenizer(Protocol):
  """What the data pipeline and the generation loops need from a tokenizer."""

  @property
  def vocab_size(self) -> int: ...

  @property
  def bos_id(self) -> int: ...

  @property
  def eos_id(self) -> int: ...

  @property
  def pad_id(self) -> int: ...

  def encode(self, text: str) -> list[int]:
    """Token ids of `text`, without bos or eos."""

  def decode(self, ids: Sequence[int]) -> str:
    """Text of `ids`: bos, eos and pad are left out, `SPECIAL_TOKENS` written out."""

  def token_to_id(self, token: str) -> int:
    """Id of a single token such as `<think>`; ValueError if it is not one token."""


class SentencePieceTokenizer:
  """A sentencepiece model held as its serialized proto (so it pickles for grain workers)."""

  def __init__(self, model_proto: bytes):
    self._model_proto = model_proto
    self._processor = spm.SentencePieceProcessor(model_proto=model_proto)

  @classmethod
  def load(cls, path: str) -> SentencePieceTokenizer:
    if not os.path.exists(path):
      raise FileNotFoundError(f"sentencepiece model not found: {path}")
    with open(path, "rb") as f:
      model_proto = f.read()
    if not model_proto:  # sentencepiece takes no bytes for no model, and fails later
      raise ValueError(f"{path}: not a sentencepiece model (the file is empty)")
    try:
      return cls(model_proto)
    except RuntimeError:  # sentencepiece's parse failure, in its C++ source's words
      raise ValueError(f"{path}: not a sentencepiece model (sentencepiece cannot read its "
                       f"{len(model_proto)} bytes: a truncated file, or another kind of "
                       "file?)") from None

  def save(self, path: str) -> None:
    with open(path, "wb") as f:
      f.write(self._model_proto)

  def __getstate__(self) -> bytes:
    return self._model_proto

  def __setstate__(self, model_proto: bytes) -> None:
    self.__init__(model_proto)

  @property
  def model_proto(self) -> bytes:
    return self._model_proto

  @property
  def vocab_size(self) -> int:
    return self._processor.vocab_size()

  @property
  def bos_id(self) -> int:
    return self._processor.bos_id()

  @property
  def eos_id(self) -> int:
    return self._processor.eos_id()

  @property
  def pad_id(self) -> int:
    return self._processor.pad_id()

  def encode(self, text: str) -> list[int]:
    return self._processor.encode(text)

  def decode(self, ids: Sequence[int]) -> str:
    return self._processor.decode([int(i) for i in ids])

  def token_to_id(self, token: str) -> int:
    token_id = self._processor.piece_to_id(token)
    if token_id == self._processor.unk_id() and token != self._processor.id_to_piece(token_id):
      raise ValueError(f"{token!r} is not a single token of this sentencepiece model")
    return token_id

  def save_hf(self, directory: str) -> None:
    """Writes this model as a Hugging Face `tokenizer.json` + `tokenizer_config.json`.

    The `tokenizers` BPE has this model's vocabulary and merges and encodes and decodes
    every text as `encode` and `decode` do: user-defined symbols (`SPECIAL_TOKENS`) are
    single tokens, control tokens (`<s>`, `</s>`, `<pad>`) are never read from text, as
    in sentencepiece (transformers' `AutoTokenizer`, which makes the named bos/eos/pad/
    unk tokens special, reads their literal text as them, as for any tokenizer).
    Raises ValueError for a model trained with other settings than
    `train_sentencepiece`'s (see `_HF_CONVERTIBLE`).
    """
    roles = {"bos": self.bos_id, "eos": self.eos_id, "pad": self.pad_id,
             "unk": self._processor.unk_id()}
    names = {f"{role}_token": self._processor.id_to_piece(token_id)
             for role, token_id in roles.items() if token_id >= 0}
    _save_hf_files(directory, _sentencepiece_as_hf(self._model_proto), names)


# Piece types of sentencepiece_model.proto, and the settings under which a `tokenizers` BPE
# (no pre-tokenizer, spaces escaped) encodes exactly as sentencepiece does: those
# `train_sentencepiece` fixes.
_NORMAL, _USER_DEFINED = 1, 4
_ESCAPED_SPACE = "\u2581"  # "▁"
_HF_CONVERTIBLE = (
    ("trainer_spec", "model_type", sentencepiece_model_pb2.TrainerSpec.BPE),
    ("trainer_spec", "byte_fallback", True),
    ("trainer_spec", "treat_whitespace_as_suffix", False),
    ("normalizer_spec", "precompiled_charsmap", b""),
    ("normalizer_spec", "add_dummy_prefix", False),
    ("normalizer_spec", "remove_extra_whitespaces", False),
    ("normalizer_spec", "escape_whitespaces", True),
    ("denormalizer_spec", "precompiled_charsmap", b""),
)


def _sentencepiece_merges(pieces) -> list[tuple[str, str]]:
  """BPE merges in sentencepiece's order: sentencepiece merges the adjacent pair whose
  concatenation is the highest-scoring normal piece, so every split of a normal piece
  into two normal pieces is ranked by that piece's score (as transformers' SpmConverter
  ranks them)."""
  normal = {p.piece: (-p.score, i) for i, p in enumerate(pieces) if p.type == _NORMAL}
  ranked = sorted((rank, piece[:k], piece[k:]) for piece, rank in normal.items()
                  for k in range(1, len(piece)) if piece[:k] in normal and piece[k:] in normal)
  return [(left, right) for _, left, right in ranked]


def _sentencepiece_as_hf(model_proto: bytes) -> tokenizers.Tokenizer:
  """A `tokenizers` BPE that encodes and decodes like the sentencepiece model."""
  model = sentencepiece_model_pb2.ModelProto.FromString(model_proto)
  for section, field, want in _HF_CONVERTIBLE:
    value = getattr(getattr(model, section), field)
    if value != want:
      raise ValueError(f"sentencepiece model has {section}.{field}={value!r}; a "
                       f"tokenizer.json is written only for {want!r} (as train_sentencepiece "
                       "sets it)")
  pieces = model.pieces
  tokenizer = tokenizers.Tokenizer(models.BPE(
      vocab={p.piece: i for i, p in enumerate(pieces)}, merges=_sentencepiece_merges(pieces),
      unk_token=pieces[model.trainer_spec.unk_id].piece, fuse_unk=True, byte_fallback=True))
  tokenizer.normalizer = normalizers.Replace(" ", _ESCAPED_SPACE)
  tokenizer.decoder = decoders.Sequence([
      decoders.Replace(_ESCAPED_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
  tokenizer.add_tokens([tokenizers.AddedToken(p.piece, normalized=False)
                        for p in pieces if p.type == _USER_DEFINED])
  return tokenizer


def _save_hf_files(directory: str, tokenizer: tokenizers.Tokenizer, config: Mapping) -> None:
  """`tokenizer.json` and `tokenizer_config.json` (``config`` over the defaults of a
  transformers fast tokenizer that adds no bos or eos and decodes without clean-up, as
  our `encode` and `decode`) in ``directory``."""
  os.makedirs(directory, exist_ok=True)
  tokenizer.save(os.path.join(directory, "tokenizer.json"))
  config = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False,
            "add_eos_token": False, "clean_up_tokenization_spaces": False, **config}
  with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, ensure_ascii=False)


def _training_sentences(texts: Iterable[str]) -> Iterator[str]:
  """Sentencepiece trains on lines: split documents at newlines, skip empty lines."""
  for text in texts:
    for line in text.split("\n"):
      if line:
        yield line


def train_sentencepiece(texts: Iterable[str], *, vocab_size: int = 1024,
                        user_defined_symbols: Sequence[str] = SPECIAL_TOKENS,
                        max_sentences: int = 2_000_000) -> SentencePieceTokenizer:
  """Trains a byte-fallback BPE model in memory; deterministic for the same texts.

  Args:
    texts: documents (any iterable of str, e.g. `read_documents(...)`); newlines split
      them into training sentences.
    vocab_size: the most ids (a small corpus may give fewer), counting the 4 special
      ids, 256 byte pieces and `user_defined_symbols`.
    user_defined_symbols: strings that always encode as one token.
    max_sentences: at most this many training sentences are used (the first ones).

  Returns:
    The trained tokenizer (`.save(path)` writes the `.model` file).
  """
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=_training_sentences(texts), model_writer=model,
      model_type="bpe", vocab_size=vocab_size, byte_fallback=True, split_digits=True,
      character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=False,
      remove_extra_whitespaces=False, hard_vocab_limit=False,
      user_defined_symbols=list(user_defined_symbols),
      pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
      input_sentence_size=max_sentences, shuffle_input_sentence=False,
      max_sentence_length=1 << 16, num_threads=1, minloglevel=2)
  return SentencePieceTokenizer(model.getvalue())


def train_sentencepiece_from_files(paths: Sequence[str], **options) -> SentencePieceTokenizer:
  """`train_sentencepiece` on the lines of UTF-8 text files (read lazily)."""
  def lines() -> Iterator[str]:
    for path in paths:
      if not os.path.exists(path):
        raise FileNotFoundError(f"tokenizer training file not found: {path}")
      with open(path, encoding="utf-8") as f:
        yield from (line.rstrip("\n") for line in f)
  return train_sentencepiece(lines(), **options)


_BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>", "[CLS]")
_EOS_NAMES = ("</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>", "[SEP]")
_PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>")
_CANDIDATES = {"bos": _BOS_NAMES, "eos": _EOS_NAMES, "pad": _PAD_NAMES, "unk": ()}


def _read_tokenizer_config(directory: str) -> dict:
  """``tokenizer_config.json`` of ``directory`` as a dict, {} when there is none."""
  path = os.path.join(directory, "tokenizer_config.json")
  if not os.path.exists(path):
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      config = json.load(f)
  except ValueError as e:  # invalid JSON or UTF-8
    raise ValueError(f"{path}: not a tokenizer config: not JSON ({e})") from None
  if not isinstance(config, dict):
    raise ValueError(f"{path}: want a JSON object, got {type(config).__name__}")
  return config


def _config_token(config: Mapping, role: str, directory: str) -> Optional[str]:
  """The ``{role}_token`` of a tokenizer config: a string or an AddedToken dict."""
  value = config.get(f"{role}_token")
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, Mapping) and isinstance(value.get("content"), str):
    return value["content"]
  raise ValueError(f"{directory}/tokenizer_config.json: {role}_token={value!r}: want a "
                   "string or a {'content': ...} dict")


def _chat_template(config: Mapping, directory: str) -> Optional[str]:
  """``chat_template.jinja`` beside the tokenizer (transformers prefers it), else the
  config's ``chat_template`` (a string, or a list of named templates: 'default')."""
  path = os.path.join(directory, "chat_template.jinja")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return f.read()
  template = config.get("chat_template")
  if template is None or isinstance(template, str):
    return template
  if isinstance(template, list):
    named = {t.get("name"): t.get("template") for t in template if isinstance(t, Mapping)}
    if isinstance(named.get("default"), str):
      return named["default"]
  raise ValueError(f"{directory}/tokenizer_config.json: chat_template must be a string or "
                   "a list of {'name', 'template'} with a 'default' one")


class HuggingFaceTokenizer:
  """A `tokenizer.json` (Hugging Face `tokenizers`) behind the `Tokenizer` protocol.

  A `tokenizer_config.json` beside it gives the chat template (None without one; a
  `chat_template.jinja` file there takes precedence, as in transformers) and the
  bos/eos/pad/unk token names. Names passed here win over the config's; a name the
  config sets to null means no such token, as in transformers (chat templates then see
  no `bos_token`); without either, common names are searched. A missing bos or pad
  falls back to the eos id (padding is masked out by `segment_ids == 0` anyway).
  """

  def __init__(self, path: str, *, bos_token: Optional[str] = None,
               eos_token: Optional[str] = None, pad_token: Optional[str] = None):
    if not os.path.exists(path):
      raise FileNotFoundError(f"tokenizer.json not found: {path}")
    self._path = path
    try:
      self._tokenizer = tokenizers.Tokenizer.from_file(path)
    except Exception as e:  # tokenizers raises Exception for any file it cannot read
      raise ValueError(f"{path}: not a Hugging Face tokenizer.json (tokenizers cannot "
                       f"read it: {e})") from None
    directory = os.path.dirname(os.path.abspath(path))
    config = _read_tokenizer_config(directory)
    self._chat_template = _chat_template(config, directory)
    given = {"bos": bos_token, "eos": eos_token, "pad": pad_token, "unk": None}
    self._token_names = {}
    for role, name in given.items():
      source = "given" if name is not None else f"{directory}/tokenizer_config.json"
      # A role the config declares (null included: no such token, as transformers reads
      # it) is not searched for by name.
      candidates = () if f"{role}_token" in config else _CANDIDATES[role]
      name = name if name is not None else _config_token(config, role, directory)
      if (found := self._find_name(name, candidates, role, source)) is not None:
        self._token_names[role] = found
    if "eos" not in self._token_names:
      raise ValueError(f"{path}: no eos token among {_EOS_NAMES}; pass eos_token=")
    ids = {role: self._tokenizer.token_to_id(name) for role, name in self._token_names.items()}
    self._bos_id, self._eos_id, self._pad_id = (ids.get(role, ids["eos"])
                                                for role in ("bos", "eos", "pad"))

  def _find_name(self, name: Optional[str], candidates: Sequence[str], role: str,
                 source: str) -> Optional[str]:
    if name is not None:
      if self._tokenizer.token_to_id(name) is None:
        raise ValueError(f"{self._path}: {role} token {name!r} ({source}) is not in the "
                         "vocabulary")
      return name
    return next((c for c in candidates if self._tokenizer.token_to_id(c) is not None), None)

  def __getstate__(self) -> dict:
    return {"path": self._path, "tokenizer_json": self._tokenizer.to_str(),
            "ids": (self._bos_id, self._eos_id, self._pad_id),
            "token_names": self._token_names, "chat_template": self._chat_template}

  def __setstate__(self, state: dict) -> None:
    self._path = state["path"]
    self._tokenizer = tokenizers.Tokenizer.from_str(state["tokenizer_json"])
    self._bos_id, self._eos_id, self._pad_id = state["ids"]
    self._token_names = state["token_names"]
    self._chat_template = state["chat_template"]

  @property
  def vocab_size(self) -> int:
    return self._tokenizer.get_vocab_size(with_added_tokens=True)

  @property
  def bos_id(self) -> int:
    return self._bos_id

  @property
  def eos_id(self) -> int:
    return self._eos_id

  @property
  def pad_id(self) -> int:
    return self._pad_id

  @property
  def chat_template(self) -> Optional[str]:
    """The Jinja chat template of `tokenizer_config.json`, or None."""
    return self._chat_template

  @property
  def special_tokens_map(self) -> dict[str, str]:
    """{'bos_token': ..., 'eos_token': ...}: the named special tokens (given, from the
    config or found by name; not the eos fallback), as templates see them."""
    return {f"{role}_token": name for role, name in self._token_names.items()}

  @property
  def added_special_tokens(self) -> tuple[str, ...]:
    """Strings of the added tokens marked special (role, end-of-turn, eos, ...)."""
    return tuple(t.content for t in self._tokenizer.get_added_tokens_decoder().values()
                 if t.special)

  def encode(self, text: str) -> list[int]:
    return self._tokenizer.encode(text, add_special_tokens=False).ids

  def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """`encode(text)` and each token's (start, end) character span in `text`."""
    encoding = self._tokenizer.encode(text, add_special_tokens=False)
    return encoding.ids, encoding.offsets

  def decode(self, ids: Sequence[int]) -> str:
    control = {self._bos_id, self._eos_id, self._pad_id}
    return self._tokenizer.decode([int(i) for i in ids if i not in control],
                                  skip_special_tokens=False)

  def token_to_id(self, token: str) -> int:
    token_id = self._tokenizer.token_to_id(token)
    if token_id is None:
      raise ValueError(f"{token!r} is not a single token of {self._path}")
    return token_id

  def save_hf(self, directory: str) -> None:
    """Writes this `tokenizer.json` to ``directory`` with a `tokenizer_config.json`: the
    one beside it (if any) with the bos/eos/pad/unk names and the chat template used
    here."""
    source = _read_tokenizer_config(os.path.dirname(os.path.abspath(self._path)))
    template = {} if self._chat_template is None else {"chat_template": self._chat_template}
    _save_hf_files(directory, self._tokenizer,
                   {**source, **self.special_tokens_map, **template})


def load_tokenizer(path: str) -> Tokenizer:
  """Loads a sentencepiece `.model` or a Hugging Face `tokenizer.json` by extension."""
  if path.endswith(".json"):
    return HuggingFaceTokenizer(path)
  if path.endswith(".model"):
    return SentencePieceTokenizer.load(path)
  raise ValueError(f"unknown tokenizer file type (want .model or .json): {path}")
