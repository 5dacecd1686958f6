r"""GRPO with verifiable rewards (rl/grpo.py). On CPU, start from an SFT run:

  python -m train.main --config=configs/sft.py --workdir=runs/sft_sums \
      --config.sft.records=data/corpus/sums.jsonl --config.train.steps=80 \
      --config.train.seq_len=64
  python -m train.main --config=configs/grpo.py --workdir=runs/grpo \
      --config.init_checkpoint=runs/sft_sums

``grpo.records``: a JSONL of {question, answer[, kind, options]} (default: the shipped
small sums "a+b="); ``grpo.rewards``: reward name → weight (rl/rewards.py: math,
multiple_choice, open_ended, format, crossthink); ``grpo.template``: 'chat' or
'crossthink'; ``grpo.drop_solved_at``: drop records the starting model solves at this
pass rate (Llama-Nemotron: 0.75; 0: keep all); ``grpo.skip_uniform_groups``: groups with
equal rewards leave the loss; ``grpo.truncated_reward``: the reward of a completion cut at
``max_new_tokens`` before its stop token (unset: scored like the others);
``grpo.tool_calls``: code executions per rollout (tool-integrated reasoning, 0: none).
``train.global_batch_size`` counts sequences: 16 prompts × 8 samples.
Evaluation: greedy accuracy on the held-out sums.
"""

from ml_collections import config_dict

from configs import base
from data import config as data_config
from train import config as run_config


def get_config():
  config = base.get_config()
  config.loop = "grpo"
  config.model = run_config.model_section("tiny", vocab_size=1024, d_model=64, pattern="*-*-",
                                          mlp_dim=128, head_dim=16)
  config.grpo = dict(
      records=data_config.corpus_path("sums.jsonl"), group_size=8, max_new_tokens=4,
      temperature=1.0, top_k=0, top_p=1.0, advantage_estimator="grpo", aggregation="token",
      epsilon_low=0.2, epsilon_high=0.2, kl_coef=0.0, rewards={"math": 1.0},
      template="chat", thinking="", drop_solved_at=0.0, skip_uniform_groups=False,
      truncated_reward=config_dict.placeholder(float), tool_calls=0, tool_timeout_s=10.0)
  config.train.steps = 60
  config.train.global_batch_size = 16 * 8
  config.train.seq_len = 16 + 4            # prompt budget + grpo.max_new_tokens
  config.train.log_every = 10
  base.use_constant_learning_rate(config, 3e-4)
  config.checkpoint.every_steps = 30
  config.eval = base.eval_section(text_files={},
                                  records=data_config.corpus_path("sums_valid.jsonl"),
                                  max_records=0, template="chat", max_new_tokens=4,
                                  batch_size=64)
  return config
