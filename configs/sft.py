r"""SFT with the chat template and the reasoning toggle (train/sft.py).

  python -m train.main --config=configs/sft.py --workdir=runs/sft
  python -m train.main --config=configs/sft.py --workdir=runs/sft_sums \
      --config.sft.records=data/corpus/sums.jsonl --config.train.steps=80 \
      --config.train.seq_len=64

``sft.records``: a JSONL of reasoning problems (question/solution/answer; 'pair' makes
the "detailed thinking on/off" pair of each), of question/answer pairs, or of
{"messages": [...]}. Or records synthesised by the starting weights before the first
step (``sft.synthesis``, train/sft.py)::

  python -m train.main --config=configs/sft.py --workdir=runs/sft_synthesized \
      --config.init_checkpoint=<the teacher: a run of this model> --config.sft.records= \
      --config.sft.synthesis.problems=data/corpus/sums.jsonl

Evaluation: greedy accuracy on held-out problems, thinking off.
"""

from configs import base
from data import config as data_config
from train import config as run_config


def get_config():
  config = base.get_config()
  config.loop = "sft"
  config.model = run_config.model_section("tiny", vocab_size=1024, d_model=64, pattern="*-*-",
                                          mlp_dim=128, head_dim=16)
  config.sft = dict(records=data_config.corpus_path("reasoning.jsonl"), toggle="pair",
                    template="chat", num_packing_bins=8, whole_conversations=False,
                    synthesis=dict(problems="", samples=4, temperature=1.0,
                                   max_new_tokens=256, template="chat", filter="answer",
                                   max_tokens=0, max_solutions=0, eval_records=(),
                                   ngram=13, kind="solutions", candidates=4, rounds=1))
  config.train.steps = 200
  config.train.seq_len = 256
  config.train.global_batch_size = 16
  config.train.z_loss = 0.0
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_steps = 10
  config.checkpoint.every_steps = 100
  config.eval = base.eval_section(template="chat", thinking="off", max_new_tokens=32)
  return config
