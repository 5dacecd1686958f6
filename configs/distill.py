r"""Knowledge distillation with the teacher inside the jitted step (train/distill.py).

  python -m train.main --config=configs/distill.py --workdir=runs/distill \
      --config.teacher.checkpoint=runs/tiny            # a trained teacher (any run)
  python -m train.main --config=configs/distill.py --workdir=runs/seqkd \
      --config.distill.mode=sequence --config.distill.hard_label_weight=1.0

Teacher and student may differ in family and size (same vocabulary). ``distill.mode``:
'logits' (token-level divergence on packed corpus batches) or 'sequence' (the teacher
samples answers to ``distill.prompts_path`` questions, the student learns them).
``teacher.checkpoint``: a run's workdir or a Hugging Face directory; "" = a random
teacher (a smoke run only).
"""

from configs import base
from data import config as data_config
from train import config as run_config


def get_config():
  config = base.get_config()
  config.loop = "distill"
  config.model = run_config.model_section("tiny_mamba", vocab_size=1024, d_model=64,
                                          ssm_head_dim=16, chunk_size=32)
  config.teacher = dict(
      model=run_config.model_section("tiny", vocab_size=1024, d_model=128, pattern="M-*-M-",
                                     head_dim=32, mlp_dim=384, ssm_head_dim=32,
                                     chunk_size=32),
      checkpoint="")
  config.distill = dict(mode="logits", divergence="forward_kl", top_k=0, temperature=1.0,
                        hard_label_weight=0.0,
                        prompts_path=data_config.corpus_path("reasoning.jsonl"),
                        max_new_tokens=64, sample_temperature=1.0, thinking="on")
  config.train.steps = 200
  config.train.seq_len = 128
  config.train.z_loss = 0.0
  config.optimizer.learning_rate = 3e-3
  config.eval = base.eval_section(records="")
  return config
