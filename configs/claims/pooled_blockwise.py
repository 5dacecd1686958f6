r"""Pooling-augmented blockwise attention adapts a short-context model to long inputs
(arXiv 2209.10052), in miniature.

  python -m train.main --config=configs/claims/pooled_blockwise.py \
      --workdir=runs/pooled_blockwise

The paper replaces a pretrained model's full attention with block attention plus, in the
top layers, attention to average-pooled keys and values, and continues pretraining with
masked-span prediction on long inputs. Here:

  base      the claims' 3-layer transformer with full attention, pretrained once for
            every seed (``shared=True``) at 128 tokens: shipped English (40%) and passkey
            documents of 128 tokens (60%; ``data/passkey.py``: filler text, "The pass key
            is 7. Remember it. 7 is the pass key." at a random depth, "What is the pass
            key? The pass key is" and the key). The embedding has 64 ids beyond the
            tokenizer's 1024: the span sentinels (``sentinels='after_vocab'``).
  pooled    the base adapted to 512 tokens: every attention layer local in blocks of
            128 (the base's length); the top two also attend to keys and values pooled
            over windows of 18 every 12 slots of completed blocks (the paper's sizes)
  local     the same adaptation with every layer local only (no pooled branch)

Both arms continue the base for the same steps and tokens (8 × 520 a step) on the same
mixture: passkey documents of 512 tokens as plain text (50%) and, with masked-span
prediction (``data/span_corruption.py``: 15% of tokens in spans of mean 3, 8 or 64,
each replaced by a sentinel, the spans appended as targets, the loss on them only), the
same kind of long documents (50%). Evaluation: 100 held-out passkey questions of 512
tokens, greedy, text template. The claim's metric is ``pass@1/far``: the key in the
first 60% of the filler, so for most questions more than one block before the question,
which only the pooled branch can reach; ``pass@1/near`` (the key in the last 15%, in the
question's block) is recorded too. Keys are one digit: chance is 0.1.

Gate, declared before any run: the base must answer the short (128-token) held-out
passkey questions, whose key is in its context, at pass@1 >= 0.5. What it showed, and
its wall times: configs/claims/README.md. Full: seeds 0-4; ``--config.fast=True``: seed
0, fewer steps (a check of the pipeline).
"""

from __future__ import annotations

from configs.claims import common
from data import config as data_config

SENTINELS = 64
MODEL = {**common.MODEL, "vocab_size": 1024 + SENTINELS}
SHORT, LONG, BLOCK = 128, 512, 128
SPANS = dict(enabled=True, noise_density=0.15, mean_span_lengths=(3, 8, 64),
             num_sentinels=SENTINELS, sentinels="after_vocab", sources=("spans",))
# The gate, set before any run: well above chance (0.1).
GATE = 0.5


def _passkey_run(files: dict, *, seq_len: int, batch: int, learning_rate: float,
                 constant: bool, model: dict):
  """A pretraining run on {source name: (path, weight)}."""
  run = common.pretrain({"english.txt": 1.0}, seq_len=seq_len, batch=batch,
                        learning_rate=learning_rate, constant=constant, model=model)
  run.data.sources = {name: data_config.source_config("text", path)
                      for name, (path, _) in files.items()}
  run.data.stages = (data_config.stage_config(
      "main", {name: weight for name, (_, weight) in files.items()}),)
  return run


def adaptation(spans: tuple[str, ...]):
  """An arm: the base adapted to LONG tokens with attention spans ``spans`` (one per
  attention layer, bottom to top)."""
  run = _passkey_run({"task": ("dataset:passkey/long_train.txt", 0.5),
                      "spans": ("dataset:passkey/long_train.txt", 0.5)},
                     seq_len=LONG + 8, batch=8, learning_rate=1e-3, constant=True,
                     model={**MODEL, "layer_attention": spans, "local_block": BLOCK,
                            "pool_kernel": 18, "pool_stride": 12})
  run.data.span_corruption.update(SPANS)
  return common.stage(run, steps=250, fast_steps=20, after="base")


def get_config():
  base = _passkey_run({"english": (common.corpus("english.txt"), 0.4),
                       "passkey": ("dataset:passkey/short_train.txt", 0.6)},
                      seq_len=SHORT + 8, batch=16, learning_rate=3e-3, constant=False,
                      model=MODEL)
  stages = {"base": common.stage(base, steps=1500, fast_steps=100, shared=True),
            "pooled": adaptation(("local", "pooled", "pooled")),
            "local": adaptation(("local", "local", "local"))}
  passkey = dict(template="text", max_new_tokens=4, batch_size=50)
  config = common.claim(
      "pooled_blockwise", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1/far",
      comparisons=[("pooled", "local")], stages=stages,
      arms={"pooled": "pooled", "local": "local"},
      eval_section=common.eval_section("reasoning_valid.jsonl", **passkey),
      gate=common.gate(stages=("base",), metric="pass@1", threshold=GATE,
                       skill="the base answers short passkey questions whose key is in "
                             "its context (128 tokens, held out)",
                       eval_section=common.eval_section("reasoning_valid.jsonl", **passkey)),
      chance=0.1)
  config.eval.records = "dataset:passkey/valid.jsonl"
  config.claim.gate.eval.records = "dataset:passkey/short_valid.jsonl"
  config.datasets = dict(passkey=dict(
      build="data.passkey:build",
      args=dict(filler_file="english.txt", tokenizer_path="tokenizer.model",
                short_length=SHORT, long_length=LONG, train_count=2000, eval_count=100,
                depths={"far": (0.0, 0.6), "near": (0.85, 1.0)}, train_depth=(0.0, 1.0),
                key_range=(0, 10), preamble="", seed=0),
      fast_args=dict(train_count=200, eval_count=20)))
  return config
