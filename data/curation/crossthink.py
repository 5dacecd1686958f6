r"""Nemotron-CrossThink (arXiv 2504.13941) RL blends as curation stages
(``data/curation/beam.py``): question-answer records in two templates, the paper's
filters, and the named blend recipes written as GRPO record files.

Input records (JSONL shards), one question each:
  {"question", "answer", "source"[, "domain"][, "options": [texts]]}
``domain`` is 'math' or 'general' (default: 'math' when ``source`` names math, else
'general'); with ``options`` the answer is an option letter or an option's text.

``template`` (a shard stage) writes each usable record in every template it makes:
  mcq   the question with lettered options, the letter as answer (records with options)
  open  the question alone, the answer text: a multiple-choice record's gold option
        (``data.prompts.to_open_ended``), or an open record's answer
  math  a math record without options, its answer checked by Math-Verify
and drops, by reason: 'missing_field' (no question or answer), 'unverifiable_answer'
(empty; an option letter or text that is not an option; a math answer that is prose or
longer than the checker reads), 'needs_options' (an open-ended form of a question that
only makes sense with its options), 'long_answer' (an open-ended answer over
``MAX_OPEN_ANSWER_WORDS`` words). Each templated record carries ``id`` (shard:position),
``format``, ``domain`` and ``source``; the stage's stats count the pool of each
(domain, format, source).

A blend recipe (``Recipe``) is target shares of the pool: ``natural`` keeps the pool as
it is (every source and format in its own proportion); ``more_math`` and
``more_general`` give the math or the general domain ``share`` (2/3 by default) of
``size`` records; ``source_only`` keeps one source; ``format_only`` one format. A
record is drawn when a hash of (recipe, id) falls under its group's rate (target over
pool, at most 1), so blends are reproducible and resumable shard by shard, and each
recipe's records are written as one GRPO records file ``<output>/<recipe>.jsonl``
({question, answer, kind[, options], source, domain}; ``rl/grpo.py`` reads it, the
CrossThink reward checks it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence

from data import answers
from data import prompts
from data.curation import beam as curation_beam
from data.curation import storage

DOMAINS = ("math", "general")
FORMATS = ("mcq", "open", "math")
RECIPES = ("natural", "more_math", "more_general", "source_only", "format_only")


def _domain(record: Mapping) -> str:
  domain = record.get("domain") or ("math" if "math" in str(record.get("source", "")).lower()
                                    else "general")
  return domain if domain in DOMAINS else "general"


def _gold_letter(answer: str, options: Sequence[str]) -> str | None:
  letters = prompts.option_letters(len(options))
  if answer.strip() in letters:
    return answer.strip()
  texts = [answers.normalize_text(o) for o in options]
  normal = answers.normalize_text(answer)
  return letters[texts.index(normal)] if normal and normal in texts else None


def templated(record: Mapping) -> tuple[list[dict], list[str]]:
  """(the record in every template it makes, the reasons of those it does not make)."""
  question, answer = record.get("question"), record.get("answer")
  if not isinstance(question, str) or not question.strip() or answer is None:
    return [], ["missing_field"]
  answer = str(answer).strip()
  meta = {"source": str(record.get("source", "")), "domain": _domain(record)}
  options = record.get("options")
  if options:
    if not 1 <= len(options) <= 10:
      return [], ["unverifiable_answer"]
    options = [str(o) for o in options]
    letter = _gold_letter(answer, options)
    if letter is None:
      return [], ["unverifiable_answer"]
    mcq = {"kind": "mcq", "question": question, "options": options, "answer": letter}
    made = [dict(mcq, format="mcq", **meta)]
    open_form = prompts.to_open_ended(mcq)
    if open_form is None:
      gold = options[prompts.option_letters(len(options)).index(letter)]
      return made, [prompts.open_ended_drop_reason(question, gold)]
    return made + [dict(open_form, format="open", **meta)], []
  if not answer:
    return [], ["unverifiable_answer"]
  if meta["domain"] == "math":
    if len(answer) > answers.MAX_ANSWER_CHARS or answers.is_prose(answer):
      return [], ["unverifiable_answer"]
    return [{"kind": "math", "question": question, "answer": answer, "format": "math",
             **meta}], []
  reason = prompts.open_ended_drop_reason(question, answer)
  if reason is not None:
    return [], [reason]
  return [{"kind": "open", "question": question, "answer": answer, "format": "open",
           **meta}], []


def group_key(record: Mapping) -> str:
  """The pool a templated record counts in: 'domain/format/source'."""
  return f"{record['domain']}/{record['format']}/{record['source']}"


def template_stage(read: Callable[[str], Iterator], name: str = "template") -> curation_beam.ShardStage:
  """Each input record (``read(path)`` yields them, e.g. a JSONL shard's) in its
  templates; stats ``pool/<group>`` count the records of each group."""

  def process(path: str, counts: curation_beam.ShardCounts) -> Iterator[dict]:
    shard = curation_beam.shard_name(path)
    for position, record in enumerate(read(path)):
      counts.inputs += 1
      made, reasons = templated(record) if isinstance(record, Mapping) else ([], ["malformed"])
      for reason in reasons:
        counts.drop(reason)
      for item in made:
        counts.stats[f"pool/{group_key(item)}"] += 1
        yield dict(item, id=f"{shard}:{position}:{item['format']}")

  return curation_beam.ShardStage(name, process)


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A blend: ``kind`` (one of RECIPES), ``size`` (records wanted; 0: the whole pool of
  what the kind keeps), ``share`` (more_math / more_general: the favoured domain's
  share), ``source`` (source_only) or ``format`` (format_only)."""

  kind: str
  size: int = 0
  share: float = 2 / 3
  source: str = ""
  format: str = ""

  def __post_init__(self):
    if self.kind not in RECIPES:
      raise ValueError(f"blend kind {self.kind!r}: want one of {RECIPES}")
    if self.kind in ("more_math", "more_general") and not 0 < self.share < 1:
      raise ValueError(f"blend {self.kind}: share={self.share} must be in (0, 1)")
    if self.kind == "source_only" and not self.source:
      raise ValueError("blend source_only needs the source it keeps")
    if self.kind == "format_only" and self.format not in FORMATS:
      raise ValueError(f"blend format_only: format={self.format!r}, want one of {FORMATS}")

  def rates(self, pool: Mapping[str, int]) -> dict[str, float]:
    """Per group of ``pool`` (counts by ``group_key``), the share of it drawn."""
    def domain(group): return group.split("/", 2)[0]
    def fmt(group): return group.split("/", 2)[1]
    def source(group): return group.split("/", 2)[2]
    kept = {"natural": lambda g: True, "more_math": lambda g: True,
            "more_general": lambda g: True,
            "source_only": lambda g: source(g) == self.source,
            "format_only": lambda g: fmt(g) == self.format}[self.kind]
    groups = {g: n for g, n in pool.items() if kept(g) and n > 0}
    if not groups:
      raise ValueError(f"blend {self.kind}: the pool has no record it keeps (pool groups: "
                       f"{sorted(pool)})")
    total = sum(groups.values())
    size = self.size or total
    if self.kind in ("more_math", "more_general"):
      favoured = "math" if self.kind == "more_math" else "general"
      shares = {favoured: self.share, ({*DOMAINS} - {favoured}).pop(): 1 - self.share}
      by_domain = {d: sum(n for g, n in groups.items() if domain(g) == d) for d in DOMAINS}
      return {g: min(1.0, size * shares[domain(g)] / by_domain[domain(g)])
              for g in groups if by_domain[domain(g)]}
    return {g: min(1.0, size / total) for g in groups}


def _draw(recipe_name: str, record_id: str) -> float:
  digest = hashlib.sha1(f"{recipe_name}\0{record_id}".encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def blend_stage(recipe_name: str, recipe: Recipe, pool: Mapping[str, int]
                ) -> curation_beam.ShardStage:
  """The templated records ``recipe`` draws (stats ``blend/<group>``: drawn per group)."""
  rates = recipe.rates(pool)

  def process(path: str, counts: curation_beam.ShardCounts) -> Iterator[dict]:
    for record in curation_beam.read_shard(path):
      counts.inputs += 1
      group = group_key(record)
      if _draw(recipe_name, record["id"]) < rates.get(group, 0.0):
        counts.stats[f"blend/{group}"] += 1
        yield record
      else:
        counts.drop("not_drawn")

  return curation_beam.ShardStage(f"blend_{recipe_name}", process)


def grpo_record(record: Mapping) -> dict:
  keys = ("question", "answer", "kind", "options", "source", "domain")
  return {k: record[k] for k in keys if k in record}


def write_records_file(stage_dir: str, path: str) -> int:
  """The blend's shards as one GRPO records file (JSONL, atomically); returns its size."""
  records = [grpo_record(r) for shard in curation_beam.shard_paths(stage_dir)
             for r in curation_beam.read_shard(shard)]
  storage.write_jsonl(path, records)
  return len(records)


def read_jsonl(path: str) -> Iterator[dict | str]:
  """A JSONL shard's records; a line that is not JSON yields the line (the template
  stage counts it 'malformed')."""
  with storage.open_read(path) as f:
    for line in f.read().decode("utf-8", errors="replace").splitlines():
      if line.strip():
        try:
          yield json.loads(line)
        except json.JSONDecodeError:
          yield line


def pool_counts(summary: Mapping) -> dict[str, int]:
  """The pool sizes per group from the template stage's summary stats."""
  return {key[len("pool/"):]: n for key, n in summary["stats"].items()
          if key.startswith("pool/")}
