"""The shipped corpus: byte-exact regeneration, checkable answers, disjoint validation."""

import hashlib
import json
import os
import random

from data import answers
from data import config as config_lib
from data import make_corpus
from data import reasoning_tasks
from data import sources


def _sha256(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def test_regeneration_reproduces_the_shipped_files(tmp_path):
  paths = make_corpus.write_corpus(str(tmp_path))
  for path in paths:
    shipped = config_lib.corpus_path(os.path.basename(path))
    assert _sha256(path) == _sha256(shipped), f"{shipped} differs: rerun data/make_corpus.py"
  shipped_bytes = sum(os.path.getsize(config_lib.corpus_path(n))
                      for n in make_corpus.CORPUS_FILES)
  assert sorted(os.listdir(config_lib.CORPUS_DIR)) == sorted(make_corpus.CORPUS_FILES)
  assert shipped_bytes < 3_500_000


def _records(name):
  with open(config_lib.corpus_path(name), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def test_reasoning_records_are_consistent_and_validation_is_disjoint():
  train, valid = _records("reasoning.jsonl"), _records("reasoning_valid.jsonl")
  for record in train + valid:
    assert record["text"] == record["question"] + "\n" + record["solution"]
    assert answers.answer_line(record["solution"]) == record["answer"]
    assert answers.is_correct(record["solution"], record)
  assert {r["kind"] for r in train} == set(reasoning_tasks.KINDS)
  assert 0.4 < sum("<think>" in r["solution"] for r in train) / len(train) < 0.6
  assert not {r["question"] for r in train} & {r["question"] for r in valid}
  english = sources.read_text_documents(config_lib.corpus_path("english.txt"))
  english_valid = sources.read_text_documents(config_lib.corpus_path("english_valid.txt"))
  assert len(english) == make_corpus.NUM_ENGLISH and not set(english) & set(english_valid)


def test_modular_sums_follow_the_rule():
  records = _records("modsum.jsonl")
  assert len({r["question"] for r in records}) == 1000
  for record in records:
    a, b, c = map(int, record["question"].split()[:3])
    assert record["answer"] == str((a + b + c) % 10)
    assert record["text"] in (f"{a} {b} {c} = {record['answer']}",
                              f"{a} {b} {c} = <think> {(a + b) % 10} </think> {record['answer']}")


def test_answer_matching():
  assert answers.answer_line("steps\nAnswer: 42.\n") == "42"
  assert answers.answer_line("no final line") is None
  correct = lambda generated, answer: answers.is_correct(generated, {"answer": answer})
  assert correct("Answer: 1,017", "1017")
  assert correct("Answer: The  Key and the ring", "the key and the ring")
  assert not correct("Answer: 41", "42")
  assert not correct("Answer: 42\nAnswer: 41", "42")  # The last counts.
  rng = random.Random(0)
  for kind in reasoning_tasks.KINDS.values():
    problem = kind(rng, think=True)
    assert problem["solution"].startswith("<think>\n")
    assert answers.is_correct(problem["text"], problem)
