"""Every run config parses, builds its model and maps every logical axis to its mesh; the
command line finds config files from any directory and lists their fields; a run shorter
than its warmup is told what to set; the main job's RL step finds its base run."""

import glob
import importlib.util
import os
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from configs import base
from configs import tiny_hybrid_rlp
from model import lm
from train import config as run_config
from train import driver
from train import sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
CONFIG_FILES = [f for f in CONFIG_FILES if not f.endswith("__init__.py")]
# Devices each config is meant for (the rest: whatever the mesh's fixed sizes need).
# The chips of each large config's mesh.topology (v5p:4x4x4, v5p:2x2x2, v5e:2x2).
DEVICES = {"nemotron_h_8b": 64, "nemotron_h_4b": 64, "prune_nemotron_h_8b": 64, "llama_1b": 8,
           "hybrid_125m": 4}


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def test_every_experiment_has_a_config():
  names = {os.path.basename(f)[:-3] for f in CONFIG_FILES}
  assert {"base", "tiny_hybrid", "hybrid_125m", "llama_1b", "nemotron_h_8b",
          "nemotron_h_4b"} <= names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: os.path.basename(p)[:-3])
def test_config_parses_and_maps_to_its_mesh(path):
  config = load(path)
  config.init_checkpoint = ""   # e.g. tiny_hybrid_rlp starts from runs/tiny
  name = os.path.basename(path)[:-3]
  num_devices = DEVICES.get(name, 8)
  _, model_cfg = driver.check(config, num_devices)
  assert set(run_config.COMMON_SECTIONS) <= set(config)
  assert lm.count_params(model_cfg) > 0
  mesh = sharding.abstract_mesh(config.mesh, num_devices)
  shardings = sharding.param_shardings(model_cfg, mesh, config.mesh.logical_axis_rules)
  assert len(shardings) == len(lm.abstract_params(model_cfg))
  assert os.path.exists(config.data.tokenizer_path)


def test_model_section_keeps_the_preset_unless_overridden():
  config = base.get_config()
  config.model = run_config.model_section("llama_1b", d_model=256)
  model_cfg = run_config.model_config(config.model)
  assert model_cfg.d_model == 256 and model_cfg.n_heads == 32 and model_cfg.tie_embeddings
  with pytest.raises(ValueError, match="d_modle"):
    run_config.model_section("tiny", d_modle=3)
  with pytest.raises(ValueError, match="unknown model config name"):
    run_config.model_section("tiny_llama")


def parse(argv):
  """The config the command line would get (config_flags with our own argv)."""
  argv = ["prog", f"--config={os.path.join(ROOT, 'configs', 'tiny_hybrid.py')}", *argv]
  flag_values = flags.FlagValues()
  config_flag = config_flags.DEFINE_config_file("config", flag_values=flag_values,
                                                lock_config=True, sys_argv=argv)
  flag_values(argv)
  return config_flag.value


def test_command_line_overrides_are_typed_and_checked():
  config = parse(["--config.model.d_model=96", "--config.train.steps=7",
                  "--config.optimizer.learning_rate=1"])
  assert run_config.model_config(config.model).d_model == 96
  assert config.train.steps == 7 and config.optimizer.learning_rate == 1.0
  config = parse(["--config.model.pattern=*-L*", "--config.model.layer_kv_heads=(1,2)",
                  "--config.model.layer_mlp_dims=(64,)"])
  model_cfg = run_config.model_config(config.model)
  assert (model_cfg.layer_kv_heads, model_cfg.layer_mlp_dims) == ((1, 2), (64,))
  with pytest.raises(flags.IllegalFlagValueError, match="steps"):
    parse(["--config.train.steps=1.5"])
  with pytest.raises(flags.IllegalFlagValueError, match="d_model"):
    parse(["--config.model.d_model=wide"])
  with pytest.raises(AttributeError, match="stepz"):
    parse(["--config.train.stepz=3"])


def test_bad_values_fail_before_compiling_naming_the_field():
  config = parse(["--config.model.pattern=M*X"])
  with pytest.raises(ValueError, match="pattern"):
    driver.check(config, 8)
  config = parse(["--config.train.global_batch_size=12"])
  with pytest.raises(ValueError, match="global_batch_size"):
    driver.check(config, 8)
  config = parse(["--config.optimizer.schedule=linear"])
  with pytest.raises(ValueError, match="schedule"):
    driver.check(config, 8)
  config = parse(["--config.mesh.tensor=3"])
  with pytest.raises(ValueError, match="mesh"):
    driver.check(config, 8)


@pytest.mark.parametrize("override, message", [
    ("--config.train.stepz=3", 'no such config field: \'stepz\' Did you mean "steps"'),
    ("--config.train.steps=many", "--config.train.steps=many"),
    ("--config.model.n_kv_heads=3", "ModelConfig.n_kv_heads=3"),
])
def test_command_line_reports_a_bad_override_in_one_line(override, message, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "train.main", "--config=configs/tiny_hybrid.py",
       f"--workdir={tmp_path}", override],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
      env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"})
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr
  assert not os.listdir(tmp_path)  # nothing written, nothing compiled


def _command_line(*argv, cwd):
  return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True,
                        timeout=120, env={**os.environ, "PYTHONPATH": ROOT,
                                          "JAX_PLATFORMS": "cpu"})


def test_config_files_are_found_from_any_directory_and_list_their_fields(tmp_path):
  """From outside the repository: ``configs/x.py`` is the repository's, ``--print_config``
  lists the fields with the overrides applied (no --workdir needed), --help says so, and
  a missing file is one plain line."""
  printed = _command_line("-m", "train.main", "--config=configs/tiny_hybrid.py",
                          "--print_config", "--config.train.steps=7", cwd=tmp_path)
  assert printed.returncode == 0, printed.stderr[-3000:]
  fields = printed.stdout.splitlines()
  assert "train.steps=7" in fields and "optimizer.warmup_steps=30" in fields
  assert "model.pattern='M-*-M-'" in fields
  helped = _command_line("-m", "train.main", "--help", cwd=tmp_path)
  assert "--print_config" in helped.stdout and "--[no]print_config" in helped.stdout
  missing = _command_line("-m", "train.main", "--config=configs/no_such.py", "--workdir=x",
                          cwd=tmp_path)
  assert missing.returncode == 1 and missing.stderr == (
      "error: config file not found: configs/no_such.py\n")
  assert not os.listdir(tmp_path)


def test_a_run_shorter_than_its_warmup_is_told_what_to_set():
  config = parse(["--config.train.steps=30"])   # tiny_hybrid: warmup_steps=30
  with pytest.raises(ValueError) as error:
    driver.check(config, 8)
  assert str(error.value) == (
      "optimizer.warmup_steps=30 must be below train.steps=30: add "
      "--config.optimizer.warmup_steps=3 (a tenth of the run) or another value below 30")
  driver.check(parse(["--config.train.steps=30", "--config.optimizer.warmup_steps=3"]), 8)


def test_the_rl_step_of_the_main_job_finds_its_base_run_from_any_directory(
    tmp_path, monkeypatch):
  """configs/tiny_hybrid_rlp.py starts from runs/tiny: the working directory's, else the
  repository's; without either, the check says where it looked and what to pass."""
  here, repository = tmp_path / "here", tmp_path / "repository"
  (repository / "runs" / "tiny").mkdir(parents=True)
  here.mkdir()
  monkeypatch.setattr(run_config, "REPOSITORY", str(repository))
  monkeypatch.chdir(here)
  assert tiny_hybrid_rlp.get_config().init_checkpoint == str(repository / "runs" / "tiny")
  (here / "runs" / "tiny").mkdir(parents=True)
  assert tiny_hybrid_rlp.get_config().init_checkpoint == "runs/tiny"
  monkeypatch.setattr(run_config, "REPOSITORY", str(tmp_path / "elsewhere"))
  monkeypatch.chdir(tmp_path)
  config = tiny_hybrid_rlp.get_config()
  with pytest.raises(FileNotFoundError) as error:
    driver.check(config, 8)
  assert str(error.value) == (
      f"init_checkpoint=runs/tiny: no such directory in {tmp_path}; train that run first "
      "or pass --config.init_checkpoint=<a run's workdir or a Hugging Face directory>")


def test_which_changes_to_a_recorded_run_change_its_trajectory():
  """What is logged, evaluated, sampled or saved and the mesh may change; more steps
  train on; everything else, fewer steps included, changes the run."""
  recorded = {"train": {"steps": 10, "seed": 0, "log_every": 1},
              "model": {"name": "tiny", "d_model": None}, "mesh": {"data": -1},
              "eval": {"samples": 0}, "checkpoint": {"every_steps": 4}}
  given = {"train": {"steps": 20, "seed": 0, "log_every": 5}, "model": {"name": "tiny"},
           "mesh": {"data": 2}, "eval": {"samples": 4}, "checkpoint": {"every_steps": 8}}
  changes = run_config.changed_fields(recorded, given)
  assert changes == {"checkpoint.every_steps": (4, 8), "eval.samples": (0, 4),
                     "mesh.data": (-1, 2), "train.log_every": (1, 5),
                     "train.steps": (10, 20)}   # model.d_model: None is the preset's
  assert run_config.trajectory_changes(changes) == {}
  fewer = run_config.changed_fields(recorded, {**given, "train": {"steps": 5, "seed": 7},
                                               "model": {"name": "llama_1b"}})
  assert run_config.trajectory_changes(fewer) == {
      "model.name": ("tiny", "llama_1b"), "train.seed": (0, 7), "train.steps": (10, 5)}
  assert run_config.describe_changes(run_config.trajectory_changes(fewer)) == (
      "model.name 'tiny' -> 'llama_1b', train.seed 0 -> 7, train.steps 10 -> 5")
