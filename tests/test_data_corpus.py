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
from data import general_questions
from data import make_corpus
from data import prompts
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
  assert shipped_bytes < 13_000_000   # the claims' corpora (MAE's role texts 2.4 MB, boxes_text.txt 1.5 MB)


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
  *sentences, query = question.split(". ")   # the query: "Box <n> contains"
  for sentence in sentences:
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
  assert query.startswith("Box ") and query.endswith(" contains"), question
  asked = query.split()[1]
  items = " and ".join(sorted(contents[asked])) or "nothing"
  return items, touched[asked]


def test_claim_files_are_right_and_held_out():
  boxes_valid, boxes_dev = _records("boxes_valid.jsonl"), _records("boxes_dev.jsonl")
  stories = [dict(zip(("question", "answer"), text.split("\n"))) for text in
             sources.read_text_documents(config_lib.corpus_path("boxes_text.txt"))]
  assert (len(boxes_valid), len(boxes_dev), len(stories)) == (
      make_corpus.NUM_BOXES_VALID, make_corpus.NUM_BOXES_DEV, make_corpus.NUM_BOXES_TEXT)
  held_out = {r["question"] for r in boxes_valid}
  assert not held_out & ({r["question"] for r in boxes_dev} | {r["question"] for r in stories})
  for record in boxes_valid + boxes_dev + stories:
    answer, operations = _track_boxes(record["question"])
    assert record["answer"] == answer, record
    if "kind" in record:
      assert record["kind"] == f"ops{min(operations, 3)}", record
  assert {r["kind"] for r in boxes_valid} == {"ops0", "ops1", "ops2", "ops3"}
  # The stories are a curriculum: from no operation at all to four.
  operations = lambda q: sum(s.startswith(("Move", "Remove", "Put")) for s in q.split(". "))
  assert {operations(r["question"]) for r in stories} == {0, 1, 2, 3, 4}
  # The base's stories: the asked box untouched, half of them with no operation at all.
  reading = [dict(zip(("question", "answer"), text.split("\n"))) for text in
             sources.read_text_documents(config_lib.corpus_path("boxes_read.txt"))]
  assert len(reading) == make_corpus.NUM_BOXES_TEXT
  assert not held_out & {r["question"] for r in reading}
  for record in reading:
    answer, touched = _track_boxes(record["question"])
    assert record["answer"] == answer and touched == 0, record
  assert sum(operations(r["question"]) == 0 for r in reading) == len(reading) // 2
  for program in sources.read_text_documents(config_lib.corpus_path("code_updates.txt")):
    code, shown = program.rsplit("\n", 1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
      exec(code, {})  # noqa: S102  (our own generated programs)
    assert printed.getvalue() == shown + "\n", program


def _general_answer_and_key(question):
  """An independent reading of a general question (data/general_questions.py): (its
  answer from the fact tables, the fact or pair it asks about)."""
  member_of = {m: c for c, members in general_questions.CATEGORIES.items() for m in members}
  opposite = dict(general_questions.ANTONYMS + tuple(p[::-1] for p in general_questions.ANTONYMS))
  words = question.rstrip("?").replace(":", "").split()
  if question.startswith("Which is bigger"):
    a, b = words[3], words[5]
    size = general_questions.SIZES.index
    return max(a, b, key=size), frozenset((a, b))
  if question.startswith("Which is"):
    category, a, b = words[3], words[4], words[6]
    (answer,) = [w for w in (a, b) if member_of[w] == category]
    return answer, (category, frozenset((a, b)))
  if question.startswith("What kind of thing"):
    return member_of[words[-1]], words[-1]
  if question.startswith("What is the opposite"):
    return opposite[words[-1]], frozenset((words[-1], opposite[words[-1]]))
  order = next(o for o in general_questions.ORDERS if words[-1] in o)
  return order[(order.index(words[-1]) + 1) % len(order)], words[-1]


def _asked(record):
  """(question, answer text) of a record or a CrossThink SFT conversation."""
  question = record["question"].split("Question: ", 1)[-1]
  answer = record["answer"]
  if "\nOptions:\n" in question:
    question, options = question.split("\nOptions:\n")
    record = dict(record, options=[line[3:] for line in options.split("\n")])
  if "options" in record:
    answer = record["options"]["ABCD".index(answer)]
  return question, answer


def test_crossthink_files_are_right_and_held_out_by_fact():
  valid = _records("crossthink_valid.jsonl")
  assert {r["kind"] for r in valid} == {"open"}
  train = _records("crossthink_sft.jsonl") + [
      r for arm in ("math", "blend", "open", "mcq") for r in _records(f"crossthink_{arm}.jsonl")]
  train_keys, families = set(), collections.Counter()
  for record in train + valid:
    question, answer = _asked(record)
    if question.startswith("What is") and "+" in question:
      a, b = question[len("What is "):-1].split(" + ")
      assert answer == str(int(a) + int(b)), record
      continue
    right, key = _general_answer_and_key(question)
    assert answer == right, record
    if record not in valid:
      train_keys.add(key)
  for record in valid:
    families[record["question"].startswith("Which is bigger")] += 1
    assert _general_answer_and_key(record["question"])[1] not in train_keys, record
  assert families[False] == make_corpus.NUM_CT_VALID_CHOICE and families[True] > 0
  sft = _records("crossthink_sft.jsonl")
  assert all(answers.is_correct(r["solution"], {"answer": r["answer"]}) for r in sft)
  arms = {arm: _records(f"crossthink_{arm}.jsonl") for arm in ("math", "blend", "open", "mcq")}
  assert len({len(records) for records in arms.values()}) == 1
  math = arms["math"][:make_corpus.NUM_CT_MATH]
  general = {arm: [_asked(r) for r in records[make_corpus.NUM_CT_MATH:]]
             for arm, records in arms.items() if arm != "math"}
  assert all(arms[arm][:make_corpus.NUM_CT_MATH] == math for arm in general)
  assert general["open"] == general["mcq"] == general["blend"]   # the same questions
  assert {r["kind"] for r in arms["open"][make_corpus.NUM_CT_MATH:]} == {"open"}
  assert {r["kind"] for r in arms["mcq"][make_corpus.NUM_CT_MATH:]} == {"mcq"}
  assert {r["kind"] for r in arms["blend"][make_corpus.NUM_CT_MATH:]} == {"open", "mcq"}
  facts = sources.read_text_documents(config_lib.corpus_path("crossthink_facts.txt"))
  stated = {line for document in facts for line in document.split("\n")}
  assert set(general_questions.facts()) <= stated
  valid_keys = {_general_answer_and_key(r["question"])[1] for r in valid}
  dev = _records("crossthink_dev.jsonl")   # the dev split: neither training nor valid pairs
  assert len(dev) == make_corpus.NUM_CT_DEV and {r["kind"] for r in dev} == {"open"}
  dev_keys = set()
  for record in dev:
    right, key = _general_answer_and_key(record["question"])
    assert record["answer"] == right and key not in train_keys | valid_keys, record
    dev_keys.add(key)
  for line in stated:   # the training questions answered in the pretraining text
    if "?" in line and "+" not in line:
      question, answer = line[len("Question: "):].split("? ")
      answer = answers.final_answer(answer)
      right, key = _general_answer_and_key(question + "?")
      assert answer == right and key not in valid_keys | dev_keys, line


def test_general_question_generators_cover_their_tables():
  rng = random.Random(0)
  for family in general_questions.FAMILIES:
    pairs = general_questions.instances(family, rng)
    for _, record in pairs:
      question, answer = _asked(record)
      assert _general_answer_and_key(question)[0] == answer, record
      assert prompts.to_open_ended(record)["answer"] == answer
    train, held_out = general_questions.split(family, random.Random(1), 0.3)
    assert len(train) + len(held_out) == len(pairs) and held_out and train
    held_keys = {_general_answer_and_key(_asked(r)[0])[1] for r in held_out}
    assert not held_keys & {_general_answer_and_key(_asked(r)[0])[1] for r in train}


def _front_answer(question):
  """An independent reading of a front-loading problem (``FRONT_LOADING_KINDS``)."""
  if question.startswith("What is "):
    return str(sum(int(term) for term in question[len("What is "):-1].split(" + ")))
  if question.startswith("How many "):
    digit, listed = question[len("How many "):-1].split("s are in ")
    return str(listed.split().count(digit))
  assignments, asked = question[:-1].split(". What is ")
  value = dict(line.split(" = ") for line in assignments.split(", "))
  while not value[asked].isdigit():
    asked = value[asked]
  return value[asked]


def test_front_loading_files_are_right_and_held_out():
  train = _records("front_reasoning.jsonl")
  dev, valid = _records("front_dev.jsonl"), _records("front_valid.jsonl")
  narrow = sources.read_text_documents(config_lib.corpus_path("front_narrow.txt"))
  assert len(train) == len(narrow) == make_corpus.NUM_FRONT
  for record in train:
    assert record["text"] == record["question"] + "\n" + record["solution"]
    assert (answers.answer_line(record["solution"]) == record["answer"]
            == _front_answer(record["question"])), record
  kinds = set(reasoning_tasks.FRONT_LOADING_KINDS)
  for records, count in ((dev, make_corpus.NUM_FRONT_DEV),
                         (valid, make_corpus.NUM_FRONT_VALID)):
    assert collections.Counter(r["kind"] for r in records) == {
        kind: count // len(kinds) for kind in kinds}
    assert all(r["answer"] == _front_answer(r["question"]) for r in records)
  held_out = {r["question"] for r in dev + valid}
  assert len(held_out) == len(dev) + len(valid)
  assert not held_out & ({r["question"] for r in train} | {t.split("\n")[0] for t in narrow})
  for text in narrow:   # sums of three digits only
    question = text.split("\n")[0]
    assert question.count(" + ") == 2 and answers.answer_line(text) == _front_answer(question)


def test_genselect_files_slip_in_their_answer_line_only_and_hold_out_the_sums():
  documents = sources.read_text_documents(config_lib.corpus_path("genselect_sums.txt"))
  sft, seeds = _records("genselect_sft.jsonl"), _records("genselect_seeds.jsonl")
  assert (len(documents), len(sft), len(seeds)) == (
      make_corpus.NUM_GENSELECT, make_corpus.NUM_GENSELECT_SFT, make_corpus.NUM_GENSELECT_SEEDS)
  slips = 0
  for text in documents:
    question, *lines = text.split("\n")
    right = _front_answer(question)
    assert lines[-2] == right, text                  # the steps are worked out right
    assert answers.answer_line(text) in (right, str(int(right) + 1)), text
    slips += answers.answer_line(text) != right
  assert abs(slips / len(documents) - make_corpus.GENSELECT_SLIP) < 0.03
  assert [f"{r['question']}\n{r['solution']}" for r in sft] == documents[:len(sft)]
  assert all(r["answer"] == _front_answer(r["question"]) for r in sft + seeds)
  trained = {text.split("\n")[0] for text in documents}
  assert len({r["question"] for r in seeds}) == len(seeds) and not trained & {
      r["question"] for r in seeds}
  held_out = {r["question"] for name in ("chain_sums_valid.jsonl", "chain_sums_dev.jsonl")
              for r in _records(name)}
  assert not held_out & (trained | {r["question"] for r in seeds})
