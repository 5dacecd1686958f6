r"""Decode throughput: our cached generation (model/generate.py) vs Hugging Face ``generate``.

The same tiny random Llama and Mamba-2 weights run in both: a torch model is built from
a transformers config, saved with ``save_pretrained`` and loaded here with
``model.hf.load_hf_checkpoint``. Both decode greedily with no stop token; decode time is
``t(new = N) − t(new = 1)`` for each side (so prefill and the first token are excluded
alike) and tokens/s counts batch × (N − 1) tokens. Each measurement is the best of
``--repeats`` timed runs after one warm-up (which also compiles ours).

  python bench/generate.py                      # CPU: batch 1 and 16, 128 new tokens
  python bench/generate.py --new_tokens 64 --batches 1,4
  XLA_FLAGS=--xla_force_host_platform_device_count=2 python bench/generate.py   # 2 devices

With more than one device, ours splits the rows of a batch the devices divide and each
device runs its own decode loop (``row_parallel``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top
import torch  # pylint: disable=g-import-not-at-top
import transformers  # pylint: disable=g-import-not-at-top

from model import hf  # pylint: disable=g-import-not-at-top
from model import generate as generate_lib  # pylint: disable=g-import-not-at-top
from train import xla_flags  # pylint: disable=g-import-not-at-top

xla_flags.apply()  # before the first JAX computation starts the CPU backend

VOCAB = 1024
MODELS = {
    "llama": ("LlamaForCausalLM", dict(
        vocab_size=VOCAB, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
        num_attention_heads=8, num_key_value_heads=4, tie_word_embeddings=False)),
    "mamba2": ("Mamba2ForCausalLM", dict(
        vocab_size=VOCAB, hidden_size=256, num_hidden_layers=4, num_heads=8, head_dim=64,
        expand=2, state_size=64, n_groups=1, conv_kernel=4, chunk_size=64,
        tie_word_embeddings=False)),
}


def build(name: str, directory: str):
  architecture, kwargs = MODELS[name]
  torch.manual_seed(0)
  config = transformers.AutoConfig.for_model(hf.ARCHITECTURES[architecture],
                                             architectures=[architecture], **kwargs)
  model = transformers.AutoModelForCausalLM.from_config(config).eval()
  model.save_pretrained(directory)
  params, cfg = hf.load_hf_checkpoint(directory)
  return model, params, cfg


def best_time(fn, repeats: int) -> float:
  fn()                                   # warm-up (compiles ours)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def ours(params, cfg, prompt: np.ndarray, new_tokens: int):
  mask = np.ones_like(prompt)
  sampling = generate_lib.SamplingConfig(max_new_tokens=new_tokens, temperature=0.0)
  devices = jax.local_devices()
  if len(devices) > 1 and len(prompt) % len(devices) == 0:
    return row_parallel(params, cfg, prompt, mask, sampling, devices)
  return lambda: jax.block_until_ready(generate_lib.generate(
      params, prompt, mask, jax.random.PRNGKey(0), model_cfg=cfg, sampling=sampling).tokens)


def row_parallel(params, cfg, prompt: np.ndarray, mask: np.ndarray, sampling, devices):
  """Each device decodes its share of the rows in a loop of its own (no collective per
  token), weights replicated. With ``--xla_force_host_platform_device_count=N`` this is
  how XLA:CPU spreads a decode step over N cores: its small matmuls run on one thread.
  Every device gets the same key, which is right for the bench's greedy decoding only."""
  mesh = jax.sharding.Mesh(np.array(devices), ("rows",))
  rows, replicated = P("rows"), P()
  decode = jax.jit(jax.shard_map(
      lambda p, x, m: generate_lib.sample(p, x, m, jax.random.PRNGKey(0), model_cfg=cfg,
                                          sampling=sampling).tokens,
      mesh=mesh, in_specs=(replicated, rows, rows), out_specs=rows, check_vma=False))
  place = lambda x, spec: jax.device_put(x, jax.sharding.NamedSharding(mesh, spec))
  inputs = (place(params, replicated), place(prompt, rows), place(mask, rows))
  return lambda: jax.block_until_ready(decode(*inputs))


def theirs(model, prompt: np.ndarray, new_tokens: int):
  ids = torch.as_tensor(prompt, dtype=torch.long)

  def run():
    with torch.inference_mode():
      return model.generate(ids, attention_mask=torch.ones_like(ids),
                            max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                            do_sample=False, eos_token_id=None, pad_token_id=0)
  return run


def decode_tokens_per_s(make_run, batch: int, new_tokens: int, repeats: int) -> float:
  full = best_time(make_run(new_tokens), repeats)
  first = best_time(make_run(1), repeats)
  return batch * (new_tokens - 1) / max(full - first, 1e-9)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", default="1,16")
  parser.add_argument("--prompt_len", type=int, default=32)
  parser.add_argument("--new_tokens", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args(argv)
  batches = [int(b) for b in args.batches.split(",")]
  rng = np.random.default_rng(0)
  print(xla_flags.describe())
  print(f"device: {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores); jax {jax.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}")
  print(f"prompt {args.prompt_len} tokens, {args.new_tokens} new tokens, greedy, fp32; ours on "
        f"{jax.local_device_count()} device(s) (batches they divide: rows split, one decode "
        "loop each)\n")
  print("| model | params | batch | ours tok/s | HF tok/s | ours / HF "
        "| same greedy tokens (first 16) |")
  print("|---|---|---|---|---|---|---|")
  for name in MODELS:
    with tempfile.TemporaryDirectory() as directory:
      model, params, cfg = build(name, directory)
    count = sum(p.numel() for p in model.parameters())
    for batch in batches:
      prompt = rng.integers(1, VOCAB, (batch, args.prompt_len)).astype(np.int32)
      ours_rate = decode_tokens_per_s(lambda n: ours(params, cfg, prompt, n), batch,
                                      args.new_tokens, args.repeats)
      hf_rate = decode_tokens_per_s(lambda n: theirs(model, prompt, n), batch,
                                    args.new_tokens, args.repeats)
      ours_tokens = np.asarray(ours(params, cfg, prompt, 16)())
      hf_tokens = theirs(model, prompt, 16)()[:, args.prompt_len:].numpy()
      same = float(np.mean(ours_tokens == hf_tokens))
      print(f"| {name} | {count / 1e6:.1f}M | {batch} | {ours_rate:,.0f} | {hf_rate:,.0f} | "
            f"{ours_rate / hf_rate:.2f} | {same:.0%} |", flush=True)


if __name__ == "__main__":
  main()
