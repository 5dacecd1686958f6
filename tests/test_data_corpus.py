"""The shipped corpus: byte-exact regeneration, checkable answers, disjoint validation."""

import collections
import contextlib
import hashlib
import io
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


def _track_boxes(question):
  """An independent reading of a boxes question: (asked box's contents, operations on
  the asked box)."""
  contents, touched = {}, collections.Counter()
  for sentence in question.rstrip("?").split(". "):
    words = sentence.split()
    if words[0] == "Box":
      items = sentence.split(" contains ")[1]
      contents[words[1]] = set() if items == "nothing" else set(items.split(" and "))
    elif words[0] == "Move":
      item, source, target = "the " + words[2], words[5], words[8]
      contents[source].remove(item)
      contents[target].add(item)
      touched.update((source, target))
    elif words[0] == "Remove":
      contents[words[5]].remove("the " + words[2])
      touched[words[5]] += 1
    elif words[0] == "Put":
      contents[words[5]].add("the " + words[2])
      touched[words[5]] += 1
    else:
      asked = sentence.rsplit(" ", 2)[1]
  items = " and ".join(sorted(contents[asked])) or "nothing"
  return items, touched[asked]


def test_claim_files_are_right_and_held_out():
  boxes_sft, boxes_valid = _records("boxes_sft.jsonl"), _records("boxes_valid.jsonl")
  assert (len(boxes_sft), len(boxes_valid)) == (make_corpus.NUM_BOXES_SFT,
                                                make_corpus.NUM_BOXES_VALID)
  assert not {r["question"] for r in boxes_sft} & {r["question"] for r in boxes_valid}
  for record in boxes_sft + boxes_valid:
    answer, operations = _track_boxes(record["question"])
    assert record["answer"] == answer, record
    if "kind" in record:
      assert record["kind"] == f"ops{min(operations, 3)}", record
  assert {r["kind"] for r in boxes_valid} == {"ops0", "ops1", "ops2", "ops3"}
  for program in sources.read_text_documents(config_lib.corpus_path("code_updates.txt")):
    code, shown = program.rsplit("\n", 1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
      exec(code, {})  # noqa: S102  (our own generated programs)
    assert printed.getvalue() == shown + "\n", program
  narrow = sources.read_text_documents(config_lib.corpus_path("reasoning_narrow.txt"))
  assert len(narrow) == make_corpus.NUM_NARROW
  for text in narrow:   # "Solve for x: ax ± b = c." ... "Answer: x"
    a, sign, b, _, c = text.split("\n", 1)[0][len("Solve for x: "):-1].split()
    x = int(answers.answer_line(text))
    assert int(a[:-1]) * x + (1 if sign == "+" else -1) * int(b) == int(c), text
