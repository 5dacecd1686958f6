"""The CPU default: a tiny Mamba-2/attention/MLP hybrid on the shipped corpus.

Nemotron-H's layers (arXiv 2504.03624): squared-ReLU MLPs and attention without
positional embeddings (NoPE; the Mamba layers carry position), so a run exports as
``NemotronHForCausalLM`` (``python -m train.export``). The MLP is 4.5x wide, the
parameter count of a 3x SwiGLU MLP. Trains in a few minutes on 2 CPU cores:
  python -m train.main --config=configs/tiny_hybrid.py --workdir=runs/tiny
"""

from configs import base
from train import config as run_config


def get_config():
  config = base.get_config()
  config.model = run_config.model_section(
      "tiny", vocab_size=1024, d_model=128, pattern="M-*-M-", n_heads=4, n_kv_heads=2,
      head_dim=32, mlp_dim=576, mlp_activation="relu2", use_rope=False, ssm_heads=4,
      ssm_head_dim=32, ssm_state=16, chunk_size=32)
  config.train.steps = 300
  config.train.global_batch_size = 16
  config.train.seq_len = 128
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_steps = 30
  return config
