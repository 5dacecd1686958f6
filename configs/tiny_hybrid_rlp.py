r"""The main job's RL step: RLP (arXiv 2510.01265) on the pretrained tiny_hybrid model.

  python -m train.main --config=configs/tiny_hybrid.py --workdir=runs/tiny
  python -m train.main --config=configs/tiny_hybrid_rlp.py --workdir=runs/tiny_rlp
"""

from configs import rlp
from configs import tiny_hybrid


def get_config():
  config = rlp.get_config()
  config.model = tiny_hybrid.get_config().model
  config.init_checkpoint = "runs/tiny"
  config.train.steps = 20
  config.checkpoint.every_steps = 20
  return config
