r"""Width pruning beats depth pruning at equal size (Minitron, arXiv 2407.14679;
Minitron-SSM, arXiv 2504.11409), in miniature.

  python -m train.main --config=configs/claims/width_vs_depth.py --workdir=runs/width_vs_depth

The teacher of ``prune_distill`` (shared stage, pattern ``M-M*-M-``). Per seed, two
students of the same parameter count are distilled alike (100 batches, fast 30):

  depth   5 of the 7 layers kept: ``LAYERS``, the teacher without its two layers of least
          depth importance (1 − cos between a layer's input and output, on the full
          teacher's calibration batches, seed 0: 0.018 and 0.068 for the MLPs at 1 and 4,
          the others 0.095–0.876; every seed's calibration ranks them alike). Named here because which layers go decides the student's
          pattern, which a run config must fix before any data is read.
  width   all 7 layers, d_model, MLP width and Mamba heads shrunk by one fraction to the
          depth student's parameter count (``prune.max_params``)

Claim: width beats depth on held-out English loss. Gate: as ``prune_distill``.
What it showed: configs/claims/README.md.
"""

from configs.claims import common
from model import lm

LAYERS = (0, 2, 3, 5, 6)


def get_config():
  depth = dict(layers=LAYERS)
  budget = lm.count_params(common.student_of(depth))
  return common.compression_claim(
      "width_vs_depth", comparison=("width", "depth"),
      students={"depth": common.compression_arm(prune=depth),
                "width": common.compression_arm(prune=dict(max_params=budget))})
