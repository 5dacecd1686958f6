r"""Decode throughput of compressed models against their teacher, in one process.

Each run's model (its ``config.json``, the resolved model of a pruned or searched
student included) and newest checkpoint decode the same random prompts greedily with no
stop token. Decode time is ``t(new = N) − t(new = 1)`` (prefill and the first token
excluded), tokens/s counts batch × (N − 1), and each figure is the best of ``--repeats``
rounds in which the runs take turns, so a change of load hits them alike. The ratio is
against the first run.

  python bench/compressed_decode.py --runs teacher=runs/tiny pruned=runs/tiny_pruned \
      [--batch 32] [--new_tokens 48] [--prompt_len 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from model import generate as generate_lib  # pylint: disable=g-import-not-at-top
from model import lm  # pylint: disable=g-import-not-at-top
from train import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
from train import config as run_config  # pylint: disable=g-import-not-at-top
from train import export  # pylint: disable=g-import-not-at-top
from train import xla_flags  # pylint: disable=g-import-not-at-top

xla_flags.apply()  # before the first JAX computation starts the CPU backend


def decoder(workdir: str, prompt_BP: np.ndarray):
  """(model config, decode(new_tokens) -> seconds) of the run in ``workdir``."""
  cfg = run_config.recorded_model_config(export.read_run_config(workdir))
  params, _ = checkpoint_lib.load_params(workdir, cfg, None, report=lambda _: None)
  mask_BP = np.ones_like(prompt_BP)

  def decode(new_tokens: int) -> float:
    sampling = generate_lib.SamplingConfig(max_new_tokens=new_tokens, temperature=0.0)
    start = time.perf_counter()
    jax.block_until_ready(generate_lib.generate(
        params, prompt_BP, mask_BP, jax.random.PRNGKey(0), model_cfg=cfg,
        sampling=sampling).tokens)
    return time.perf_counter() - start
  return cfg, decode


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", nargs="+", required=True, help="NAME=WORKDIR, baseline first")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--new_tokens", type=int, default=48)
  parser.add_argument("--prompt_len", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  runs = dict(run.split("=", 1) for run in args.runs)
  decoders = {}
  for name, workdir in runs.items():
    cfg = run_config.recorded_model_config(export.read_run_config(workdir))
    prompt_BP = np.random.default_rng(0).integers(
        3, cfg.vocab_size, (args.batch, args.prompt_len)).astype(np.int32)
    decoders[name] = decoder(workdir, prompt_BP)
  best = {name: {1: float("inf"), args.new_tokens: float("inf")} for name in runs}
  for name, (_, decode) in decoders.items():   # warm-up: compiles both lengths
    decode(1), decode(args.new_tokens)
  for _ in range(args.repeats):
    for name, (_, decode) in decoders.items():
      for new in (1, args.new_tokens):
        best[name][new] = min(best[name][new], decode(new))
  print(f"greedy decode, batch {args.batch} x {args.new_tokens} new tokens after "
        f"{args.prompt_len} prompt tokens, best of {args.repeats} interleaved rounds, "
        f"{jax.devices()[0].platform} ({platform.processor() or platform.machine()})")
  print("| run | parameters | pattern | decode tokens/s | ratio |")
  print("|---|---|---|---|---|")
  baseline = None
  for name, (cfg, _) in decoders.items():
    seconds = max(best[name][args.new_tokens] - best[name][1], 1e-9)
    speed = args.batch * (args.new_tokens - 1) / seconds
    baseline = baseline or speed
    print(f"| {name} | {lm.count_params(cfg):,} | `{cfg.pattern}` | {speed:,.0f} | "
          f"{speed / baseline:.2f} |")


if __name__ == "__main__":
  main()
