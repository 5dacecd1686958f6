r"""RLP vs continued pretraining on the same tokens (arXiv 2510.01265), in miniature.

  python -m train.main --config=configs/claims/rlp.py --workdir=runs/rlp

The paper's toy setting: "a b c =" then s = (a+b+c) % 10. The base model is a noisy
thinker, pretrained on "a b c =\n<think> t </think>s" where the thought t = (a+b) % 10 is
replaced by a random digit 40% of the time and s follows t
(``data/corpus/modsum_noisy.txt``). From it, on the same plain documents "a b c =\ns"
of the 800 training triples (same rows, steps and tokens): RLP (thoughts sampled before
s, rewarded by information gain) or continued pretraining (next-token loss). Then both
get identical post-training: SFT on 20 chat examples with the right thought, then GRPO
on the training triples. Every arm is evaluated on the 200 held-out triples by the share
of right answers among 4 samples at temperature 1 (text prompts before post-training,
chat prompts after). Claims: RLP beats continued pretraining before post-training, and
after identical SFT + GRPO. The base is trained once (1200 steps) and shared by every
seed; its gate: its greedy thought is (a+b) % 10 on at least 80% of the held-out
triples (``modsum_thought_valid.jsonl``, judged by the thought: ``eval.judge``), the
skill RLP's reward works on. Full: 5 seeds of everything after the base (GRPO 20
steps); ``--config.fast=True``: 1 seed, fewer steps. What it showed, and its wall times:
configs/claims/README.md.
"""

from configs.claims import common


def get_config():
  base = common.pretrain({"modsum_noisy.txt": 1.0}, seq_len=64, batch=32, learning_rate=1e-3)
  rlp = common.rlp("modsum_train.jsonl", seq_len=64, batch=32, learning_rate=1e-4,
                   group_size=4, thought_len=4, context_len=8, temperature=1.0,
                   ema_decay=0.99, positions="document_end")
  cpt = common.pretrain({"modsum_train.jsonl": 1.0}, seq_len=64, batch=32,
                        learning_rate=1e-4, constant=True)
  sft = common.sft("modsum_sft.jsonl", seq_len=64, batch=16, learning_rate=1e-3)
  grpo = common.grpo("modsum_train.jsonl", seq_len=24, batch=64, learning_rate=1e-4,
                     group_size=4, max_new_tokens=8)
  stages = {"base": common.stage(base, steps=1200, fast_steps=150, shared=True)}
  for arm, middle in (("rlp", rlp), ("cpt", cpt)):
    stages[arm] = common.stage(middle, steps=40, fast_steps=10, after="base")
    stages[f"{arm}_sft"] = common.stage(sft, steps=20, fast_steps=10, after=arm)
    stages[f"{arm}_grpo"] = common.stage(grpo, steps=20, fast_steps=5, after=f"{arm}_sft")
  return common.claim(
      "rlp", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="sample_accuracy",
      comparisons=[("rlp", "cpt"), ("rlp_post", "cpt_post")],
      stages=stages,
      arms={"rlp": "rlp", "cpt": "cpt", "rlp_post": "rlp_grpo", "cpt_post": "cpt_grpo"},
      eval_section=common.eval_section("modsum_valid.jsonl", template="text", samples=4,
                                       temperature=1.0, max_new_tokens=8, batch_size=64),
      arm_eval={"rlp_post": {"template": "chat"}, "cpt_post": {"template": "chat"}},
      gate=common.gate(stages=("base",), metric="pass@1", threshold=0.8,
                       skill="the base's greedy thought is (a+b) % 10 on held-out triples",
                       eval_section=common.eval_section(
                           "modsum_thought_valid.jsonl", template="text", judge="thought",
                           max_new_tokens=8, batch_size=64)),
      chance=0.1)
