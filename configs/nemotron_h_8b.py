"""Nemotron-H-8B shapes on an FSDP x tensor mesh (tensor 4, FSDP over the rest), sized
for a v5p:4x4x4 slice (64 chips):

  python -m train.aot --config=configs/nemotron_h_8b.py   # memory per chip, no TPU needed

Shape-only here: a real run needs a matching tokenizer and corpus in ``config.data``.
"""

from configs import base
from train import config as run_config


def get_config():
  config = base.get_config()
  config.model = run_config.model_section("nemotron_h_8b", remat="full",
                                          attention_impl="flash",
                                          ssm_impl="pallas")
  config.train.steps = 100_000
  config.train.global_batch_size = 512
  config.train.seq_len = 8192
  config.train.grad_accum_steps = 16  # 2 rows of 8192 per device and micro-batch
  config.train.log_every = 20
  config.optimizer.learning_rate = 3e-4
  config.optimizer.schedule = "wsd"
  config.optimizer.warmup_steps = 2000
  config.optimizer.decay_fraction = 0.2
  config.optimizer.final_lr_fraction = 0.0
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, -1, 4
  config.mesh.topology = "v5p:4x4x4"
  config.checkpoint.every_steps = 500
  return config
