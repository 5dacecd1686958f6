r"""Math-preserving extraction (Nemotron-CC-Math, arXiv 2508.15096) in miniature: the
extraction keeps the equations a plain HTML-to-text conversion loses, and a model
pretrained on its output models held-out math better at equal tokens.

  python -m train.main --config=configs/claims/cc_math_extraction.py --workdir=runs/cc_math

Data (the ``datasets`` section, built once: ``data/curation/claim_corpora.py``): 400
generated math pages (``data/curation/math_pages.py``: a nav menu, cookie banner,
sidebar and footer; eight equations each, one per way the web writes them: MathJax script
tags inline and display, KaTeX HTML with its TeX annotation inline and display, MathML
inline and block, ``$…$`` and ``\(…\)`` in the text; an indented Python function) written
as a crawl of four WARC shards. The ``cc_math`` pipeline (``python -m data.curate``:
layout-aware rendering by ``lynx -dump`` with every equation put back as LaTeX, code kept
verbatim, boilerplate dropped, then dedup) makes ``extracted.jsonl``; the same pages
through a generic conversion (resiliparse's ``extract_plain_text``, default options: what
a plain HTML-to-text pass keeps) make ``plain.jsonl``. The first half of the claim is
measured there, on the pages' ground truth: the share of equations each corpus holds
exactly (the summary's ``datasets.cc_math.figures.equations_recovered``).

Arms (per seed, from scratch, the tiny model of the other claims, 300 steps of 16 × 128
tokens: equal tokens; fast 60):
  extracted  pretrained on the pipeline's documents
  plain      pretrained on the plain conversions of the same pages
Claim: extracted beats plain on held-out math (``loss/math``, nats per token, lower is
better): 64 documents of the same kinds of facts in LaTeX with other numbers
(``heldout_math.txt``, pages the crawl does not hold).
Gate (set before any run): both arms model the text both conversions keep verbatim, the
code blocks of 64 other pages (``heldout_code.txt``), at a loss of at most 3.0 nats
(untrained: ln 1024 = 6.93). Full: seeds 0-4; ``--config.fast=True``: seed 0, 60 steps
(a check of the pipeline). What it showed: configs/claims/README.md.
"""

import math

from configs.claims import common
from data import config as data_config

STEPS, FAST_STEPS = 300, 60
GATE_THRESHOLD = 3.0
DATASET = "cc_math"


def _arm(corpus_file: str):
  run = common.pretrain({}, seq_len=128, batch=16, learning_rate=3e-3)
  run.data.sources = {"pages": data_config.source_config(
      "jsonl", f"dataset:{DATASET}/{corpus_file}", field="text")}
  run.data.stages = (data_config.stage_config("main", {"pages": 1.0}),)
  return common.stage(run, steps=STEPS, fast_steps=FAST_STEPS)


def get_config():
  eval_section = common.eval_section(
      "chain_sums_valid.jsonl", template="text", max_records=16, max_new_tokens=8,
      batch_size=16, max_text_rows=64,
      text_files={"math": f"dataset:{DATASET}/heldout_math.txt",
                  "code": f"dataset:{DATASET}/heldout_code.txt"})
  config = common.claim(
      "cc_math_extraction", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="loss/math",
      comparisons=[("extracted", "plain")],
      stages={"extracted": _arm("extracted.jsonl"), "plain": _arm("plain.jsonl")},
      arms={"extracted": "extracted", "plain": "plain"}, eval_section=eval_section,
      gate=common.gate(stages=("extracted", "plain"), metric="loss/code",
                       threshold=GATE_THRESHOLD,
                       skill="both arms model held-out code blocks, which both "
                             "conversions keep verbatim (nats per token)"),
      chance=math.log(1024))
  config.datasets = {DATASET: dict(build="data.curation.claim_corpora:extraction_corpora",
                                   args=dict(pages=400, heldout=64, seed=0, renderer="lynx"))}
  return config
