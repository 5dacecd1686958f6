r"""Multi-Agent Evolve (MAE, arXiv 2510.23595) in miniature: self-play with the model's own
judge raises the solver's held-out accuracy with no labelled data, and the proposer's
question difficulty follows the solver's ability.

  python -m train.main --config=configs/claims/mae.py --workdir=runs/mae
  python -m train.main --config=configs/claims/mae.py:difficulty --workdir=runs/mae_difficulty

The toy domain (``data/mae.py``): sums of 2 to 5 single digits, difficulty = the number
of terms. A base (the claim model, shared by every seed) is pretrained on role-formatted
text (``mae_roles.txt``): proposals ("Propose:" / "Propose like 3+4:" →
<question>…</question>), quality ratings of well-formed and malformed questions (→
"good"/"bad" <score>10|1</score>), solver answers written directly (<answer>…</answer>,
wrong by 1 to 3 in 40% of them: the noisy solver of web text) and judgements of answers,
half of them wrong, whose reasoning takes the terms from the judged answer one at a
time and scores 10 when nothing is left ("15-5=10 10-2=8 8-7=1 <score>1</score>"; right
in all of them). Judging is thus easier than solving: the asymmetry MAE's judge lends
its solver. (A first design, adding the terms and comparing the total with the copied
answer, left the judge at chance on the dev split after 1200 steps: its comparison and
copy were unreliable.) No record of the RL stage carries an answer: the MAE loop (``rl/mae.py``)
starts from 64 unlabelled seed questions and scores everything with the model's judge.

Claim (a), ``mae`` (this config): per seed, from the base (2000 steps of 16 × 128
tokens: at 1000 the first full run's judge failed the gate, 0.586; a probe pretraining
2400 steps judged the dev split right in 0.758 at step 1600 and 0.984 at 2000), MAE
(``mae``: 50 steps of P = 4 proposals, M = 1 rating, Q = 4 pool questions, N = 4
answers each: 72 rows of 104 tokens, LR 1e-4 constant, PPO clip 0.2, temperature 1)
against the control
(``control``): the base pretrained on for the same steps, rows and tokens on its own
pretraining text, the same constant LR. Both evaluated on 256 held-out sums
(``mae_solve_valid.jsonl``, 64 per number of terms, questions in no training file), the
solver prompt, greedy pass@1 (arms ``mae``/``control``) and the share of right samples at
temperature 1, 4 per sum (arms ``mae_sampled``/``control_sampled``: the same models).
MAE should beat the control on both.

Claim (b), ``mae_difficulty`` (``:difficulty``): a weaker base (``base_weak``, the same
text but 80% of its solver answers wrong) and MAE from it (``mae_weak``); the greedy
proposals of the two MAE models to 64 "Propose like <seed question>:" prompts
(``mae_propose_probe.jsonl``) are measured by their length in tokens, two per term of a
well-formed sum ('length', compared lower-is-better): the weaker solver's proposer should
propose shorter (easier) questions than the stronger one's. The training log's
``question_difficulty`` (mean terms of the step's proposals) shows the same over time.

Competence gate (both): the base's greedy judgements of 128 dev answers
(``mae_judge_dev.jsonl``: sums of 3 to 5 terms, half the answers wrong by 1 or 2, the
right score as answer) must be right in at least 0.75 of them (chance 0.5); for (b) both
bases. Full: seeds 0-4; ``--config.fast=True``: seed 0, fewer steps (a check of the
pipeline). What it showed, and its wall times: configs/claims/README.md.
"""

from configs import mae as mae_config
from configs.claims import common

GATE_THRESHOLD = 0.75
MAE_STEPS, MAE_FAST_STEPS = 50, 20
BASE_STEPS, BASE_FAST_STEPS = 2000, 400
ROWS, SEQ_LEN = mae_config.batch_rows(), 48 + 56
LEARNING_RATE = 1e-4


def _stages() -> dict:
  pretrain = lambda text: common.pretrain({text: 1.0}, seq_len=128, batch=16,
                                          learning_rate=3e-3)
  mae = common.mae(seq_len=SEQ_LEN, batch=ROWS, learning_rate=LEARNING_RATE)
  control = common.pretrain({"mae_roles.txt": 1.0}, seq_len=SEQ_LEN, batch=ROWS,
                            learning_rate=LEARNING_RATE, constant=True)
  return {
      "base": common.stage(pretrain("mae_roles.txt"), steps=BASE_STEPS,
                           fast_steps=BASE_FAST_STEPS, shared=True),
      "base_weak": common.stage(pretrain("mae_roles_weak.txt"), steps=BASE_STEPS,
                                fast_steps=BASE_FAST_STEPS, shared=True),
      "mae": common.stage(mae, steps=MAE_STEPS, fast_steps=MAE_FAST_STEPS, after="base"),
      "mae_weak": common.stage(mae, steps=MAE_STEPS, fast_steps=MAE_FAST_STEPS,
                               after="base_weak"),
      "control": common.stage(control, steps=MAE_STEPS, fast_steps=MAE_FAST_STEPS,
                              after="base"),
  }


def _gate(stages: tuple[str, ...]):
  return common.gate(
      stages=stages, metric="pass@1", threshold=GATE_THRESHOLD,
      skill="the base judges answers to held-out sums right (greedy score 10 for a right "
            "answer, 1 for a wrong one; dev split, chance 0.5)",
      eval_section=common.eval_section("mae_judge_dev.jsonl", template="text",
                                       max_new_tokens=56, batch_size=128))


def get_config(which: str = ""):
  stages = _stages()
  if which == "difficulty":
    return common.claim(
        "mae_difficulty", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="length",
        comparisons=[("mae_weak", "mae")],
        stages={name: stages[name] for name in ("base", "base_weak", "mae", "mae_weak")},
        arms={"mae_weak": "mae_weak", "mae": "mae"},
        eval_section=common.eval_section("mae_propose_probe.jsonl", template="text",
                                         max_new_tokens=32, batch_size=64),
        gate=_gate(("base", "base_weak")), chance=None)
  if which:
    raise ValueError(f"configs/claims/mae.py:{which}: want '' (claim a) or 'difficulty'")
  return common.claim(
      "mae", seeds=(0, 1, 2, 3, 4), fast_seeds=(0,), metric="pass@1",
      comparisons=[("mae", "control"), ("mae_sampled", "control_sampled")],
      stages={name: stages[name] for name in ("base", "mae", "control")},
      arms={"mae": "mae", "control": "control", "mae_sampled": "mae",
            "control_sampled": "control"},
      arm_metric={"mae_sampled": "sample_accuracy", "control_sampled": "sample_accuracy"},
      eval_section=common.eval_section("mae_solve_valid.jsonl", template="text",
                                       max_new_tokens=20, batch_size=128, samples=4,
                                       temperature=1.0),
      gate=_gate(("base",)), chance=None)
