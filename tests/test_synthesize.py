"""The synthesis command end to end on a small teacher checkpoint (train/synthesize.py),
and the SFT loop synthesising its records from its starting weights (train/sft.py)."""

import json
import os

import pytest

from configs import sft as sft_config
from configs import tiny_hybrid
from data import config as data_config
from data import sources
from train import config as run_config
from train import driver
from train import sft
from train import sharding
from train import synthesize


def test_samples_filters_and_writes_records_with_provenance(reference_run, tmp_path):
  teacher, _ = reference_run("pretrain")
  problems = sources.read_records(data_config.corpus_path("sums_valid.jsonl"))[:3]
  problems.append({"question": problems[0]["question"] + " Twice?"})   # no reference
  seeds = tmp_path / "seeds.jsonl"
  seeds.write_text("".join(json.dumps(p) + "\n" for p in problems))
  out = tmp_path / "synthesized.jsonl"
  counts = synthesize.synthesize(
      tiny_hybrid.get_config(), str(teacher), str(seeds), str(out), samples=2,
      temperature=1.0, max_new_tokens=6, template="text", strict=False)
  records = sources.read_records(str(out))
  # Unfiltered: every sample of every problem passes the answer filter.
  assert counts["answer"] == {"in": 8, "out": 8}
  assert len(records) == counts["duplicate"]["out"] <= 8
  with open(f"{out}.counts.json") as f:
    assert json.load(f) == {"problems": 4, **counts}
  for record in records:
    provenance = record["provenance"]
    assert provenance["teacher"] == os.path.abspath(teacher)
    assert provenance["sampling"]["samples"] == 2 and set(provenance["filters"]) == {
        "decontaminate", "answer", "length", "duplicate"}
    assert record["question"] == problems[provenance["problem"]]["question"]
  # Decontaminated against its own questions, nothing is left.
  counts = synthesize.synthesize(
      tiny_hybrid.get_config(), str(teacher), str(seeds), str(out), samples=2,
      temperature=1.0, max_new_tokens=6, template="text", eval_records=(str(seeds),),
      ngram=2)
  assert counts["decontaminate"] == {"in": 8, "out": 0} and out.read_text() == ""
  # Question diversity: the first problem only, four samples of it.
  counts = synthesize.synthesize(
      tiny_hybrid.get_config(), str(teacher), str(seeds), str(out), samples=4,
      temperature=1.0, max_new_tokens=6, template="text", strict=False, max_problems=1)
  assert counts["answer"]["in"] == 4
  assert {r["provenance"]["problem"] for r in sources.read_records(str(out))} == {0}


def test_a_missing_teacher_is_an_error_before_any_work(tmp_path):
  with pytest.raises(FileNotFoundError, match="--teacher"):
    synthesize.synthesize(tiny_hybrid.get_config(), str(tmp_path / "none"), "x.jsonl",
                          str(tmp_path / "out.jsonl"), samples=2, temperature=1.0,
                          max_new_tokens=4, template="text")
  with pytest.raises(ValueError, match="--max_problems=0"):
    synthesize.synthesize(tiny_hybrid.get_config(), str(tmp_path), "x.jsonl",
                          str(tmp_path / "out.jsonl"), samples=2, temperature=1.0,
                          max_new_tokens=4, template="text", max_problems=0)


def synthesizing_sft(teacher, problems, **synthesis):
  """An SFT run of the teacher's model on solutions it synthesises for ``problems`` (2
  samples each, 6 tokens)."""
  config = sft_config.get_config()
  config.model = tiny_hybrid.get_config().model
  config.init_checkpoint = str(teacher)
  config.sft.records = ""
  config.sft.toggle = "none"
  config.sft.synthesis.update(dict(problems=str(problems), samples=2, max_new_tokens=6,
                                   template="text", **synthesis))
  config.train.update(dict(seq_len=64, global_batch_size=8, seed=3))
  return config


def sft_batches(config, workdir):
  """The batch source the SFT loop builds in ``workdir`` (no step runs)."""
  tokenizer = driver.load_tokenizer(config, run_config.model_config(config.model))
  built = driver.build(config, sharding.make_mesh(config.mesh), tokenizer, str(workdir))
  return built.loop.make_batches(built.ctx)


def test_sft_synthesises_its_records_from_its_starting_weights_once(reference_run, tmp_path,
                                                                    monkeypatch):
  teacher, _ = reference_run("pretrain")
  problems = sources.read_records(data_config.corpus_path("sums_valid.jsonl"))[:4]
  seeds = tmp_path / "seeds.jsonl"
  seeds.write_text("".join(json.dumps(p) + "\n" for p in problems))
  workdir = tmp_path / "unfiltered"
  config = synthesizing_sft(teacher, seeds, filter="none", max_solutions=3)
  sft_batches(config, workdir)
  records = sources.read_records(str(workdir / sft.SYNTHESIZED))
  with open(workdir / f"{sft.SYNTHESIZED}.counts.json") as f:
    counts = json.load(f)
  assert counts["answer"] == {"in": 8, "out": 8} and counts["select"]["out"] == 3
  assert len(records) == 3 and all(
      r["provenance"]["teacher"] == os.path.abspath(teacher)
      and r["provenance"]["sampling"]["seed"] == 3 for r in records)
  # filter='answer' keeps the right ones (the samples fixed here: the teacher is never
  # right), then max_solutions of them.
  right_and_wrong = lambda ctx, params, problems, **_: [
      [f"Answer: {p['answer']}", "Answer: -1"] for p in problems]
  monkeypatch.setattr(synthesize, "sample_solutions", right_and_wrong)
  filtered = tmp_path / "filtered"
  sft_batches(synthesizing_sft(teacher, seeds, filter="answer", max_solutions=3), filtered)
  records = sources.read_records(str(filtered / sft.SYNTHESIZED))
  assert len(records) == 3 and all(r["solution"] == f"Answer: {r['answer']}"
                                   for r in records)
  # A resumed run (its batches built again) trains on the records in its workdir; it
  # does not sample again.
  monkeypatch.setattr(synthesize, "synthesize", lambda *_, **__: pytest.fail("resampled"))
  batch = sft_batches(config, workdir)(None, 1)
  assert batch["loss_mask"].shape == (8, 64) and batch["loss_mask"].sum() > 0


def test_sft_synthesis_refuses_records_too_and_no_teacher(tmp_path):
  config = synthesizing_sft("", tmp_path / "seeds.jsonl")
  with pytest.raises(run_config.ConfigError, match="set init_checkpoint"):
    driver.run(config, str(tmp_path / "run"))
  config.sft.records = data_config.corpus_path("sums.jsonl")
  with pytest.raises(run_config.ConfigError, match="the run trains on one of them"):
    driver.run(config, str(tmp_path / "run"))


def test_sft_selector_synthesis_trains_on_selector_records_beside_its_task_data(
    reference_run, tmp_path, monkeypatch):
  """kind='selector': the starting weights' samples (fixed here: one right, one wrong)
  become GenSelect selector records in the workdir, and ``sft.records`` (the task data)
  is trained on beside them."""
  teacher, _ = reference_run("pretrain")
  problems = sources.read_records(data_config.corpus_path("sums_valid.jsonl"))[:4]
  seeds = tmp_path / "seeds.jsonl"
  seeds.write_text("".join(json.dumps(p) + "\n" for p in problems))
  task = tmp_path / "task.jsonl"
  task.write_text("".join(json.dumps({"question": p["question"], "answer": p["answer"]}) + "\n"
                          for p in problems[:2]))
  right_and_wrong = lambda ctx, params, problems, **_: [
      [f"1 + 1\nAnswer: {p['answer']}", "1 + 1\nAnswer: -1"] for p in problems]
  monkeypatch.setattr(synthesize, "sample_solutions", right_and_wrong)
  config = synthesizing_sft(teacher, seeds, kind="selector", candidates=2, rounds=2)
  config.sft.records = str(task)
  workdir = tmp_path / "selector"
  tokenizer = driver.load_tokenizer(config, run_config.model_config(config.model))
  built = driver.build(config, sharding.make_mesh(config.mesh), tokenizer, str(workdir))
  assert sft.records_paths(built.ctx) == [str(workdir / sft.SYNTHESIZED), str(task)]
  records = sources.read_records(str(workdir / sft.SYNTHESIZED))
  with open(workdir / f"{sft.SYNTHESIZED}.counts.json") as f:
    assert json.load(f) == {"problems": 4, "decontaminated": 0, "mixed": 4, "too_long": 0,
                            "records": len(records)}
  assert 4 <= len(records) <= 8   # two orders of the two samples per problem, each once
  for record in records:
    shown, right = record["provenance"]["candidates"], record["provenance"]["right"]
    assert record["answer"] == f"Judgment: {shown.index(0)}" and right == [shown.index(0)]
    assert record["provenance"]["checkpoint"] == os.path.abspath(teacher)
    assert problems[record["provenance"]["problem"]]["question"] in record["question"]
  batch = built.loop.make_batches(built.ctx)(None, 1)
  assert batch["loss_mask"].shape == (8, 64) and batch["loss_mask"].sum() > 0
  config.sft.synthesis.kind = "judgments"
  with pytest.raises(run_config.ConfigError, match="sft.synthesis.kind='judgments'"):
    driver.run(config, str(tmp_path / "run"))
