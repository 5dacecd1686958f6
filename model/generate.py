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
  """
  max_new_tokens: int
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  stop_tokens: tuple[int, ...] = ()
  min_new_tokens: int = 0
  pad_id: int = 0

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
    object.__setattr__(self, "stop_tokens", tuple(int(t) for t in self.stop_tokens))


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
  vocab_is_stop_1V = jnp.isin(jnp.arange(logits_BV.shape[-1]), stops)[None]

  def keep_going(carry):
    i, done_B = carry[0], carry[-1]
    return (i < n) & ~jnp.all(done_B)

  def step(carry):
    i, cache, logits_BV, positions_B, rng, tokens_BN, log_probs_BN, mask_BN, done_B = carry
    rng, step_rng = jax.random.split(rng)
    allowed_BV = logits_BV
    if sampling.min_new_tokens > 0 and sampling.stop_tokens:
      allowed_BV = jnp.where(vocab_is_stop_1V & (i < sampling.min_new_tokens),
                             -jnp.inf, logits_BV)
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
