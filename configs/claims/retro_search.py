r"""Retro-Search (Lu et al., arXiv 2504.04383), self-improvement, in miniature.

  python -m train.main --config=configs/claims/retro_search.py --workdir=runs/retro

The base: the long_cot claim's base (the same stage, one cache entry: sums of five
digits worked out one addition per line, ``chain_sums.txt``, 600 steps), then 300 steps
of 16 × 128 tokens on the same sums with each line a step ended by a blank line and
checks after the answer that change nothing (``data/corpus/retro_sums.jsonl``,
``make_corpus.detoured``): in 60% of traces "Wait, let me check." and the last step
again, in 25% "Alternatively, let me start again." and every step again. So its greedy
traces check once after the answer (probability 0.6 > 0.5). (Detours between the lines,
a copy of the line or a fixed phrase, left its samples right in 0.10-0.17 of the seed
problems, too few: the tiny model loses the line it adds to.)

Each arm's SFT stage starts from the base and, before its first step, synthesises its
records (``sft.synthesis``, ``train/sft.py``): one trace per seed problem
(``retro_seeds.jsonl``: 512 sums in none of the pretraining, held-out or dev files)
sampled at temperature 1 with the text prompts the base was trained on, the right ones
kept, ``MAX_SOLUTIONS`` of them drawn with the seed (both arms of a seed: the same key,
the same traces), then

  original   the traces as they are
  retro      the same traces revised by Retro-Search with the base as reviser
             (self-improvement, ``train/retro_search.py``): γ = ``GAMMA``, switch words
             "Wait", "Alternatively", "Hmm", their first tokens banned for the first
             ``BANNED_NEW_TOKENS`` new tokens (a step starts with its switch word, and the
             shortest step here, e.g. "16 + 2" and its blank line, is 7 tokens: the ban
             never reaches the second step), rollouts at temperature 1

so both train on as many records, for the same steps and tokens (40 steps of 16 × 192
tokens, about 14 epochs of the original traces, constant learning rate 1e-3).
Evaluation: the 256 held-out sums (``chain_sums_valid.jsonl``), chat template, greedy:
'length' (mean completion tokens, lower is better) and 'pass@1'. Claim (b): the retro
arm's outputs are shorter ('retro_length' vs 'original_length', margin 0) at equal or
higher accuracy ('retro' vs 'original', non-inferiority margin ``MARGIN``). Full: 5
seeds (each synthesises and searches anew); ``--config.fast=True``: 1 seed, 20 SFT
steps, the same base.

Gate: the base's share of right samples at temperature 1 on 256 dev sums
(``chain_sums_dev.jsonl``, text prompts, 4 samples each) must reach ``GATE_THRESHOLD``:
enough right traces to draw ``MAX_SOLUTIONS`` (0.19 of them) from the seed problems
in every seed, chosen before any arm was evaluated (the fast run's seed kept 152 of
512, 0.30, so ``MAX_SOLUTIONS`` went from 128 to 96 and the threshold from 0.3 to 0.25
before the full run: a seed keeping fewer stops the claim with an error). ``MARGIN``
0.05, chosen before any run: the paper's accuracy gains are 2.4 to 7.7 points, and one
seed's pass@1 on 256 records has a binomial standard error of about 0.03, so 5 seeds
resolve a mean difference of about that size.
What it showed, and its wall times: configs/claims/README.md.
"""

import ml_collections

from configs.claims import common
from configs.claims import long_cot

# The base's share of right samples (temperature 1) on the dev sums it must reach.
GATE_THRESHOLD = 0.25
# Non-inferiority margin of the retro arm's pass@1 (see the docstring).
MARGIN = 0.05
MAX_SOLUTIONS = 96
SEED_PROBLEMS = "retro_seeds.jsonl"
EVAL_RECORDS, DEV_RECORDS = "chain_sums_valid.jsonl", "chain_sums_dev.jsonl"
TEMPERATURE = 1.0
MAX_NEW_TOKENS = 128
GAMMA = 0.9
BANNED_NEW_TOKENS = 4


def sft(kind: str) -> ml_collections.ConfigDict:
  """SFT on ``MAX_SOLUTIONS`` right traces the stage's starting weights synthesise,
  revised by them (``kind`` 'retro_search') or not ('solutions')."""
  retro = dict(gamma=GAMMA, banned_new_tokens=BANNED_NEW_TOKENS, reviser="",
               reviser_model=None) if kind == "retro_search" else {}
  return common.sft(
      SEED_PROBLEMS, seq_len=192, batch=16, learning_rate=1e-3, samples=1,
      temperature=TEMPERATURE, max_new_tokens=MAX_NEW_TOKENS, template="text",
      filter="answer", max_solutions=MAX_SOLUTIONS, ngram=7, kind=kind,
      eval_records=(common.corpus(EVAL_RECORDS), common.corpus(DEV_RECORDS)), **retro)


def get_config():
  arithmetic = long_cot.get_config().stages.base   # one cache entry for both claims
  arithmetic.fast_steps = arithmetic.steps
  detours = common.pretrain({"retro_sums.jsonl": 1.0}, seq_len=128, batch=16,
                            learning_rate=1e-3)
  return common.claim(
      "retro_search", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("retro_length", "original_length"), ("retro", "original", MARGIN)],
      stages={
          "arithmetic": arithmetic,
          "base": common.stage(detours, steps=300, fast_steps=300, after="arithmetic",
                               shared=True),
          "sft_original": common.stage(sft("solutions"), steps=40, fast_steps=20,
                                       after="base"),
          "sft_retro": common.stage(sft("retro_search"), steps=40, fast_steps=20,
                                    after="base"),
      },
      arms={"retro": "sft_retro", "original": "sft_original",
            "retro_length": "sft_retro", "original_length": "sft_original"},
      arm_metric={"retro_length": "length", "original_length": "length"},
      eval_section=common.eval_section(EVAL_RECORDS, template="chat",
                                       max_new_tokens=MAX_NEW_TOKENS, batch_size=64),
      gate=common.gate(
          stages=("base",), metric="sample_accuracy", threshold=GATE_THRESHOLD,
          skill="the base's samples at the synthesis temperature solve sums of five "
                "digits (text prompts, dev sums, 4 samples each)",
          eval_section=common.eval_section(DEV_RECORDS, template="text",
                                           max_new_tokens=MAX_NEW_TOKENS, batch_size=64,
                                           samples=4, temperature=TEMPERATURE)),
      chance=None)
