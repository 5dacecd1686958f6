"""A Llama-3.2-1B-like transformer, FSDP over all devices, cosine schedule; sized for a
v5p:2x2x2 slice (8 chips).

  python -m train.main --config=configs/llama_1b.py --workdir=runs/llama_1b
  python -m train.aot --config=configs/llama_1b.py     # memory per chip, no TPU needed
"""

from configs import base
from train import config as run_config


def get_config():
  config = base.get_config()
  config.model = run_config.model_section("llama_1b", remat="full",
                                          attention_impl="flash")
  config.train.steps = 100_000
  config.train.global_batch_size = 256
  config.train.seq_len = 4096
  config.train.grad_accum_steps = 8  # 4 rows of 4096 per device and micro-batch on 8 chips
  config.train.log_every = 50
  config.optimizer.learning_rate = 3e-4
  config.optimizer.warmup_steps = 2000
  config.optimizer.weight_decay = 0.1
  config.mesh.data, config.mesh.fsdp = 1, -1
  config.mesh.topology = "v5p:2x2x2"
  config.checkpoint.every_steps = 1000
  config.checkpoint.max_to_keep = 3
  return config
