r"""Multi-domain RL data generalises beyond math (Nemotron-CrossThink, arXiv 2504.13941),
in miniature.

  python -m train.main --config=configs/claims/crossthink.py --workdir=runs/crossthink

A 0.9M-parameter model knows no world facts, so the general-purpose domain is a few fact
tables (``data/general_questions.py``: categories, sizes, antonyms, days and months).
One base shared by every seed (``shared=True``): pretraining (500 steps of 16 × 128
tokens, a quarter of it general English) on the facts stated as text and training
questions answered in ``\boxed{}`` (``crossthink_facts.txt``: "A robin is a bird.", "A
horse is bigger than a dog.", "Question: Which is a fish: pear or trout? \boxed{ trout}",
"Question: What is 13 + 4? \boxed{ 17}"), then SFT (100 steps, LR 3e-4) on
CrossThink-templated questions (``crossthink_sft.jsonl``: the instruction and question
as the user turn, open-ended or multiple-choice, the bare ``\boxed{}`` answer as the
reply). From it, per seed, GRPO with the CrossThink reward (right answer and one
``\boxed{}``, ``rl/rewards.py``), 40 steps of 8 prompts × 8 samples at LR 1e-4, the same
steps, batch and tokens for every arm, only the records differing (256 each):

  math_only  sums ("What is 13 + 4?")
  blend      half of those sums and 128 general questions, half open-ended half
             multiple-choice
  open       the same sums and general questions, all open-ended
  mcq        the same sums and general questions, all multiple-choice

Every arm, and the SFT base (``sft``, not compared), is evaluated on the same 88
held-out general questions (``crossthink_valid.jsonl``: "Which is a tree: cherry or
pine?", "Which is bigger: rabbit or sheep?" about pairs never asked about in training;
the facts they rest on are stated in the pretraining text), open-ended, CrossThink
template, greedy pass@1; guessing one of the two named things scores 0.5 (``chance``).
``correct_length`` is the mean length of the correct answers. Claims: blend beats
math_only (general-purpose data generalises to non-math questions) and open beats mcq
(open-ended templates beat multiple-choice ones).

Competence gate: GRPO learns from the base's samples at temperature 1, so the base must
answer general questions when sampled: its share of right samples (4 per question,
temperature 1, 16 new tokens) on ``crossthink_dev.jsonl`` (120 held-out category
questions about pairs asked neither in training nor in ``crossthink_valid.jsonl``) must
reach 0.5. The settings were chosen on that dev split alone: SFT of 30 steps at LR 1e-4
(the earlier base) answered 0.767 of it greedily but only 0.333 of its samples were
right, and 2.4% of them ended their turn within 16 tokens; 100 steps at LR 3e-4: 0.800,
0.675 and 98%. GRPO at LR 3e-4 took the dev split from 0.800 to 0.558-0.683 in 40 steps,
at LR 1e-4 it stayed at 0.758-0.808.

A completion that runs to the 16-token budget without ending its turn scores 0
(``grpo.truncated_reward``). What it showed, and its wall times: configs/claims/README.md.
Full: seeds 0-4; ``--config.fast=True``: seed 0, fewer steps (a check of the pipeline
only: its 200-step base has not learned the facts).
"""

from configs.claims import common

ARMS = {"math_only": "crossthink_math.jsonl", "blend": "crossthink_blend.jsonl",
        "open": "crossthink_open.jsonl", "mcq": "crossthink_mcq.jsonl"}


def get_config():
  base = common.pretrain({"english.txt": 0.25, "crossthink_facts.txt": 0.75}, seq_len=128,
                         batch=16, learning_rate=3e-3)
  sft = common.sft("crossthink_sft.jsonl", seq_len=128, batch=16, learning_rate=3e-4)
  stages = {"base": common.stage(base, steps=500, fast_steps=200, shared=True),
            "sft": common.stage(sft, steps=100, fast_steps=20, after="base", shared=True)}
  for arm, records in ARMS.items():
    # No prompt filter: every arm trains on all of its 256 records, since the claim
    # compares the record mixes themselves.
    grpo = common.grpo(records, seq_len=136, batch=64, learning_rate=1e-4, group_size=8,
                       max_new_tokens=16, template="crossthink", rewards={"crossthink": 1.0},
                       drop_solved_at=0.0, truncated_reward=0.0)
    stages[arm] = common.stage(grpo, steps=40, fast_steps=5, after="sft")
  return common.claim(
      "crossthink", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("blend", "math_only"), ("open", "mcq")],
      stages=stages,
      arms={"sft": "sft", **{arm: arm for arm in ARMS}},
      eval_section=common.eval_section("crossthink_valid.jsonl", template="crossthink",
                                       max_new_tokens=16, batch_size=100),
      gate=common.gate(stages=("sft",), metric="sample_accuracy", threshold=0.5,
                       skill="the SFT base answers held-out general questions of the "
                             "training distribution when sampled (dev split, temperature 1)",
                       eval_section=common.eval_section(
                           "crossthink_dev.jsonl", template="crossthink", samples=4,
                           temperature=1.0, max_new_tokens=16, batch_size=120)),
      chance=0.5)
