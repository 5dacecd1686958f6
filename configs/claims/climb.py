r"""CLIMB: a searched pretraining mixture over embedding clusters (arXiv 2504.13161), in
miniature.

  python -m train.main --config=configs/claims/climb.py --workdir=runs/climb

The data (``datasets.climb``, ``train.climb.claim_dataset``, built once per content in
the stage cache): 1600 English stories, 800 code traces, 1600 worked sums and 300
CrossThink facts drawn from the shipped corpus, pooled without their file, embedded by hashed
word n-grams, 8 k-means clusters merged into 4 super-clusters, one source each. The
target domain is held-out English: ``english_valid.txt`` (no training pool holds it),
its documents split in halves, a dev half that scores the proxies and an eval half that
only the claim's evaluation reads. The search: rounds of 8 → 4 → 2 proxies (the paper:
64 → 32 → 16; fast: 4 → 2), each a 2-layer transformer (d_model 64) pretrained 40 steps
of 16 × 128 tokens on its mixture through the driver, scored by its loss on the dev
half; a LightGBM predictor from weights to that loss picks each later round's proposals
and the final mixture (``mixture.json``). ``uniform.json``: equal weights over the same
four sources; ``natural.json``: each by its token share (the pool as it comes).

Per seed two arms, the claims' 3-layer transformer pretrained from scratch for the same
200 steps (fast 60) of 16 × 128 tokens:

  climb     on the searched mixture (read from ``mixture.json`` when the run starts)
  uniform   on the uniform mixture
  natural   on the natural mixture (a reference, not compared: the unsearched pool)

Claim: climb beats uniform on the held-out target loss (``loss/target`` on the eval
half, lower is better). Gate: the uniform arm's target loss at most ``GATE`` (the model
learns the domain at all: the untrained one is ln 1024 = 6.93). What it showed:
configs/claims/README.md.
"""

from __future__ import annotations

import json
import math

import ml_collections

from configs.claims import common
from data import config as data_config

# (corpus file, documents drawn from it): pairs, as a config key may hold no dot.
# About 370k tokens, near an arm's 410k: no cluster is read many times over.
POOL = (("english.txt", 1600), ("code_updates.txt", 800), ("chain_sums.txt", 1600),
        ("crossthink_facts.txt", 300))
TARGET = "english_valid.txt"
PROXY_MODEL = dict(vocab_size=1024, d_model=64, pattern="*-*-", n_heads=2, n_kv_heads=2,
                   head_dim=32, mlp_dim=192)
# Set before any run: far below the untrained 6.93 nats and a unigram model's 5.45.
GATE = 4.0
SEARCH = dict(seed=0, rounds=(8, 4, 2), candidates=10_000, strength=(0.1, 5.0), cap=15.0,
              n_estimators=500, choose="predicted", parallel_proxies=1)


def proxy() -> ml_collections.ConfigDict:
  """A proxy's run config; each proposal replaces its data (``train.climb.proxy_run``)."""
  run = common.pretrain({name: 1.0 for name, _ in POOL}, seq_len=128, batch=16,
                        learning_rate=3e-3, model=PROXY_MODEL)
  run.train.steps = 40
  run.optimizer.warmup_steps = 5
  return run


def arm(mixture: str) -> ml_collections.ConfigDict:
  """An arm: pretraining from scratch on the mixture file ``mixture`` (read at run time)."""
  run = common.pretrain({name: 1.0 for name, _ in POOL}, seq_len=128, batch=16,
                        learning_rate=3e-3)
  run.data.sources = {}
  run.data.stages = (data_config.stage_config("main", {}, mixture=mixture),)
  return common.stage(run, steps=200, fast_steps=60)


def get_config() -> ml_collections.ConfigDict:
  eval_section = common.eval_section(
      "chain_sums_valid.jsonl", template="text", max_records=4, max_new_tokens=8,
      batch_size=4, text_files={"target": "dataset:climb/target_eval.txt"},
      max_text_rows=64)
  config = common.claim(
      "climb", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="loss/target",
      comparisons=[("climb", "uniform")],
      stages={"climb": arm("dataset:climb/mixture.json"),
              "uniform": arm("dataset:climb/uniform.json"),
              "natural": arm("dataset:climb/natural.json")},
      arms={"climb": "climb", "uniform": "uniform", "natural": "natural"},
      eval_section=eval_section,
      gate=common.gate(stages=("uniform",), metric="loss/target", threshold=GATE,
                       skill="the uniform arm models the held-out target text (loss in "
                             "nats at most the threshold)"),
      chance=math.log(1024))
  config.datasets = dict(climb=dict(
      build="train.climb:claim_dataset",
      args=dict(documents=POOL, target=TARGET, proxy=json.loads(proxy().to_json()),
                settings=SEARCH,
                clusters=8, super_clusters=4, seed=0, max_text_rows=64),
      fast_args=dict(settings={**SEARCH, "rounds": (4, 2), "candidates": 2000})))
  return config
