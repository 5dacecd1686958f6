"""The CPU default: a tiny Mamba-2/attention/MLP hybrid on the shipped corpus.

Trains in a few minutes on 2 CPU cores:
  python -m train.main --config=configs/tiny_hybrid.py --workdir=runs/tiny
"""

from configs import base
from train import config as run_config


def get_config():
  config = base.get_config()
  config.model = run_config.model_section(
      "tiny", vocab_size=1024, d_model=128, pattern="M-*-M-", n_heads=4, n_kv_heads=2,
      head_dim=32, mlp_dim=384, ssm_heads=4, ssm_head_dim=32, ssm_state=16, chunk_size=32)
  config.train.steps = 300
  config.train.global_batch_size = 16
  config.train.seq_len = 128
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_steps = 30
  return config
