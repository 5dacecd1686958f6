"""Procedural narratives with mentions of their characters, for the entity-tracking
evaluations: IdentifyMe-format questions (arXiv 2411.07466, ``data/entity_tasks.py``) and
MEI records (arXiv 2406.14654, ``data/mei.py``).

A narrative introduces its characters, each with a unique role and a pronoun (he, she,
or singular they), in two sentences ("Mara was a baker in the village. She knew everyone
there."), then tells what they do in ``num_sentences`` sentences. Each sentence's subject
is mentioned by name, by nominal phrase ("The baker") or by pronoun; a visited character
by name; a minor person ("a stranger") is a mention of no character. Every mention's
character span and referent are recorded (``Mention``).

Who a mention denotes is decidable from the text by three rules: a name denotes its
character; "the <role>" denotes the one character introduced with that role; a pronoun
denotes the one character of the sentence before it that takes this pronoun (a pronoun
is written only where exactly one character of the previous sentence takes it, and never
after a sentence with a minor person; each character's pronoun is stated by the sentence
after its introduction).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Optional

from data import english_grammar

THEY_NAMES = ("Alex", "Robin", "Sasha", "Jordan", "Riley", "Quinn")   # not in NAMES
ROLES = ("baker", "farmer", "teacher", "sailor", "doctor", "painter", "guard", "miller",
         "tailor", "smith", "fisher", "weaver", "potter", "hunter", "singer", "merchant")
VISITS = ("greeted {o}", "visited {o}", "helped {o}", "thanked {o}", "called {o}",
          "followed {o} to the market", "met {o} by the well", "waved at {o}")
ACTIVITIES = ("baked bread", "walked to the river", "sang by the fire", "counted the coins",
              "fixed the old fence", "read a letter", "carried a basket home",
              "slept until noon", "cleaned the yard")
STRANGERS = ("a stranger", "an old man", "the mayor", "a little girl", "the king")
FILLERS = ("The wind was cold that day.", "Rain fell on the roofs.",
           "The bells rang in the square.", "Smoke rose from the chimneys.")
MARK_OPEN, MARK_CLOSE = "{{", "}} (#This is the marked mention)"   # IdentifyMe's marker


@dataclasses.dataclass(frozen=True)
class Character:
  name: str
  pronoun: str   # he / she / they
  role: str


@dataclasses.dataclass(frozen=True)
class Mention:
  start: int                 # character offsets into the narrative's text
  end: int
  entity: Optional[str]      # a character's name; None for a minor one ("a stranger")
  form: str                  # 'name', 'pronominal', 'nominal' or 'minor'
  body: bool                 # after the introductions


@dataclasses.dataclass(frozen=True)
class Narrative:
  text: str
  characters: tuple[Character, ...]
  mentions: tuple[Mention, ...]


def characters(rng: random.Random, count: int) -> tuple[Character, ...]:
  """``count`` characters with distinct names and roles (pronouns of their names)."""
  people = [(name, pronoun) for name, pronoun in english_grammar.NAMES]
  people += [(name, "they") for name in THEY_NAMES]
  if not 1 <= count <= len(ROLES):
    raise ValueError(f"num_characters={count}: 1 to {len(ROLES)}")
  return tuple(Character(name, pronoun, role) for (name, pronoun), role in
               zip(rng.sample(people, count), rng.sample(ROLES, count)))


class _Writer:
  """Sentences joined by spaces, with the spans of their mentions."""

  def __init__(self):
    self.text, self.mentions = "", []

  def sentence(self, parts: Sequence[tuple[str, Optional[Character], str]], body: bool):
    """Appends a sentence of (text, character or None, form) parts; form '' is no
    mention."""
    if self.text:
      self.text += " "
    for text, character, form in parts:
      if form:
        self.mentions.append(Mention(len(self.text), len(self.text) + len(text),
                                     character.name if character else None, form, body))
      self.text += text


def narrative(rng: random.Random, num_characters: int, num_sentences: int) -> Narrative:
  """A story of ``num_characters`` characters: two introduction sentences each, then
  ``num_sentences`` sentences in which they act (see the module docstring's rules)."""
  cast = characters(rng, num_characters)
  writer = _Writer()
  for character in cast:
    article = "an" if character.role[0] in "aeiou" else "a"
    writer.sentence([(character.name, character, "name"),
                     (f" was {article} {character.role} in the village.", None, "")], False)
    writer.sentence([(character.pronoun.capitalize(), character, "pronominal"),
                     (" knew everyone there.", None, "")], False)
  previous = [cast[-1]]   # the characters of the sentence before
  for _ in range(num_sentences):
    if rng.random() < 0.1:
      writer.sentence([(rng.choice(FILLERS), None, "")], True)
      previous = []
      continue
    subject = rng.choice(previous if previous and rng.random() < 0.6 else cast)
    sharing = [c for c in previous if c.pronoun == subject.pronoun]
    forms = ["name", "nominal"] + (["pronominal"] * 2 if sharing == [subject] else [])
    form = rng.choice(forms)
    said = {"name": subject.name, "nominal": f"The {subject.role}",
            "pronominal": subject.pronoun.capitalize()}[form]
    parts = [(said, subject, form)]
    others = [c for c in cast if c != subject]
    if others and rng.random() < 0.5:
      other = rng.choice(others)
      before, after = rng.choice(VISITS).split("{o}")
      parts += [(f" {before}", None, ""), (other.name, other, "name"), (f"{after}.", None, "")]
      previous = [subject, other]
    elif rng.random() < 0.3:
      parts += [(" talked with ", None, ""), (rng.choice(STRANGERS), None, "minor"),
                (".", None, "")]
      previous = []   # no pronoun next: it might be read as the stranger
    else:
      parts.append((f" {rng.choice(ACTIVITIES)}.", None, ""))
      previous = [subject]
    writer.sentence(parts, True)
  return Narrative(writer.text, cast, tuple(writer.mentions))


def mark(text: str, start: int, end: int) -> str:
  """The text with the span marked as IdentifyMe marks a mention."""
  return f"{text[:start]}{MARK_OPEN}{text[start:end]}{MARK_CLOSE}{text[end:]}"
