"""A ~125M Nemotron-H-style hybrid for one GPU, warmup-stable-decay schedule.

  python -m train.main --config=configs/hybrid_125m.py --workdir=runs/hybrid_125m
"""

from configs import base
from train import config as run_config


def get_config():
  config = base.get_config()
  config.model = run_config.model_section("hybrid_125m", remat="dots")
  config.train.steps = 20_000
  config.train.global_batch_size = 32
  config.train.seq_len = 4096
  config.train.log_every = 50
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "wsd"
  config.optimizer.warmup_steps = 500
  config.optimizer.decay_fraction = 0.2
  config.optimizer.final_lr_fraction = 0.0
  config.mesh.data, config.mesh.fsdp = 1, -1
  config.checkpoint.every_steps = 1000
  return config
