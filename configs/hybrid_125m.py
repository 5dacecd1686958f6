"""A ~125M Nemotron-H-style hybrid for one accelerator, warmup-stable-decay schedule;
on TPU sized for a v5e:2x2 slice (4 chips of 16 GB, data parallel).

  python -m train.main --config=configs/hybrid_125m.py --workdir=runs/hybrid_125m
  python -m train.aot --config=configs/hybrid_125m.py  # memory per chip, no TPU needed
"""

from configs import base
from train import config as run_config


def get_config():
  config = base.get_config()
  config.model = run_config.model_section("hybrid_125m", remat="full",
                                          attention_impl="flash",
                                          ssm_impl="pallas")
  config.train.steps = 20_000
  config.train.global_batch_size = 32
  config.train.seq_len = 4096
  config.train.grad_accum_steps = 4  # 2 rows of 4096 per chip and micro-batch on v5e:2x2
  config.train.log_every = 50
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "wsd"
  config.optimizer.warmup_steps = 500
  config.optimizer.decay_fraction = 0.2
  config.optimizer.final_lr_fraction = 0.0
  config.mesh.data, config.mesh.fsdp = 1, -1
  config.mesh.topology = "v5e:2x2"
  config.checkpoint.every_steps = 1000
  return config
