r"""GRPO with verifiable rewards (rl/grpo.py). On CPU, start from an SFT run:

  python -m rl.main --config=configs/sft.py --workdir=runs/sft_sums \
      --config.sft.records=small_sums --config.train.steps=80
  python -m rl.main --config=configs/grpo.py --workdir=runs/grpo \
      --config.init_checkpoint=runs/sft_sums

``grpo.records``: 'small_sums' or a JSONL of {question, answer[, kind, options]};
``grpo.rewards``: reward name → weight (rl/rewards.py: math, multiple_choice,
open_ended, format, crossthink); ``grpo.template``: 'plain' or 'crossthink'.
"""

from configs import base


def get_config():
  config = base.get_config()
  config.loop = "grpo"
  config.init_checkpoint = ""
  config.model = base.model_section("tiny", vocab_size=1024, d_model=64, pattern="*-*-",
                                    mlp_dim=128, head_dim=16)
  config.grpo = dict(
      records="small_sums", max_a=99, max_b=2, prompts_per_step=16, group_size=8,
      max_prompt_len=16, max_new_tokens=4, temperature=1.0, top_k=0, top_p=1.0,
      advantage_estimator="grpo", aggregation="token", epsilon_low=0.2, epsilon_high=0.2,
      kl_coef=0.0, rewards={"math": 1.0}, template="plain",
      thinking=base.config_dict.placeholder(bool))
  config.train.steps = 60
  config.train.log_every = 10
  base.use_constant_learning_rate(config, 3e-4)
  config.checkpoint.every_steps = 30
  return config
