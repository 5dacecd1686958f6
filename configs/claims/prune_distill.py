r"""Prune, then distil (Minitron-SSM, arXiv 2504.11409; Minitron, arXiv 2407.14679), in
miniature.

  python -m train.main --config=configs/claims/prune_distill.py --workdir=runs/prune_distill

A Nemotron-H-style hybrid teacher (``common.HYBRID``: Mamba-2 with two B/C groups,
squared-ReLU MLPs, one attention layer; 0.79M parameters) is pretrained on English and
worked sums (shared by every seed, 600 steps; fast 200). Per seed, two students of one
shape (d_model 128 → 96, MLP 384 → 192, Mamba heads 8 → 6, three per group: 0.45M
parameters) are distilled from it with the logit forward KL on the same 100 batches
(fast 30) of the same mixture:

  pruned    the teacher pruned by activation importance on 8 calibration batches
            (``train/prune.py``, group-aware), then distilled
  scratch   the same shape from random weights, distilled alike

Claim: pruned beats scratch on held-out English loss (``loss/english``, lower is better).
The teacher is an arm for reference (recovery: how much of the gap between scratch and
the teacher the pruned student closes) and for speed: every arm's evaluation times greedy
decoding (``decode_tokens_per_s``), the teacher's and the students' in the same claim run.
Gate: the teacher's held-out loss at most ``common.COMPRESSION_GATE``.
What it showed: configs/claims/README.md.
"""

from configs.claims import common

TARGET = dict(d_model=96, mlp_dim=192, ssm_heads=6)


def get_config():
  return common.compression_claim(
      "prune_distill", comparison=("pruned", "scratch"),
      students={"pruned": common.compression_arm(prune=TARGET),
                "scratch": common.compression_arm(student=common.student_of(TARGET))},
      arms=("pruned", "scratch", "teacher"))
