"""The synthesis command end to end on a small teacher checkpoint (train/synthesize.py)."""

import json
import os

import pytest

from configs import tiny_hybrid
from data import config as data_config
from data import sources
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


def test_a_missing_teacher_is_an_error_before_any_work(tmp_path):
  with pytest.raises(FileNotFoundError, match="--teacher"):
    synthesize.synthesize(tiny_hybrid.get_config(), str(tmp_path / "none"), "x.jsonl",
                          str(tmp_path / "out.jsonl"), samples=2, temperature=1.0,
                          max_new_tokens=4, template="text")
