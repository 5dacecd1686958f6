"""Bad input and failures end a run with one clear line and an intact workdir: checks at
the door, a workdir lock, checkpoints that fall back, a fresh start that would drop an
earlier run's record refused, and every failure inside a run waiting for the save in
flight (a Ctrl-C as a save starts, a checkpoint directory that turns read-only)."""

import fcntl
import os
import shutil
import subprocess
import sys

import pytest

import faulty_run
from cli_runs import ROOT, env, one_line, records, run
from configs import tiny_hybrid
from train import cli
from train import config as run_config
from train import driver
from train import errors


def pretrain_config(**changes):
  """tiny_hybrid with ``changes`` ({'section.field' or 'field': value})."""
  config = tiny_hybrid.get_config()
  with config.unlocked():
    for dotted, value in changes.items():
      *sections, name = dotted.split(".")
      target = config
      for section in sections:
        target = target[section]
      target[name] = value
  return config


def fails_at_the_door(config, workdir) -> str:
  """The error ``driver.run`` stops with, as the command line prints it, asserting that
  it is a user error and that nothing was written."""
  with pytest.raises(cli.USER_ERRORS) as error:
    driver.run(config, str(workdir))
  assert not os.path.exists(workdir)
  return cli.one_line(error.value)


def steps_saved(workdir):
  return sorted(int(name) for name in os.listdir(workdir / "checkpoints") if name.isdigit())


# ------------------------------------------------------------- checks at the door


@pytest.mark.parametrize("field, value, message", [
    ("optimizer.learning_rate", -1e-3, "must be in [0, inf]"),
    ("optimizer.weight_decay", -0.1, "must be in [0, inf]"),
    ("optimizer.b2", 1.0, "must be in [0, 1)"),
    ("optimizer.warmup_steps", -5, "must be in [0, inf]"),
    ("checkpoint.every_steps", 0, "must be in [1, inf]"),
    ("checkpoint.max_to_keep", 0, "must be in [1, inf]"),
    ("train.grad_accum_steps", 0, "must be in [1, inf]"),
    ("eval.temperature", float("nan"), "must not be NaN"),
])
def test_every_number_is_checked_with_its_range(field, value, message):
  with pytest.raises(run_config.ConfigError) as error:
    driver.check(pretrain_config(**{field: value}), 8)
  assert str(error.value).startswith(f"{field}=") and str(error.value).endswith(message)


def test_the_command_line_prints_one_line_and_writes_nothing(tmp_path):
  line = one_line(run("pretrain", tmp_path / "a", "--config.optimizer.learning_rate=-1"))
  assert line == "error: optimizer.learning_rate=-1.0 must be in [0, inf]"
  line = one_line(run("pretrain", tmp_path / "b", "--config=configs/no_such_config.py"))
  assert line == "error: config file not found: configs/no_such_config.py"
  assert not os.listdir(tmp_path)


def test_bad_paths_and_files_are_named_before_anything_is_written(tmp_path):
  nowhere = tmp_path / "nowhere"
  assert fails_at_the_door(pretrain_config(init_checkpoint=str(nowhere)), tmp_path / "a") == (
      f"init_checkpoint={nowhere}: no such directory; train that run first or pass "
      "--config.init_checkpoint=<a run's workdir or a Hugging Face directory>")
  assert not nowhere.exists()
  missing = tmp_path / "no_such_corpus.txt"
  line = fails_at_the_door(pretrain_config(**{"data.sources.web.path": str(missing)}),
                           tmp_path / "b")
  assert str(missing) in line
  empty = tmp_path / "empty.jsonl"
  empty.write_text("")
  line = fails_at_the_door(pretrain_config(**{"data.sources.reasoning.path": str(empty)}),
                           tmp_path / "c")
  assert line == f"{empty}: no records (the file is empty or blank)"
  latin1 = tmp_path / "latin1.txt"
  latin1.write_bytes("first line\ncaf\xe9\n".encode("latin-1"))
  line = fails_at_the_door(pretrain_config(**{"data.sources.web.path": str(latin1)}),
                           tmp_path / "d")
  assert line == f"{latin1}:2: not UTF-8 text (byte 14: b'\\xe9')"
  broken_model = tmp_path / "tokenizer.model"
  broken_model.write_bytes(b"\x00\x01 not a model")
  line = fails_at_the_door(pretrain_config(**{"data.tokenizer_path": str(broken_model)}),
                           tmp_path / "e")
  assert line.startswith(f"{broken_model}: not a sentencepiece model")
  not_a_dir = tmp_path / "file"
  not_a_dir.write_text("")
  with pytest.raises(cli.USER_ERRORS, match=f"workdir {not_a_dir / 'run'} is not writable"):
    driver.run(pretrain_config(), str(not_a_dir / "run"))


# ------------------------------------------------------------------ the workdir


def test_a_busy_workdir_is_refused_naming_its_holder(tmp_path):
  with open(tmp_path / ".lock", "w") as lock:
    lock.write("pid 4242 on trainer-7 since 2026-12-01 10:00:00\n")
    lock.flush()
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    line = one_line(run("pretrain", tmp_path))
  assert line == (f"error: workdir {tmp_path} is in use by pid 4242 on trainer-7 since "
                  "2026-12-01 10:00:00; wait for that run to end or use another workdir")
  assert sorted(os.listdir(tmp_path)) == [".lock"]


def test_checkpoints_of_another_model_or_loop_are_named(reference_run, tmp_path):
  workdir, _ = reference_run("pretrain")
  line = one_line(run("pretrain", workdir, "--config.model.d_model=96",
                      "--allow_config_changes"))
  assert os.path.join(str(workdir), "checkpoints", "10") in line
  assert "params/embed" in line and "(1024, 128)" in line and "(1024, 96)" in line
  line = one_line(run("rlp", workdir, "--allow_config_changes"))
  assert "written by loop 'pretrain', this run is loop 'rlp'" in line
  assert f"init_checkpoint={workdir}" in line
  line = one_line(run("rlp", tmp_path, f"--config.init_checkpoint={workdir}"))
  assert "params/embed has shape (1024, 128) there but (1024, 64) in this model" in line


def test_a_changed_clipping_setting_resumes(reference_run, tmp_path):
  shutil.copytree(reference_run("pretrain")[0], tmp_path / "run")
  result = run("pretrain", tmp_path / "run", "--config.optimizer.grad_clip_norm=0",
               "--config.train.steps=11", "--allow_config_changes")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "resuming at step 10" in result.stdout


def test_a_damaged_newest_checkpoint_falls_back_quietly(reference_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(reference_run("pretrain")[0], workdir)
  os.remove(workdir / "summary.json")   # cut short after its last save: not finished
  step_dir = workdir / "checkpoints" / "10"
  files = [os.path.join(root, name) for root, _, names in os.walk(step_dir / "state")
           for name in names]
  largest = max(files, key=os.path.getsize)
  data = open(largest, "rb").read()
  open(largest, "wb").write(data[:len(data) // 2])
  result = run("pretrain", workdir)
  assert result.returncode == 0 and not result.stderr.strip(), result.stderr[:1500]
  assert f"warning: checkpoint {step_dir} does not restore" in result.stdout
  assert "resuming from the newest intact checkpoint, step 8" in result.stdout
  assert steps_saved(workdir) == [8, 10] and (workdir / "checkpoints" / "10.damaged").is_dir()


@pytest.mark.parametrize("left", ["metrics", "damaged"])
def test_a_fresh_start_that_would_drop_an_earlier_record_is_refused(tmp_path, left):
  """No checkpoint restores (none written, or all moved aside as damaged), but the workdir
  holds logged metrics or damaged checkpoints: starting from scratch would truncate the
  logs, so the run stops saying what is there and how to start over."""
  logged = '{"step": 3, "loss": 5.5}\n'
  if left == "metrics":
    (tmp_path / "metrics.jsonl").write_text(logged)
  else:
    (tmp_path / "checkpoints" / "4.damaged").mkdir(parents=True)
  with pytest.raises(errors.WorkdirError) as error:
    driver.run(pretrain_config(), str(tmp_path))
  held = ("metrics.jsonl records up to step 3" if left == "metrics" else
          f"damaged checkpoints 4.damaged in {tmp_path / 'checkpoints'}")
  assert str(error.value) == (
      f"workdir {tmp_path} holds {held} but no checkpoint to resume from; a fresh start "
      "would drop that record. To start over deliberately use a new --workdir, or remove "
      "metrics.jsonl, eval.jsonl and the damaged checkpoints")
  if left == "metrics":
    assert (tmp_path / "metrics.jsonl").read_text() == logged
  else:
    assert (tmp_path / "checkpoints" / "4.damaged").is_dir()


# ------------------------------------------------------------ failures inside a run


@pytest.mark.parametrize("fault, at_step, returncode, message", [
    ("INT", "5", 130, "error: interrupted; "),
    ("disk", "4", 1, "error: [Errno 28] No space left on device: "),
])
def test_a_failure_inside_a_run_waits_for_the_save_in_flight(tmp_path, fault, at_step,
                                                            returncode, message):
  """The fault comes in step 5, while the step-4 save (asynchronous) may be in flight."""
  line = one_line(run("pretrain", tmp_path, fault=(fault, at_step)), returncode)
  assert line.startswith(message), line
  if fault == "disk":
    assert str(tmp_path / "metrics.jsonl") in line
  else:
    assert line.endswith(f"the newest checkpoint is step 4 in {tmp_path / 'checkpoints'}; "
                         "rerun the same command to go on"), line
  assert steps_saved(tmp_path) == [4]
  assert not [name for name in os.listdir(tmp_path / "checkpoints") if "tmp" in name]
  assert records(tmp_path)[-1]["step"] == int(at_step)


def test_ctrl_c_as_a_save_starts_lets_it_finish_and_says_so(tmp_path):
  """SIGINT inside orbax's step-8 save, once it has begun writing: the save completes (no
  temporary directory left behind) and the line says so."""
  line = one_line(run("pretrain", tmp_path, fault=("INT_AT_SAVE", "8"), timeout=120), 130)
  assert line == (f"error: interrupted; the save of step 8 finished; the newest checkpoint "
                  f"is step 8 in {tmp_path / 'checkpoints'}; rerun the same command to go on")
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4", "8"]


def test_a_checkpoint_directory_turned_read_only_is_one_line_and_keeps_the_others(tmp_path):
  """The checkpoint directory becomes read-only after step 5 (as for a user other than
  root: faulty_run drops root's licence to write anywhere): the step-8 save stops the run
  at once naming it, and the step-4 checkpoint resumes."""
  checkpoints = tmp_path / "checkpoints"
  result = run("pretrain", tmp_path, fault=("READONLY", "5"), timeout=120)
  if result.returncode == faulty_run.CANNOT_DROP_PRIVILEGES:
    pytest.skip(result.stderr.strip())
  checkpoints.chmod(0o755)
  line = one_line(result)
  assert line == (f"error: saving checkpoint step 8 in {checkpoints} failed (PermissionError: "
                  f"[Errno 13] Permission denied: '{checkpoints / '8.orbax-checkpoint-tmp'}'); "
                  f"the newest checkpoint is step 4 in {checkpoints}")
  assert sorted(os.listdir(checkpoints)) == ["4"]
  rerun = run("pretrain", tmp_path)
  assert rerun.returncode == 0 and "resuming at step 4" in rerun.stdout, rerun.stderr[-3000:]


def test_a_reward_that_raises_is_named_and_the_save_in_flight_finishes(tmp_path):
  line = one_line(run("grpo", tmp_path, fault=("reward", "4")))
  assert line.startswith("error: reward 'math' raised KeyError: 'answer_key' on sample 0")
  assert steps_saved(tmp_path) == [4]


@pytest.mark.slow
def test_default_tiny_hybrid_run_learns_the_corpus(tmp_path):
  """The full CPU default (300 steps, ~1-2 minutes): loss from ~6.9 to below 1.5."""
  result = subprocess.run(
      [sys.executable, "-m", "train.main", "--config=configs/tiny_hybrid.py",
       f"--workdir={tmp_path}"], cwd=ROOT, env=env(), capture_output=True, text=True,
      timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  losses = {r["step"]: r["loss"] for r in records(tmp_path)}
  assert losses[1] > 6.0 and losses[300] < 1.5
