"""Entity-tracking evaluation sets: long boxes stories and IdentifyMe-format questions.

Boxes (arXiv 2405.21068). ``boxes_records`` writes the boxes task as records ``{question,
answer, kind}`` in the completion form of ``make_corpus.boxes_questions`` ("... Box 3
contains" → "the key and the pen"), with ``kind`` "ops<n>": n operations (move, remove,
put) touch the queried box (``reasoning_tasks.box_operations``), the paper's difficulty
axis. Unlike ``reasoning_tasks.boxes`` (2-6 boxes, at most six items, the shipped corpus)
a story can be long: up to ``max_boxes()`` boxes, any number of operations (a removed
item can be put back), and ``distractors`` further operations that never touch the
queried box. The sentences are those of ``reasoning_tasks.boxes``. One file per setting
(in-distribution, long) gives pass@1 per setting and ``pass@1/ops<n>`` within it.

IdentifyMe (arXiv 2411.07466): multiple-choice mention resolution in narratives.
``identifyme_records`` marks one pronominal (he/she/they) or nominal ("the baker") body
mention of a procedural narrative (``data/narratives.py``, whose rules make the referent
decidable from the text) per record, as IdentifyMe marks it (``{{She}} (#This is the
marked mention)``), and asks which entity it refers to: the options are every
character's name, shuffled, then "None of the Above"; in ``none_fraction`` of the
records (each drawn with that probability) the right name is left out and "None of the
Above" is the answer (IdentifyMe: 10 %). Records are multiple choice (``question``, ``options``, ``answer`` a letter,
``kind`` "nominal" | "pronominal"): the evaluator checks the letter
(``answers.record_kind``: a record with options is multiple choice) and reports
``pass@1/nominal`` and ``pass@1/pronominal``; the options are shown by the 'crossthink'
template (``data/prompts.py``).

``read_identifyme`` maps a released IdentifyMe JSONL file to the same records.

Command line (one records file per call)::

  python -m data.entity_tasks --task=boxes --num_boxes=3,4 --num_operations=2,3,4 \
      --count=200 --output=boxes_in_dist.jsonl
  python -m data.entity_tasks --task=boxes --num_boxes=12 --num_operations=24 \
      --distractors=24 --ops_cap=0 --count=200 --output=boxes_long.jsonl
  python -m data.entity_tasks --task=identifyme --num_characters=4 --num_sentences=30 \
      --count=200 --output=identifyme.jsonl
  python -m data.entity_tasks --task=mei --num_characters=5 --num_major=3 \
      --num_sentences=20 --count=50 --output=mei.jsonl
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Sequence
from typing import Optional

from data import files
from data import mei
from data import narratives
from data import prompts as prompts_lib
from data import reasoning_tasks
from data import sources

# ------------------------------------------------------------------------ long boxes

LONG_BOX_ITEMS = reasoning_tasks.BOX_ITEMS + (
    "bell", "brush", "card", "clock", "comb", "doll", "drum", "egg", "fan", "flag", "fork",
    "glove", "hat", "jar", "kite", "lamp", "leaf", "lock", "mask", "nut", "pear", "pipe",
    "plate", "rope", "sock", "spoon", "star", "toy", "watch", "whistle")
SPARE_ITEMS = 4   # items outside the boxes at the start (put into boxes later)


def max_boxes() -> int:
  """The most boxes a long story can have (every box starts with at most one item)."""
  return len(LONG_BOX_ITEMS) - SPARE_ITEMS


def _box_story(rng: random.Random, num_boxes: int, num_operations: int,
               distractors: int) -> Optional[tuple[str, str, int]]:
  """(question, answer, queried box) of one story, or None when a distractor found no
  operation that leaves the queried box alone (every item in it; redrawn by the caller)."""
  items = rng.sample(LONG_BOX_ITEMS, num_boxes + SPARE_ITEMS)
  contents = [set() for _ in range(num_boxes)]
  for item in items[:num_boxes]:
    contents[rng.randrange(num_boxes)].add(item)
  spare = sorted(items[num_boxes:])
  asked = rng.randrange(num_boxes)
  lines = [f"Box {i + 1} contains {reasoning_tasks.box_contents(c)}."
           for i, c in enumerate(contents)]
  slots = [False] * num_operations + [True] * distractors   # True: leaves the asked box alone
  rng.shuffle(slots)
  for distractor in slots:
    allowed = [i for i in range(num_boxes) if not (distractor and i == asked)]
    full = [i for i in allowed if contents[i]]
    actions = (["move"] if full and len(allowed) > 1 else []) + (["remove"] if full else [])
    actions += ["put"] if spare else []
    if not actions:
      return None
    action = rng.choice(actions)
    if action == "put":
      item, target = spare.pop(rng.randrange(len(spare))), rng.choice(allowed)
      contents[target].add(item)
      lines.append(f"Put the {item} into Box {target + 1}.")
      continue
    source = rng.choice(full)
    item = rng.choice(sorted(contents[source]))
    contents[source].remove(item)
    if action == "remove":
      spare.append(item)
      lines.append(f"Remove the {item} from Box {source + 1}.")
    else:
      target = rng.choice([i for i in allowed if i != source])
      contents[target].add(item)
      lines.append(f"Move the {item} from Box {source + 1} to Box {target + 1}.")
  question = " ".join(lines + [f"Box {asked + 1} contains"])
  return question, reasoning_tasks.box_contents(contents[asked]), asked + 1


def boxes_records(rng: random.Random, count: int, num_boxes: Sequence[int],
                  num_operations: Sequence[int], distractors: int = 0, ops_cap: int = 3,
                  exclude_questions: frozenset[str] = frozenset()) -> list[dict[str, str]]:
  """``count`` distinct boxes records {question, answer, kind: "ops<n>"}: each story's
  boxes and operations drawn from ``num_boxes`` and ``num_operations``, plus
  ``distractors`` operations that leave the queried box alone; n the operations on the
  queried box, capped at ``ops_cap`` ("ops3": three or more, as ``boxes_valid.jsonl``;
  0: no cap)."""
  if not num_boxes or not num_operations:
    raise ValueError("boxes_records needs at least one value of num_boxes and num_operations")
  if bad := [n for n in num_boxes if not 2 <= n <= max_boxes()]:
    raise ValueError(f"num_boxes={bad[0]}: 2 to {max_boxes()} boxes")
  if min(num_operations) < 0 or distractors < 0 or ops_cap < 0:
    raise ValueError(f"num_operations={list(num_operations)}, distractors={distractors}, "
                     f"ops_cap={ops_cap}: none may be negative")
  records, seen = [], set(exclude_questions)
  while len(records) < count:
    story = _box_story(rng, rng.choice(num_boxes), rng.choice(num_operations), distractors)
    if story is None or story[0] in seen:
      continue
    question, answer, asked = story
    seen.add(question)
    operations = reasoning_tasks.box_operations(question, asked)
    kind = f"ops{min(operations, ops_cap) if ops_cap else operations}"
    records.append({"question": question, "answer": answer, "kind": kind})
  return records


# ------------------------------------------------------------------------ IdentifyMe

NONE_OF_THE_ABOVE = "None of the Above"
IDENTIFYME_QUESTION = ("Who does the marked mention refer to? Choose None of the Above if "
                       "it refers to none of the other options.")
KINDS = {"NOM": "nominal", "PRON": "pronominal"}   # IdentifyMe's category -> our kind


def multiple_choice_record(passage: str, options: Sequence[str], answer: str,
                           kind: str) -> dict:
  """{question, options, answer (the letter of ``answer``), kind} of a marked passage."""
  if answer not in options:
    raise ValueError(f"answer {answer!r} is not one of the options {list(options)}")
  letter = prompts_lib.option_letters(len(options))[list(options).index(answer)]
  return {"question": f"Text:\n{passage}\n\n{IDENTIFYME_QUESTION}", "options": list(options),
          "answer": letter, "kind": kind}


def identifyme_records(rng: random.Random, count: int, num_characters: int = 4,
                       num_sentences: int = 20, none_fraction: float = 0.1) -> list[dict]:
  """``count`` records, nominal and pronominal in turn, each the marked body mention of
  its own narrative; each with probability ``none_fraction`` has "None of the Above" as the answer
  (the right name left out of the options)."""
  if not 1 <= num_characters <= 9:
    raise ValueError(f"num_characters={num_characters}: 1 to 9 (the options, with None of "
                     "the Above, are at most 10)")
  if not 0.0 <= none_fraction <= 1.0:
    raise ValueError(f"none_fraction={none_fraction}: between 0 and 1")
  if num_sentences < 1:
    raise ValueError(f"num_sentences={num_sentences}: at least 1")
  records = []
  while len(records) < count:
    kind = ("nominal", "pronominal")[len(records) % 2]
    story = narratives.narrative(rng, num_characters, num_sentences)
    marked = [m for m in story.mentions if m.body and m.form == kind]
    if not marked:
      continue
    mention = rng.choice(marked)
    names = [c.name for c in story.characters]
    rng.shuffle(names)
    answer = mention.entity
    if rng.random() < none_fraction:
      names.remove(answer)
      answer = NONE_OF_THE_ABOVE
    passage = narratives.mark(story.text, mention.start, mention.end)
    records.append(multiple_choice_record(passage, names + [NONE_OF_THE_ABOVE], answer,
                                          kind))
  return records


def read_identifyme(path: str) -> list[dict]:
  """Our multiple-choice records of an IdentifyMe JSONL file (the release's fields, as
  ``utils/qa_utils.py`` of github.com/KawshikManikantan/IdentifyMe writes them):

    text      the passage, the mention marked ``{{...}} (#This is the marked mention)``
              → ``question`` (as ``multiple_choice_record`` words it)
    options   the entity names then "None of the Above" → ``options``
    answer    the right option's text → ``answer``, its letter
    category  "NOM" or "PRON" → ``kind`` "nominal" or "pronominal"

  Other fields (doc_key, mention_ind, orig_answer) are left out. Errors name the line."""
  records = []
  for where, record in sources.read_located_records(path):
    if missing := [k for k in ("text", "options", "answer", "category") if k not in record]:
      raise ValueError(f"{where}: missing field {missing[0]!r} (record has {sorted(record)})")
    if record["category"] not in KINDS:
      raise ValueError(f"{where}: category {record['category']!r}: one of {sorted(KINDS)}")
    options = record["options"]
    if (not isinstance(options, list) or not 1 <= len(options) <= 10
        or not all(isinstance(o, str) for o in options)):
      raise ValueError(f"{where}: options must be a list of 1 to 10 strings")
    if record["answer"] not in options:
      raise ValueError(f"{where}: answer {record['answer']!r} is not one of the options")
    markers = (narratives.MARK_OPEN, narratives.MARK_CLOSE)
    if not all(marker in record["text"] for marker in markers):
      raise ValueError(f"{where}: text has no marked mention "
                       f"({narratives.MARK_OPEN}...{narratives.MARK_CLOSE})")
    records.append(multiple_choice_record(record["text"], options, record["answer"],
                                          KINDS[record["category"]]))
  return records


def _ints(text: str) -> list[int]:
  return [int(value) for value in re.split(r"\s*,\s*", text.strip()) if value]


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--task", choices=("boxes", "identifyme", "mei"), required=True)
  parser.add_argument("--output", required=True, help="the records file (JSONL) to write")
  parser.add_argument("--count", type=int, default=200)
  parser.add_argument("--seed", default="0")
  parser.add_argument("--num_boxes", default="3,4", help="boxes: values to draw from")
  parser.add_argument("--num_operations", default="2,3,4", help="boxes: values to draw from")
  parser.add_argument("--distractors", type=int, default=0,
                      help="boxes: operations that leave the queried box alone")
  parser.add_argument("--ops_cap", type=int, default=3, help="boxes: kind ops<min(n, cap)>")
  parser.add_argument("--num_characters", type=int, default=4)
  parser.add_argument("--num_sentences", type=int, default=20, help="narrative length")
  parser.add_argument("--none_fraction", type=float, default=0.1)
  parser.add_argument("--num_major", type=int, default=3, help="mei: the major entities")
  args = parser.parse_args(argv)
  rng = random.Random(f"{args.task}-{args.seed}")
  if args.task == "boxes":
    records = boxes_records(rng, args.count, _ints(args.num_boxes), _ints(args.num_operations),
                            args.distractors, args.ops_cap)
  elif args.task == "identifyme":
    records = identifyme_records(rng, args.count, args.num_characters, args.num_sentences,
                                 args.none_fraction)
  else:
    records = mei.generated_records(rng, args.count, args.num_characters, args.num_major,
                                    args.num_sentences)
  files.write_jsonl(args.output, records)
  print(f"wrote {len(records)} {args.task} records to {args.output}")


if __name__ == "__main__":
  main()
