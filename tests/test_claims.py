"""Claims (train/claims.py) and the stage pipeline under them (train/stages.py).

The fast claims run once per session (``fast_claims`` in conftest.py, shared with
notebooks/claims.ipynb); the full ones are slow tests. Where a claim's sign does not
hold with room at this scale (configs/claims/README.md), the tests assert what the runs
do show, not the sign.
"""

import json
import math
import os
import subprocess
import sys

import cli_runs
import pytest

from configs.claims import code_entity_tracking, common, crossthink, front_loading, long_cot
from configs.claims import genselect, group_aware_pruning, prune_distill, puzzle, rlp
from configs.claims import synthesis_filter, width_vs_depth
from data import sources
from rl import sandbox
from model import lm
from train import claims, driver, prune, sft, stages
from train import config as run_config


def test_stage_chains_run_parents_first_and_count_tokens():
  config = rlp.get_config()
  assert stages.chain(config.stages, "rlp_grpo") == ["base", "rlp", "rlp_sft", "rlp_grpo"]
  pipeline = stages.resolve(config.stages, ["rlp_grpo"], "/c", seed=3, fast=False)
  assert list(pipeline) == ["base", "rlp", "rlp_sft", "rlp_grpo"]
  run = pipeline["rlp_sft"].run
  assert run.init_checkpoint == pipeline["rlp"].directory == f"/c/{pipeline['rlp'].key}"
  assert run.train.seed == 3 and pipeline["rlp_sft"].parent_key == pipeline["rlp"].key
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
  config = rlp.get_config()
  config.eval.samples = 0
  with pytest.raises(run_config.ConfigError, match="needs eval.samples"):
    claims.check(config)
  config = long_cot.get_config()
  with pytest.raises(run_config.ConfigError, match="claim config"):
    driver.run(long_cot.get_config(), "/nonexistent")
  with pytest.raises(run_config.ConfigError, match="not a claim"):
    claims.check(config.stages.base.run)


def test_front_loading_and_code_claims_move_tokens_between_stages_not_add_them():
  config = front_loading.get_config()
  claims.check(config)
  for fast in (False, True):
    steps = {name: stages.run_config(config.stages[name], seed=0, fast=fast).train.steps
             for name in config.stages}
    moved = steps["general_sft"] - steps["mixed_sft"]
    assert moved == steps["mixed"] - steps["general"] == round(
        front_loading.REASONING_SHARE * steps["mixed"]) > 0
    assert len(set(claims.arm_tokens(config, fast).values())) == 1
  config = code_entity_tracking.get_config()
  claims.check(config)
  share = code_entity_tracking.CODE_SHARE
  runs = {arm: config.stages[arm].run.to_dict() for arm in ("code", "text")}
  weights = {arm: dict(run["data"]["stages"][0]["weights"]) for arm, run in runs.items()}
  assert weights == {"code": {"code_updates": share, "boxes_text": 1 - share},
                     "text": {"english": share, "boxes_text": 1 - share}}
  for run in runs.values():   # otherwise identical: the programs replace the general text
    run["data"]["sources"].pop("code_updates", None)
    run["data"]["sources"].pop("english", None)
    run["data"]["stages"][0]["weights"] = {}
  assert runs["code"] == runs["text"]
  assert {config.stages[arm].after for arm in ("code", "text")} == {"base"}
  assert len(set(claims.arm_tokens(config, fast=False).values())) == 1


def test_crossthink_arms_differ_only_in_their_grpo_records():
  config = crossthink.get_config()
  claims.check(config)
  for fast in (False, True):
    tokens = claims.arm_tokens(config, fast)
    assert len({tokens[arm] for arm in crossthink.ARMS}) == 1 and tokens["sft"] < tokens["blend"]
  runs = {arm: config.stages[arm].run.to_dict() for arm in crossthink.ARMS}
  records = {arm: run["grpo"].pop("records") for arm, run in runs.items()}
  assert [os.path.basename(path) for path in records.values()] == list(crossthink.ARMS.values())
  assert all(run == runs["blend"] for run in runs.values())
  assert {config.stages[arm].after for arm in crossthink.ARMS} == {"sft"}
  assert runs["blend"]["grpo"]["template"] == config.eval.template == "crossthink"


def test_synthesis_filter_arms_differ_only_in_the_answer_filter():
  config = synthesis_filter.get_config()
  claims.check(config)
  runs = {arm: config.stages[stage].run.to_dict() for arm, stage in config.arms.items()}
  filters = {arm: run["sft"]["synthesis"].pop("filter") for arm, run in runs.items()}
  assert filters == {"filtered": "answer", "unfiltered": "none"}
  assert runs["filtered"] == runs["unfiltered"] and not runs["filtered"]["sft"]["records"]
  assert {config.stages[stage].after for stage in config.arms.values()} == {"base"}
  # The seed problems are neither evaluated nor gated on, and the decontamination
  # checks both files.
  synthesis = config.stages.sft_filtered.run.sft.synthesis
  evaluated = {config.eval.records, config.claim.gate.eval.records}
  assert set(synthesis.eval_records) == evaluated
  seeds = {r["question"] for r in sources.read_records(synthesis.problems)}
  assert len(seeds) == len(sources.read_records(synthesis.problems))
  assert synthesis.max_solutions <= config.claim.gate.threshold * len(seeds)
  for path in evaluated:
    assert not seeds & {r["question"] for r in sources.read_records(path)}
  # The teacher is long_cot's base: one cache entry for both claims.
  key = lambda c: stages.resolve(c.stages, ["base"], "/c", seed=0, fast=False)["base"].key
  assert key(config) == key(long_cot.get_config())


def test_compression_arms_share_a_teacher_and_differ_only_in_the_student():
  """The four compression claims: one teacher stage (one cache entry), students
  distilled from it on equal tokens, differing only in how the student is made."""
  configs = {m.__name__.split(".")[-1]: m.get_config() for m in (
      prune_distill, group_aware_pruning, width_vs_depth, puzzle)}
  teacher_keys = set()
  for name, config in configs.items():
    claims.check(config)
    assert config.claim.metric == "loss/english" and claims.lower_is_better("loss/english")
    teacher_keys.add(stages.resolve(config.stages, ["teacher"], "/c", seed=0,
                                    fast=False)["teacher"].key)
    students = {arm: config.stages[stage] for arm, stage in config.arms.items()
                if stage != "teacher"}
    assert {spec.teacher for spec in students.values()} == {"teacher"}
    runs = {arm: spec.run.to_dict() for arm, spec in students.items()}
    for run in runs.values():
      run.pop("prune", None)
      run.pop("model")
    assert len({json.dumps(run, sort_keys=True, default=str) for run in runs.values()}) == 1
  assert len(teacher_keys) == 1
  # The scratch student has the pruned one's shape; width and depth have equal sizes.
  config = configs["prune_distill"]
  assert (run_config.model_config(config.stages.scratch.run.model)
          == prune.student_config(config.stages.pruned.run))
  config = configs["width_vs_depth"]
  sizes = [lm.count_params(prune.student_config(config.stages[arm].run))
           for arm in ("width", "depth")]
  assert abs(sizes[0] - sizes[1]) < 0.01 * sizes[1]
  assert prune.student_config(config.stages.depth.run).pattern == "MM*M-"
  config = configs["group_aware_pruning"]
  assert [config.stages[arm].run.prune.group_aware
          for arm in ("group_aware", "ignore_groups")] == [True, False]


def test_genselect_arms_judge_one_models_samples_two_ways():
  config = genselect.get_config()
  claims.check(config)
  # One stage, one evaluation: the arms differ only in the figure compared.
  assert set(config.arms.values()) == {"selector"} and not config.arm_eval
  assert {arm: claims.arm_metric(config, arm) for arm in config.arms} == {
      "genselect": "genselect@8", "majority": "maj@8"}
  assert (config.eval.samples, config.eval.genselect) == (8, genselect.CANDIDATES)
  for fast in (False, True):
    assert len(set(claims.arm_tokens(config, fast).values())) == 1
  # The selector's records come from the base's samples of seed problems that are
  # neither evaluated nor gated on (decontaminated against both), beside the task data.
  run = config.stages.selector.run
  assert run.sft.synthesis.kind == "selector" and run.sft.records
  assert config.stages.selector.after == "base" and config.stages.base.shared
  evaluated = {config.eval.records, config.claim.gate.eval.records}
  assert set(run.sft.synthesis.eval_records) == evaluated
  seeds = {r["question"] for r in sources.read_records(run.sft.synthesis.problems)}
  task = {r["question"] for r in sources.read_records(run.sft.records)}
  for path in evaluated:
    held_out = {r["question"] for r in sources.read_records(path)}
    assert not held_out & (seeds | task)
  # Selector prompts of n summaries of samples as long as the budget fit a row whole.
  assert run.sft.whole_conversations and run.train.seq_len >= 384
  assert config.claim.gate.stages == ("selector",) and config.claim.gate.metric == "pass@8"


def test_arm_metric_is_checked_and_recorded_per_arm():
  config = genselect.get_config()
  config.arm_metric = {"nobody": "maj@8"}
  with pytest.raises(run_config.ConfigError, match="arm_metric.nobody: no such arm"):
    claims.check(config)
  config = genselect.get_config()
  config.eval.genselect = 0
  with pytest.raises(run_config.ConfigError,
                     match="arm_metric.genselect='genselect@8' needs eval.genselect > 0"):
    claims.check(config)
  config = genselect.get_config()
  config.arm_metric.genselect = "genselect@4"
  with pytest.raises(run_config.ConfigError, match="needs eval.samples=4, not 8"):
    claims.check(config)
  config = genselect.get_config()
  config.claim.gate.eval.samples = 0
  with pytest.raises(run_config.ConfigError,
                     match="claim.gate.metric='pass@8' needs claim.gate.eval.samples > 0"):
    claims.check(config)
  # Compared per arm: each arm's own figure, the pair recorded with the comparison.
  arms = {"a": {"x": {"values": [0.5, 0.6]}, "y": {"values": [0.0, 0.0]}},
          "b": {"x": {"values": [0.9, 0.9]}, "y": {"values": [0.1, 0.2]}}}
  (comparison,) = claims.compare(arms, "y", [("a", "b")], metrics={"a": "x"})
  assert comparison["metrics"] == ["x", "y"]
  assert comparison["differences"] == pytest.approx([0.4, 0.4])


def test_a_claim_compares_each_arms_own_figure_end_to_end(tmp_path):
  """Two arms on one tiny stage, one greedy and one sampled figure of the same
  evaluation: the summary, the untrained baseline and the log use each arm's own."""
  data = tmp_path / "data.txt"
  data.write_text("".join(f"What is {a} + 2?\n{a + 2}\n\n" for a in range(40)))
  records = tmp_path / "records.jsonl"
  records.write_text("".join(json.dumps({"question": f"What is {a} + 2?", "answer": str(a + 2)})
                             + "\n" for a in range(4)))
  section = common.eval_section(str(records), template="text", max_new_tokens=4,
                                batch_size=8, samples=2)
  config = common.claim(
      "toy", seeds=(0,), fast_seeds=(0,), metric="pass@1", comparisons=[("greedy", "voted")],
      stages={"base": common.stage(_tiny_run(data), steps=2, shared=True)},
      arms={"greedy": "base", "voted": "base"}, arm_metric={"voted": "maj@2"},
      eval_section=section,
      gate=common.gate(stages=("base",), metric="pass@2", threshold=0.0, skill="any"),
      chance=None)
  config.cache_dir = str(tmp_path / "cache")
  lines = []
  summary = claims.run(config, str(tmp_path / "claim"), lines.append)
  assert summary["arm_metric"] == {"greedy": "pass@1", "voted": "maj@2"}
  (comparison,) = summary["comparisons"]
  assert comparison["metrics"] == ["pass@1", "maj@2"]
  greedy, voted = summary["arms"]["greedy"], summary["arms"]["voted"]
  assert greedy == voted   # one evaluation, read back for the second arm
  assert comparison["difference"] == pytest.approx(
      greedy["pass@1"]["mean"] - voted["maj@2"]["mean"])
  untrained = summary["baselines"]["untrained"]["arms"]
  assert set(untrained) == {"greedy", "voted"}
  assert any(line.startswith("voted: maj@2 ") for line in lines), lines
  assert (tmp_path / "claim" / "toy.png").exists()


def test_compare_gives_the_paired_student_t_interval_over_seeds():
  arms = {"a": {"m": {"values": [2.0, 4.0, 6.0]}}, "b": {"m": {"values": [1.0, 2.0, 3.0]}}}
  (comparison,) = claims.compare(arms, "m", [("a", "b")])
  # Differences 1, 2, 3: mean 2, sample standard deviation 1, t(0.975, 2) = 4.303.
  half = 4.303 / math.sqrt(3)
  assert comparison["differences"] == [1.0, 2.0, 3.0] and comparison["wins"] == 3
  assert comparison["difference"] == pytest.approx(2.0)
  assert comparison["interval"] == pytest.approx([2 - half, 2 + half], abs=1e-3)
  assert comparison["verdict"] == "not shown"      # the interval covers 0


@pytest.mark.parametrize("better, worse, verdict", [
    ([0.5, 0.6, 0.7, 0.6, 0.5], [0.1, 0.2, 0.1, 0.2, 0.1], "holds"),
    ([0.1, 0.2, 0.1, 0.2, 0.1], [0.5, 0.6, 0.7, 0.6, 0.5], "contradicted"),
    ([0.5, 0.1, 0.6, 0.1, 0.5], [0.1, 0.5, 0.2, 0.6, 0.2], "not shown"),
    ([0.3, 0.3], [0.1, 0.1], "holds"),            # no spread: the interval is the point
    ([0.2, 0.2], [0.2, 0.2], "not shown"),
    ([0.9], [0.1], "not shown")])                 # one seed: no interval
def test_comparison_verdicts(better, worse, verdict):
  arms = {"a": {"m": {"values": better}}, "b": {"m": {"values": worse}}}
  (comparison,) = claims.compare(arms, "m", [("a", "b")])
  assert comparison["verdict"] == verdict, comparison
  assert (comparison["interval"] is None) == (len(better) == 1)
  (gated,) = claims.compare(arms, "m", [("a", "b")], gate_passed=False)
  assert gated["verdict"] == "untestable"


def test_a_loss_is_better_when_lower_in_comparisons_and_the_gate():
  arms = {"a": {"loss/valid": {"values": [1.0, 1.1, 1.2]}},
          "b": {"loss/valid": {"values": [2.0, 2.2, 2.1]}}}
  (comparison,) = claims.compare(arms, "loss/valid", [("a", "b")])
  assert comparison["differences"] == pytest.approx([1.0, 1.1, 0.9])
  assert comparison["verdict"] == "holds" and comparison["wins"] == 3
  (reverse,) = claims.compare(arms, "loss/valid", [("b", "a")])
  assert reverse["verdict"] == "contradicted"
  gate = common.gate(stages=("base",), metric="loss/valid", threshold=1.5, skill="text")
  assert claims.gate_summary(gate, {"base": [1.5, 0.9]})["passed"]
  assert not claims.gate_summary(gate, {"base": [1.4, 1.6]})["passed"]


@pytest.mark.parametrize("better,verdict", [
    ([0.50, 0.49, 0.51, 0.50], "holds"),          # level: within the margin
    ([0.47, 0.46, 0.48, 0.47], "not shown"),      # the interval covers -margin
    ([0.40, 0.41, 0.39, 0.40], "contradicted"),   # worse by more than the margin
])
def test_a_margin_makes_a_non_inferiority_comparison(better, verdict):
  arms = {"a": {"pass@1": {"values": better}}, "b": {"pass@1": {"values": [0.5] * 4}}}
  (comparison,) = claims.compare(arms, "pass@1", [("a", "b", 0.03)])
  assert comparison["margin"] == 0.03 and comparison["verdict"] == verdict, comparison
  (strict,) = claims.compare(arms, "pass@1", [("a", "b")])
  assert strict["verdict"] != "holds"
  with pytest.raises(run_config.ConfigError, match="margin"):
    claims.compare(arms, "pass@1", [("a", "b", -0.1)])


def test_a_completion_length_is_better_when_shorter():
  assert claims.lower_is_better("length") and claims.lower_is_better("correct_length")
  assert not claims.lower_is_better("pass@1")
  arms = {"short": {"length": {"values": [20.0, 21.0, 19.0]}},
          "long": {"length": {"values": [30.0, 32.0, 31.0]}}}
  (comparison,) = claims.compare(arms, "length", [("short", "long")])
  assert comparison["verdict"] == "holds" and comparison["wins"] == 3


def test_a_teacher_stage_trains_first_and_keys_its_student(tmp_path):
  data = tmp_path / "data.txt"
  data.write_text("What is 1 + 2?\n3\n\n")
  student = _tiny_run(data)
  student.teacher = {"checkpoint": "", "model": student.model}
  pipeline = {"teacher": common.stage(_tiny_run(data), steps=2, shared=True),
              "student": common.stage(student, steps=2, teacher="teacher")}
  resolved = stages.resolve(pipeline, ["student"], "/c", seed=1, fast=False)
  assert list(resolved) == ["teacher", "student"]
  assert resolved["student"].run.teacher.checkpoint == resolved["teacher"].directory
  assert not resolved["student"].run.init_checkpoint
  # The untrained student (a claim's baseline) has its teacher too: a student's shape
  # may depend on the teacher's weights.
  untrained = stages.untrained(pipeline, "student", "/c", resolved)
  assert untrained.run.teacher.checkpoint == resolved["teacher"].directory
  assert untrained.run.train.steps == 0
  key = resolved["student"].key
  pipeline["teacher"].run.train.log_every += 1           # another teacher, another student
  assert stages.resolve(pipeline, ["student"], "/c", seed=1, fast=False)["student"].key != key
  pipeline["teacher"].shared = False
  pipeline["student"].shared = True
  with pytest.raises(run_config.ConfigError, match="student is shared but is taught by"):
    stages.check_shared(pipeline)
  pipeline["student"].teacher = "nobody"
  with pytest.raises(run_config.ConfigError, match="teacher='nobody' is not a stage"):
    stages.check_shared(pipeline)


def test_claim_verdict_and_the_gate():
  holds, shown, against = ({"verdict": v} for v in ("holds", "not shown", "contradicted"))
  assert claims.claim_verdict([holds, holds], True) == "holds"
  assert claims.claim_verdict([holds, shown], True) == "not shown"
  assert claims.claim_verdict([holds, against, shown], True) == "contradicted"
  assert claims.claim_verdict([holds, holds], False) == "untestable"
  gate = common.gate(stages=("base",), metric="pass@1", threshold=0.5, skill="sums")
  assert claims.gate_summary(gate, {"base": [0.5, 0.9]})["passed"]
  failed = claims.gate_summary(gate, {"base": [0.9, 0.4]})
  assert not failed["passed"] and failed["values"] == {"base": [0.9, 0.4]}


def test_most_frequent_answer_baseline_checks_answers_as_the_checker_does():
  mcq = [{"answer": "B", "kind": "mcq"}, {"answer": " B", "kind": "mcq"},
         {"answer": "A", "kind": "mcq"}]
  assert claims.most_frequent(mcq) == {"answer": "B", "accuracy": pytest.approx(2 / 3)}
  open_ = [{"answer": "The key.", "kind": "open"}, {"answer": "key", "kind": "open"},
           {"answer": "nothing", "kind": "open"}]
  assert claims.most_frequent(open_)["answer"] == "key"
  math_ = [{"answer": "-3"}, {"answer": "- 3"}, {"answer": "3"}, {"answer": "12"}]
  assert claims.most_frequent(math_) == {"answer": "-3", "accuracy": 0.5}


def test_claim_checks_its_gate_and_shared_stages():
  config = long_cot.get_config()
  config.claim.gate.stages = ("nowhere",)
  with pytest.raises(run_config.ConfigError, match="gate.stages names 'nowhere'"):
    claims.check(config)
  config = long_cot.get_config()
  config.claim.gate.metric = ""
  with pytest.raises(run_config.ConfigError, match="claim.gate: metric"):
    claims.check(config)
  config = long_cot.get_config()
  config.stages.base.shared = False
  config.stages.sft_long.shared = True
  with pytest.raises(run_config.ConfigError, match="sft_long is shared but starts after"):
    claims.check(config)


def test_plot_shows_seeds_intervals_baselines_and_the_gate(tmp_path):
  for seeds, chance in (([0, 1, 2], 0.1), ([0], None)):
    values = [[0.2, 0.3, 0.25][:len(seeds)], [0.1, 0.15, 0.1][:len(seeds)]]
    arms = {arm: {"m": {"values": v}} for arm, v in zip(("a", "b"), values)}
    summary = {"claim": "toy", "metric": "m", "arm_metric": {"a": "m", "b": "m"},
               "seeds": seeds, "fast": len(seeds) == 1,
               "arms": arms, "verdict": "not shown",
               "gate": {"metric": "pass@1", "threshold": 0.5,
                        "values": {"base": [0.7] * len(seeds)}},
               "baselines": {"chance": chance,
                             "most_frequent": {"answer": "3", "accuracy": 0.05},
                             "untrained": {"arms": {"a": 0.0, "b": 0.01}}}}
    claims.plot(summary, str(tmp_path / "toy.png"))
    assert (tmp_path / "toy.png").stat().st_size > 1000


def _tiny_run(data):
  """A 2-step pretraining run of the claim model on the text file ``data``."""
  run = common.pretrain({"chain_sums.txt": 1.0}, seq_len=32, batch=8, learning_rate=1e-3,
                       constant=True)
  run.data.sources.chain_sums.path = str(data)
  return run


def test_stage_keys_follow_config_data_and_code_not_eval(tmp_path, monkeypatch):
  data = tmp_path / "data.txt"
  data.write_text("What is 1 + 2?\n3\n\nWhat is 2 + 2?\n4\n")
  pipeline = {"base": common.stage(_tiny_run(data), steps=2, shared=True),
              "sft": common.stage(_tiny_run(data), steps=2, after="base")}
  keys = lambda seed=0: {name: stage.key for name, stage in stages.resolve(
      pipeline, ["sft"], str(tmp_path / "cache"), seed=seed, fast=False).items()}
  first = keys()
  assert keys() == first and len(set(first.values())) == 2
  # A shared stage is one entry for every seed; the stages after it are per seed.
  assert keys(seed=1)["base"] == first["base"] and keys(seed=1)["sft"] != first["sft"]
  resolved = stages.resolve(pipeline, ["sft"], "/c", seed=1, fast=False)
  assert resolved["base"].run.train.seed == 0 and resolved["sft"].run.train.seed == 1
  assert resolved["base"].files[str(data)] == stages.file_sha256(str(data))
  assert resolved["base"].run.data.tokenizer_path in resolved["base"].files
  pipeline["base"].run.eval.max_new_tokens += 1          # evaluation is not training
  assert keys() == first
  pipeline["base"].run.train.log_every += 1              # any other field is
  changed = keys()
  assert changed["base"] != first["base"] and changed["sft"] != first["sft"]
  pipeline["base"].run.train.log_every -= 1
  data.write_text("What is 1 + 1?\n2\n")
  assert keys()["base"] != first["base"]
  changed = keys()
  monkeypatch.setattr(stages, "code_version", lambda: "another version")
  assert keys()["base"] != changed["base"]


def test_a_stage_trains_once_then_is_read_back_with_its_evaluations(tmp_path):
  data = tmp_path / "data.txt"
  data.write_text("".join(f"What is {a} + 2?\n{a + 2}\n\n" for a in range(40)))
  records = tmp_path / "records.jsonl"
  records.write_text("".join(json.dumps({"question": f"What is {a} + 2?", "answer": str(a + 2)})
                             + "\n" for a in range(4)))
  pipeline = {"base": common.stage(_tiny_run(data), steps=2)}
  cache = str(tmp_path / "cache")
  base = stages.resolve(pipeline, ["base"], cache, seed=0, fast=False)["base"]
  lines = []
  assert stages.train(base, lines.append) > 0
  checkpoint = os.path.join(base.directory, "checkpoints", "2")
  written = os.stat(checkpoint).st_mtime_ns
  assert stages.train(base, lines.append) == 0.0 and "read back" in lines[-1]
  assert os.stat(checkpoint).st_mtime_ns == written
  with open(os.path.join(base.directory, "stage.json")) as f:
    recorded = json.load(f)
  assert (recorded["key"], recorded["files"]) == (base.key, base.files)
  assert recorded["code_version"] == stages.code_version()
  section = common.eval_section(str(records), template="text", max_new_tokens=4,
                                batch_size=8)
  figures, seconds = stages.evaluate(base, section, lines.append)
  assert seconds > 0 and 0.0 <= figures["pass@1"] <= 1.0
  assert stages.evaluate(base, section, lines.append) == (figures, 0.0)
  untrained = stages.untrained(pipeline, "base", cache)
  assert untrained.key != base.key and untrained.run.train.steps == 0
  assert 0.0 <= stages.evaluate(untrained, section, lines.append)[0]["pass@1"] <= 1.0
  stages.link(base, str(tmp_path / "claim" / "seed0" / "base"))
  assert os.path.realpath(tmp_path / "claim" / "seed0" / "base") == base.directory
  data.write_text("What is 1 + 1?\n2\n")
  again = stages.resolve(pipeline, ["base"], cache, seed=0, fast=False)["base"]
  os.makedirs(again.directory)     # an attempt killed before it saved anything
  with open(os.path.join(again.directory, "metrics.jsonl"), "w") as f:
    f.write(json.dumps({"step": 1, "loss": 7.0}) + "\n")
  assert again.key != base.key and stages.train(again, lines.append) > 0
  assert os.path.isdir(os.path.join(again.directory, "checkpoints", "2"))


@pytest.mark.xdist_group("fast_claims")
def test_fast_long_cot_claim(fast_claims):
  workdir, summary = fast_claims["long_cot"]
  assert summary["claim"] == "long_cot" and summary["fast"] and summary["seeds"] == [0]
  assert os.path.exists(os.path.join(workdir, "long_cot.png"))
  long, short = summary["arms"]["long_cot"], summary["arms"]["short"]
  assert long["tokens_seen"] == short["tokens_seen"]
  (comparison,) = summary["comparisons"]
  assert comparison["difference"] == pytest.approx(
      long["pass@1"]["mean"] - short["pass@1"]["mean"])
  # One seed: no interval, so no verdict but 'not shown' (or 'untestable').
  assert comparison["interval"] is None and comparison["verdict"] in ("not shown", "untestable")
  _assert_claim_record(summary, gate_stages=["base"])
  # The shared base passes its gate with room; the untrained model is far below it.
  gate, untrained = summary["gate"], summary["baselines"]["untrained"]
  assert gate["passed"] and untrained["gate"] < gate["threshold"] / 2, (gate, untrained)
  assert summary["baselines"]["chance"] is None
  assert summary["stages"]["base"]["shared"] and summary["times"]["per_seed_s"].keys() == {"0"}
  # What holds with room at this scale: 20 long solutions make the model work the sum
  # out line by line (~36 tokens), 20 short ones make it answer at once (~6 tokens).
  assert long["length"]["mean"] > short["length"]["mean"] + 15, summary
  print(f"fast long_cot: pass@1 long {long['pass@1']['mean']:.3f} vs short "
        f"{short['pass@1']['mean']:.3f}")


@pytest.mark.xdist_group("fast_claims")
def test_fast_rlp_claim(fast_claims):
  workdir, summary = fast_claims["rlp"]
  assert set(summary["arms"]) == {"rlp", "cpt", "rlp_post", "cpt_post"}
  tokens = {arm: figures["tokens_seen"] for arm, figures in summary["arms"].items()}
  assert tokens["rlp"] == tokens["cpt"] < tokens["rlp_post"] == tokens["cpt_post"]
  with open(os.path.join(workdir, "seed0", "rlp", "metrics.jsonl")) as f:
    assert all("reward_mean" in json.loads(line) for line in f)
  for figures in summary["arms"].values():
    assert 0.0 <= figures["sample_accuracy"]["mean"] <= 1.0
  _assert_claim_record(summary, gate_stages=["base"])
  # At this scale every arm is near chance (0.1, one digit; configs/claims/README.md):
  # the sign is noise, so none is asserted.
  print("fast rlp:", {c["better"] + " - " + c["worse"]: round(c["difference"], 3)
                      for c in summary["comparisons"]})


def _assert_claim_record(summary, gate_stages):
  """The verdict, gate, baselines and times every claim's summary.json records."""
  assert summary["statistic"] == claims.STATISTIC and summary["verdict"] in claims.VERDICTS
  assert summary["holds"] == (summary["verdict"] == "holds")
  gate = summary["gate"]
  assert gate["stages"] == gate_stages and set(gate["values"]) == set(gate_stages)
  assert all(0.0 <= v <= 1.0 for values in gate["values"].values() for v in values)
  assert (summary["verdict"] == "untestable") == (not gate["passed"])
  baselines = summary["baselines"]
  assert 0.0 < baselines["most_frequent"]["accuracy"] <= 1.0
  assert set(baselines["untrained"]["arms"]) == set(summary["arms"])
  assert all(0.0 <= v <= 1.0 for v in [*baselines["untrained"]["arms"].values(),
                                       baselines["untrained"]["gate"]])
  times = summary["times"]
  assert times["total_s"] >= times["shared_s"] + sum(times["per_seed_s"].values()) - 1
  assert len(summary["code_version"]) == 64


def _run_claim(name, workdir, *flags, timeout=900):
  result = subprocess.run(
      [sys.executable, "-m", "train.main", f"--config=configs/claims/{name}.py",
       f"--workdir={workdir}", *flags], check=False, cwd=cli_runs.ROOT, env=cli_runs.env(1),
      capture_output=True, text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / "summary.json") as f:
    return json.load(f), result.stdout


# The fast claims below are slow (4-5 minutes each here): the default run keeps the two
# the notebook reads back (`fast_claims`) and the toy claims above, which run the same
# framework end to end in seconds.
@pytest.mark.slow
@pytest.mark.parametrize("name, arms, gate_stages, kinds", [
    ("front_loading", {"front_loaded", "late", "narrow"}, ["general_sft"], 4),
    ("code_entity_tracking", {"code", "text"}, ["base"], 4)])
def test_fast_claim_pipeline(name, arms, gate_stages, kinds, fast_claim):
  """The fast claims: every arm on equal tokens, evaluated per kind. At this scale their
  sign is not asserted (configs/claims/README.md)."""
  workdir, summary = fast_claim(name)
  assert summary["claim"] == name and summary["seeds"] == [0] and set(summary["arms"]) == arms
  assert len({figures["tokens_seen"] for figures in summary["arms"].values()}) == 1
  for figures in summary["arms"].values():
    assert 0.0 <= figures["pass@1"]["mean"] <= 1.0
    assert len([f for f in figures if f.startswith("pass@1/")]) == kinds, figures
  _assert_claim_record(summary, gate_stages=gate_stages)
  assert (workdir / f"{name}.png").exists()
  print(f"fast {name}:", {c["better"] + " - " + c["worse"]: round(c["difference"], 3)
                          for c in summary["comparisons"]})


@pytest.mark.slow
def test_fast_crossthink_claim_pipeline(fast_claim):
  """The fast crossthink claim: its arms on equal tokens, the SFT base beside them, the
  plot; the sign is not asserted."""
  workdir, summary = fast_claim("crossthink")
  assert summary["claim"] == "crossthink" and summary["seeds"] == [0]
  assert set(summary["arms"]) == {"sft", *crossthink.ARMS}
  assert {(c["better"], c["worse"]) for c in summary["comparisons"]} == {
      ("blend", "math_only"), ("open", "mcq")}
  assert isinstance(summary["holds"], bool)
  assert len({summary["arms"][arm]["tokens_seen"] for arm in crossthink.ARMS}) == 1
  for figures in summary["arms"].values():
    assert 0.0 <= figures["pass@1"]["mean"] <= 1.0 and "correct_length" in figures
  _assert_claim_record(summary, gate_stages=["sft"])
  assert (workdir / "crossthink.png").exists()
  print("fast crossthink:", {arm: round(f["pass@1"]["mean"], 3)
                             for arm, f in summary["arms"].items()})


@pytest.mark.slow
def test_fast_synthesis_filter_claim(fast_claim):
  """The fast synthesis_filter claim (slow: its teacher is the full 600-step base):
  both arms train on as many synthesised solutions, the filtered one on right ones
  only, the unfiltered one on the teacher's slips too; the sign is not asserted."""
  workdir, summary = fast_claim("synthesis_filter")
  assert summary["seeds"] == [0] and set(summary["arms"]) == {"filtered", "unfiltered"}
  assert len({figures["tokens_seen"] for figures in summary["arms"].values()}) == 1
  _assert_claim_record(summary, gate_stages=["base"])
  right = {}
  for arm in ("filtered", "unfiltered"):
    records = sources.read_records(str(workdir / "seed0" / f"sft_{arm}" / sft.SYNTHESIZED))
    assert len(records) == synthesis_filter.MAX_SOLUTIONS
    right[arm] = sum(r["provenance"]["filters"]["answer"] == "kept" for r in records)
  assert right["filtered"] == synthesis_filter.MAX_SOLUTIONS > right["unfiltered"] > 0
  print("fast synthesis_filter:", {arm: round(f["pass@1"]["mean"], 3)
                                   for arm, f in summary["arms"].items()},
        "right solutions:", right)


@pytest.mark.slow
def test_fast_tir_claim(fast_claims, fast_claim):
  """The fast tir claim: the SFT'd model calls the sandbox on every held-out product and
  answers some of them; long multiplication in the text answers fewer."""
  try:
    sandbox.check()
  except sandbox.SandboxUnavailable as error:
    pytest.skip(f"this machine cannot sandbox the tool's code: {error}")
  workdir, summary = fast_claim("tir")
  assert summary["seeds"] == [0] and set(summary["arms"]) == {"tir", "cot"}
  assert len({figures["tokens_seen"] for figures in summary["arms"].values()}) == 1
  _assert_claim_record(summary, gate_stages=["base"])
  tir, cot = summary["arms"]["tir"], summary["arms"]["cot"]
  assert tir["tool_calls"]["mean"] > 0.9 and tir["tool_failures"]["mean"] < 0.1
  assert "tool_calls" not in cot
  # The sign only: the full claim's seeds range 0.04-0.77 (configs/claims/README.md).
  assert tir["pass@1"]["mean"] > cot["pass@1"]["mean"]
  print("fast tir:", {arm: round(f["pass@1"]["mean"], 3) for arm, f in summary["arms"].items()})


@pytest.mark.slow
def test_fast_genselect_claim(fast_claim):
  """The fast genselect claim (slow: ~10 minutes on 2 busy cores): one selector stage
  whose samples both arms judge, GenSelect against the majority; the sign is not
  asserted."""
  workdir, summary = fast_claim("genselect")
  assert summary["seeds"] == [0] and set(summary["arms"]) == {"genselect", "majority"}
  assert summary["arm_metric"] == {"genselect": "genselect@8", "majority": "maj@8"}
  genselect_arm, majority = summary["arms"]["genselect"], summary["arms"]["majority"]
  assert genselect_arm == majority   # one evaluation of one model
  (comparison,) = summary["comparisons"]
  assert comparison["metrics"] == ["genselect@8", "maj@8"]
  assert comparison["difference"] == pytest.approx(
      majority["genselect@8"]["mean"] - majority["maj@8"]["mean"])
  _assert_claim_record(summary, gate_stages=["selector"])
  assert majority["maj@8"]["mean"] <= majority["pass@8"]["mean"]
  assert 0.0 <= majority["genselect_invalid"]["mean"] <= 1.0
  records = sources.read_records(str(workdir / "seed0" / "selector" / sft.SYNTHESIZED))
  assert records and all(r["answer"].splitlines()[-1].startswith("Judgment: ")
                         for r in records)
  print("fast genselect:", {f: round(majority[f]["mean"], 3) for f in (
      "genselect@8", "maj@8", "pass@8", "genselect_invalid", "genselect_fallback")})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["prune_distill", "group_aware_pruning", "width_vs_depth",
                                  "puzzle"])
def test_fast_compression_claim(name, fast_claim):
  """The fast compression claims (slow: 2-5 minutes each on 2 busy cores): a teacher
  that passes the gate, students scored by held-out loss (lower is better) against the
  untrained ln(1024), and every arm's decoding timed."""
  _, summary = fast_claim(name)
  assert summary["seeds"] == [0] and summary["metric"] == "loss/english"
  assert summary["gate"]["passed"] and summary["verdict"] == "not shown"   # one seed
  untrained = summary["baselines"]["untrained"]["arms"]
  for arm, figures in summary["arms"].items():
    assert figures["loss/english"]["mean"] < untrained[arm] - 1.0
    assert figures["decode_tokens_per_s"]["mean"] > 0
  (comparison,) = summary["comparisons"]
  better, worse = (summary["arms"][arm]["loss/english"]["mean"]
                   for arm in (comparison["better"], comparison["worse"]))
  assert comparison["difference"] == pytest.approx(worse - better)
  if name == "prune_distill":   # pruned 0.91 vs scratch 5.08 on 2026-12-06
    assert comparison["difference"] > 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["long_cot", "rlp", "front_loading", "code_entity_tracking",
                                  "crossthink", "synthesis_filter", "tir", "genselect",
                                  "prune_distill", "group_aware_pruning", "width_vs_depth",
                                  "puzzle"])
def test_full_claim(name, tmp_path):
  """The full claim (5 seeds, under ~30 minutes each); prints its verdict."""
  summary, stdout = _run_claim(name, tmp_path, timeout=1800)
  assert summary["seeds"] == [0, 1, 2, 3, 4] and (tmp_path / f"{name}.png").exists()
  print(stdout.splitlines()[-1])


def build_numbers(directory, *, count):
  """A dataset builder for the test below (named by import path in the config)."""
  with open(os.path.join(directory, "numbers.txt"), "w") as f:
    f.write("\n\n".join(str(i) for i in range(count)) + "\n")
  with open(os.path.join(os.path.dirname(directory), "builds.txt"), "a") as f:
    f.write("built\n")
  return {"documents": count}


def test_datasets_are_built_once_per_content_and_name_their_files(tmp_path):
  section = run_config.ml_collections.ConfigDict(
      dict(build="test_claims:build_numbers", args=dict(count=3)))
  directory, figures = stages.build_dataset("numbers", section, str(tmp_path))
  assert figures == {"documents": 3}
  assert open(os.path.join(directory, "numbers.txt")).read() == "0\n\n1\n\n2\n"
  assert stages.build_dataset("numbers", section, str(tmp_path)) == (directory, figures)
  section.args.count = 4                                  # other content, another entry
  other, _ = stages.build_dataset("numbers", section, str(tmp_path))
  assert other != directory
  assert open(tmp_path / "datasets" / "builds.txt").read().split() == ["built", "built"]
  config = {"data": {"path": "dataset:numbers/numbers.txt", "list": ["dataset:numbers/x", 1]}}
  assert stages.with_datasets(config, {"numbers": directory}) == {
      "data": {"path": os.path.join(directory, "numbers.txt"),
               "list": [os.path.join(directory, "x"), 1]}}
  with pytest.raises(run_config.ConfigError, match="data.path='dataset:nope/a': no dataset"):
    stages.with_datasets({"data": {"path": "dataset:nope/a"}}, {"numbers": directory})
  with pytest.raises(ValueError, match="datasets.numbers.build='nomodule:f'"):
    section.build = "nomodule:f"
    stages.build_dataset("numbers", section, str(tmp_path))


def test_cc_math_claim_arms_differ_only_in_their_corpus():
  from configs.claims import cc_math_extraction  # pylint: disable=g-import-not-at-top
  config = cc_math_extraction.get_config()
  extracted, plain = (config.stages[n].run.to_dict() for n in ("extracted", "plain"))
  assert extracted["data"]["sources"]["pages"]["path"] == "dataset:cc_math/extracted.jsonl"
  plain["data"]["sources"]["pages"]["path"] = "dataset:cc_math/extracted.jsonl"
  assert extracted == plain
  claims.check(run_config.ml_collections.ConfigDict(stages.with_datasets(
      config.to_dict(), {"cc_math": "/built"})))


@pytest.mark.slow
def test_fast_cc_math_extraction_claim(fast_claim):
  """The fast cc_math_extraction claim: the corpora built through the cc_math pipeline,
  both arms pretrained on them and gated; the extraction recovers every equation."""
  _, summary = fast_claim("cc_math_extraction")
  figures = summary["datasets"]["cc_math"]["figures"]
  assert figures["equations_recovered"]["extracted"] == 1.0
  assert figures["equations_recovered"]["plain"] < 0.5
  assert set(summary["arms"]) == {"extracted", "plain"} and summary["gate"]["passed"]
