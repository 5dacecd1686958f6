r"""Code in pretraining improves entity tracking (arXiv 2405.21068), in miniature.

  python -m train.main --config=configs/claims/code_entity_tracking.py \
      --workdir=runs/code_entity_tracking

Two arms pretrain on the same steps and tokens (16 × 128 a step): ``text`` on general
text only (``english.txt``), ``code`` on the same text with 30% of it replaced by short
Python programs of variable and list updates and their printed output
(``code_updates.txt``: "a = ['cup']", "a.remove('cup'); b.append('cup')", "print(b)").
Both then get identical light SFT on 256 boxes questions answered directly
(``boxes_sft.jsonl``: "Box 1 contains the pen. ... Move the pen from Box 1 to Box 2. ...
What does Box 2 contain?" → "the apple and the pen"), and are evaluated on 200 held-out
ones (``boxes_valid.jsonl``; greedy pass@1, chat template, and pass@1 per number of
operations on the asked box, ``pass@1/ops<n>``, the paper's difficulty axis). Claim: the
code arm tracks the boxes better. Full: 3 seeds, 500 pretraining and 100 SFT steps;
``--config.fast=True``: 1 seed, 150 and 50. What it showed, and its wall times:
configs/claims/README.md.
"""

from configs.claims import common

CODE_SHARE = 0.3


def get_config():
  text = common.pretrain({"english.txt": 1.0}, seq_len=128, batch=16, learning_rate=3e-3)
  code = common.pretrain({"english.txt": 1 - CODE_SHARE, "code_updates.txt": CODE_SHARE},
                         seq_len=128, batch=16, learning_rate=3e-3)
  sft = common.sft("boxes_sft.jsonl", seq_len=128, batch=16, learning_rate=1e-3)
  stages = {}
  for arm, pretrain in (("code", code), ("text", text)):
    stages[arm] = common.stage(pretrain, steps=500, fast_steps=150)
    stages[f"{arm}_sft"] = common.stage(sft, steps=100, fast_steps=50, after=arm)
  return common.claim(
      "code_entity_tracking", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("code", "text")],
      stages=stages,
      arms={"code": "code_sft", "text": "text_sft"},
      eval_section=common.eval_section("boxes_valid.jsonl", template="chat",
                                       max_new_tokens=24, batch_size=100),
      # Provisional gate: both arms answer dev boxes questions.
      gate=common.gate(stages=("code_sft", "text_sft"), metric="pass@1", threshold=0.5,
                       skill="the SFT models track boxes on dev questions",
                       eval_section=common.eval_section(
                           "boxes_dev.jsonl", template="chat", max_new_tokens=24,
                           batch_size=100)),
      chance=None)
