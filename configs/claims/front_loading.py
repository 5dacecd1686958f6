r"""Front-loading reasoning data into pretraining (arXiv 2510.03264), in miniature.

  python -m train.main --config=configs/claims/front_loading.py --workdir=runs/front_loading

The reasoning data: short step-by-step problems of four kinds
(``front_reasoning.jsonl``, ``data.reasoning_tasks.FRONT_LOADING_KINDS``): sums of three
digits, a two-digit number plus a digit, counting a digit in a list, following
variables back to a digit. A general base (``english.txt``, 600 steps) is pretrained once
and shared by every seed and arm; each arm then finishes pretraining from it and gets
SFT (chat template, loss on the answers, the same problems). Every step reads 1024
tokens (16 × 64 in pretraining, 8 × 128 in SFT), so equal steps are equal tokens:

  front_loaded  pretraining on general text mixed 1:3 with the diverse reasoning data
                (600 steps), then SFT (150 steps)
  late          pretraining on general text only for the steps of the mixture's general
                text (150); the 450 steps of its reasoning tokens move into SFT (600)
  narrow        pretraining mixed 1:3 like front_loaded, with one kind of reasoning only
                (``front_narrow.txt``, sums of three digits), then the same SFT

All three are evaluated on 400 held-out problems, 100 of each kind
(``front_valid.jsonl``; greedy pass@1 and pass@1 per kind, chat template). Claims:
front_loaded beats late (reasoning data belongs in pretraining) and narrow (diversity in
pretraining matters). ``--config.fast=True``: 1 seed, a few steps per stage (a pipeline
check: its models have not learned the kinds).

The gate: ``late``'s greedy pass@1 on 200 dev problems (``front_dev.jsonl``: 50 of each
kind, drawn like the training ones, no question shared with the training or held-out
files) must reach 0.4. The arms are trained from the same base, so what they start from
is the general model; the comparison means something only if the paper's usual recipe,
SFT on the reasoning data after general pretraining, learns the kinds at all. 0.4 was
fixed before any arm ran on the held-out records, from dev figures of ``late`` alone
(0.70 in a tuning run with 800 SFT steps on a prototype dev split of the same four
kinds): well above the most frequent dev answer (0.105) and the untrained model (0.0),
and below what ``late`` reached. The base is shared, so seeds vary the arms' own stages
(data order and the mixtures' draws), not the general model. Chance is None: the
answers are open numbers (guessing a digit of a variable question is right about a
third of the time on that kind; the most frequent answer is the guessing baseline).
What it showed, and its wall times: configs/claims/README.md.
"""

from configs.claims import common

# Steps (full, fast) of the shared general base, of each arm's pretraining on top of it,
# and of SFT; the reasoning share of the mixed pretraining.
BASE, PRETRAIN, SFT = (600, 100), (600, 100), (150, 25)
REASONING_SHARE = 0.75
LEARNING_RATE = 1e-3
GATE_THRESHOLD = 0.4


def pretrain(weights):
  return common.pretrain(weights, seq_len=64, batch=16, learning_rate=LEARNING_RATE)


def sft():
  """SFT on the reasoning problems, with the same warmup and cosine decay as pretraining
  (a constant rate would hand the arm with the longest SFT, late, an undecayed model)."""
  config = common.sft("front_reasoning.jsonl", seq_len=128, batch=8,
                      learning_rate=LEARNING_RATE)
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 20
  return config


def get_config():
  mixed = lambda reasoning: pretrain({"english.txt": 1 - REASONING_SHARE,
                                      reasoning: REASONING_SHARE})
  moved = [round(REASONING_SHARE * steps) for steps in PRETRAIN]
  chat = lambda records: common.eval_section(records, template="chat", max_new_tokens=40,
                                             batch_size=200)
  return common.claim(
      "front_loading", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("front_loaded", "late"), ("front_loaded", "narrow")],
      stages={
          "base": common.stage(pretrain({"english.txt": 1.0}), steps=BASE[0],
                               fast_steps=BASE[1], shared=True),
          "mixed": common.stage(mixed("front_reasoning.jsonl"), steps=PRETRAIN[0],
                                fast_steps=PRETRAIN[1], after="base"),
          "mixed_narrow": common.stage(mixed("front_narrow.txt"), steps=PRETRAIN[0],
                                       fast_steps=PRETRAIN[1], after="base"),
          "general": common.stage(pretrain({"english.txt": 1.0}),
                                  steps=PRETRAIN[0] - moved[0],
                                  fast_steps=PRETRAIN[1] - moved[1], after="base"),
          "mixed_sft": common.stage(sft(), steps=SFT[0], fast_steps=SFT[1], after="mixed"),
          "mixed_narrow_sft": common.stage(sft(), steps=SFT[0], fast_steps=SFT[1],
                                           after="mixed_narrow"),
          "general_sft": common.stage(sft(), steps=SFT[0] + moved[0],
                                      fast_steps=SFT[1] + moved[1], after="general"),
      },
      arms={"front_loaded": "mixed_sft", "late": "general_sft", "narrow": "mixed_narrow_sft"},
      eval_section=chat("front_valid.jsonl"),
      gate=common.gate(
          stages=("general_sft",), metric="pass@1", threshold=GATE_THRESHOLD,
          skill="SFT after general pretraining (the late arm) solves the four kinds "
                "(greedy, chat template, dev problems)",
          eval_section=chat("front_dev.jsonl")),
      chance=None)
