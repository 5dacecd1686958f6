r"""Code in pretraining improves entity tracking (arXiv 2405.21068), in miniature.

  python -m train.main --config=configs/claims/code_entity_tracking.py \
      --workdir=runs/code_entity_tracking

The paper compares base models with the same models trained further on code (Llama 2 and
Code Llama, DeepSeek and DeepSeek-Coder) on the boxes task: a description of boxes and
their contents, operations that move, remove and put items, and the query "Box 2
contains" for the model to complete. Here one base is pretrained once for every seed
(``shared=True``) on general text (``english.txt``, 30%) and boxes stories in the
paper's form whose asked box no operation touches, half of them with no operation at all
(``boxes_read.txt``, 70%; the answer on the next line): it learns to read a box's
contents. Then, per seed, two arms continue it on the same steps and tokens (16 × 128 a
step) with stories of none to four operations on any box (``boxes_text.txt``, 70%) and:

  text  the general text (30%)
  code  short Python programs of variable and list updates and their printed output
        in its place (``code_updates.txt``: "a = ['cup']", "a.remove('cup');
        b.append('cup')", "print(b)")

Every arm is evaluated on 200 held-out questions (``boxes_valid.jsonl``, two to four
operations as in the paper), greedy, text template (the story, then the answer), pass@1
overall and per number of operations on the asked box (``pass@1/ops<n>``, "ops3" three
or more: the paper's difficulty axis). Claim: the code arm tracks the boxes better.

Competence gate: the base must read a box's contents from the description when no
operation touches that box: its pass@1 on the ops0 questions of the dev split
(``boxes_dev.jsonl``, drawn like the held-out ones, sharing none of their questions)
must reach 0.5; answering "nothing" always scores the most frequent answer's share
(measured in every run). What it showed, and its wall times: configs/claims/README.md.
Full: seeds 0-4; ``--config.fast=True``: seed 0, fewer steps (a check of the pipeline).
"""

from configs.claims import common

CODE_SHARE = 0.3   # of the arms' tokens: general text in ``text``, programs in ``code``
STORY_SHARE = 1 - CODE_SHARE


def get_config():
  base = common.pretrain({"english.txt": CODE_SHARE, "boxes_read.txt": STORY_SHARE},
                         seq_len=128, batch=16, learning_rate=3e-3)
  arms = {name: common.pretrain({other: CODE_SHARE, "boxes_text.txt": STORY_SHARE},
                                seq_len=128, batch=16, learning_rate=1e-3, constant=True)
          for name, other in (("code", "code_updates.txt"), ("text", "english.txt"))}
  stages = {"base": common.stage(base, steps=2000, fast_steps=200, shared=True)}
  for name, run in arms.items():
    stages[name] = common.stage(run, steps=500, fast_steps=30, after="base")
  boxes = dict(template="text", max_new_tokens=16, batch_size=100)
  return common.claim(
      "code_entity_tracking", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("code", "text")],
      stages=stages,
      arms={"code": "code", "text": "text"},
      eval_section=common.eval_section("boxes_valid.jsonl", **boxes),
      gate=common.gate(stages=("base",), metric="pass@1/ops0", threshold=0.5,
                       skill="the base reads an untouched box's contents from the "
                             "description (dev split, ops0 questions)",
                       eval_section=common.eval_section("boxes_dev.jsonl", **boxes)),
      chance=None)
