r"""GenSelect beats majority voting at equal k where the right answer is among the
candidates but not the most frequent (AIMO-2 winning recipe, arXiv 2504.16891), in
miniature.

  python -m train.main --config=configs/claims/genselect.py --workdir=runs/genselect

The regime: a base pretrained on sums of five digits worked out one addition per line
whose "Answer:" line slips to the last line + 1 in 60% of the documents
(``data/corpus/genselect_sums.txt``), 600 steps, shared by every seed. It works the sum
out and then copies the answer wrong most of the time, so at temperature 1 its most
frequent answer is usually the slip, while a right one is usually among k = 8 samples;
a sample's summary (``data.genselect.summary``: its last lines and its answer) shows the
slip as an answer line that is not the last line computed.

The selector (per seed): SFT from the base whose records the base's own samples make
before the first step (``sft.synthesis.kind='selector'``, ``train/sft.py``): 8 samples
at temperature 1 (text prompts, as the base was trained) of each of the 1024 seed
problems (``genselect_seeds.jsonl``: sums in no other file), and every problem with right
and wrong samples gives ``ROUNDS`` selector prompts over the summaries of ``CANDIDATES``
of them, a right and a wrong one among them, answered ``Judgment: i`` naming a right one.
Beside them it trains on the task data (``genselect_sft.jsonl``: 500 of the pretraining
sums as chat records, slips included), so that the one final model answers sums under the
chat template as the base answered them and selects among its own answers.

Arms: that final model's 8 samples of each of the 256 held-out sums
(``chain_sums_valid.jsonl``, chat template, temperature 1) judged two ways in one
evaluation: ``genselect@8`` (``EVAL_ROUNDS`` selection rounds, each over a random ordered
subset of ``CANDIDATES`` summaries, the selected answers majority-voted; ``eval.genselect``,
``train/evaluate.py``) against ``maj@8`` (the most frequent answer). Same stage, same
samples, same tokens: the arms differ only in the figure compared (``arm_metric``,
``train/claims.py``). Full: 5 seeds (each synthesises and trains its own selector);
``--config.fast=True``: 1 seed, 200 pretraining and 60 SFT steps.

Gate: the final model's pass@8 on the 256 dev sums (``chain_sums_dev.jsonl``, chat
template, temperature 1) must reach ``GATE_THRESHOLD``: a right answer among the
candidates, which GenSelect needs; chosen from the gate's own figures alone (see the
README), not from the arms'.
What it showed, and its wall times: configs/claims/README.md.
"""

import ml_collections

from configs.claims import common

# The final model's pass@8 on the dev sums it must reach.
GATE_THRESHOLD = 0.5
SAMPLES = 8            # k: candidates per problem, in synthesis and evaluation
CANDIDATES = 4         # n: summaries shown per selector prompt
ROUNDS = 2             # selector records per seed problem with right and wrong samples
EVAL_ROUNDS = 8        # selection rounds per held-out problem
TEMPERATURE = 1.0
MAX_NEW_TOKENS = 48    # a solution (~34 tokens) or a selector's reply
SEQ_LEN = 384          # the selector's SFT rows: a selector record (~320 tokens) whole
EVAL_RECORDS, DEV_RECORDS = "chain_sums_valid.jsonl", "chain_sums_dev.jsonl"


def selector() -> ml_collections.ConfigDict:
  """SFT on selector records from the starting weights' samples, with the task data."""
  run = common.sft(
      "genselect_seeds.jsonl", seq_len=SEQ_LEN, batch=16, learning_rate=1e-3,
      constant=False, kind="selector", samples=SAMPLES, candidates=CANDIDATES, rounds=ROUNDS,
      max_tokens=SEQ_LEN,
      temperature=TEMPERATURE, max_new_tokens=MAX_NEW_TOKENS, template="text", ngram=7,
      eval_records=(common.corpus(EVAL_RECORDS), common.corpus(DEV_RECORDS)))
  run.sft.records = common.corpus("genselect_sft.jsonl")
  return run


def eval_section(records: str, **genselect) -> ml_collections.ConfigDict:
  return common.eval_section(records, template="chat", max_new_tokens=MAX_NEW_TOKENS,
                             batch_size=64, samples=SAMPLES, temperature=TEMPERATURE,
                             **genselect)


def get_config():
  base = common.pretrain({"genselect_sums.txt": 1.0}, seq_len=128, batch=16,
                         learning_rate=3e-3)
  return common.claim(
      "genselect", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric=f"maj@{SAMPLES}",
      comparisons=[("genselect", "majority")],
      stages={
          "base": common.stage(base, steps=600, fast_steps=200, shared=True),
          "selector": common.stage(selector(), steps=300, fast_steps=60, after="base"),
      },
      arms={"genselect": "selector", "majority": "selector"},
      arm_metric={"genselect": f"genselect@{SAMPLES}"},
      eval_section=eval_section(EVAL_RECORDS, genselect=CANDIDATES,
                                genselect_rounds=EVAL_ROUNDS),
      gate=common.gate(
          stages=("selector",), metric=f"pass@{SAMPLES}", threshold=GATE_THRESHOLD,
          skill="a right answer is among the final model's 8 samples (temperature 1, chat "
                "prompts, dev sums)",
          eval_section=eval_section(DEV_RECORDS)),
      chance=None)
