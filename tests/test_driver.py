"""The one driver from the command line: every loop's record of a run, a finished run
left alone, exact resume after SIGKILL, SIGTERM preemption, the non-finite guard, configs
run by the wrong loop, a resume with changed settings refused or put on record."""

import asyncio
import json
import os
import shutil
import signal

import pytest
from absl import flags
from ml_collections import config_flags

from cli_runs import COMMON, LOOPS, STEPS, by_step, one_line, records, run
from configs import grpo as grpo_config
from configs import tiny_hybrid
from train import config as run_config
from train import driver

@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_every_loop_runs_from_the_one_cli_and_records_the_run(loop, reference_run):
  workdir, result = reference_run(loop)
  config = json.load(open(workdir / "config.json"))
  assert config.get("loop", "pretrain") == loop and config["num_params"] > 0
  assert config["model_resolved"]["pattern"]
  logged = records(workdir)
  assert [r["step"] for r in logged] == list(range(1, STEPS + 1))
  if loop in ("pretrain", "sft", "distill"):   # supervised: the loss falls
    assert logged[-1]["loss"] < logged[0]["loss"]
  assert {"loss", "grad_norm", "learning_rate"} <= set(logged[-1])
  (evaluation,) = records(workdir, "eval")
  assert evaluation["step"] == STEPS
  assert any(k.startswith("loss/") or k == "pass@1" for k in evaluation)
  summary = json.load(open(workdir / "summary.json"))
  assert summary["loop"] == loop and summary["step"] == STEPS
  assert summary["train"]["loss"] == logged[-1]["loss"]
  assert summary["eval"] == {k: v for k, v in evaluation.items() if k != "step"}
  assert os.listdir(workdir / "tensorboard")
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "8"]
  assert f"step {STEPS}/{STEPS} | loss" in result["stdout"] and "ETA" in result["stdout"]


def contents(directory) -> dict[str, bytes]:
  """{path under ``directory``: bytes} of every file in it."""
  out = {}
  for root, _, names in os.walk(directory):
    for name in names:
      with open(os.path.join(root, name), "rb") as f:
        out[os.path.relpath(os.path.join(root, name), directory)] = f.read()
  return out


def test_rerunning_a_finished_run_does_nothing_and_says_so(reference_run, tmp_path):
  """No second evaluation, no duplicate records in eval.jsonl or TensorBoard."""
  workdir = tmp_path / "run"
  shutil.copytree(reference_run("pretrain")[0], workdir)
  before = contents(workdir)
  result = run("pretrain", workdir)
  assert result.returncode == 0 and not result.stderr.strip(), result.stderr[-3000:]
  assert result.stdout == (f"pretrain: finished already (step {STEPS} of {STEPS}); its "
                           f"summary is {workdir / 'summary.json'}; a larger "
                           "--config.train.steps trains on\n")
  assert contents(workdir) == before


@pytest.mark.parametrize("loop", ["pretrain", "sft", "grpo", "rlp"])
def test_sigkill_then_rerun_continues_exactly(loop, reference_run, tmp_path):
  """Killed after step 9 (checkpoints at 4 and 8, the newest perhaps still being
  written), rerun with the same command: every later step logs exactly what the
  uninterrupted run logged."""
  killed = run(loop, tmp_path, fault=("KILL", "9"))
  assert killed.returncode == -9, killed.stderr[-3000:]
  assert max(r["step"] for r in records(tmp_path)) == 9
  result = run(loop, tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  resumed_from = int(result.stdout.split("resuming at step ")[1].split()[0])
  assert resumed_from in (4, 8)
  expected, got = by_step(reference_run(loop)[0]), by_step(tmp_path)
  assert [r["step"] for r in records(tmp_path)] == list(range(1, STEPS + 1))  # no repeats
  for step in range(resumed_from + 1, STEPS + 1):
    assert got[step] == expected[step], step


def test_ctrl_c_during_a_libraries_asyncio_run_still_interrupts_the_run():
  """Orbax runs ``asyncio.run`` on the main thread; under Python's default SIGINT handler
  an interrupt arriving then only cancels its task, which may finish anyway."""

  async def save():   # a save that finishes what it started
    signal.raise_signal(signal.SIGINT)
    try:
      await asyncio.sleep(0.01)
    except asyncio.CancelledError:
      pass

  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    asyncio.run(save())   # the interrupt is lost
    with pytest.raises(KeyboardInterrupt):
      with driver._Signals():  # pylint: disable=protected-access
        asyncio.run(save())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  finally:
    signal.signal(signal.SIGINT, previous)


def test_sigterm_saves_at_the_step_boundary_and_exits_zero(reference_run, tmp_path):
  """SIGTERM right after step 6 is logged, which is while step 7 runs (a step that does
  not save is logged once the next one is queued): the run saves step 7."""
  preempted = run("distill", tmp_path, fault=("TERM", "6"))
  assert preempted.returncode == 0, preempted.stderr[-3000:]
  assert "preempted: saved step 7" in preempted.stdout
  assert "7" in os.listdir(tmp_path / "checkpoints")
  result = run("distill", tmp_path)
  assert result.returncode == 0 and "resuming at step 7" in result.stdout
  expected, got = by_step(reference_run("distill")[0]), by_step(tmp_path)
  for step in range(8, STEPS + 1):
    assert got[step] == expected[step], step


def test_a_diverging_run_stops_before_saving_the_bad_state(tmp_path):
  result = run("pretrain", tmp_path, "--config.optimizer.learning_rate=1e12",
               "--config.optimizer.grad_clip_norm=0", "--config.checkpoint.every_steps=1")
  assert result.returncode == 1
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith("error: step ") and ("is nan" in line or "is inf" in line), line
  bad_step = int(line.split()[2].rstrip(":"))
  saved = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints"))
  assert saved and max(saved) == bad_step - 1, (saved, bad_step)
  assert f"the last checkpoint is step {bad_step - 1}" in line
  # The last good checkpoint restores (a run of that many steps just evaluates it); its
  # weights, one step at learning rate 1e12 from the start, evaluate to a non-finite loss,
  # which stops the run naming the figure instead of recording it.
  rerun = run("pretrain", tmp_path, f"--config.train.steps={bad_step - 1}",
              "--config.optimizer.warmup_steps=0", "--allow_config_changes")
  assert f"resuming at step {bad_step - 1}" in rerun.stdout
  line = one_line(rerun)
  assert line.startswith(f"error: step {bad_step - 1}: evaluation figure loss/"), line


def test_a_config_for_another_loop_or_an_unknown_loop_stops_naming_the_field():
  config = grpo_config.get_config()
  config.loop = "pretrain"
  with pytest.raises(run_config.ConfigError, match="section 'grpo' is not read by loop "
                                                   "'pretrain'"):
    driver.check(config, 8)
  config = tiny_hybrid.get_config()
  config.loop = "dance"
  with pytest.raises(run_config.ConfigError, match="loop='dance' is not a registered loop"):
    driver.check(config, 8)
  config = tiny_hybrid.get_config()
  config.loop = "grpo"
  with pytest.raises(run_config.ConfigError, match="loop 'grpo' needs a config section "
                                                   "'grpo'"):
    driver.check(config, 8)


# ------------------------------------------------------------- a resume with changes


def cli_config(loop, *extra):
  """The run config of ``run(loop, workdir, *extra)``, parsed as train.main parses it."""
  argv = ["train.main"] + [
      f"--config={run_config.find_path(arg[len('--config='):])}"
      if arg.startswith("--config=") else arg for arg in (*LOOPS[loop], *COMMON, *extra)]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=flag_values, sys_argv=argv)
  flag_values(argv)
  return flag_values.config


def recorded(workdir, dotted):
  value = json.load(open(workdir / "config.json"))
  for name in dotted.split("."):
    value = value[name]
  return value


def test_a_resume_that_changes_the_trajectory_stops_naming_the_changes(reference_run,
                                                                        tmp_path):
  """Also a finished run; a change to what is evaluated or logged is not named."""
  workdir = tmp_path / "run"
  shutil.copytree(reference_run("pretrain")[0], workdir)
  before = contents(workdir)
  config = cli_config("pretrain", "--config.optimizer.learning_rate=1e-2",
                      "--config.train.seed=7", "--config.train.global_batch_size=16",
                      "--config.eval.max_text_rows=2", "--config.train.log_every=2")
  with pytest.raises(run_config.ConfigError) as error:
    driver.run(config, str(workdir))
  assert str(error.value) == (
      f"{workdir / 'config.json'} records a run with other settings: "
      f"optimizer.learning_rate {recorded(workdir, 'optimizer.learning_rate')!r} -> 0.01, "
      "train.global_batch_size 8 -> 16, train.seed "
      f"{recorded(workdir, 'train.seed')!r} -> 7; going on with them would change its "
      "trajectory. Use a new --workdir, or pass --allow_config_changes "
      "(driver.run(..., allow_changes=True)) to go on, recorded in config_history.jsonl")
  assert contents(workdir) == before


def test_allowed_changes_go_on_record_with_the_step_they_start_at(reference_run, tmp_path):
  """A finished run told to go on with another learning rate (and, free, no evaluation
  and no samples): the changes are recorded; the run is then finished again."""
  workdir = tmp_path / "run"
  shutil.copytree(reference_run("pretrain")[0], workdir)
  old_rate, prompts = (recorded(workdir, name)
                       for name in ("optimizer.learning_rate", "sample.prompts"))
  config = cli_config("pretrain", "--config.optimizer.learning_rate=1e-2",
                      "--config.eval.text_files={}", "--config.sample.prompts=()")
  assert driver.run(config, str(workdir), allow_changes=True)["step"] == STEPS
  (history,) = records(workdir, "config_history")
  changes = history.pop("changes")
  assert history["step"] == STEPS
  assert changes["optimizer.learning_rate"] == {"from": old_rate, "to": 1e-2}
  assert changes["sample.prompts"] == {"from": prompts, "to": []}
  assert {name.partition(".")[0] for name in changes} == {"eval", "optimizer", "sample"}
  assert recorded(workdir, "optimizer.learning_rate") == 1e-2
  assert "state" not in driver.run(config, str(workdir))   # finished: nothing to allow


def test_the_command_line_refuses_a_changed_run_in_one_line_and_trains_on_for_more_steps(
    reference_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(reference_run("pretrain")[0], workdir)
  before = contents(workdir)
  line = one_line(run("pretrain", workdir, "--config.optimizer.learning_rate=1e-2",
                      "--config.train.seed=7", f"--config.train.steps={STEPS + 1}"))
  assert line.startswith(f"error: {workdir / 'config.json'} records a run with other "
                         "settings: optimizer.learning_rate "), line
  assert line.endswith(" -> 7; going on with them would change its trajectory. Use a new "
                       "--workdir, or pass --allow_config_changes (driver.run(..., "
                       "allow_changes=True)) to go on, recorded in config_history.jsonl")
  assert contents(workdir) == before
  result = run("pretrain", workdir, f"--config.train.steps={STEPS + 1}",
               "--config.eval.text_files={}", "--config.sample.prompts=()")
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"resuming at step {STEPS}" in result.stdout
  assert [r["step"] for r in records(workdir)] == list(range(1, STEPS + 2))
  (history,) = records(workdir, "config_history")
  assert history["step"] == STEPS
  assert history["changes"]["train.steps"] == {"from": STEPS, "to": STEPS + 1}
