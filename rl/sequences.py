"""Token layouts the RL update reads: one row = one sequence, pads carry segment id 0.

A *policy batch* is a dict of (b l) arrays:
  tokens               int32    the sequence (prompt or context, then actions)
  segment_ids          int32    1 on real tokens, 0 on padding
  action_mask          float32  1 on tokens the policy chose (their log-probs are trained)
  behaviour_log_probs  float32  log π_behaviour of those tokens (0 elsewhere)
plus ``advantages`` (b,) and, with a KL term, ``reference_log_probs`` (b l).

Padding may sit before the prompt and after the actions, never between real tokens
(Mamba layers reset where the segment id changes): ``right_align`` closes such gaps.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from model import generate as generate_lib


def concat_prompt_completion(prompt_BP: jax.Array, prompt_mask_BP: jax.Array,
                             generation: generate_lib.Generation,
                             tool_BN: Optional[jax.Array] = None) -> dict:
  """The policy batch of left-padded prompts (b p) followed by their generations (b n);
  ``tool_BN`` 1 on generated tokens a tool wrote (context, not actions)."""
  prompt_mask_BP = prompt_mask_BP.astype(jnp.int32)
  zeros_BP = jnp.zeros(prompt_BP.shape, jnp.float32)
  actions_BN = generation.mask.astype(jnp.float32)
  if tool_BN is not None:
    actions_BN = actions_BN * (1 - tool_BN.astype(jnp.float32))
  return {
      "tokens": jnp.concatenate([prompt_BP.astype(jnp.int32), generation.tokens], axis=1),
      "segment_ids": jnp.concatenate([prompt_mask_BP, generation.mask], axis=1),
      "action_mask": jnp.concatenate([zeros_BP, actions_BN], axis=1),
      "behaviour_log_probs": jnp.concatenate([zeros_BP, generation.log_probs], axis=1),
  }


def right_align(mask_BL: jax.Array, arrays: dict) -> tuple[jax.Array, dict]:
  """Moves every row's real slots (``mask_BL`` 1) to its end, keeping their order.

  Returns (the new mask, ``arrays`` gathered the same way); pads end up first.
  """
  order_BL = jnp.argsort(mask_BL.astype(jnp.int32), axis=-1, stable=True)
  gather = lambda x_BL: jnp.take_along_axis(x_BL, order_BL, axis=-1)
  return gather(mask_BL), {name: gather(x_BL) for name, x_BL in arrays.items()}
