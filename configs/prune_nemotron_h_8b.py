r"""Nemotron-H-8B → 4B by Minitron-SSM (arXiv 2504.11409): the 8B pruned in width by
activation importance, then distilled from it with logit forward KL, on the pod mesh of
configs/nemotron_h_8b.py (FSDP x tensor 4, v5p:4x4x4):

  python -m train.aot --config=configs/prune_nemotron_h_8b.py   # memory per chip
  python -m train.main --config=configs/prune_nemotron_h_8b.py --workdir=<dir> \
      --config.teacher.checkpoint=<an 8B run or Hugging Face directory>

The published shape change: d_model 4096 → 3072, FFN 21504 → 12288, Mamba heads 128 →
112 (14 of the 16 in each of the 8 B/C groups, ranked within their group); head size,
state size, groups, attention and all 52 layers stay, which is ``nemotron_h_4b()``.
Shape-only here: a real run needs the teacher's tokenizer and corpus in ``config.data``.
"""

from configs import distill
from configs import nemotron_h_8b
from train import prune


def get_config():
  config = nemotron_h_8b.get_config()
  config.loop = "distill"
  config.teacher = dict(model=config.model, checkpoint="")
  config.model = None   # the teacher pruned to the target (train/prune.py)
  config.prune = prune.section(d_model=3072, mlp_dim=12288, ssm_heads=112,
                               calibration_batches=64)
  config.distill = distill.get_config().distill   # logit forward KL
  return config
