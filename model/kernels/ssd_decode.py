"""Pallas kernel for one decode step of the SSD recurrence (GPU and TPU).

    state ← exp(dt·A) state + dt · x ⊗ B        y = state · C

Grid (b, h / block_h). Each program updates block_h heads' (P × N) fp32 states in
place (the state input is aliased to the new state, so a donated cache is reused)
and reads B, C already expanded to heads. The body is the same for both lowerings;
only the compiler parameters differ. The step is memory-bound: it moves the state
twice, 2·b·h·P·N·4 bytes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas import triton as plgpu


def _step_kernel(state_ref, x_ref, dt_ref, decay_ref, B_ref, C_ref, y_ref, new_state_ref):
  # state (bh, P, N); x (bh, P, 1); dt, decay (bh, 1, 1); B, C (bh, 1, N).
  x = x_ref[...].astype(state_ref.dtype)
  state = (state_ref[...] * decay_ref[...]
           + (dt_ref[...] * x) * B_ref[...].astype(state_ref.dtype))
  new_state_ref[...] = state
  y = jnp.sum(state * C_ref[...].astype(state.dtype), axis=2, keepdims=True)
  y_ref[...] = y.astype(y_ref.dtype)


def step(state, x, dt, decay, B_heads, C_heads, *, backend: str, block_h: int,
         num_warps: int, interpret: bool):
  """state (b h p n) acc; x (b h p); dt, decay (b h) acc; B_heads, C_heads (b h n).

  Returns (y (b h p) in the state dtype, new state (b h p n)).
  """
  b, h, p, n = state.shape
  head_block = lambda *tail: pl.BlockSpec((None, block_h) + tail,
                                          lambda i, j: (i, j) + (0,) * len(tail))
  if backend == "tpu":
    compiler_params = pltpu.CompilerParams(dimension_semantics=("parallel", "parallel"))
    interpret = pltpu.InterpretParams() if interpret else False
  else:
    compiler_params = plgpu.CompilerParams(num_warps=num_warps)
  y, new_state = pl.pallas_call(
      _step_kernel,
      out_shape=[jax.ShapeDtypeStruct((b, h, p, 1), state.dtype),
                 jax.ShapeDtypeStruct(state.shape, state.dtype)],
      grid=(b, h // block_h),
      in_specs=[head_block(p, n), head_block(p, 1), head_block(1, 1), head_block(1, 1),
                head_block(1, n), head_block(1, n)],
      out_specs=[head_block(p, 1), head_block(p, n)],
      input_output_aliases={0: 1},
      interpret=interpret, name=f"ssd_step_{backend}",
      compiler_params=compiler_params,
  )(state, x[..., None], dt[..., None, None], decay[..., None, None],
    B_heads[:, :, None, :], C_heads[:, :, None, :])
  return y[..., 0], new_state

