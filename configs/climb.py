r"""CLIMB's mixture search (arXiv 2504.13161, ``train/climb.py``) in miniature.

The shipped English stories, code traces, facts and worked sums pooled, embedded by
hashed word n-grams, 8 k-means clusters merged into 4 super-clusters; the target domain
is the held-out English (``english_valid.txt``). Rounds of 8 → 4 → 2 proxies (the
paper: 64 → 32 → 16), each the claims' 3-layer transformer pretrained 60 steps of
16 × 128 tokens. On 2 CPU cores a proxy takes about a minute.

The argument picks the config: ``search`` the search's, a mixture file the pretraining
run on that mixture, none the proxies' run config (on the pooled documents, uniformly):

  python -m train.climb --config=configs/climb.py:search --workdir=runs/climb
  python -m train.main --config=configs/climb.py:runs/climb/mixture.json \
      --workdir=runs/climb_mixture
"""

from __future__ import annotations

import ml_collections

from configs.claims import common
from data import config as data_config

DOCUMENTS = ("english.txt", "code_updates.txt", "crossthink_facts.txt", "chain_sums.txt")


def proxy() -> ml_collections.ConfigDict:
  """A proxy's run config (each mixture replaces its data): the pooled documents
  uniformly."""
  run = common.pretrain({name: 1.0 for name in DOCUMENTS}, seq_len=128, batch=16,
                        learning_rate=3e-3)
  run.train.steps = 60
  return run


def get_config(argument: str = "") -> ml_collections.ConfigDict:
  """'search': the search's config; a mixture file: the run on it; '': the proxy run."""
  if not argument:
    return proxy()
  if argument != "search":
    run = proxy()   # the mixture file's sources and weights, read when the run starts
    run.data.sources = {}
    run.data.stages = (data_config.stage_config("climb", {}, mixture=argument),)
    return run
  return ml_collections.ConfigDict(dict(
      documents={name.split(".")[0]: data_config.source_config("text",
                                                               data_config.corpus_path(name))
                 for name in DOCUMENTS},
      embedder="",        # a checkpoint to embed with; '' for hashed n-grams
      embedding=dict(dim=256, ngram=(1, 2), max_tokens=128),
      clusters=8,
      super_clusters=4,
      merge_distance=0.0,  # > 0: merge centroids closer than this instead of a count
      target=data_config.corpus_path("english_valid.txt"),
      max_text_rows=64,
      cache_dir="",        # the proxies' stage cache (train/stages.py); '' for the default
      proxy=proxy(),
      search=dict(seed=0, rounds=(8, 4, 2), candidates=10_000, strength=(0.1, 5.0),
                  cap=15.0, n_estimators=500, parallel_proxies=1,
                  choose="predicted"),   # the paper's; 'measured': the best proxy
  ))
