"""Long-context attention: time and memory of full, local and pooled blockwise attention
(arXiv 2209.10052; ``model/blockwise.py``) against sequence length, forward + backward of
one attention layer's core.

  python bench/long_context.py                   # this host (CPU: 1K-16K tokens, 2 query
                                                 # heads of 32, block 256; times measured)
  python bench/long_context.py --tpu=v5p:2x2x1    # deviceless compile for one chip of a TPU, at
                                                 # 32K-128K (32 query / 8 kv heads of 128,
                                                 # bf16, block 1024, kernel 18, stride 12):
                                                 # XLA:TPU's memory and FLOP estimates

Spans: ``full`` (causal attention over the whole row; the chunked core on CPU, splash
attention on TPU), ``local`` (blocks only) and ``pooled`` (blocks plus the pooled branch).
Columns: seconds per step (CPU only), temporary bytes of the compiled step (XLA's memory
analysis: what the step needs besides its inputs and outputs) and their growth against
the previous length, and for TPU the attention's forward FLOPs counted from the masks
(4·heads·head_dim per visible query-key pair: XLA's cost analysis does not see inside
the splash kernel) and their growth. Ratios are against ``full`` at the same length, in
the same run.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import attention as attention_bench  # bench/attention.py  # pylint: disable=g-import-not-at-top
from model import blockwise  # pylint: disable=g-import-not-at-top
from model import config as config_lib  # pylint: disable=g-import-not-at-top
from model import layers  # pylint: disable=g-import-not-at-top

SPANS = ("full", "local", "pooled")


def attention_fn(cfg: config_lib.ModelConfig):
  core = layers.causal_core(cfg)
  if cfg.attention == "full":
    return core
  return lambda q, k, v, s: blockwise.sequence_attention(q, k, v, s, cfg, core)


def step_fn(cfg):
  """Forward + backward of one attention core (a sum of the output as the loss)."""
  attend = attention_fn(cfg)
  return jax.grad(lambda q, k, v, s: jnp.sum(attend(q, k, v, s).astype(jnp.float32)),
                  argnums=(0, 1, 2))


def shapes(cfg, batch: int, length: int, sharding=None):
  g = cfg.n_heads // cfg.n_kv_heads
  s = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
  dtype = jnp.dtype(cfg.dtype)
  return (s((batch, length, cfg.n_kv_heads, g, cfg.head_dim), dtype),
          s((batch, cfg.n_kv_heads, length, cfg.head_dim), dtype),
          s((batch, cfg.n_kv_heads, length, cfg.head_dim), dtype),
          s((batch, length), jnp.int32))


def compiled_step(cfg, batch, length, devices=None):
  sharding = None
  if devices is not None:
    mesh = jax.sharding.Mesh(devices[:1], ("x",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.jit(step_fn(cfg)).trace(*shapes(cfg, batch, length, sharding)).lower().compile()


def seconds(cfg, batch, length, iters):
  """Best wall time of the step (``bench/attention.py``'s timing, the same loss)."""
  keys = jax.random.split(jax.random.key(0), 3)
  args = [jax.random.normal(key, a.shape, a.dtype)
          for key, a in zip(keys, shapes(cfg, batch, length)[:3])]
  args.append(jnp.ones((batch, length), jnp.int32))
  return attention_bench.seconds_per_step(attention_fn(cfg), args, iters)


def attention_flops(cfg, length: int) -> float:
  """Forward score and value FLOPs: 4 · heads · head_dim per visible (query, key) pair,
  the pooled windows counted as keys."""
  slots = np.arange(length)
  if cfg.attention == "full":
    pairs = float(np.sum(slots + 1))
  else:
    pairs = float(np.sum(slots % cfg.local_block + 1))
  if cfg.attention == "pooled":
    ends = blockwise.window_ends(blockwise.num_windows(length, cfg), cfg)
    block_starts = slots // cfg.local_block * cfg.local_block
    pairs += float(np.sum(np.searchsorted(ends, block_starts, side="right")))
  return 4.0 * cfg.n_heads * cfg.head_dim * pairs


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tpu", default="", help="a TPU topology to compile for, e.g. v5p:2x2x1 (one of its chips)")
  parser.add_argument("--iters", type=int, default=3)
  parser.add_argument("--lengths", default="")
  args = parser.parse_args()
  devices = None
  if args.tpu:
    from train import aot  # pylint: disable=g-import-not-at-top
    devices = aot.topology_devices(args.tpu)
    base = config_lib.ModelConfig(n_heads=32, n_kv_heads=8, head_dim=128, dtype="bfloat16",
                                  attention_impl="flash", attention_block=512,
                                  local_block=1024, pool_kernel=18, pool_stride=12)
    lengths = (32768, 65536, 131072)
    where = f"TPU {args.tpu} (deviceless compile, {devices[0].device_kind})"
  else:
    base = config_lib.ModelConfig(n_heads=2, n_kv_heads=1, head_dim=32,
                                  attention_impl="chunked", attention_block=256,
                                  local_block=256, pool_kernel=18, pool_stride=12)
    lengths = (1024, 2048, 4096, 8192, 16384)
    where = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind})"
  if args.lengths:
    lengths = tuple(int(x) for x in args.lengths.split(","))
  print(f"one attention layer, fwd+bwd, {where}: {base.n_heads} query / {base.n_kv_heads} "
        f"kv heads of {base.head_dim}, {base.dtype}, block {base.local_block}, pool "
        f"{base.pool_kernel}/{base.pool_stride}, core {base.attention_impl}")
  header = ["length", "span"] + (["fwd FLOPs", "FLOPs/full", "FLOP growth"] if args.tpu
                                 else ["s/step", "time/full", "time growth"])
  header += ["temp MiB", "temp/full", "temp growth"]
  print(" | ".join(f"{h:>11}" for h in header))
  previous = {}
  for length in lengths:
    full = None
    for span in SPANS:
      cfg = base.replace(attention=span)
      compiled = compiled_step(cfg, 1, length, devices)
      temp = compiled.memory_analysis().temp_size_in_bytes
      measure = (attention_flops(cfg, length) if args.tpu
                 else seconds(cfg, 1, length, args.iters))
      full = full or (measure, temp)
      cells = [f"{length:>11}", f"{span:>11}"]
      cells.append(f"{measure:>11.3g}" if args.tpu else f"{measure:>11.4f}")
      cells.append(f"{measure / full[0]:>10.2f}x")
      grown = previous.get(span, (None, None))[0]
      cells.append(f"{measure / grown:>10.2f}x" if grown else f"{'-':>11}")
      cells += [f"{temp / 2**20:>11.1f}", f"{temp / max(full[1], 1):>10.2f}x"]
      grown = previous.get(span, (None, None))[1]
      cells.append(f"{temp / grown:>10.2f}x" if grown else f"{'-':>11}")
      previous[span] = (measure, temp)
      print(" | ".join(cells), flush=True)


if __name__ == "__main__":
  main()
