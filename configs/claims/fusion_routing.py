r"""A router over tiny specialists beats the best single model, and fusion by
distillation on the routing data's best responses moves one model toward the router
(FusionFactory, arXiv 2507.10540), in miniature.

  python -m train.main --config=configs/claims/fusion_routing.py --workdir=runs/fusion_routing

Two specialists with complementary skills, each pretrained from scratch per seed on one
skill's worked examples (``data/corpus/fusion_*``, 16 × 128 tokens a step): ``sums``
on sums of three digits ("What is 7 + 1 + 5?", "8 + 5", "13", "Answer: 13"), ``tens``
on a two-digit number plus a digit ("What is 39 + 6?", "9 + 6 = 15", "3 + 1 = 4",
"Answer: 45"): complementary (when the skills were chosen, a 200-step ``sums``
answered none of 64 of ``tens``' questions; a 200-step model of counting a digit, the
first choice, learned only the format, so ``tens`` replaced it). Every arm
is evaluated on the same 256 held-out questions, half of each skill
(``fusion_valid.jsonl``), greedy pass@1, text prompts (the fusion arms' SFT trains on
text too, ``sft.template='text'``: the format the specialists were pretrained in).

  router   routes each question to ``sums`` or ``tens`` (``routers.router``): a kNN
           router (k = 5, cosine) on ``sums``' mean-pooled final hidden states, fit on
           the labels of the two specialists' routing data over the 512 routing queries
           (``fusion_queries.jsonl``, training questions of both skills) under the
           performance setting (α, β) = (1, 0) (``train/routing.py``). Its compute: both
           specialists' tokens.
  union    one model pretrained on both skills' text (half each) for as many steps as
           the two specialists together: the best single model at equal compute.
  sums, tens  the specialists alone (reported; the best of them is the best single
           model at half the compute).
  fused    ``sums`` fine-tuned (SFT, text format) on the routing data's best response
           per routing query (``sft.synthesis.kind='fusion'``: ``sums`` and its teacher
           ``tens`` answer the queries, the right response of the best candidate is
           kept; ``train/fusion.py``).
  self     ``sums`` fine-tuned for as many steps on its own right responses to the same
           queries (the same mechanism without a teacher): the equal-compute control.

Claims: router beats union (a router over complementary tiny models beats the best
single model at equal compute) and fused beats self (fusion by distillation moves one
model toward the router's accuracy). The teacher's sampling in ``fused`` is not counted
as compute (as in the distillation claims: its weights are another arm's).

Gate: each specialist must answer its own skill: pass@1 on the mixed dev split
(``fusion_dev.jsonl``, 64 questions of each skill, in neither the training text nor the
eval records) at least 0.35, i.e. 70% of its own half; set before any arm ran.
Full: seeds 0-4; ``--config.fast=True``: seed 0, fewer steps (a check of the pipeline).
What it showed: configs/claims/README.md.
"""

import ml_collections

from configs.claims import common

GATE_THRESHOLD = 0.35
SPECIALIST_STEPS, SPECIALIST_FAST_STEPS = 200, 60
FUSION_STEPS, FUSION_FAST_STEPS = 50, 20
QUERIES = "fusion_queries.jsonl"


def _fusion_sft(teacher: bool) -> ml_collections.ConfigDict:
  run = common.sft(QUERIES, seq_len=128, batch=16, learning_rate=1e-3, kind="fusion",
                   template="text", max_new_tokens=32, samples=1, temperature=0.0,
                   filter="answer", top_k=1, alpha=1.0, beta=0.0)
  run.sft.template = "text"
  if teacher:
    run.teacher = dict(checkpoint="")
  return run


def get_config():
  pretrain = lambda weights: common.pretrain(weights, seq_len=128, batch=16,
                                             learning_rate=3e-3)
  specialist = lambda name: common.stage(pretrain({name: 1.0}), steps=SPECIALIST_STEPS,
                                         fast_steps=SPECIALIST_FAST_STEPS)
  stages = {
      "sums": specialist("fusion_sums.jsonl"),
      "tens": specialist("fusion_tens.jsonl"),
      "union": common.stage(pretrain({"fusion_sums.jsonl": 0.5, "fusion_tens.jsonl": 0.5}),
                            steps=2 * SPECIALIST_STEPS, fast_steps=2 * SPECIALIST_FAST_STEPS),
      "fused": common.stage(_fusion_sft(teacher=True), steps=FUSION_STEPS,
                            fast_steps=FUSION_FAST_STEPS, after="sums", teacher="tens"),
      "self": common.stage(_fusion_sft(teacher=False), steps=FUSION_STEPS,
                           fast_steps=FUSION_FAST_STEPS, after="sums"),
  }
  config = common.claim(
      "fusion_routing", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("router", "union"), ("fused", "self")],
      stages=stages,
      arms={"router": "sums", "union": "union", "sums": "sums", "tens": "tens",
            "fused": "fused", "self": "self"},
      eval_section=common.eval_section("fusion_valid.jsonl", template="text",
                                       max_new_tokens=32, batch_size=128),
      gate=common.gate(
          stages=("sums", "tens"), metric="pass@1", threshold=GATE_THRESHOLD,
          skill="each specialist answers its own skill's half of the mixed dev split "
                "(greedy, text prompts)",
          eval_section=common.eval_section("fusion_dev.jsonl", template="text",
                                           max_new_tokens=32, batch_size=128)),
      chance=None)
  config.routers = {"router": dict(stages=("sums", "tens"),
                                   records=common.corpus(QUERIES), method="knn", k=5,
                                   hidden=(64,), alpha=1.0, beta=0.0)}
  return config
