r"""Answer-filtered synthetic solutions (OpenMathInstruct-1/2, arXiv 2402.10176,
2410.01560), in miniature.

  python -m train.main --config=configs/claims/synthesis_filter.py --workdir=runs/sf

The teacher is the long_cot claim's base (the same stage: pretrained on sums of five
digits worked out one addition per line, ``data/corpus/chain_sums.txt``, 600 steps;
shared by every seed and read back from the stage cache where long_cot trained it). Each
arm's SFT stage starts from it and, before its first step, synthesises its records
(``sft.synthesis``, ``train/sft.py``): one solution per seed problem
(``chain_sums_seeds.jsonl``: 4096 sums in none of the training, held-out or dev files)
sampled from the teacher at temperature 1 with the text prompts it was trained on, then

  filtered     the solutions whose final answer is the reference answer
  unfiltered   every solution (the teacher's slips kept)

and ``MAX_SOLUTIONS`` of those drawn with the seed, so that both arms train on as many
solutions, for the same steps and tokens. Both arms of a seed sample with the same key
from the same teacher: the same solutions before the filter. Every solution has its own
problem (one sample each), so the unfiltered arm's share of wrong solutions is the
teacher's (about 40%). Decontamination drops a seed problem equal to an evaluation or
dev question (a word 7-gram is a whole question here; none is, by construction).

Evaluation: the 256 held-out sums (``chain_sums_valid.jsonl``), chat template, greedy
pass@1, as long_cot's. Claim: the filtered arm is more accurate. SFT: 120 steps of
16 × 128 tokens (two conversations a row: ~3.75 epochs), learning rate 1e-3 with 20
warmup steps and cosine decay. Full: 5 seeds (each synthesises anew);
``--config.fast=True``: 1 seed, 40 SFT steps, the same teacher (the 200 steps of
long_cot's fast base leave it right in 0.16 of its samples, too few to filter
``MAX_SOLUTIONS`` from).

Gate: the teacher's share of right samples at the synthesis temperature on 256 dev sums
(``chain_sums_dev.jsonl``, text prompts, 4 samples each) must reach ``GATE_THRESHOLD``,
chosen before the full run from the gate's own figures alone (the pilot's teacher 0.654,
long_cot's 200-step base 0.155), not from the arms': a teacher right in 0.4 of its
samples leaves a right solution for well over the quarter of the seed problems the
filtered arm needs (``MAX_SOLUTIONS``; a run where the filter keeps fewer stops with an
error).
What it showed, and its wall times: configs/claims/README.md.
"""

import ml_collections

from configs.claims import common
from configs.claims import long_cot

# The teacher's share of right samples (temperature 1) on the dev sums it must reach.
GATE_THRESHOLD = 0.4
# Solutions each arm trains on, a quarter of the 4096 seed problems (the filtered arm
# keeps ~0.6 of them).
MAX_SOLUTIONS = 1024
SEED_PROBLEMS = "chain_sums_seeds.jsonl"
EVAL_RECORDS, DEV_RECORDS = "chain_sums_valid.jsonl", "chain_sums_dev.jsonl"
TEMPERATURE = 1.0


def sft(filter_: str) -> ml_collections.ConfigDict:
  """SFT on ``MAX_SOLUTIONS`` solutions the stage's starting weights synthesise,
  ``filter_`` 'answer' or 'none'."""
  return common.sft(
      SEED_PROBLEMS, seq_len=128, batch=16, learning_rate=1e-3, constant=False, samples=1,
      temperature=TEMPERATURE, max_new_tokens=64, template="text", filter=filter_,
      max_solutions=MAX_SOLUTIONS, ngram=7,
      eval_records=(common.corpus(EVAL_RECORDS), common.corpus(DEV_RECORDS)))


def get_config():
  teacher = long_cot.get_config().stages.base   # one cache entry for both claims
  teacher.fast_steps = teacher.steps
  return common.claim(
      "synthesis_filter", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("filtered", "unfiltered")],
      stages={
          "base": teacher,
          "sft_filtered": common.stage(sft("answer"), steps=120, fast_steps=40,
                                       after="base"),
          "sft_unfiltered": common.stage(sft("none"), steps=120, fast_steps=40,
                                         after="base"),
      },
      arms={"filtered": "sft_filtered", "unfiltered": "sft_unfiltered"},
      eval_section=common.eval_section(EVAL_RECORDS, template="chat", max_new_tokens=64,
                                       batch_size=64),
      gate=common.gate(
          stages=("base",), metric="sample_accuracy", threshold=GATE_THRESHOLD,
          skill="the teacher's samples at the synthesis temperature solve sums of five "
                "digits (text prompts, dev sums, 4 samples each)",
          eval_section=common.eval_section(DEV_RECORDS, template="text", max_new_tokens=64,
                                           batch_size=64, samples=4,
                                           temperature=TEMPERATURE)),
      chance=None)
