r"""Front-loading reasoning data into pretraining (arXiv 2510.03264), in miniature.

  python -m train.main --config=configs/claims/front_loading.py --workdir=runs/front_loading

Three arms, each pretraining (16 × 128 tokens a step) then SFT on the shipped reasoning
problems (``reasoning.jsonl``, chat template, 8 × 256 tokens a step: the same tokens a
step), every arm the same total steps and tokens:

  front_loaded  pretraining on general text (``english.txt``) mixed 3:1 with diverse
                reasoning (``reasoning.jsonl``, eight kinds), then SFT
  late          pretraining on general text only, for the steps of the mixture's general
                text; the steps of its reasoning tokens move into SFT (more SFT data)
  narrow        pretraining mixed 3:1 like front_loaded, with reasoning of one kind
                only (``reasoning_narrow.txt``, equations), then the same SFT

All three are evaluated on the 300 held-out problems of all eight kinds
(``reasoning_valid.jsonl``; greedy pass@1, chat template, and pass@1 per kind). Claims:
front_loaded beats late (reasoning data belongs in pretraining) and beats narrow
(diversity in pretraining matters). Full: 3 seeds, 300 pretraining and 80 SFT steps;
``--config.fast=True``: 1 seed, 160 and 40. What it showed, and its wall times:
configs/claims/README.md.
"""

from configs.claims import common

# Pretraining steps, the share of them that is reasoning, and SFT steps (full, fast).
PRETRAIN, SFT = (300, 160), (80, 40)
REASONING_SHARE = 0.25


def get_config():
  pretrain = lambda reasoning: common.pretrain(
      {"english.txt": 1 - REASONING_SHARE, reasoning: REASONING_SHARE},
      seq_len=128, batch=16, learning_rate=3e-3)
  general = common.pretrain({"english.txt": 1.0}, seq_len=128, batch=16, learning_rate=3e-3)
  sft = common.sft("reasoning.jsonl", seq_len=256, batch=8, learning_rate=1e-3)
  moved = [round(REASONING_SHARE * steps) for steps in PRETRAIN]
  return common.claim(
      "front_loading", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("front_loaded", "late"), ("front_loaded", "narrow")],
      stages={
          "mixed": common.stage(pretrain("reasoning.jsonl"), steps=PRETRAIN[0],
                                fast_steps=PRETRAIN[1]),
          "mixed_narrow": common.stage(pretrain("reasoning_narrow.txt"), steps=PRETRAIN[0],
                                       fast_steps=PRETRAIN[1]),
          "general": common.stage(general, steps=PRETRAIN[0] - moved[0],
                                  fast_steps=PRETRAIN[1] - moved[1]),
          "mixed_sft": common.stage(sft, steps=SFT[0], fast_steps=SFT[1], after="mixed"),
          "mixed_narrow_sft": common.stage(sft, steps=SFT[0], fast_steps=SFT[1],
                                           after="mixed_narrow"),
          "general_sft": common.stage(sft, steps=SFT[0] + moved[0],
                                      fast_steps=SFT[1] + moved[1], after="general"),
      },
      arms={"front_loaded": "mixed_sft", "late": "general_sft", "narrow": "mixed_narrow_sft"},
      eval_section=common.eval_section("reasoning_valid.jsonl", template="chat",
                                       max_new_tokens=160, batch_size=100),
      # Provisional gate: SFT after general pretraining solves training problems.
      gate=common.gate(stages=("general_sft",), metric="pass@1", threshold=0.1,
                       skill="SFT alone solves problems of the training distribution",
                       eval_section=common.eval_section(
                           "reasoning.jsonl", template="chat", max_new_tokens=160,
                           batch_size=100, max_records=200)),
      chance=None)
