"""Claims (train/claims.py) and the stage pipeline under them (train/stages.py).

The fast claims run once per session (``fast_claims`` in conftest.py, shared with
notebooks/claims.ipynb); the full ones are slow tests. Each asserts the sign the paper
reports with a margin measured over seeds and ISAs, or, where a claim does not hold at
this scale, what the run does show.
"""

import json
import os

import pytest

import cli_runs
from configs.claims import long_cot
from configs.claims import rlp
from train import claims
from train import config as run_config
from train import driver
from train import stages


def test_stage_chains_run_parents_first_and_count_tokens():
  config = rlp.get_config()
  assert stages.chain(config.stages, "rlp_grpo") == ["base", "rlp", "rlp_sft", "rlp_grpo"]
  run = stages.resolve(config.stages, "rlp_sft", "/r", seed=3, fast=False)
  assert run.init_checkpoint == "/r/rlp" and run.train.seed == 3
  assert run.train.steps == config.stages.rlp_sft.steps and not run.eval.records
  tokens = claims.arm_tokens(config, fast=False)
  assert tokens["rlp"] == tokens["cpt"] and tokens["rlp_post"] == tokens["cpt_post"]
  assert tokens["rlp_post"] > tokens["rlp"]


def test_claim_configs_refuse_unequal_compute_and_the_wrong_entry_point():
  config = long_cot.get_config()
  claims.check(config)
  config.stages.sft_short.steps += 1
  with pytest.raises(run_config.ConfigError, match="equal compute"):
    claims.check(config)
  config = long_cot.get_config()
  config.stages.sft_long.after = "nowhere"
  with pytest.raises(run_config.ConfigError, match="unknown stage 'nowhere'"):
    claims.check(config)
  config = long_cot.get_config()
  config.arm_eval = {"short": {"records": "other.jsonl"}}
  with pytest.raises(run_config.ConfigError, match="same records"):
    claims.check(config)
  with pytest.raises(run_config.ConfigError, match="claim config"):
    driver.run(long_cot.get_config(), "/nonexistent")
  with pytest.raises(run_config.ConfigError, match="not a claim"):
    claims.check(config.stages.base.run)


def test_compare_holds_only_when_every_comparison_does():
  arms = {"a": {"m": {"values": [0.5, 0.6]}}, "b": {"m": {"values": [0.4, 0.7]}},
          "c": {"m": {"values": [0.1, 0.1]}}}
  out, holds = claims.compare(arms, "m", [("a", "c"), ("b", "c")])
  assert holds and [c["wins"] for c in out] == [2, 2]
  out, holds = claims.compare(arms, "m", [("a", "c"), ("a", "b")])
  assert not holds and out[1]["difference"] == pytest.approx(0.0)
