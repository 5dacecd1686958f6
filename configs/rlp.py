r"""RLP: reinforcement as a pretraining objective (rl/rlp.py, arXiv 2510.01265).

  python -m train.main --config=configs/rlp.py --workdir=runs/rlp \
      --config.init_checkpoint=runs/tiny

Thoughts are sampled at ``rlp.positions`` of the pretraining corpus (``data``); the
paper's defaults are G=16, thought_len=2048, temperature 0.7, τ=0.999, LR 1e-6 constant;
these CPU defaults are smaller. ε is not given in the paper (0.2 here).
``train.global_batch_size`` counts contexts (each gets ``rlp.group_size`` thoughts).
"""

from configs import base
from train import config as run_config


def get_config():
  config = base.get_config()
  config.loop = "rlp"
  config.model = run_config.model_section("tiny", vocab_size=1024, d_model=64, pattern="*-*-",
                                          mlp_dim=128, head_dim=16)
  config.rlp = dict(group_size=4, thought_len=8, context_len=64, temperature=0.7,
                    ema_decay=0.999, epsilon=0.2, positions="uniform")
  config.train.steps = 50
  config.train.seq_len = 128
  config.train.global_batch_size = 8
  config.train.log_every = 10
  base.use_constant_learning_rate(config, 1e-5)
  config.checkpoint.every_steps = 50
  config.eval = base.eval_section(records="")
  return config
