"""The entity-tracking evaluations: long boxes stories (arXiv 2405.21068), IdentifyMe
questions (arXiv 2411.07466) and MEI scoring (arXiv 2406.14654), checked against
independent readings of the generated text, hand-computed scores, and the evaluator
on a tiny random model and a Hugging Face directory."""

import json
import math
import random
import re
from fractions import Fraction

import jax
import numpy as np
import pytest

from data import answers
from data import entity_tasks
from data import mei
from data import narratives
from data import prompts
from data import tokenizer as tokenizer_lib
from model import lm
from train import config as run_config
from train import evaluate
from train import mei as train_mei
from train import sharding
from train.loops import Context
from test_evaluate import save_hf_directory, tiny_llama_config

# ------------------------------------------------------------------------ long boxes


def simulate_boxes(question: str) -> tuple[str, int, int, int]:
  """(what the queried box holds, operations on it, all operations, queried box) read
  off a story's sentences."""
  sentences = question.split(". ")
  asked = int(re.fullmatch(r"Box (\d+) contains", sentences[-1]).group(1))
  contents, touched, operations = {}, 0, 0
  for sentence in sentences[:-1]:
    sentence = sentence.rstrip(".")
    if m := re.fullmatch(r"Box (\d+) contains (.*)", sentence):
      contents[int(m[1])] = set(re.findall(r"the (\w+)", m[2]))
      continue
    operations += 1
    if m := re.fullmatch(r"Move the (\w+) from Box (\d+) to Box (\d+)", sentence):
      contents[int(m[2])].remove(m[1])
      contents[int(m[3])].add(m[1])
      boxes = {int(m[2]), int(m[3])}
    elif m := re.fullmatch(r"Remove the (\w+) from Box (\d+)", sentence):
      contents[int(m[2])].remove(m[1])
      boxes = {int(m[2])}
    else:
      m = re.fullmatch(r"Put the (\w+) into Box (\d+)", sentence)
      assert not any(m[1] in c for c in contents.values())   # a put item is outside
      contents[int(m[2])].add(m[1])
      boxes = {int(m[2])}
    touched += asked in boxes
  held = " and ".join(f"the {i}" for i in sorted(contents[asked])) or "nothing"
  return held, touched, operations, asked


def test_long_boxes_answers_and_kinds_follow_the_story():
  records = entity_tasks.boxes_records(random.Random(0), 30, num_boxes=[12, 20],
                                       num_operations=[16], distractors=10, ops_cap=0)
  assert len({r["question"] for r in records}) == 30
  for record in records:
    held, touched, operations, _ = simulate_boxes(record["question"])
    assert record["answer"] == held
    assert record["kind"] == f"ops{touched}"
    assert operations == 26
  assert len({r["kind"] for r in records}) > 3   # the difficulty varies


def test_distractors_never_touch_the_queried_box_and_kinds_are_capped():
  only_distractors = entity_tasks.boxes_records(random.Random(1), 20, [3, 8], [0],
                                                distractors=12)
  assert {r["kind"] for r in only_distractors} == {"ops0"}
  for record in only_distractors:
    held, _, operations, asked = simulate_boxes(record["question"])
    assert operations == 12
    initial = re.search(rf"Box {asked} contains ([^.]*)\.", record["question"])[1]
    assert held == record["answer"] == initial
  capped = entity_tasks.boxes_records(random.Random(2), 20, [4], [10], ops_cap=3)
  assert {r["kind"] for r in capped} <= {"ops0", "ops1", "ops2", "ops3"}
  assert "ops3" in {r["kind"] for r in capped}


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_boxes=[1], num_operations=[2]), "num_boxes=1"),
    (dict(num_boxes=[entity_tasks.max_boxes() + 1], num_operations=[2]), "num_boxes="),
    (dict(num_boxes=[3], num_operations=[-1]), "negative"),
    (dict(num_boxes=[], num_operations=[2]), "at least one"),
])
def test_boxes_records_refuse_bad_settings(kwargs, message):
  with pytest.raises(ValueError, match=message):
    entity_tasks.boxes_records(random.Random(0), 1, **kwargs)


def test_the_command_line_writes_records(tmp_path):
  out = tmp_path / "long.jsonl"
  entity_tasks.main(["--task=boxes", "--num_boxes=10", "--num_operations=20",
                     "--distractors=5", "--ops_cap=0", "--count=5", f"--output={out}"])
  records = [json.loads(line) for line in out.read_text().splitlines()]
  assert len(records) == 5 and all(set(r) == {"question", "answer", "kind"} for r in records)


# ------------------------------------------------------------------------ IdentifyMe

PRONOUNS = {"he", "she", "they"}


def resolve_marked(question: str) -> str:
  """The character the marked mention of an IdentifyMe question denotes, by the rules of
  ``data/narratives.py`` applied to the text alone."""
  passage = question.split("Text:\n", 1)[1].split("\n\n", 1)[0]
  roles, pronouns, previous = {}, {}, []   # role -> name, name -> pronoun
  for sentence in re.split(r"(?<=\.) ", passage):
    marked = narratives.MARK_OPEN in sentence
    sentence = sentence.replace(narratives.MARK_OPEN, "").replace(
        narratives.MARK_CLOSE, "")
    if m := re.fullmatch(r"(\w+) was an? (\w+) in the village\.", sentence):
      roles[m[2]] = m[1]
      previous = [m[1]]
      continue
    first, rest = sentence.split(" ", 1)
    if first.lower() in PRONOUNS:
      candidates = [name for name in previous if pronouns.get(name) == first.lower()]
      if rest == "knew everyone there.":   # an introduction states the pronoun
        pronouns[previous[0]] = first.lower()
        candidates = previous
      assert len(candidates) == 1, (sentence, previous)
      subject = candidates[0]
    elif first == "The" and rest.split(" ")[0] in roles:
      subject = roles[rest.split(" ")[0]]
      rest = rest.split(" ", 1)[1]
    elif first in roles.values():
      subject = first
    else:   # a filler sentence
      assert not marked
      previous = []
      continue
    if marked:
      return subject
    named = [w for w in re.findall(r"\w+", rest) if w in roles.values()]
    previous = [] if "talked with" in rest else [subject] + named
  raise AssertionError("no marked mention")


def test_identifyme_answers_are_decidable_from_the_text():
  records = entity_tasks.identifyme_records(random.Random(0), 60, num_characters=4,
                                            num_sentences=12, none_fraction=0.2)
  kinds = [r["kind"] for r in records]
  assert kinds.count("nominal") == kinds.count("pronominal") == 30
  none = 0
  for record in records:
    assert record["question"].count(narratives.MARK_OPEN) == 1
    assert record["options"][-1] == entity_tasks.NONE_OF_THE_ABOVE
    assert answers.record_kind(record) == "mcq"
    chosen = record["options"]["ABCDE".index(record["answer"])]
    referent = resolve_marked(record["question"])
    if chosen == entity_tasks.NONE_OF_THE_ABOVE:
      none += 1
      assert referent not in record["options"] and len(record["options"]) == 4
    else:
      assert chosen == referent and len(record["options"]) == 5
    mention = record["question"].split(narratives.MARK_OPEN)[1].split("}}")[0]
    assert (mention.lower() in PRONOUNS) == (record["kind"] == "pronominal")
  assert 0 < none < 30


def test_identifyme_records_are_multiple_choice_prompts():
  (record,) = entity_tasks.identifyme_records(random.Random(3), 1, num_sentences=5)
  text = prompts.prompt_text(record)
  assert "A. " in text and f"{entity_tasks.NONE_OF_THE_ABOVE}" in text and "letter" in text
  assert answers.is_correct(f"\\boxed{{{record['answer']}}}", record)
  wrong = "B" if record["answer"] != "B" else "A"
  assert not answers.is_correct(f"\\boxed{{{wrong}}}", record)


def test_read_identifyme_maps_the_released_fields(tmp_path):
  path = tmp_path / "qas_dev.jsonl"
  rows = [{"doc_key": "d1", "mention_ind": 3, "category": "PRON",
           "text": "Ann met Bo . {{She}} (#This is the marked mention) left .",
           "options": ["Bo", "Ann", "None of the Above"], "answer": "Ann",
           "orig_answer": "Ann"},
          {"doc_key": "d2", "mention_ind": 7, "category": "NOM",
           "text": "{{The old man}} (#This is the marked mention) slept .",
           "options": ["Cy", "None of the Above"], "answer": "None of the Above",
           "orig_answer": "Dan"}]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  first, second = entity_tasks.read_identifyme(str(path))
  assert first["kind"] == "pronominal" and first["answer"] == "B"
  assert first["options"] == rows[0]["options"] and rows[0]["text"] in first["question"]
  assert second["kind"] == "nominal" and second["answer"] == "B"
  path.write_text(json.dumps(dict(rows[0], category="PLURAL")) + "\n")
  with pytest.raises(ValueError, match=r"qas_dev.jsonl:1: category 'PLURAL'"):
    entity_tasks.read_identifyme(str(path))
  path.write_text("\n" + json.dumps(dict(rows[0], answer="Cy")) + "\n")
  with pytest.raises(ValueError, match=r"qas_dev.jsonl:2: answer 'Cy' is not one"):
    entity_tasks.read_identifyme(str(path))


# ------------------------------------------------------------------------ MEI scoring


def record(mentions, entities=("A", "B", "C"), text="x" * 40):
  return {"text": text, "entities": [{"name": e} for e in entities],
          "mentions": [{"start": s, "end": s + 1, "entity": e} for s, e in mentions]}


def test_mei_scores_of_hand_made_predictions():
  gold = [record([(0, "A"), (2, "A"), (4, "A"), (6, "A"), (10, "B"), (20, None)]),
          record([(0, "A"), (3, None)], entities=("A", "D"))]
  predicted = [record([(0, "A"), (2, "A"), (4, "B"), (6, None), (10, "B"), (20, "A")]),
               record([(0, "A"), (3, "D"), (5, "A")], entities=("A", "D"))]
  scores = mei.mei_scores(gold, predicted)
  # A: gold 5, predicted 5 ((0),(2),(20) and (0),(5)), correct 3; B: gold 1, predicted 2,
  # correct 1; D: gold 0, predicted 1, correct 0; C: nothing -> excluded.
  a, b, d = (scores.per_entity[name] for name in "ABD")
  assert (a.gold, a.predicted, a.correct) == (5, 5, 3)
  assert a.precision == a.recall == a.f1 == pytest.approx(3 / 5)
  assert (b.precision, b.recall, b.f1) == pytest.approx((1 / 2, 1.0, 2 / 3))
  assert (d.precision, d.recall, d.f1) == (0.0, 0.0, 0.0)
  assert scores.excluded == ("C",)
  assert scores.macro_f1 == pytest.approx(float((Fraction(3, 5) + Fraction(2, 3)) / 3))
  # micro: gold 6, predicted 8, correct 4.
  assert scores.micro.precision == pytest.approx(4 / 8)
  assert scores.micro.recall == pytest.approx(4 / 6)
  assert scores.micro.f1 == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
  assert scores.micro.f1 != pytest.approx(scores.macro_f1)
  figures = mei.figures(scores)
  assert figures["mei/B/recall"] == 1.0 and "mei/C/f1" not in figures
  assert all(math.isfinite(v) for v in figures.values())


def test_mei_scores_without_predictions_are_zero_not_nan():
  gold = [record([(0, "A")])]
  scores = mei.mei_scores(gold, [record([(0, None)])])
  assert scores.macro_f1 == scores.micro.f1 == scores.micro.precision == 0.0
  empty = mei.mei_scores([record([])], [record([])])
  assert empty.per_entity == {} and empty.macro_f1 == 0.0 and empty.excluded == ("A", "B",
                                                                                 "C")


@pytest.mark.parametrize("change, message", [
    (lambda r: r["mentions"].append({"start": 39, "end": 41, "entity": "A"}),
     r"gold record 0: mentions\[1\]: span \[39, 41\) is not inside"),
    (lambda r: r["mentions"].append({"start": 0, "end": 1, "entity": None}),
     r"mentions\[1\]: span \[0, 1\) given twice"),
    (lambda r: r["mentions"].append({"start": 5, "end": 6, "entity": "Z"}),
     r"mentions\[1\]: entity 'Z' is not one of"),
    (lambda r: r["entities"].append({"name": "A"}), "entity names must be unique"),
])
def test_mei_records_refuse_bad_fields(change, message):
  gold = record([(0, "A")])
  change(gold)
  with pytest.raises(ValueError, match=message):
    mei.mei_scores([gold], [record([(0, "A")])])


def test_mei_predictions_must_match_the_gold_records():
  with pytest.raises(ValueError, match="its text is not the gold record's"):
    mei.mei_scores([record([])], [record([], text="y" * 40)])
  with pytest.raises(ValueError, match="1 predicted records for 2 gold"):
    mei.mei_scores([record([])] * 2, [record([])])


def test_generated_mei_records_are_valid_and_name_only_major_entities():
  records = mei.generated_records(random.Random(0), 5, num_characters=5, num_major=2,
                                  num_sentences=15)
  for i, r in enumerate(records):
    mei.check_record(r, f"record {i}")
    names = {e["name"] for e in r["entities"]}
    assert len(names) == 2
    null = {r["text"][m["start"]:m["end"]] for m in r["mentions"] if m["entity"] is None}
    assert null and not null & names
    for m in r["mentions"]:
      if (said := r["text"][m["start"]:m["end"]]) in names:
        assert m["entity"] == said


# ------------------------------------------------------------------ the evaluator

MEI_RECORDS = dict(num_characters=3, num_major=2, num_sentences=2)


@pytest.fixture(scope="module")
def eval_files(tmp_path_factory):
  directory = tmp_path_factory.mktemp("entity")
  identifyme = directory / "identifyme.jsonl"
  identifyme.write_text("".join(json.dumps(r) + "\n" for r in entity_tasks.identifyme_records(
      random.Random(0), 4, num_characters=2, num_sentences=3)))
  mei_path = directory / "mei.jsonl"
  mei_path.write_text("".join(json.dumps(r) + "\n" for r in mei.generated_records(
      random.Random(0), 1, **MEI_RECORDS)))
  return str(identifyme), str(mei_path)


def entity_config(eval_files):
  config = tiny_llama_config()
  config.eval.records, config.eval.mei_records = eval_files
  config.eval.template, config.eval.text_files = "crossthink", {}
  config.eval.max_new_tokens, config.eval.batch_size = 3, 16
  return config


def check_entity_figures(figures, mei_path):
  (gold,) = mei.read_records(mei_path)
  assert {"pass@1/nominal", "pass@1/pronominal", "mei/macro_f1", "mei/micro_f1",
          "mei/invalid"} <= set(figures)
  assert all(math.isfinite(v) for v in figures.values())
  assert 0.0 <= figures["mei/invalid"] <= 1.0
  for entity in gold["entities"]:
    assert 0.0 <= figures[f"mei/{entity['name']}/f1"] <= 1.0


def test_the_evaluator_scores_identifyme_and_mei_on_a_random_model(eval_files):
  config = entity_config(eval_files)
  model_cfg = run_config.model_config(config.model)
  tokenizer = tokenizer_lib.load_tokenizer(config.data.tokenizer_path)
  ctx = Context(config=config, model_cfg=model_cfg, tokenizer=tokenizer,
                mesh=sharding.make_mesh(config.mesh), optimizer=None, schedule=None)
  evaluator = evaluate.Evaluator.create(ctx)
  (gold,) = mei.read_records(eval_files[1])
  assert len(evaluator.mei.prompts) == len(gold["mentions"])
  figures = evaluator(lm.init(jax.random.PRNGKey(0), model_cfg))
  check_entity_figures(figures, eval_files[1])


def test_mei_predictions_read_the_replies_letters(eval_files, monkeypatch):
  """Replies that name the gold letter score 1; replies of "none" or no letter score
  no major entity."""
  config = entity_config(eval_files)
  tokenizer = tokenizer_lib.load_tokenizer(config.data.tokenizer_path)
  task = train_mei.MeiTask.create(eval_files[1], tokenizer, template="crossthink",
                                  thinking="")
  gold = task.records[0]
  questions = [mei.mention_question(gold, m) for m in gold["mentions"]]
  ctx = Context(config=config, model_cfg=None, tokenizer=tokenizer, mesh=None,
                optimizer=None, schedule=None)

  def replies(texts):
    monkeypatch.setattr(train_mei.generation, "generate_in_chunks",
                        lambda *args, **kwargs: [(row, np.asarray(tokenizer.encode(t)), ())
                                                 for row, t in enumerate(texts)])
  replies([f"So \\boxed{{{q['answer']}}}" for q in questions])
  figures = task(ctx, None, None, sampling=None, batch_size=4)
  assert figures["mei/macro_f1"] == figures["mei/micro_f1"] == 1.0
  assert figures["mei/invalid"] == 0.0
  replies(["no idea"] * len(questions))
  predicted, invalid = task.predict(ctx, None, None, sampling=None, batch_size=4)
  assert invalid == len(questions)
  assert all(m["entity"] is None for m in predicted[0]["mentions"])


def test_standalone_evaluation_of_a_hugging_face_directory(eval_files, tmp_path):
  config = entity_config(eval_files)
  hf_directory = save_hf_directory(config, tmp_path / "hf")
  figures = evaluate.evaluate_checkpoint(config, hf_directory, str(tmp_path / "out"))
  check_entity_figures(figures, eval_files[1])
