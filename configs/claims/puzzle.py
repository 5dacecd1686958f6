r"""Puzzle: a searched heterogeneous model beats a uniform one of the same size
(Llama-Nemotron, arXiv 2505.00949; Puzzle, arXiv 2411.19146), in miniature.

  python -m train.main --config=configs/claims/puzzle.py --workdir=runs/puzzle

The teacher of ``prune_distill`` (shared stage, pattern ``M-M*-M-``, 0.79M parameters).
Per seed, two students within ``BUDGET`` parameters (80% of the teacher's) are
distilled alike (100 batches, fast 30):

  puzzle    the Puzzle search (``prune.method='puzzle'``, ``train/puzzle.py``): per
            attention layer the parent, fewer KV heads, a linear layer or none; per MLP
            the parent, half or a quarter of its neurons, a linear layer or none (Mamba
            layers stay), each scored by blockwise local distillation on 8 calibration
            batches (20 BLD steps per candidate, the last batch held out for the score),
            then one per layer by an exact budgeted choice
  uniform   every MLP narrowed alike to fit the budget (384 → 178), the neurons of highest
            activation importance kept (Minitron, ``prune.budget_axes=('mlp_dim',)``):
            the uniform model the search is compared with

Claim: puzzle beats uniform on held-out English loss. Gate: as ``prune_distill``.
What it showed: configs/claims/README.md.
"""

from configs.claims import common

BUDGET = 628_000


def get_config():
  return common.compression_claim(
      "puzzle", comparison=("puzzle", "uniform"),
      students={
          "puzzle": common.compression_arm(prune=dict(method="puzzle", max_params=BUDGET)),
          "uniform": common.compression_arm(prune=dict(max_params=BUDGET,
                                                       budget_axes=("mlp_dim",)))})
