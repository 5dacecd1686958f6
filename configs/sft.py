r"""SFT with the chat template and the reasoning toggle (rl/sft.py).

  python -m rl.main --config=configs/sft.py --workdir=runs/sft
  python -m rl.main --config=configs/sft.py --workdir=runs/sft_sums \
      --config.sft.records=small_sums --config.train.steps=80

``sft.records``: a JSONL of reasoning problems (question/solution/answer; 'pair' makes the
"detailed thinking on/off" pair of each) or of {"messages": [...]}, or 'small_sums'.
"""

from configs import base


def get_config():
  config = base.get_config()
  config.loop = "sft"
  config.init_checkpoint = ""      # a train.main / rl.main workdir; "" = random init
  config.model = base.model_section("tiny", vocab_size=1024, d_model=64, pattern="*-*-",
                                    mlp_dim=128, head_dim=16)
  config.sft = dict(records=config.data.sources.reasoning.path, toggle="pair",
                    num_packing_bins=8, max_a=99, max_b=2)
  config.train.steps = 200
  config.train.seq_len = 256
  config.train.global_batch_size = 16
  config.train.z_loss = 0.0
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_steps = 10
  config.checkpoint.every_steps = 100
  return config
