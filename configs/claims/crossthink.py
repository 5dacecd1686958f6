r"""Multi-domain RL data generalises beyond math (Nemotron-CrossThink, arXiv 2504.13941),
in miniature.

  python -m train.main --config=configs/claims/crossthink.py --workdir=runs/crossthink

One base per seed: pretraining on fact tables stated as text with a few sums
(``crossthink_facts.txt``: "A robin is a bird.", "The opposite of hot is cold.",
"A horse is bigger than a dog.", "After Monday comes Tuesday.", "21 + 3 = 24") mixed with
general English, then SFT on CrossThink-templated questions (``crossthink_sft.jsonl``:
general questions about the tables, open-ended and multiple-choice, and sums, each
answered with a bare ``\boxed{}``). From it, GRPO with the CrossThink reward (right
answer and one ``\boxed{}``, ``rl/rewards.py``) on the same steps, batch and tokens,
only the records differing:

  math_only  256 sums ("What is 23 + 4?")
  blend      128 of those sums and 128 general questions, half open-ended half
             multiple-choice
  open       the same sums and general questions, all open-ended
  mcq        the same sums and general questions, all multiple-choice

Every arm, and the SFT base (``sft``, not compared), is evaluated on the same 99
held-out general questions, open-ended, CrossThink template (``crossthink_valid.jsonl``:
questions about facts and pairs never asked in training, only stated in the pretraining
text; greedy pass@1, mean length of correct answers). Claims: blend beats math_only
(general-purpose data generalises to non-math questions) and open beats mcq (open-ended
templates beat multiple-choice ones). Full: 3 seeds; ``--config.fast=True``: 1 seed,
fewer steps. Guessing among each held-out question's options would score 0.41.
"""

from configs.claims import common

ARMS = {"math_only": "crossthink_math.jsonl", "blend": "crossthink_blend.jsonl",
        "open": "crossthink_open.jsonl", "mcq": "crossthink_mcq.jsonl"}


def get_config():
  base = common.pretrain({"english.txt": 0.25, "crossthink_facts.txt": 0.75}, seq_len=128,
                         batch=16, learning_rate=3e-3)
  sft = common.sft("crossthink_sft.jsonl", seq_len=128, batch=16, learning_rate=1e-3)
  stages = {"base": common.stage(base, steps=500, fast_steps=200),
            "sft": common.stage(sft, steps=80, fast_steps=40, after="base")}
  for arm, records in ARMS.items():
    grpo = common.grpo(records, seq_len=136, batch=64, learning_rate=3e-4, group_size=8,
                       max_new_tokens=16, template="crossthink", rewards={"crossthink": 1.0},
                       drop_solved_at=0.0)
    stages[arm] = common.stage(grpo, steps=40, fast_steps=10, after="sft")
  return common.claim(
      "crossthink", seeds=(0, 1, 2), fast_seeds=(0,), metric="pass@1",
      comparisons=[("blend", "math_only"), ("open", "mcq")],
      stages=stages,
      arms={"sft": "sft", **{arm: arm for arm in ARMS}},
      eval_section=common.eval_section("crossthink_valid.jsonl", template="crossthink",
                                       max_new_tokens=16, batch_size=100))
