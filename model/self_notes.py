"""Reading with Self-Notes (arXiv 2305.00833): batched, jitted, on the model caches.

The model reads its input one token per step (no prefill: every row's cache slot is its
position, inputs are right-padded, ``lengths_B`` real tokens each). Before each input
token after the first, if the model's greedy next token is the note-start token it
writes it and then a note (greedy or sampled per ``SamplingConfig``) until the note-end
token; the note joins the context and reading resumes with the next input token. A note
that has not closed after ``NoteConfig.max_note_tokens`` tokens is closed by force (the
end token is written; counted in ``forced_B``). Once every input token is read, the
answer is generated as ``model.generate.decode`` does (stop tokens, ``min_new_tokens``,
banned tokens) until a stop token or ``max_new_tokens``.

One ``lax.while_loop`` over steps, each one ``lm.forward`` of one token per row (l = 1);
rows are independent: a row that is done writes pads with segment id 0 (no query sees
them) and keeps its recurrent state (``lm.keep_rows``). With no note taken, a row's
answer is greedy generation from its input (``model.generate.generate``), token for
token. Works for every model family: it only talks to ``lm.forward``/``lm.init_cache``.

Shapes: b batch, p input slots, n answer tokens, s written slots (``written_slots``).
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from model import lm
from model import sampling as sampling_lib
from model.config import ModelConfig
from model.generate import SamplingConfig

READ, NOTE, ANSWER, DONE = 0, 1, 2, 3   # a row's mode


@dataclasses.dataclass(frozen=True)
class NoteConfig:
  """How notes are written; hashable (a static argument).

  start_token, end_token: the ids of the note markers (``<SN>``, ``</SN>``).
  max_note_tokens: a note's tokens between the markers at most; then the end token is
    written by force.
  max_notes: notes per row at most; later input tokens are read without a decision.
  """
  start_token: int
  end_token: int
  max_note_tokens: int = 16
  max_notes: int = 16

  def __post_init__(self):
    if self.start_token == self.end_token:
      raise ValueError(f"NoteConfig: start_token and end_token are both {self.start_token}")
    if self.max_note_tokens < 1 or self.max_notes < 0:
      raise ValueError(f"NoteConfig: max_note_tokens={self.max_note_tokens} must be >= 1 "
                       f"and max_notes={self.max_notes} >= 0")

  def written_slots(self, input_slots: int, max_new_tokens: int) -> int:
    """Cache slots of a reading: the input, every note at its longest, the answer."""
    return input_slots + self.max_notes * (self.max_note_tokens + 2) + max_new_tokens


@flax.struct.dataclass
class NotesGeneration:
  """What a reading with notes returns, per row.

  sequence (b s): every token written (input, notes with their markers, answer), pad
    after; sequence_mask (b s): 1 on them; note_mask (b s): 1 on note tokens (markers
    included).
  answer (b n): the answer's tokens (stop token kept), pad after; answer_mask (b n).
  notes_B: notes written; forced_B: of them, closed by force.
  """
  sequence: jax.Array
  sequence_mask: jax.Array
  note_mask: jax.Array
  answer: jax.Array
  answer_mask: jax.Array
  notes_B: jax.Array
  forced_B: jax.Array


def read_with_notes(params, input_BP: jax.Array, lengths_B: jax.Array, rng: jax.Array, *,
                    model_cfg: ModelConfig, sampling: SamplingConfig, notes: NoteConfig
                    ) -> NotesGeneration:
  """Reads the right-padded inputs with notes, then answers (pure; jit it).

  lengths_B: each row's real input tokens (>= 1; ``right_pad`` checks them on the host).
  """
  b, p = input_BP.shape
  n = sampling.max_new_tokens
  s = notes.written_slots(p, n)
  vocab = model_cfg.vocab_size
  stops = jnp.asarray(sampling.stop_tokens or (-1,), jnp.int32)
  lengths_B = lengths_B.astype(jnp.int32)
  input_BP = input_BP.astype(jnp.int32)

  def choose(key, logits_BV):
    return sampling_lib.choose_tokens(key, logits_BV, temperature=sampling.temperature,
                                      top_k=sampling.top_k, top_p=sampling.top_p)

  def keep_going(carry):
    return (carry["step"] < s) & jnp.any(carry["mode_B"] != DONE)

  def step(carry):
    i, logits_BV, mode_B = carry["step"], carry["logits_BV"], carry["mode_B"]
    read_B, note_len_B = carry["read_B"], carry["note_len_B"]
    rng, note_key, answer_key = jax.random.split(carry["rng"], 3)
    mode_B = jnp.where((mode_B == READ) & (read_B >= lengths_B), ANSWER, mode_B)
    reading_B, noting_B = mode_B == READ, mode_B == NOTE
    answering_B, live_B = mode_B == ANSWER, mode_B != DONE
    starts_B = (reading_B & (read_B >= 1) & (carry["notes_B"] < notes.max_notes)
                & (sampling_lib.greedy_tokens(logits_BV) == notes.start_token))
    next_input_B = jnp.take_along_axis(input_BP, jnp.minimum(read_B, p - 1)[:, None],
                                       axis=1)[:, 0]
    forcing_B = noting_B & (note_len_B >= notes.max_note_tokens)
    note_token_B = jnp.where(forcing_B, notes.end_token, choose(note_key, logits_BV))
    answer_BV = jax.vmap(sampling.ban)(logits_BV, carry["answer_len_B"])
    token_B = jnp.where(reading_B, jnp.where(starts_B, notes.start_token, next_input_B),
                        jnp.where(noting_B, note_token_B,
                                  jnp.where(answering_B, choose(answer_key, answer_BV),
                                            sampling.pad_id)))
    closes_B = noting_B & (token_B == notes.end_token)
    column = lambda buffer, value_B: jax.lax.dynamic_update_slice(
        buffer, value_B[:, None].astype(buffer.dtype), (0, i))
    rows_B = jnp.arange(b)
    answer_col_B = jnp.where(answering_B, carry["answer_len_B"], n)   # n: dropped
    answer_len_B = carry["answer_len_B"] + answering_B
    stopped_B = answering_B & (jnp.isin(token_B, stops) | (answer_len_B >= n))
    mode_B = jnp.where(starts_B, NOTE, jnp.where(closes_B, READ, mode_B))
    mode_B = jnp.where(stopped_B, DONE, mode_B)
    logits_B1V, cache = lm.forward(
        params, token_B[:, None], model_cfg, positions=jnp.full((b, 1), i, jnp.int32),
        segment_ids=live_B[:, None].astype(jnp.int32), cache=carry["cache"])
    return dict(
        step=i + 1, rng=rng, mode_B=mode_B,
        cache=lm.keep_rows(cache, carry["cache"], live_B, model_cfg),
        logits_BV=logits_B1V[:, 0].astype(jnp.float32),
        read_B=read_B + (reading_B & ~starts_B),
        note_len_B=jnp.where(starts_B, 0, note_len_B + (noting_B & ~closes_B)),
        notes_B=carry["notes_B"] + starts_B,
        forced_B=carry["forced_B"] + forcing_B,
        answer_len_B=answer_len_B,
        sequence=column(carry["sequence"], token_B),
        sequence_mask=column(carry["sequence_mask"], live_B),
        note_mask=column(carry["note_mask"], starts_B | noting_B),
        answer=carry["answer"].at[rows_B, answer_col_B].set(token_B, mode="drop"),
        answer_mask=carry["answer_mask"].at[rows_B, answer_col_B].set(1, mode="drop"))

  zeros = lambda *shape: jnp.zeros(shape, jnp.int32)
  carry = dict(
      step=zeros(), rng=rng, mode_B=zeros(b), cache=lm.init_cache(model_cfg, b, s),
      logits_BV=jnp.zeros((b, vocab), jnp.float32), read_B=zeros(b), note_len_B=zeros(b),
      notes_B=zeros(b), forced_B=zeros(b), answer_len_B=zeros(b),
      sequence=jnp.full((b, s), sampling.pad_id, jnp.int32), sequence_mask=zeros(b, s),
      note_mask=zeros(b, s), answer=jnp.full((b, n), sampling.pad_id, jnp.int32),
      answer_mask=zeros(b, n))
  carry = jax.lax.while_loop(keep_going, step, carry)
  return NotesGeneration(
      sequence=carry["sequence"], sequence_mask=carry["sequence_mask"],
      note_mask=carry["note_mask"], answer=carry["answer"],
      answer_mask=carry["answer_mask"], notes_B=carry["notes_B"],
      forced_B=carry["forced_B"])


def right_pad(inputs, *, pad_id: int = 0, width: int = 0):
  """(tokens (b p) int32, lengths (b,) int32) of token lists, left-aligned in ``width``
  slots (default: the longest). ValueError for an empty input or one longer than
  ``width``."""
  if not len(inputs):
    raise ValueError("reading with notes needs at least one input")
  lengths = np.asarray([len(x) for x in inputs], np.int32)
  if (empty := np.flatnonzero(lengths == 0)).size:
    raise ValueError(f"inputs {empty.tolist()} are empty; every row needs a token")
  width = width or int(lengths.max())
  if (long := np.flatnonzero(lengths > width)).size:
    raise ValueError(f"inputs {long.tolist()} are longer than {width} slots")
  tokens = np.full((len(inputs), width), pad_id, np.int32)
  for row, ids in enumerate(inputs):
    tokens[row, :len(ids)] = ids
  return tokens, lengths
