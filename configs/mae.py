r"""Multi-Agent Evolve (rl/mae.py, arXiv 2510.23595): one model proposes sums, solves them
and judges both, with no labels. On CPU, start from a base pretrained on the
role-formatted text (data/corpus/mae_roles.txt):

  python -m train.main --config=configs/tiny_hybrid.py --workdir=runs/mae_base \
      --config.data.sources.text.path=data/corpus/mae_roles.txt ...
  python -m train.main --config=configs/mae.py --workdir=runs/mae \
      --config.init_checkpoint=runs/mae_base

(the mae claim, configs/claims/mae.py, builds that base itself). From random weights it
runs too (nothing is proposed, every reward is 0: a smoke run).

``mae.seed_questions``: the starting question pool (JSONL of {question}, unlabelled);
``mae.proposals`` P, ``mae.ratings`` M, ``mae.pool_questions`` Q and
``mae.solver_samples`` N (the paper: 5) fix the batch: ``train.global_batch_size`` =
P + P·M + 2·N·(P + Q) rows; ``train.seq_len`` = prompt budget + ``mae.max_new_tokens``.
Evaluation: greedy accuracy on held-out sums (``mae_solve_valid.jsonl``) with the
solver's prompt.
"""

from configs import base
from data import config as data_config
from train import config as run_config

PROPOSALS, RATINGS, POOL_QUESTIONS, SOLVER_SAMPLES = 4, 1, 4, 4


def batch_rows(proposals: int = PROPOSALS, ratings: int = RATINGS,
               pool_questions: int = POOL_QUESTIONS, solver_samples: int = SOLVER_SAMPLES
               ) -> int:
  """MAE's rows per step: P + P·M + 2·N·(P + Q)."""
  return proposals * (1 + ratings) + 2 * solver_samples * (proposals + pool_questions)


def section(**overrides):
  """The ``mae`` config section: the paper's settings (acceptance at quality 0.7, half the
  proposer prompts with a reference, temperature 1, PPO clip 0.2) at a small batch."""
  fields = dict(
      seed_questions=data_config.corpus_path("mae_seed_questions.jsonl"),
      proposals=PROPOSALS, ratings=RATINGS, pool_questions=POOL_QUESTIONS,
      solver_samples=SOLVER_SAMPLES, max_new_tokens=56, temperature=1.0,
      accept_threshold=0.7, pool_size=256, reference_share=0.5, epsilon_low=0.2,
      epsilon_high=0.2, aggregation="token", difficulty="sum_terms")
  fields.update(overrides)
  return fields


def get_config():
  config = base.get_config()
  config.loop = "mae"
  config.model = run_config.model_section("tiny", vocab_size=1024, d_model=64, pattern="*-*-",
                                          mlp_dim=128, head_dim=16)
  config.mae = section()
  config.train.steps = 20
  config.train.global_batch_size = batch_rows()
  config.train.seq_len = 48 + 56            # prompt budget + mae.max_new_tokens
  config.train.log_every = 5
  base.use_constant_learning_rate(config, 1e-4)
  config.checkpoint.every_steps = 10
  config.eval = base.eval_section(text_files={},
                                  records=data_config.corpus_path("mae_solve_valid.jsonl"),
                                  max_records=64, template="text", max_new_tokens=20,
                                  batch_size=64)
  config.sample.prompts = ("Propose:", "Solve: 3+4+5", "Judge: 3+4 <answer>7</answer>")
  config.sample.max_new_tokens = 56
  return config
