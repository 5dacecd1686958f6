"""Attention benchmark: tokens/s of each training attention core against the einsum
reference, forward + backward, at growing sequence lengths.

  python bench/attention.py            # accelerator: b 1, 32 query / 8 kv heads of 128,
                                       # bf16, packed rows, 4K-32K (einsum until it OOMs)
  python bench/attention.py --small    # CPU: 2 heads of 16 at 256-1024 (proves the
                                       # script; XLA:CPU times are not the GPU's story)

Cores (``model/attention.py``): ``einsum`` (every score matrix in memory), ``chunked``
(online softmax in XLA, recomputing backward) and ``flash`` (the compile target's
kernel: splash attention on TPU, cuDNN on CUDA, ``chunked`` elsewhere). Rows are packed
with four documents each. A core that runs out of memory shows ``oom``. Ratios are
against einsum at the same length, measured in the same run.
"""

from __future__ import annotations

import argparse
import functools
import math
import pathlib
import sys
import time

import jax
import jax.numpy as jnp

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model import attention  # pylint: disable=g-import-not-at-top
from train import xla_flags  # pylint: disable=g-import-not-at-top

CORES = ("einsum", "chunked", "flash")


def _core(name: str, block: int):
  if name == "einsum":
    def einsum(q, k, v, segments):
      slots = jnp.arange(q.shape[1])
      return attention.einsum_attention(
          q, k, v, attention.visibility(slots, slots, segments, segments))
    return einsum
  fn = {"chunked": attention.chunked_attention, "flash": attention.flash_attention}[name]
  return functools.partial(fn, block=block)


def _inputs(batch, length, kv_heads, groups, head_dim, dtype):
  keys = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(keys[0], (batch, length, kv_heads, groups, head_dim), dtype)
  k = jax.random.normal(keys[1], (batch, kv_heads, length, head_dim), dtype)
  v = jax.random.normal(keys[2], (batch, kv_heads, length, head_dim), dtype)
  segments = jnp.broadcast_to(jnp.arange(length) * 4 // length + 1, (batch, length))
  return q, k, v, segments.astype(jnp.int32)


def seconds_per_step(core, args, iters: int) -> float:
  """Best wall time of forward + backward (a sum of the output as the loss)."""
  grad = jax.jit(jax.grad(lambda q, k, v, s: jnp.sum(core(q, k, v, s).astype(jnp.float32)),
                          argnums=(0, 1, 2)))
  jax.block_until_ready(grad(*args))
  best = math.inf
  for _ in range(iters):
    start = time.perf_counter()
    jax.block_until_ready(grad(*args))
    best = min(best, time.perf_counter() - start)
  return best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--small", action="store_true")
  parser.add_argument("--iters", type=int, default=5)
  args = parser.parse_args()
  xla_flags.apply()
  if args.small:
    lengths, shape, dtype, block = (256, 512, 1024), (1, 1, 2, 16), jnp.float32, 128
  else:
    lengths, shape, dtype, block = (4096, 8192, 16384, 32768), (1, 8, 4, 128), jnp.bfloat16, 512
  batch, kv_heads, groups, head_dim = shape
  device = jax.devices()[0]
  print(f"attention fwd+bwd, {device.platform} ({device.device_kind}): batch {batch}, "
        f"{kv_heads * groups} query / {kv_heads} kv heads of {head_dim}, "
        f"{jnp.dtype(dtype).name}, block {block}; {xla_flags.describe()}")
  print(f"{'length':>7} | " + " | ".join(f"{c:>18}" for c in CORES)
        + " | " + " | ".join(f"{c}/einsum" for c in CORES[1:]))
  for length in lengths:
    inputs = _inputs(batch, length, kv_heads, groups, head_dim, dtype)
    rates = {}
    for name in CORES:
      try:
        rates[name] = batch * length / seconds_per_step(_core(name, block), inputs, args.iters)
      except Exception as e:  # pylint: disable=broad-except
        if "RESOURCE_EXHAUSTED" not in str(e) and "out of memory" not in str(e).lower():
          raise
        rates[name] = None
    cell = lambda r: f"{r:>12,.0f} tok/s" if r else f"{'oom':>18}"
    ratio = lambda r: (f"{r / rates['einsum']:>13.2f}x" if r and rates["einsum"]
                       else f"{'-':>14}")
    print(f"{length:>7} | " + " | ".join(cell(rates[c]) for c in CORES) + " | "
          + " | ".join(ratio(rates[c]) for c in CORES[1:]), flush=True)


if __name__ == "__main__":
  main()
