"""Batched generation on the model caches: a prefill, then a ``lax.while_loop`` decode.

Prompts are left-padded: row r holds its prompt in the last ``len_r`` of ``p`` slots,
``prompt_mask`` is 1 on real tokens. Pads get segment id 0 (attention never sees them,
Mamba layers reset where the segment changes) and real tokens positions 0..len_r-1, so a
padded row decodes exactly as it would alone. Works for transformer, Mamba-2 and hybrid
models because it only talks to ``lm.forward`` and ``lm.init_cache``.

Two ways in:
  * ``sample(params, prompt, mask, rng, model_cfg=, sampling=)`` is pure: the RL steps
    call it inside their own jitted step.
  * ``generate(...)`` is the host entry point: it checks the inputs, then runs the
    jitted ``prefill_jit`` and ``decode_jit`` (parameters are arguments, the cache is
    donated to both and updated in place).

Shapes: b batch, p prompt slots, n new tokens, v vocabulary, s cache slots (p + n).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Optional

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from model import lm
from model.config import ModelConfig
from model import sampling as sampling_lib


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """How to decode; hashable, passed to jitted functions as one static argument.

  max_new_tokens: decode steps at most (the output width n).
  temperature: 0 means greedy (argmax).
  top_k: keep the k most likely tokens (0 = off). top_p: nucleus mass (1.0 = off).
  stop_tokens: a row stops after emitting any of these (the stop token is kept).
  min_new_tokens: stop tokens are forbidden before this many tokens.
  pad_id: written after a row has stopped.
  banned_tokens, banned_new_tokens: these ids are forbidden in the first
    ``banned_new_tokens`` new tokens (Retro-Search's first step without a switch word,
    arXiv 2504.04383; ``data/retro_search.py``); () or 0: off.
  vocab_limit: ids from this one up are never generated: those of a model whose
    embedding is wider than its tokenizer (e.g. span-corruption sentinels after the
    tokenizer's ids, ``data/span_corruption.py``), which no text decodes; 0: off.
  """
  max_new_tokens: int
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  stop_tokens: tuple[int, ...] = ()
  min_new_tokens: int = 0
  pad_id: int = 0
  banned_tokens: tuple[int, ...] = ()
  banned_new_tokens: int = 0
  vocab_limit: int = 0

  def __post_init__(self):
    if self.max_new_tokens < 1:
      raise ValueError(f"SamplingConfig.max_new_tokens={self.max_new_tokens}: must be >= 1")
    if self.temperature < 0:
      raise ValueError(f"SamplingConfig.temperature={self.temperature}: must be >= 0")
    if self.top_k < 0:
      raise ValueError(f"SamplingConfig.top_k={self.top_k}: must be >= 0 (0 = off)")
    if not 0 < self.top_p <= 1:
      raise ValueError(f"SamplingConfig.top_p={self.top_p}: must be in (0, 1]")
    if not 0 <= self.min_new_tokens <= self.max_new_tokens:
      raise ValueError(f"SamplingConfig.min_new_tokens={self.min_new_tokens}: must be in "
                       f"[0, max_new_tokens={self.max_new_tokens}]")
    if not 0 <= self.banned_new_tokens <= self.max_new_tokens:
      raise ValueError(f"SamplingConfig.banned_new_tokens={self.banned_new_tokens}: must be "
                       f"in [0, max_new_tokens={self.max_new_tokens}]")
    object.__setattr__(self, "stop_tokens", tuple(int(t) for t in self.stop_tokens))
    object.__setattr__(self, "banned_tokens", tuple(int(t) for t in self.banned_tokens))

  def ban(self, logits_V: jax.Array, new_tokens: jax.Array) -> jax.Array:
    """``logits_V`` (..., v) with -inf on the ids the next token may not be, given
    ``new_tokens`` (the tokens generated so far): stop tokens before ``min_new_tokens``,
    ``banned_tokens`` before ``banned_new_tokens``, ids from ``vocab_limit`` up."""
    ids_V = jnp.arange(logits_V.shape[-1])
    if self.min_new_tokens > 0 and self.stop_tokens:
      is_stop_V = jnp.isin(ids_V, jnp.asarray(self.stop_tokens))
      logits_V = jnp.where(is_stop_V & (new_tokens < self.min_new_tokens), -jnp.inf, logits_V)
    if self.vocab_limit and self.vocab_limit < logits_V.shape[-1]:
      logits_V = jnp.where(ids_V >= self.vocab_limit, -jnp.inf, logits_V)
    if not (self.banned_new_tokens > 0 and self.banned_tokens):
      return logits_V
    banned_V = jnp.isin(ids_V, jnp.asarray(self.banned_tokens))
    return jnp.where(banned_V & (new_tokens < self.banned_new_tokens), -jnp.inf, logits_V)


@flax.struct.dataclass
class Generation:
  """What a decode returns.

  tokens (b n) int32: generated tokens, ``pad_id`` after a row stopped.
  log_probs (b n) fp32: log π(token) under the tempered, unfiltered policy
    (``sampling.policy_log_probs``): the behaviour log-probs of RL updates.
  mask (b n) int32: 1 on generated tokens (the stop token included), 0 after.
  """
  tokens: jax.Array
  log_probs: jax.Array
  mask: jax.Array


def prompt_positions(prompt_mask_BP: jax.Array) -> jax.Array:
  """RoPE positions of left-padded prompts: 0..len-1 on real tokens, 0 on pads."""
  return jnp.maximum(jnp.cumsum(prompt_mask_BP, axis=-1) - 1, 0).astype(jnp.int32)


def prefill(params, cache: dict, prompt_BP: jax.Array, prompt_mask_BP: jax.Array, *,
            model_cfg: ModelConfig) -> tuple[jax.Array, dict]:
  """Writes the prompts into ``cache``; returns (next-token logits (b v), cache)."""
  mask_BP = prompt_mask_BP.astype(jnp.int32)
  logits_BPV, cache = lm.forward(params, prompt_BP, model_cfg,
                                 positions=prompt_positions(mask_BP), segment_ids=mask_BP,
                                 cache=cache)
  return logits_BPV[:, -1], cache


def decode(params, cache: dict, logits_BV: jax.Array, positions_B: jax.Array,
           rng: jax.Array, *, model_cfg: ModelConfig, sampling: SamplingConfig
           ) -> tuple[Generation, dict]:
  """Samples up to ``sampling.max_new_tokens`` tokens after a prefill.

  logits_BV: the prefill's next-token logits; positions_B: each row's next position
  (its prompt length). Stops early once every row has emitted a stop token.
  """
  b, n = logits_BV.shape[0], sampling.max_new_tokens
  stops = jnp.asarray(sampling.stop_tokens or (-1,), jnp.int32)

  def keep_going(carry):
    i, done_B = carry[0], carry[-1]
    return (i < n) & ~jnp.all(done_B)

  def step(carry):
    i, cache, logits_BV, positions_B, rng, tokens_BN, log_probs_BN, mask_BN, done_B = carry
    rng, step_rng = jax.random.split(rng)
    allowed_BV = sampling.ban(logits_BV, i)
    token_B = sampling_lib.choose_tokens(step_rng, allowed_BV,
                                         temperature=sampling.temperature,
                                         top_k=sampling.top_k, top_p=sampling.top_p)
    # Behaviour log-probs score the model's policy, not the min-length-forced one.
    log_prob_B = sampling_lib.policy_log_probs(logits_BV, token_B, sampling.temperature)
    live_B = ~done_B
    token_B = jnp.where(live_B, token_B, sampling.pad_id)
    write = lambda buffer_BN, value_B: jax.lax.dynamic_update_slice(
        buffer_BN, value_B[:, None].astype(buffer_BN.dtype), (0, i))
    tokens_BN = write(tokens_BN, token_B)
    log_probs_BN = write(log_probs_BN, jnp.where(live_B, log_prob_B, 0.0))
    mask_BN = write(mask_BN, live_B.astype(jnp.int32))
    done_B = done_B | jnp.isin(token_B, stops)
    next_logits_B1V, cache = lm.forward(
        params, token_B[:, None], model_cfg, positions=positions_B[:, None],
        segment_ids=jnp.ones((b, 1), jnp.int32), cache=cache)
    return (i + 1, cache, next_logits_B1V[:, 0], positions_B + 1, rng, tokens_BN,
            log_probs_BN, mask_BN, done_B)

  carry = (jnp.zeros((), jnp.int32), cache, logits_BV.astype(jnp.float32),
           positions_B.astype(jnp.int32), rng,
           jnp.full((b, n), sampling.pad_id, jnp.int32), jnp.zeros((b, n), jnp.float32),
           jnp.zeros((b, n), jnp.int32), jnp.zeros((b,), bool))
  carry = jax.lax.while_loop(keep_going, step, carry)
  _, cache, _, _, _, tokens_BN, log_probs_BN, mask_BN, _ = carry
  return Generation(tokens=tokens_BN, log_probs=log_probs_BN, mask=mask_BN), cache


def sample(params, prompt_BP: jax.Array, prompt_mask_BP: jax.Array, rng: jax.Array, *,
           model_cfg: ModelConfig, sampling: SamplingConfig) -> Generation:
  """Prefill + decode on a fresh cache of ``p + max_new_tokens`` slots (pure; jit it)."""
  chex.assert_equal_shape((prompt_BP, prompt_mask_BP))
  b, p = prompt_BP.shape
  cache = lm.init_cache(model_cfg, b, p + sampling.max_new_tokens)
  logits_BV, cache = prefill(params, cache, prompt_BP, prompt_mask_BP, model_cfg=model_cfg)
  positions_B = jnp.sum(prompt_mask_BP.astype(jnp.int32), axis=-1)
  generation, _ = decode(params, cache, logits_BV, positions_B, rng, model_cfg=model_cfg,
                         sampling=sampling)
  return generation


prefill_jit = jax.jit(prefill, static_argnames=("model_cfg",), donate_argnames=("cache",))
decode_jit = jax.jit(decode, static_argnames=("model_cfg", "sampling"),
                     donate_argnames=("cache",))


def check_prompts(prompt_mask_BP, *, max_new_tokens: int, cache_len: Optional[int]) -> None:
  """Raises ValueError for an empty batch, an empty or right-padded prompt, or a prompt
  plus ``max_new_tokens`` that does not fit ``cache_len`` cache slots."""
  mask_BP = np.asarray(prompt_mask_BP).astype(bool)
  if mask_BP.ndim != 2 or mask_BP.shape[0] == 0:
    raise ValueError(f"generation needs a non-empty (batch, prompt) mask, got shape "
                     f"{mask_BP.shape}")
  lengths_B = mask_BP.sum(axis=-1)
  if (empty := np.flatnonzero(lengths_B == 0)).size:
    raise ValueError(f"prompt rows {empty.tolist()} are empty; every row needs a token")
  left_padded_BP = np.arange(mask_BP.shape[1])[None] >= mask_BP.shape[1] - lengths_B[:, None]
  if (bad := np.flatnonzero((left_padded_BP != mask_BP).any(axis=-1))).size:
    raise ValueError(f"prompt rows {bad.tolist()} are not left-padded (real tokens must "
                     "fill the last slots)")
  needed = mask_BP.shape[1] + max_new_tokens
  if cache_len is not None and needed > cache_len:
    raise ValueError(f"prompt of {mask_BP.shape[1]} slots (longest real prompt "
                     f"{int(lengths_B.max())}) + max_new_tokens={max_new_tokens} needs "
                     f"{needed} cache slots, more than cache_len={cache_len}")


def generate(params, prompt_BP, prompt_mask_BP, rng: jax.Array, *, model_cfg: ModelConfig,
             sampling: SamplingConfig, cache_len: Optional[int] = None) -> Generation:
  """Checks the prompts, then runs the jitted prefill and decode on a donated cache.

  cache_len: the cache size; default exactly ``p + max_new_tokens``. A larger cache is
  allowed (its tail stays empty), a smaller one is an error.
  """
  check_prompts(prompt_mask_BP, max_new_tokens=sampling.max_new_tokens, cache_len=cache_len)
  prompt_BP = jnp.asarray(prompt_BP, jnp.int32)
  prompt_mask_BP = jnp.asarray(prompt_mask_BP, jnp.int32)
  b, p = prompt_BP.shape
  cache = lm.init_cache(model_cfg, b, cache_len or p + sampling.max_new_tokens)
  logits_BV, cache = prefill_jit(params, cache, prompt_BP, prompt_mask_BP,
                                 model_cfg=model_cfg)
  positions_B = jnp.sum(prompt_mask_BP, axis=-1)
  generation, _ = decode_jit(params, cache, logits_BV, positions_B, rng,
                             model_cfg=model_cfg, sampling=sampling)
  return generation


def left_pad(prompts: Sequence[Sequence[int]], *, pad_id: int = 0,
             width: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """(tokens (b p) int32, mask (b p) int32) of token lists, right-aligned in ``width``
  slots (default: the longest prompt). Raises ValueError for a prompt that is too long."""
  longest = max((len(p) for p in prompts), default=0)
  width = longest if width is None else width
  if longest > width:
    too_long = [i for i, p in enumerate(prompts) if len(p) > width]
    raise ValueError(f"prompts {too_long} are longer than {width} slots "
                     f"(longest has {longest} tokens)")
  tokens = np.full((len(prompts), width), pad_id, np.int32)
  mask = np.zeros((len(prompts), width), np.int32)
  for row, prompt in enumerate(prompts):
    if len(prompt):
      tokens[row, width - len(prompt):] = prompt
      mask[row, width - len(prompt):] = 1
  return tokens, mask


# ------------------------------------------------------------ decoding with tool calls

LIVE, WAITING, DONE = 0, 1, 2   # a row's status in a ``ToolDecoding``


@flax.struct.dataclass
class ToolDecoding:
  """A decode that pauses rows at tool calls and takes the tool's tokens back: the
  carry of ``advance``, kept between calls (fixed shapes: f forced-token slots).

  Every step advances the cache one slot for every row (``steps``); a row that waits
  for its tool or is done writes that slot with segment id 0 (no query sees it) and
  keeps its recurrent state (``lm.keep_rows``) and position, so a row decodes the same
  whatever the others do and however long its tool takes. A live row either feeds its
  next forced token (the tool's output, ``forced_BF[forced_pos_B]``) or samples one; a
  sampled token moves the row's fence automaton (``fence_SV``: state × token → state;
  its last state means a code block was just closed), and closing a block with calls
  left makes the row wait. Sampling keys are per row and per token index
  (``fold_in(fold_in(rng, row), length)``), so samples do not depend on timing.

  tokens_BN, log_probs_BN: the completion (sampled and forced tokens, left-aligned;
    log-probs 0 on forced ones). mask_BN: 1 on the completion's tokens; tool_BN: 1 on
    those the tool wrote. length_B: tokens written. status_B: LIVE / WAITING / DONE.
  """
  steps: jax.Array
  cache: dict
  logits_BV: jax.Array
  positions_B: jax.Array
  tokens_BN: jax.Array
  log_probs_BN: jax.Array
  mask_BN: jax.Array
  tool_BN: jax.Array
  length_B: jax.Array
  status_B: jax.Array
  fence_B: jax.Array
  calls_left_B: jax.Array
  forced_BF: jax.Array
  forced_len_B: jax.Array
  forced_pos_B: jax.Array


def start_tool_decoding(params, prompt_BP: jax.Array, prompt_mask_BP: jax.Array,
                        calls_B: jax.Array, *, model_cfg: ModelConfig,
                        sampling: SamplingConfig, max_steps: int,
                        forced_slots: int) -> ToolDecoding:
  """Prefills the prompts into a cache of ``p + max_steps`` slots (pure; jit it).
  calls_B: tool calls each row may make. Rows pause while others read tool output, so
  a row's tokens do not fill consecutive cache slots, which local and pooled blockwise
  attention need (``model/blockwise.py``): a model with those layers is refused."""
  if model_cfg.attention != "full" or set(model_cfg.layer_attention) - {"full"}:
    raise ValueError("tool decoding pauses rows, which local and pooled blockwise attention "
                     "cannot follow: use model.attention='full' (layer_attention=()) for "
                     "tool-integrated generation")
  chex.assert_equal_shape((prompt_BP, prompt_mask_BP))
  b, p = prompt_BP.shape
  n = sampling.max_new_tokens
  cache = lm.init_cache(model_cfg, b, p + max_steps)
  logits_BV, cache = prefill(params, cache, prompt_BP, prompt_mask_BP, model_cfg=model_cfg)
  zeros = lambda shape, dtype=jnp.int32: jnp.zeros(shape, dtype)
  return ToolDecoding(
      steps=zeros(()), cache=cache, logits_BV=logits_BV.astype(jnp.float32),
      positions_B=jnp.sum(prompt_mask_BP.astype(jnp.int32), axis=-1),
      tokens_BN=jnp.full((b, n), sampling.pad_id, jnp.int32),
      log_probs_BN=zeros((b, n), jnp.float32), mask_BN=zeros((b, n)),
      tool_BN=zeros((b, n)), length_B=zeros((b,)), status_B=zeros((b,)),
      fence_B=zeros((b,)), calls_left_B=jnp.asarray(calls_B, jnp.int32),
      forced_BF=zeros((b, forced_slots)), forced_len_B=zeros((b,)),
      forced_pos_B=zeros((b,)))


def advance_tool_decoding(params, state: ToolDecoding, rng: jax.Array, fence_SV: jax.Array,
                          *, model_cfg: ModelConfig, sampling: SamplingConfig,
                          max_steps: int, chunk_steps: int) -> ToolDecoding:
  """Up to ``chunk_steps`` decode steps (pure; jit it); returns early once no row is live
  or the cache's ``max_steps`` slots are used. A row is done after a sampled stop token
  or when its n completion slots are full."""
  b, n = state.tokens_BN.shape
  closed = fence_SV.shape[0] - 1
  stops = jnp.asarray(sampling.stop_tokens or (-1,), jnp.int32)
  row_keys_B = jax.vmap(jax.random.fold_in, (None, 0))(rng, jnp.arange(b))
  end = state.steps + chunk_steps

  def keep_going(state):
    return (state.steps < jnp.minimum(end, max_steps)) & jnp.any(state.status_B == LIVE)

  def choose(key, logits_V, length):
    logits_V = sampling.ban(logits_V, length)
    return sampling_lib.choose_tokens(
        jax.random.fold_in(key, length), logits_V[None], temperature=sampling.temperature,
        top_k=sampling.top_k, top_p=sampling.top_p)[0]

  def step(state):
    live_B = state.status_B == LIVE
    forcing_B = live_B & (state.forced_pos_B < state.forced_len_B)
    sampled_B = jax.vmap(choose)(row_keys_B, state.logits_BV, state.length_B)
    forced_B = jnp.take_along_axis(
        state.forced_BF, jnp.minimum(state.forced_pos_B, state.forced_BF.shape[1] - 1)[:, None],
        axis=1)[:, 0]
    token_B = jnp.where(forcing_B, forced_B, sampled_B)
    log_prob_B = jnp.where(
        forcing_B, 0.0,
        sampling_lib.policy_log_probs(state.logits_BV, token_B, sampling.temperature))
    # Written at each live row's own length; other rows write out of bounds (dropped).
    column_B = jnp.where(live_B, state.length_B, n)
    rows_B = jnp.arange(b)
    write = lambda buffer_BN, value_B: buffer_BN.at[rows_B, column_B].set(
        value_B.astype(buffer_BN.dtype), mode="drop")
    length_B = state.length_B + live_B
    fence_B = jnp.where(live_B & ~forcing_B, fence_SV[state.fence_B, token_B], state.fence_B)
    calls_B = live_B & ~forcing_B & (fence_B == closed) & (state.calls_left_B > 0)
    stopped_B = live_B & ~forcing_B & jnp.isin(token_B, stops)
    status_B = jnp.where(calls_B, WAITING, state.status_B)
    status_B = jnp.where(stopped_B | (live_B & (length_B >= n)), DONE, status_B)
    logits_B1V, cache = lm.forward(
        params, token_B[:, None], model_cfg, positions=state.positions_B[:, None],
        segment_ids=live_B[:, None].astype(jnp.int32), cache=state.cache)
    return state.replace(
        steps=state.steps + 1,
        cache=lm.keep_rows(cache, state.cache, live_B, model_cfg),
        logits_BV=jnp.where(live_B[:, None], logits_B1V[:, 0], state.logits_BV),
        positions_B=state.positions_B + live_B,
        tokens_BN=write(state.tokens_BN, token_B),
        log_probs_BN=write(state.log_probs_BN, log_prob_B),
        mask_BN=write(state.mask_BN, jnp.ones_like(token_B)),
        tool_BN=write(state.tool_BN, forcing_B),
        length_B=length_B, status_B=status_B,
        fence_B=jnp.where(fence_B == closed, 0, fence_B),
        forced_pos_B=state.forced_pos_B + forcing_B)

  return jax.lax.while_loop(keep_going, step, state)


def resume_tool_rows(state: ToolDecoding, resume_B: jax.Array, forced_BF: jax.Array,
                     forced_len_B: jax.Array) -> ToolDecoding:
  """The rows ``resume_B`` (waiting ones) live again with the tool's tokens ``forced_BF``
  (their first ``forced_len_B``) to feed next, one call fewer left (pure; jit it)."""
  pick = lambda new, old: jnp.where(resume_B.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
  return state.replace(
      status_B=pick(jnp.full_like(state.status_B, LIVE), state.status_B),
      calls_left_B=state.calls_left_B - resume_B,
      forced_BF=pick(forced_BF.astype(jnp.int32), state.forced_BF),
      forced_len_B=pick(forced_len_B.astype(jnp.int32), state.forced_len_B),
      forced_pos_B=pick(jnp.zeros_like(state.forced_pos_B), state.forced_pos_B))
