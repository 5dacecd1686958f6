"""Self-Notes data (arXiv 2305.00833): procedural state tracking with and without notes.

A problem is a sequence of statements, then a query. Its training text with notes puts a
note ``<SN> … </SN>`` after each statement holding the state it changed; the text without
notes is the same problem with the notes cut out (nothing else differs), so the two arms
of the ``self_notes`` claim read the same problems. Two tasks:

  program   the paper's algorithmic task: ``a = 3 ; b = a + 2 ; a = b - 1 ; print a ?``
            (values stay digits 0-9), notes ``<SN> b = 5</SN>``, answer ``4``
  boxes     boxes and their contents, then moves, removals and puts
            (``data.reasoning_tasks.boxes``' form), notes with the changed boxes'
            contents, the query ``Box 2 contains`` and its contents as the answer

A note is written ``statement<SN> note</SN> next statement``: cut out, the text reads
``statement next statement`` and tokenizes to the same ids as the text with notes minus
the notes' ids (sentencepiece splits at the markers and before each space), so reading
the plain question with ``model.self_notes`` puts a note where training put one.

Text documents are ``question\\nanswer`` (``data.prompts`` 'text' template); eval
records ``{question, answer, kind}`` hold the question without notes. ``claim_dataset``
writes the claim's files and a tokenizer trained on them with the note markers as
single tokens.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from data import files
from data import reasoning_tasks
from data import tokenizer as tokenizer_lib

NOTE_START, NOTE_END = "<SN>", "</SN>"
NOTE_TOKENS = (NOTE_START, NOTE_END)
PROGRAM_NAMES = "abc"
_NOTE_RE = re.compile(re.escape(NOTE_START) + ".*?" + re.escape(NOTE_END), re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Problem:
  """statements: the input's pieces in order; notes: the note after each ('' none);
  query: what is asked; answer: its answer; operations: the length axis (statements of
  a program, operations on boxes)."""
  statements: tuple[str, ...]
  notes: tuple[str, ...]
  query: str
  answer: str
  operations: int

  def question(self, notes: bool = False) -> str:
    """The input and the query, with a note after each noted statement if ``notes``."""
    parts = [s + (f"{NOTE_START} {n}{NOTE_END}" if notes and n else "")
             for s, n in zip(self.statements, self.notes)]
    return " ".join(parts + [self.query])

  def document(self, notes: bool) -> str:
    """The training text: the question, a newline, the answer."""
    return f"{self.question(notes)}\n{self.answer}"


def without_notes(text: str) -> str:
  """``text`` with every ``<SN> … </SN>`` cut out."""
  return _NOTE_RE.sub("", text)


def program(rng: random.Random, statements: int) -> Problem:
  """A program of ``statements`` assignments over three variables (a literal digit, or a
  variable plus or minus a digit, values kept in 0-9), then ``print x ?`` for a variable
  it set; the note after each statement is the assigned variable's new value."""
  if statements < 1:
    raise ValueError(f"program statements={statements}: must be >= 1")
  values: dict[str, int] = {}
  lines, notes = [], []
  for _ in range(statements):
    target = rng.choice(PROGRAM_NAMES)
    if not values or rng.random() < 0.25:
      values[target] = rng.randrange(10)
      lines.append(f"{target} = {values[target]} ;")
    else:
      source = rng.choice(sorted(values))
      value = values[source]
      up = value < 9 and (value == 0 or rng.random() < 0.5)
      step = rng.randint(1, 9 - value) if up else rng.randint(1, value)
      values[target] = value + step if up else value - step
      lines.append(f"{target} = {source} {'+' if up else '-'} {step} ;")
    notes.append(f"{target} = {values[target]}")
  asked = rng.choice(sorted(values))
  return Problem(tuple(lines), tuple(notes), f"print {asked} ?", str(values[asked]),
                 statements)


def boxes(rng: random.Random, operations: int, num_boxes: int = 3) -> Problem:
  """Boxes described, then ``operations`` moves, removals and puts (the items of
  ``data.reasoning_tasks.BOX_ITEMS``), then ``Box k contains`` for a box; the note after
  each operation holds the changed boxes' contents."""
  if operations < 0 or num_boxes < 2:
    raise ValueError(f"boxes operations={operations} (>= 0), num_boxes={num_boxes} (>= 2)")
  items = rng.sample(reasoning_tasks.BOX_ITEMS, len(reasoning_tasks.BOX_ITEMS))
  contents = [set() for _ in range(num_boxes)]
  for item in items[:num_boxes]:
    contents[rng.randrange(num_boxes)].add(item)
  spare = items[num_boxes:]
  lines = [f"Box {i + 1} contains {reasoning_tasks.box_contents(c)}."
           for i, c in enumerate(contents)]
  notes = [""] * len(lines)
  for _ in range(operations):
    full = [i for i, c in enumerate(contents) if c]
    action = rng.randrange(3) if spare and full else (2 if spare else 0)
    if action in (0, 1) and full:
      source = rng.choice(full)
      item = rng.choice(sorted(contents[source]))
      contents[source].remove(item)
    if action == 0 and full:
      target = rng.choice([i for i in range(num_boxes) if i != source])
      contents[target].add(item)
      lines.append(f"Move the {item} from Box {source + 1} to Box {target + 1}.")
      changed = (source, target)
    elif action == 1 and full:
      lines.append(f"Remove the {item} from Box {source + 1}.")
      changed = (source,)
    else:   # put a spare item (every box empty and none spare cannot happen: 10 items)
      item, target = spare.pop(), rng.randrange(num_boxes)
      contents[target].add(item)
      lines.append(f"Put the {item} into Box {target + 1}.")
      changed = (target,)
    notes.append(" ; ".join(
        f"Box {i + 1} contains {reasoning_tasks.box_contents(contents[i])}" for i in changed))
  asked = rng.randrange(num_boxes)
  return Problem(tuple(lines), tuple(notes), f"Box {asked + 1} contains",
                 reasoning_tasks.box_contents(contents[asked]), operations)


TASKS = {"program": program, "boxes": boxes}


def problems(task: str, rng: random.Random, count: int, lengths: Sequence[int]
             ) -> list[Problem]:
  """``count`` problems of ``task``, each length (statements or operations) drawn
  uniformly from ``lengths``."""
  if task not in TASKS:
    raise ValueError(f"self-notes task {task!r}: one of {sorted(TASKS)}")
  if not lengths:
    raise ValueError("self-notes lengths: give at least one")
  return [TASKS[task](rng, rng.choice(list(lengths))) for _ in range(count)]


def record(problem: Problem, kind: str = "") -> dict[str, str]:
  """An eval record: the question without notes, the answer, ``kind`` (default
  ``ops<n>``, the problem's length)."""
  return {"question": problem.question(notes=False), "answer": problem.answer,
          "kind": kind or f"ops{problem.operations}"}


def _distinct(pool: list[Problem], taken: set[str], count: int, what: str) -> list[Problem]:
  """The first ``count`` problems of ``pool`` whose question is not in ``taken`` and not
  repeated (added to ``taken``)."""
  out = []
  for problem in pool:
    question = problem.question()
    if question not in taken:
      taken.add(question)
      out.append(problem)
      if len(out) == count:
        return out
  raise ValueError(f"self-notes {what}: only {len(out)} distinct problems of {count} asked; "
                   "ask for fewer or allow longer inputs")


def claim_dataset(directory: str, *, task: str = "program", train_problems: int = 20000,
                  eval_problems: int = 200, train_lengths: Sequence[int] = (2, 3, 4),
                  ood_lengths: Sequence[int] = (6, 7, 8, 9, 10), vocab_size: int = 300,
                  seed: int = 0) -> dict[str, Any]:
  """The ``self_notes`` claim's data (a ``datasets`` build, ``train.stages.build_dataset``)
  written into ``directory``:

    train_notes.txt, train_plain.txt  the same ``train_problems`` problems (lengths drawn
        from ``train_lengths``) with and without notes, blank-line separated documents
    dev.jsonl     ``eval_problems`` in-distribution records (kind ``ops<n>``; the gate's)
    valid.jsonl   ``eval_problems`` other in-distribution records (kind 'id') and as many
                  longer ones (``ood_lengths``, kind 'ood'): the claim's comparison
    ood.jsonl     the longer ones again by length (kind ``ops<n>``)
    tokenizer.model  sentencepiece of exactly ``vocab_size`` ids (the model's: every id
                  it can write decodes) trained on both training texts, the note markers
                  and ``data.tokenizer.SPECIAL_TOKENS`` single tokens; ValueError when the
                  text gives fewer pieces

  No eval question is a training question. Returns the figures: counts, mean characters
  per document of each arm, notes per document, the tokenizer's size and marker ids, the
  most frequent answer's share of each records file."""
  rng = random.Random(f"self_notes/{task}/{seed}")
  taken: set[str] = set()
  in_pool = problems(task, rng, 4 * (2 * eval_problems) + 1000, train_lengths)
  dev = _distinct(in_pool, taken, eval_problems, "dev")
  valid = _distinct(in_pool[len(dev):], taken, eval_problems, "valid")
  ood = _distinct(problems(task, rng, 4 * eval_problems + 1000, ood_lengths), taken,
                  eval_problems, "ood")
  train = [p for p in problems(task, rng, train_problems, train_lengths)
           if p.question() not in taken]
  texts = {arm: [p.document(notes=arm == "notes") for p in train]
           for arm in ("notes", "plain")}
  for arm, documents in texts.items():
    with open(os.path.join(directory, f"train_{arm}.txt"), "w", encoding="utf-8") as f:
      f.write("\n\n".join(documents) + "\n")
  records = {"dev": [record(p) for p in dev],
             "valid": [record(p, "id") for p in valid] + [record(p, "ood") for p in ood],
             "ood": [record(p) for p in ood]}
  for name, rows in records.items():
    files.write_jsonl(os.path.join(directory, f"{name}.jsonl"), rows)
  tokenizer = tokenizer_lib.train_sentencepiece(
      texts["notes"] + texts["plain"], vocab_size=vocab_size,
      user_defined_symbols=tokenizer_lib.SPECIAL_TOKENS + NOTE_TOKENS)
  if tokenizer.vocab_size != vocab_size:
    raise ValueError(f"self-notes vocab_size={vocab_size}: the training text gives a "
                     f"tokenizer of {tokenizer.vocab_size} ids; ask for at most that many "
                     "(and give the model as many)")
  tokenizer.save(os.path.join(directory, "tokenizer.model"))

  def most_frequent(rows):
    answer, count = Counter(r["answer"] for r in rows).most_common(1)[0]
    return {"answer": answer, "share": count / len(rows)}
  return {
      "task": task, "train_problems": len(train),
      "dropped_as_eval_questions": train_problems - len(train),
      "chars_per_document": {arm: sum(map(len, docs)) / len(docs)
                             for arm, docs in texts.items()},
      "notes_per_document": sum(sum(bool(n) for n in p.notes) for p in train) / len(train),
      "tokenizer": {"vocab_size": tokenizer.vocab_size,
                    "note_ids": [tokenizer.encode(t) for t in NOTE_TOKENS]},
      "most_frequent": {name: most_frequent(rows) for name, rows in records.items()}}
