r"""Prune, then distil (train/prune.py; Minitron-SSM, arXiv 2504.11409): the tiny hybrid
of the README's main job pruned to a smaller shape by activation importance on
calibration batches of its own corpus, then distilled from the unpruned model.

  python -m train.main --config=configs/tiny_hybrid.py --workdir=runs/tiny
  python -m train.main --config=configs/prune_distill.py --workdir=runs/tiny_pruned \
      --config.teacher.checkpoint=runs/tiny

The target: d_model 128 → 96, half the MLP (576 → 288), 3 of the 4 Mamba heads; the
attention heads, head sizes, state size and all 6 layers stay. The student's model is
derived from the teacher's and the target (``model`` stays None). The teacher defaults
to ``runs/tiny``: the working directory's, else the repository's.
"""

from configs import distill
from configs import tiny_hybrid
from train import config as run_config
from train import prune


def get_config():
  config = distill.get_config()
  config.model = None   # the teacher pruned to the target (train/prune.py)
  config.teacher.model = tiny_hybrid.get_config().model
  config.teacher.checkpoint = run_config.find_path("runs/tiny")
  config.prune = prune.section(d_model=96, mlp_dim=288, ssm_heads=3,
                               calibration_batches=8)
  config.train.steps = 200
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 20
  return config
