"""Major Entity Identification (MEI, arXiv 2406.14654): records, questions and scoring.

MEI gives the major entities of a text up front and asks for the mentions of each. A
record::

  {"text": "...", "entities": [{"name": "Mara", "description": "a baker"}, ...],
   "mentions": [{"start": 0, "end": 4, "entity": "Mara"}, {"start": 30, "end": 40,
                 "entity": null}, ...]}

``start``/``end`` are character offsets (``text[start:end]`` is the mention);
``entity`` is a major entity's name, or null for a mention of no major entity. Names are
unique within a record; ``description`` is optional.

Scoring (``mei_scores``): a predicted mention is correct for entity E when a gold
mention has the same span and both say E. Per entity E, over all records: precision =
correct / predicted E, recall = correct / gold E, F1 their harmonic mean; a zero
denominator gives 0 (never NaN). An entity is a name: records that share a name pool its
counts (the records of one book; give distinct entities distinct names). Macro-F1 is the
mean F1 over the entities; an entity with no gold and no predicted mention (nothing to
score) is left out of it and listed in ``excluded``. Micro precision, recall and F1 pool
the counts of every entity. Mentions of no major entity (null) are not an entity: a
prediction of null counts for no entity.

Model-based prediction (``train/mei.py``) is given the gold spans, as the paper's LLM
setting is: for each mention, ``mention_question`` asks which major entity the marked
mention refers to (the entities' names, then ``NONE_OPTION``).

``generated_records`` writes procedural MEI records from the narratives of
``data/narratives.py`` (those of the IdentifyMe questions): the first ``num_major``
characters are the major entities; the other characters' mentions and minor people ("a
stranger") are null.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Optional

from data import narratives
from data import prompts as prompts_lib
from data import sources

NONE_OPTION = "None of the major entities"
QUESTION = "Which major entity does the marked mention refer to?"


def check_record(record: Mapping, where: str) -> None:
  """ValueError naming ``where`` and the field when ``record`` is no MEI record."""
  if not isinstance(record.get("text"), str):
    raise ValueError(f"{where}: 'text' must be a string")
  entities = record.get("entities")
  if not isinstance(entities, list) or not all(
      isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"] for e in entities):
    raise ValueError(f"{where}: 'entities' must be a list of {{'name'[, 'description']}}")
  names = [e["name"] for e in entities]
  if len(set(names)) < len(names):
    raise ValueError(f"{where}: entity names must be unique, got {names}")
  mentions = record.get("mentions")
  if not isinstance(mentions, list):
    raise ValueError(f"{where}: 'mentions' must be a list of {{'start', 'end', 'entity'}}")
  spans = set()
  for i, mention in enumerate(mentions):
    at = f"{where}: mentions[{i}]"
    if not isinstance(mention, dict) or not all(k in mention for k in ("start", "end",
                                                                        "entity")):
      raise ValueError(f"{at}: needs 'start', 'end' and 'entity'")
    start, end = mention["start"], mention["end"]
    if not (isinstance(start, int) and isinstance(end, int)
            and 0 <= start < end <= len(record["text"])):
      raise ValueError(f"{at}: span [{start}, {end}) is not inside the text of "
                       f"{len(record['text'])} characters")
    if mention["entity"] is not None and mention["entity"] not in names:
      raise ValueError(f"{at}: entity {mention['entity']!r} is not one of {names} (or null)")
    if (start, end) in spans:
      raise ValueError(f"{at}: span [{start}, {end}) given twice")
    spans.add((start, end))


def read_records(path: str) -> list[dict]:
  """The MEI records of JSONL files; errors name the line and field at fault."""
  records = []
  for where, record in sources.read_located_records(path):
    check_record(record, where)
    records.append(record)
  return records


@dataclasses.dataclass(frozen=True)
class EntityScore:
  gold: int
  predicted: int
  correct: int

  @property
  def precision(self) -> float:
    return self.correct / self.predicted if self.predicted else 0.0

  @property
  def recall(self) -> float:
    return self.correct / self.gold if self.gold else 0.0

  @property
  def f1(self) -> float:
    p, r = self.precision, self.recall
    return 2 * p * r / (p + r) if p + r else 0.0


@dataclasses.dataclass(frozen=True)
class MeiScores:
  per_entity: dict[str, EntityScore]   # the scored entities (``excluded`` left out)
  macro_f1: float                      # mean F1 of ``per_entity`` (0 when it is empty)
  micro: EntityScore                   # counts pooled over the entities
  excluded: tuple[str, ...]            # entities with no gold and no predicted mention


def mei_scores(gold_records: Sequence[Mapping], predicted_records: Sequence[Mapping]
               ) -> MeiScores:
  """Per-entity, macro and micro scores of ``predicted_records`` (the i-th predicts the
  i-th gold record: the same text and entities; see the module docstring)."""
  if len(gold_records) != len(predicted_records):
    raise ValueError(f"{len(predicted_records)} predicted records for "
                     f"{len(gold_records)} gold records")
  counts: dict[str, list[int]] = {}   # name -> [gold, predicted, correct]
  for i, (gold, predicted) in enumerate(zip(gold_records, predicted_records)):
    check_record(gold, f"gold record {i}")
    check_record(predicted, f"predicted record {i}")
    if predicted["text"] != gold["text"]:
      raise ValueError(f"predicted record {i}: its text is not the gold record's")
    gold_spans = {(m["start"], m["end"]): m["entity"] for m in gold["mentions"]}
    for entity in gold["entities"]:
      counts.setdefault(entity["name"], [0, 0, 0])
    for entity in gold_spans.values():
      if entity is not None:
        counts[entity][0] += 1
    for mention in predicted["mentions"]:
      entity = mention["entity"]
      if entity is None:
        continue
      if entity not in counts:
        raise ValueError(f"predicted record {i}: entity {entity!r} is not a gold entity")
      counts[entity][1] += 1
      counts[entity][2] += gold_spans.get((mention["start"], mention["end"])) == entity
  scored = {name: EntityScore(*c) for name, c in counts.items() if c[0] or c[1]}
  excluded = tuple(name for name, c in counts.items() if not (c[0] or c[1]))
  macro = sum(s.f1 for s in scored.values()) / len(scored) if scored else 0.0
  micro = EntityScore(*(sum(c[k] for c in counts.values()) for k in range(3)))
  return MeiScores(scored, macro, micro, excluded)


def figures(scores: MeiScores, prefix: str = "mei") -> dict[str, float]:
  """``<prefix>/macro_f1``, ``/micro_f1``, ``/micro_precision``, ``/micro_recall`` and
  ``<prefix>/<entity>/{precision,recall,f1}`` per scored entity."""
  out = {f"{prefix}/macro_f1": scores.macro_f1, f"{prefix}/micro_f1": scores.micro.f1,
         f"{prefix}/micro_precision": scores.micro.precision,
         f"{prefix}/micro_recall": scores.micro.recall}
  for name, score in sorted(scores.per_entity.items()):
    out.update({f"{prefix}/{name}/precision": score.precision,
                f"{prefix}/{name}/recall": score.recall, f"{prefix}/{name}/f1": score.f1})
  return out


def option_text(entity: Mapping) -> str:
  """An entity as an option: its name, with its description if it has one."""
  return f"{entity['name']} ({entity['description']})" if entity.get("description") \
      else entity["name"]


def mention_question(record: Mapping, mention: Mapping) -> dict:
  """The multiple-choice record asking which major entity ``mention`` of ``record``
  refers to: the text with the mention marked (``narratives.mark``), the entities'
  options then ``NONE_OPTION``, the gold letter as answer."""
  options = [option_text(e) for e in record["entities"]] + [NONE_OPTION]
  letters = prompts_lib.option_letters(len(options))   # at most 9 entities
  names = [e["name"] for e in record["entities"]]
  gold = names.index(mention["entity"]) if mention["entity"] is not None else len(names)
  passage = narratives.mark(record["text"], mention["start"], mention["end"])
  return {"question": f"Text:\n{passage}\n\n{QUESTION}", "options": options,
          "answer": letters[gold], "kind": "mcq"}


def predicted_entity(record: Mapping, letter: Optional[str]) -> Optional[str]:
  """The entity name an option letter picks for ``record`` (None for ``NONE_OPTION``,
  for no letter and for a letter past the options)."""
  names = [e["name"] for e in record["entities"]]
  letters = prompts_lib.option_letters(len(names) + 1)
  if letter is None or letter not in letters[:-1]:
    return None
  return names[letters.index(letter)]


def generated_records(rng: random.Random, count: int, num_characters: int = 5,
                      num_major: int = 3, num_sentences: int = 20) -> list[dict]:
  """``count`` MEI records of ``narratives.narrative``s: the first ``num_major``
  characters (described by their roles) are the major entities, every mention is
  given (the other characters' and minor people's are null)."""
  if not 1 <= num_major <= min(num_characters, 9):
    raise ValueError(f"num_major={num_major}: 1 to min(num_characters={num_characters}, 9)")
  records = []
  for _ in range(count):
    story = narratives.narrative(rng, num_characters, num_sentences)
    major = story.characters[:num_major]
    names = {c.name for c in major}
    records.append({
        "text": story.text,
        "entities": [{"name": c.name, "description": f"the {c.role}"} for c in major],
        "mentions": [{"start": m.start, "end": m.end,
                      "entity": m.entity if m.entity in names else None}
                     for m in story.mentions]})
  return records
