r"""Group-aware Mamba head pruning (Minitron-SSM, arXiv 2504.11409), in miniature.

  python -m train.main --config=configs/claims/group_aware_pruning.py \
      --workdir=runs/group_aware_pruning

The teacher of ``prune_distill`` (shared stage) has Mamba layers of 8 heads in two B/C
groups of 4. Per seed, two students keep 4 of the 8 heads in every Mamba layer (nothing
else pruned) and are distilled alike (100 batches, fast 30):

  group_aware     heads ranked within their group, 2 kept per group: each kept head still
                  reads its own group's B and C
  ignore_groups   the 4 best heads overall, which then fall into the groups by position:
                  a head may end up reading the other group's B and C

Claim: group_aware beats ignore_groups on held-out English loss. Where the best heads of
a layer happen to split 2 + 2 the two students agree on it; the calibration log of each
run names the heads kept. Gate: as ``prune_distill``.
What it showed: configs/claims/README.md.
"""

from configs.claims import common


def get_config():
  return common.compression_claim(
      "group_aware_pruning", comparison=("group_aware", "ignore_groups"),
      students={"group_aware": common.compression_arm(prune=dict(ssm_heads=4)),
                "ignore_groups": common.compression_arm(prune=dict(ssm_heads=4,
                                                                   group_aware=False))})
