"""Prune, then distil (train/prune.py): the student config derived from the teacher and
the target, the starting weights the teacher pruned by the scores of its calibration
batches, one command from a teacher run to a pruned and distilled checkpoint that
resumes exactly without scoring again, and bad input refused before any work."""

import dataclasses
import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from cli_runs import COMMON, ROOT, by_step, env, one_line, records
from configs import prune_distill, prune_nemotron_h_8b
from data import pipeline
from model import config as mcfg
from model import hf
from model import lm
from model import pruning
from train import checkpoint as checkpoint_lib
from train import config as run_config
from train import driver
from train import evaluate
from train import export
from train import prune
from train import puzzle
from train import sharding
from train.config import ConfigError

# The prune_distill run of the tests: the shared reference pretrain run (the tiny
# hybrid, tests/cli_runs.py) as teacher, two calibration batches, no samples.
PRUNE = ["--config=configs/prune_distill.py", *COMMON, "--config.prune.calibration_batches=2",
         "--config.sample.prompts=()"]
TARGET = pruning.Target(d_model=96, mlp_dim=288, ssm_heads=3)


def config_of(teacher: str = ""):
  """configs/prune_distill.py as PRUNE sets it, ``teacher`` its teacher.checkpoint."""
  config = prune_distill.get_config()
  config.teacher.checkpoint = teacher
  config.train.seq_len, config.train.global_batch_size = 64, 8
  config.prune.calibration_batches = 2
  return config


def command(workdir, teacher, *extra, fault=None):
  entry = ["-m", "train.main"] if fault is None else [
      os.path.join(ROOT, "tests", "faulty_run.py"), *fault]
  return subprocess.run([sys.executable, *entry, *PRUNE, f"--workdir={workdir}",
                         f"--config.teacher.checkpoint={teacher}", *extra], cwd=ROOT,
                        env=env(), capture_output=True, text=True, timeout=600)


def test_the_8b_recipe_prunes_to_nemotron_h_4b():
  """d 4096 → 3072, FFN 21504 → 12288, Mamba heads 128 → 112 (14 of 16 per group); the
  rest of the 8B, its run choices (remat, kernels) included, stays."""
  config = prune_nemotron_h_8b.get_config()
  _, student = driver.check(config, 64)
  teacher = mcfg.nemotron_h_8b(**{name: config.teacher.model[name]
                                  for name in ("remat", "attention_impl", "ssm_impl")})
  assert student == mcfg.nemotron_h_4b(remat=teacher.remat,
                                       attention_impl=teacher.attention_impl,
                                       ssm_impl=teacher.ssm_impl)
  assert student.ssm_heads // student.ssm_groups == 14 and student.n_layers == 52


NO_WIDTHS = {"prune.d_model": 0, "prune.mlp_dim": 0, "prune.ssm_heads": 0}


def set_fields(config, fields: dict):
  """``config`` with each dotted field of ``fields`` set."""
  for dotted, value in fields.items():
    *sections, name = dotted.split(".")
    functools.reduce(getattr, sections, config)[name] = value
  return config


def test_a_budget_or_named_layers_decide_the_student_without_data():
  config = set_fields(config_of(), {**NO_WIDTHS, "prune.max_params": 500_000})
  _, student = driver.check(config, 1)
  assert 400_000 < lm.count_params(student) <= 500_000 and student.d_model < 128
  _, shallow = driver.check(set_fields(config, {"prune.layers": (0, 1, 2, 3)}), 1)
  assert shallow.pattern == "M-*-" and lm.count_params(shallow) <= 500_000


@pytest.mark.parametrize("fields, message", [
    ({"prune.calibration_batches": 0},
     "prune.calibration_batches=0: the calibration set is empty"),
    ({"train.seq_len": 16},
     "train.seq_len=16: the calibration rows are shorter than a chunk of the teacher's "
     "Mamba scan (teacher.model.chunk_size=32)"),
    ({"teacher.model.ssm_groups": 2, "prune.ssm_heads": 3},
     "prune.ssm_heads=3: target ssm_heads=3 is not a multiple of ssm_groups=2"),
    ({"prune.n_heads": 3},
     "prune.n_heads=3: target n_heads=3 is not a multiple of n_kv_heads=2"),
    ({**NO_WIDTHS, "prune.max_params": 1000},
     "prune.max_params=1000: max_params=1000 is below"),
    ({"prune.n_layers": 4},
     "prune.n_layers=4: which of the teacher's layers stay would decide the student's "
     "pattern"),
    ({"prune.method": "obd"}, "prune.method='obd': want one of ('minitron', 'puzzle')"),
    ({"prune.method": "puzzle"},
     "prune.method='puzzle' searches within one budget: set exactly one of"),
    ({**NO_WIDTHS, "prune.method": "puzzle", "prune.max_params": 10 ** 6,
      "prune.layers": (0, 1)}, "prune.layers=(0, 1): the 'puzzle' method chooses"),
    ({**NO_WIDTHS, "prune.method": "puzzle", "prune.max_params": 10 ** 6},
     "prune.method='puzzle' searches the trained teacher's layers: set teacher.checkpoint"),
    ({**NO_WIDTHS, "prune.max_kv_bytes_per_token": 64},
     "prune.max_kv_bytes_per_token=64: a KV-cache budget is the 'puzzle' method's"),
    ({"init_checkpoint": ROOT}, f"init_checkpoint={ROOT} and a prune section are both set"),
    ({"model": prune_distill.get_config().teacher.model}, "model: a prune run's model is"),
])
def test_bad_input_is_refused_at_the_door_naming_the_field(fields, message):
  with pytest.raises(ConfigError) as raised:
    driver.check(set_fields(config_of(), fields), 1)
  assert str(raised.value).startswith(message), str(raised.value)


@pytest.fixture(scope="module")
def teacher(reference_run):
  return str(reference_run("pretrain")[0])


@pytest.fixture(scope="module")
def fresh_start(teacher):
  """(config, built, fresh state) of the driver for config_of(teacher) over 8 devices."""
  config = config_of(teacher)
  _, student_cfg = driver.check(config, jax.device_count())
  built = driver.build(config, sharding.make_mesh(config.mesh),
                       driver.load_tokenizer(config, student_cfg))
  return config, built, driver.initial_state(built, report=print)


def test_the_student_starts_as_the_teacher_pruned_by_its_calibration_scores(fresh_start):
  """The driver's fresh state over 8 devices: the student is ``pruning.prune`` of the
  teacher with the scores of the first two batches of the run's own data pipeline,
  computed here on one device; the teacher rides along unpruned."""
  config, built, state = fresh_start
  assert built.ctx.mesh.size == 8
  teacher_cfg = run_config.model_config(config.teacher.model)
  teacher_params, _ = checkpoint_lib.load_params(config.teacher.checkpoint, teacher_cfg, None)
  batches = pipeline.make_iterator(config.data, seq_len=64, global_batch_size=8,
                                   tokenizer=built.ctx.tokenizer, seed=config.train.seed)
  stats_of = jax.jit(functools.partial(pruning.activation_stats, cfg=teacher_cfg))
  stats = [stats_of(teacher_params, {k: batch[k] for k in prune.CALIBRATION_FEATURES})
           for batch in (next(batches), next(batches))]
  scores = pruning.importance(pruning.add_stats(*stats))
  expected, expected_cfg = pruning.prune(teacher_params, teacher_cfg, scores, TARGET)
  assert expected_cfg == built.ctx.model_cfg
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-6),
               jax.device_get(state.params), jax.device_get(expected))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.teacher_params),
               jax.device_get(teacher_params))
  assert jax.tree.map(lambda x: x.sharding, state.params) == built.state_shardings.params


def test_named_layers_are_the_layers_kept(fresh_start):
  """A depth target by index (no widths): the student is those layers of the teacher."""
  config, built, state = fresh_start
  config = set_fields(config_of(config.teacher.checkpoint),
                      {**NO_WIDTHS, "prune.layers": (0, 2, 3, 4)})
  _, student_cfg = driver.check(config, 8)
  assert student_cfg.pattern == "M*-M"
  ctx = dataclasses.replace(built.ctx, config=config, model_cfg=student_cfg)
  student, teacher = jax.device_get((prune.pruned_student(ctx, state.teacher_params),
                                     state.teacher_params))
  kept = {**teacher, "layers": [teacher["layers"][i] for i in (0, 2, 3, 4)]}
  jax.tree.map(np.testing.assert_array_equal, student, kept)


def test_a_puzzle_student_is_the_search_of_the_teachers_layers(fresh_start, tmp_path):
  """method='puzzle': the student's config and starting weights are ``puzzle.search`` of
  the teacher on the run's first calibration batches within the budget (its report in
  the run's puzzle.json), searched once per process."""
  config, built, state = fresh_start
  teacher_cfg = run_config.model_config(config.teacher.model)
  budget = int(0.8 * lm.count_params(teacher_cfg))
  config = set_fields(config_of(config.teacher.checkpoint),
                      {**NO_WIDTHS, "prune.method": "puzzle", "prune.max_params": budget,
                       "prune.bld_steps": 2})
  _, student_cfg = driver.check(config, 8)
  teacher_params, _ = checkpoint_lib.load_params(config.teacher.checkpoint, teacher_cfg, None)
  expected, expected_cfg, _ = puzzle.search(
      teacher_params, teacher_cfg, puzzle.run_batches(config, 2), puzzle.Budget(
          max_params=budget), bld_steps=2, held_out_batches=1)
  assert student_cfg == expected_cfg != teacher_cfg
  assert lm.count_params(student_cfg) <= budget
  ctx = dataclasses.replace(built.ctx, config=config, model_cfg=student_cfg,
                            workdir=str(tmp_path))
  student = prune.pruned_student(ctx, state.teacher_params)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
               jax.device_get(student), jax.device_get(expected))
  report = json.loads((tmp_path / "puzzle.json").read_text())
  assert report["searched"]["pattern"] == student_cfg.pattern
  assert driver.check(config, 8)[1] == student_cfg   # read back, not searched again


def test_empty_calibration_data_is_refused(fresh_start, monkeypatch):
  config, built, state = fresh_start
  padding = {name: np.zeros((8, 64), np.int32) for name in prune.CALIBRATION_FEATURES}
  monkeypatch.setattr(pipeline, "make_iterator", lambda *a, **k: iter([padding] * 2))
  with pytest.raises(ValueError, match="the calibration set is empty: the 2 batches"):
    prune.calibrate(built.ctx, state.teacher_params,
                    run_config.model_config(config.teacher.model))


def test_one_command_prunes_and_distils_and_resumes_exactly_without_rescoring(
    teacher, tmp_path):
  """From the teacher's run to a pruned, distilled checkpoint; killed after step 9 and
  rerun, it restores the student (no second scoring) and ends where the uninterrupted
  run ends, logs and weights."""
  whole, resumed = tmp_path / "whole", tmp_path / "resumed"
  result = command(whole, teacher)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "prune: scoring the teacher's units on 2 calibration batches" in result.stdout
  assert f"from the teacher {teacher} pruned" in result.stdout
  recorded = json.load(open(whole / "config.json"))
  _, student_cfg = driver.check(config_of(teacher), 1)
  assert recorded["model"] is None and recorded["prune"]["d_model"] == 96
  assert recorded["model_resolved"] == json.loads(json.dumps(dataclasses.asdict(student_cfg)))
  logged = records(whole)
  assert [r["step"] for r in logged] == list(range(1, 11))
  assert logged[-1]["loss"] < logged[0]["loss"]
  export.export(str(whole), str(tmp_path / "hf"))   # the student, as config.json records it
  assert hf.read_config(str(tmp_path / "hf"))["hidden_size"] == 96
  assert evaluate.model_and_tokenizer(config_of(teacher), str(whole))[0] == student_cfg

  killed = command(resumed, teacher, fault=("KILL", "9"))
  assert killed.returncode == -9, killed.stderr[-3000:]
  rerun = command(resumed, teacher)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "resuming at step" in rerun.stdout and "prune:" not in rerun.stdout
  resumed_from = int(rerun.stdout.split("resuming at step ")[1].split()[0])
  expected, got = by_step(whole), by_step(resumed)
  for step in range(resumed_from + 1, 11):
    assert got[step] == expected[step], step
  final = [checkpoint_lib.load_params(str(w), student_cfg, None)[0] for w in (whole, resumed)]
  jax.tree.map(np.testing.assert_array_equal, *final)


def test_a_teacher_checkpoint_of_another_shape_is_one_line_before_training(teacher,
                                                                           tmp_path):
  result = command(tmp_path, teacher, "--config.teacher.model.d_model=64",
                   "--config.prune.d_model=48")
  line = one_line(result)
  assert f"checkpoint {teacher}/checkpoints/10: params/embed has shape (1024, 128) there " \
         "but (1024, 64) in this model" in line, line
  assert not os.path.exists(tmp_path / "metrics.jsonl")
