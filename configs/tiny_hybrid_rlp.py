r"""The main job's RL step: RLP (arXiv 2510.01265) on the pretrained tiny_hybrid model.

  python -m train.main --config=configs/tiny_hybrid.py --workdir=runs/tiny
  python -m train.main --config=configs/tiny_hybrid_rlp.py --workdir=runs/tiny_rlp

It starts from the base run ``runs/tiny``, taken from the working directory when it is
there (the two commands run from one directory), else from the repository (the README's
main job, run from the repository root); a base run elsewhere is
``--config.init_checkpoint=<its workdir>``.
"""

from configs import rlp
from configs import tiny_hybrid
from train import config as run_config


def get_config():
  config = rlp.get_config()
  config.model = tiny_hybrid.get_config().model
  config.init_checkpoint = run_config.find_path("runs/tiny")
  config.train.steps = 20
  config.checkpoint.every_steps = 20
  return config
