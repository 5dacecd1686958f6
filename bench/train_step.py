r"""Training throughput of our jitted train step.

CPU (default): tokens/s of our step vs Hugging Face transformers + torch on the same tiny
Llama (same shapes, AdamW, clipping, fp32), printed as a table with the ratio:

  PYTHONPATH=. python bench/train_step.py
  XLA_FLAGS=--xla_cpu_max_isa=AVX2 PYTHONPATH=. python bench/train_step.py   # AVX2 only
  PYTHONPATH=. python bench/train_step.py --bf16   # adds our step with bf16 compute

``--bf16`` adds a row: the same step with bf16 activations and matmuls (fp32 parameters,
Adam state and accumulation), the mixed precision of the pod configs, to show what a CPU
with native bf16 (AVX512-BF16, AMX) makes of it.

The first line printed names the CPU, its ISA and the XLA flags in effect (the project's
CPU flags from train/xla_flags.py are added unless REASONAX_XLA_FLAGS=0).

GPU: tokens/s and MFU of llama_1b and hybrid_125m at seq 4096 on one device:

  PYTHONPATH=. python bench/train_step.py --gpu
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
from absl import app
from absl import flags

from configs import base
from model import config as mcfg
from model import lm
from train import config as run_config
from train import driver
from train import metrics as metrics_lib
from train import sharding
from train import xla_flags

xla_flags.apply()  # before the first JAX computation starts the CPU backend

_GPU = flags.DEFINE_bool("gpu", False, "Benchmark the GPU models instead of the CPU pair.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds; the fastest one is reported.")
_BATCH = flags.DEFINE_integer("batch", 8, "CPU: sequences per step.")
_SEQ_LEN = flags.DEFINE_integer("seq_len", 256, "CPU: tokens per sequence.")
_BF16 = flags.DEFINE_bool("bf16", False, "CPU: also time our step with bf16 compute.")

# A tiny Llama: 4 blocks of (attention, SwiGLU MLP), GQA 8/4 heads, untied head.
TINY_LLAMA = mcfg.ModelConfig(
    vocab_size=1024, d_model=256, pattern="*-" * 4, n_heads=8, n_kv_heads=4, head_dim=32,
    mlp_dim=768, mlp_activation="swiglu", tie_embeddings=False, rope_theta=10000.0,
    norm_eps=1e-5)
GPU_SEQ_LEN = 4096
GPU_MODELS = (("llama_1b", dict(remat="full"), 4), ("hybrid_125m", dict(remat="dots"), 8))


def optimizer_config() -> ml_collections.ConfigDict:
  config = base.get_config().optimizer
  config.update(schedule="constant", warmup_steps=0, learning_rate=1e-3)
  return config


def pretrain_config(cfg: mcfg.ModelConfig, batch: int, seq_len: int
                    ) -> ml_collections.ConfigDict:
  """A pretraining run of ``cfg``: no z-loss (torch's loss has none), constant lr."""
  config = base.get_config()
  config.model = run_config.model_section("tiny", **dataclasses.asdict(cfg))
  config.optimizer = optimizer_config()
  config.train.update(steps=1000, global_batch_size=batch, seq_len=seq_len, z_loss=0.0)
  return config


def jax_step(cfg: mcfg.ModelConfig, batch: int, seq_len: int) -> Callable[[], None]:
  """One call = one step of the driver's jitted pretraining step on one device, waited
  for (compiled)."""
  config = pretrain_config(cfg, batch, seq_len)
  built = driver.build(config, sharding.make_mesh(config.mesh, jax.devices()[:1]),
                       tokenizer=None)   # the step reads no text
  state = driver.initial_state(built, report=print)
  train_step = built.jit_step(built.loop.abstract_batch(built.ctx))
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq_len + 1))
  batch_arrays = built.ctx.to_global({
      "tokens": tokens[:, :-1].astype(np.int32), "targets": tokens[:, 1:].astype(np.int32),
      "segment_ids": np.ones((batch, seq_len), np.int32),
      "positions": np.tile(np.arange(seq_len, dtype=np.int32), (batch, 1)),
      "loss_mask": np.ones((batch, seq_len), np.float32)}, num_rows=batch)
  holder = [state]

  def step():
    holder[0], metrics = train_step(holder[0], batch_arrays)
    jax.block_until_ready(metrics)
  step()  # compile
  return step


def torch_step(cfg: mcfg.ModelConfig, batch: int, seq_len: int) -> Callable[[], None]:
  """One call = one step of the same model in transformers + torch (eager, fp32)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
      vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.mlp_dim,
      num_hidden_layers=cfg.pattern.count("*"), num_attention_heads=cfg.n_heads,
      num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.head_dim,
      rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta, tie_word_embeddings=False,
      attn_implementation="sdpa"))
  assert sum(p.numel() for p in model.parameters()) == lm.count_params(cfg)
  config = optimizer_config()
  optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                betas=(config.b1, config.b2), eps=config.eps,
                                weight_decay=config.weight_decay)
  tokens = torch.randint(0, cfg.vocab_size, (batch, seq_len))

  def step():
    loss = model(input_ids=tokens, labels=tokens).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

  step()  # warm up
  return step


def best_seconds_per_step(steps: dict[str, Callable[[], None]], rounds: int,
                          steps_per_round: int) -> dict[str, float]:
  """Fastest round of each step function, the functions interleaved round by round.

  Interleaving and taking the best round keeps a shared, noisy machine's load from
  favouring whichever implementation happened to run in a quiet moment.
  """
  best = dict.fromkeys(steps, float("inf"))
  for _ in range(rounds):
    for name, step in steps.items():
      start = time.perf_counter()
      for _ in range(steps_per_round):
        step()
      best[name] = min(best[name], (time.perf_counter() - start) / steps_per_round)
  return best


def cpu_table(batch: int, seq_len: int, rounds: int, bf16: bool) -> str:
  tokens = batch * seq_len
  steps = {"ours": jax_step(TINY_LLAMA, batch, seq_len),
           "theirs": torch_step(TINY_LLAMA, batch, seq_len)}
  if bf16:
    steps["ours_bf16"] = jax_step(TINY_LLAMA.replace(dtype="bfloat16"), batch, seq_len)
  seconds = best_seconds_per_step(steps, rounds, steps_per_round=3)
  ours, theirs = tokens / seconds["ours"], tokens / seconds["theirs"]
  rows = [
      f"tiny Llama: {lm.count_params(TINY_LLAMA) / 1e6:.2f}M params, d {TINY_LLAMA.d_model}, "
      f"{TINY_LLAMA.pattern.count('*')} blocks, batch {batch} x seq {seq_len}, fp32, AdamW, "
      f"device {jax.devices()[0].device_kind}; best of {rounds} interleaved rounds of 3 "
      "steps",
      "",
      "| implementation | tokens/s | ratio |",
      "| --- | ---: | ---: |",
      f"| reasonax jitted train step (JAX {jax.__version__}) | {ours:,.0f} | "
      f"{ours / theirs:.2f}x |",
  ]
  if bf16:
    ours_bf16 = tokens / seconds["ours_bf16"]
    rows.append(f"| the same, bf16 compute (fp32 params, Adam, accumulation) | "
                f"{ours_bf16:,.0f} | {ours_bf16 / theirs:.2f}x |")
  rows.append(f"| transformers LlamaForCausalLM + torch AdamW | {theirs:,.0f} | 1.00x |")
  return "\n".join(rows)


def gpu_table(rounds: int) -> str:
  device = jax.devices()[0]
  peak = metrics_lib.peak_flops_per_device(device.device_kind)
  rows = [f"device {device.device_kind}, seq {GPU_SEQ_LEN}, bf16 compute, fp32 params + Adam",
          "",
          "| model | params | batch | tokens/s | MFU |", "| --- | ---: | ---: | ---: | ---: |"]
  for name, overrides, batch in GPU_MODELS:
    cfg = mcfg.named(name, **overrides)
    seconds = best_seconds_per_step({name: jax_step(cfg, batch, GPU_SEQ_LEN)}, rounds,
                                    steps_per_round=5)[name]
    tokens_per_s = batch * GPU_SEQ_LEN / seconds
    mfu = (f"{tokens_per_s * lm.flops_per_token(cfg, GPU_SEQ_LEN) / peak:.1%}" if peak
           else "unknown peak")
    rows.append(f"| {name} (remat {cfg.remat}) | {lm.count_params(cfg) / 1e6:,.0f}M | "
                f"{batch} | {tokens_per_s:,.0f} | {mfu} |")
  return "\n".join(rows)


def main(argv):
  del argv
  print(xla_flags.describe())
  if _GPU.value:
    print(gpu_table(_ROUNDS.value))
  else:
    print(cpu_table(_BATCH.value, _SEQ_LEN.value, _ROUNDS.value, _BF16.value))


if __name__ == "__main__":
  app.run(main)
