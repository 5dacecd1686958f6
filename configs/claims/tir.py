r"""Tool-integrated reasoning beats chain-of-thought on arithmetic a model cannot do in
its head (AIMO-2 winning recipe, arXiv 2504.16891), in miniature.

  python -m train.main --config=configs/claims/tir.py --workdir=runs/tir

A base pretrained on sums of five digits worked out line by line
(``data/corpus/chain_sums.txt``, the long_cot claim's base) gets SFT on the products of
2000 pairs of three-digit numbers (``products_*_sft.jsonl``), either with one code
execution ("tir": the question states the budget, the model writes
``print(a * b)`` in a ```python block, the sandbox's output comes back in an
```output block and the model answers) or by long multiplication in the text ("cot":
one partial product per digit, their sum, the answer): the same problems, steps and
tokens. Both are evaluated with the chat template on 256 held-out products (greedy
pass@1); the tir arm with the tool (``eval.tool_calls=1``, its prompts state the budget
as in training), the cot arm without. Claim: TIR answers more of them. Full: 5 seeds of
SFT from one base (``shared``, 600 steps); ``--config.fast=True``: 1 seed, 200
pretraining and 150 SFT steps. Gate: the base's greedy pass@1 on the dev sums
(``chain_sums_dev.jsonl``, text prompts as in pretraining) must reach 0.15, as in the
long_cot claim (its threshold chosen there from the gate's figures alone).
What it showed, and its wall times: configs/claims/README.md.
"""

from configs.claims import common

# The base's greedy pass@1 on the dev sums it must reach (the long_cot claim's gate).
GATE_THRESHOLD = 0.15


def get_config():
  base = common.pretrain({"chain_sums.txt": 1.0}, seq_len=128, batch=16,
                         learning_rate=3e-3)
  sft = lambda records: common.sft(records, seq_len=128, batch=16, learning_rate=1e-3)
  return common.claim(
      "tir", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("tir", "cot")],
      stages={
          "base": common.stage(base, steps=600, fast_steps=200, shared=True),
          "sft_tir": common.stage(sft("products_tir_sft.jsonl"), steps=300, fast_steps=150,
                                  after="base"),
          "sft_cot": common.stage(sft("products_cot_sft.jsonl"), steps=300, fast_steps=150,
                                  after="base"),
      },
      arms={"tir": "sft_tir", "cot": "sft_cot"},
      eval_section=common.eval_section("products_valid.jsonl", template="chat",
                                       max_new_tokens=112, batch_size=64),
      arm_eval={"tir": {"tool_calls": 1}},
      gate=common.gate(
          stages=("base",), metric="pass@1", threshold=GATE_THRESHOLD,
          skill="the base works out sums of five digits line by line (greedy, text "
                "prompts, dev sums)",
          eval_section=common.eval_section("chain_sums_dev.jsonl", template="text",
                                           max_new_tokens=64, batch_size=64)),
      chance=None)
