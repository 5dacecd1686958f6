"""The console line of a logged step: significant digits, the RL figures, the data stage."""

import grain

from data import mixture
from train import loops
from train import metrics as metrics_lib


def test_tiny_values_keep_their_significant_digits():
  record = {"loss": 2.08e-06, "learning_rate": 3e-4, "grad_norm": 2.08e-06,
            "reward_mean": 2.08e-06}
  assert metrics_lib.format_line(3, 10, record) == (
      "step 3/10 | loss 2.08e-06 | lr 3.00e-04 | grad_norm 2.08e-06 | reward 2.08e-06")


def test_an_rl_step_shows_reward_truncation_length_clipping_and_kl():
  record = {"loss": 0.0123, "learning_rate": 1e-6, "grad_norm": 0.5, "reward_mean": 0.0,
            "reward_std": 0.0, "uniform_reward_groups": 1.0, "truncated": 0.977,
            "completion_length": 63.75, "clip_fraction": 0.0125, "ratio": 1.0,
            "kl": 2.08e-06, "step_time_s": 2.0}
  assert metrics_lib.format_line(8, 10, record) == (
      "step 8/10 | loss 0.0123 | lr 1.00e-06 | grad_norm 0.5 | reward 0 | truncated 0.977 | "
      "completion_length 63.8 | clip_fraction 0.0125 | kl 2.08e-06 | 2 s/step | ETA 0:00:04")


def schedule_progress(stages: list[mixture.Stage]) -> dict:
  """The progress a run over a data schedule of ``stages`` logs (before its first batch)."""
  source = grain.MapDataset.source([{"tokens": 0}]).to_iter_dataset()
  iterator = mixture.MixtureIterator({"web": source}, stages, batch_size=1, seed=0)
  return loops.IteratorBatches(iterator).progress()


def test_the_data_stage_is_shown_only_for_a_schedule_of_several_stages():
  single = schedule_progress([mixture.Stage("pretrain", (1.0,), None)])
  assert single == {"tokens_seen/web": 0}
  assert "stage" not in metrics_lib.format_line(1, 10, {"loss": 1.0, **single})
  several = schedule_progress([mixture.Stage("pretrain", (1.0,), 5),
                               mixture.Stage("anneal", (1.0,), None)])
  assert several["data_stage"] == "pretrain"
  assert metrics_lib.format_line(1, 10, {"loss": 1.0, **several}) == (
      "step 1/10 | loss 1 | data_stage pretrain")
