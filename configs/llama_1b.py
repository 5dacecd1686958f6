"""A Llama-3.2-1B-like transformer, FSDP over all devices, cosine schedule.

  python -m train.main --config=configs/llama_1b.py --workdir=runs/llama_1b
"""

from configs import base
from train import config as run_config


def get_config():
  config = base.get_config()
  config.model = run_config.model_section("llama_1b", remat="full")
  config.train.steps = 100_000
  config.train.global_batch_size = 256
  config.train.seq_len = 4096
  config.train.log_every = 50
  config.optimizer.learning_rate = 3e-4
  config.optimizer.warmup_steps = 2000
  config.optimizer.weight_decay = 0.1
  config.mesh.data, config.mesh.fsdp = 1, -1
  config.checkpoint.every_steps = 1000
  config.checkpoint.max_to_keep = 3
  return config
