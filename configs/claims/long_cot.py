r"""Long chain-of-thought from 20 examples (arXiv 2507.09850), in miniature.

  python -m train.main --config=configs/claims/long_cot.py --workdir=runs/long_cot

A base model pretrained on sums of five digits worked out one addition per line
(``data/corpus/chain_sums.txt``) gets light SFT (20 steps) on 20 problems, answered
either step by step ("long_cot") or with the "Answer:" line
alone ("short"): the same questions, steps and tokens. Both are evaluated with the chat
template on 256 held-out sums (greedy pass@1). Claim: the long chain-of-thought SFT lifts
accuracy more. Full: 5 seeds of SFT from one base (``shared``, 600 steps);
``--config.fast=True``: 1 seed, 200 pretraining steps. Gate: the base's greedy pass@1 on
256 other sums drawn like the training ones (``chain_sums_dev.jsonl``, text prompts as in
pretraining) must reach 0.15, chosen from the gate's figures alone (fast base 0.277,
untrained model 0.0, most frequent dev answer 0.082), not from the arms'.
What it showed, and its wall times: configs/claims/README.md.
"""

from configs.claims import common

# The base's greedy pass@1 on the dev sums it must reach (measured: see the docstring).
GATE_THRESHOLD = 0.15


def get_config():
  base = common.pretrain({"chain_sums.txt": 1.0}, seq_len=128, batch=16,
                         learning_rate=3e-3)
  sft = lambda records: common.sft(records, seq_len=128, batch=16, learning_rate=1e-3)
  return common.claim(
      "long_cot", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("long_cot", "short")],
      stages={
          "base": common.stage(base, steps=600, fast_steps=200, shared=True),
          "sft_long": common.stage(sft("chain_sums_sft_long.jsonl"), steps=20, after="base"),
          "sft_short": common.stage(sft("chain_sums_sft_short.jsonl"), steps=20,
                                    after="base"),
      },
      arms={"long_cot": "sft_long", "short": "sft_short"},
      eval_section=common.eval_section("chain_sums_valid.jsonl", template="chat",
                                       max_new_tokens=64, batch_size=64),
      gate=common.gate(
          stages=("base",), metric="pass@1", threshold=GATE_THRESHOLD,
          skill="the base works out sums of five digits line by line (greedy, text "
                "prompts, dev sums)",
          eval_section=common.eval_section("chain_sums_dev.jsonl", template="text",
                                           max_new_tokens=64, batch_size=64)),
      chance=None)
