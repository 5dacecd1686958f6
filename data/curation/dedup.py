"""Deduplication and decontamination of documents, as curation stages
(``data/curation/beam.py``).

Exact: documents whose normalised text (Unicode NFKC, lower case, whitespace collapsed)
has the same SHA-1 are one; the first (lowest shard, then position) is kept.

Fuzzy: MinHash LSH (Broder 1997; the near-duplicate removal of Nemotron-CC-Math, arXiv
2508.15096, and of most web corpora): each document's word ``shingle``-grams are hashed
by ``bands × rows`` MinHash permutations (``datasketch``); documents sharing every value
of one band fall in one bucket, and in each bucket a document whose estimated Jaccard
similarity (the share of equal signature values) to the bucket's first document reaches
``threshold`` is dropped. Bands and rows set the similarity at which a pair becomes a
candidate, about (1/bands)^(1/rows).

Decontamination: a document sharing a word n-gram (13 by default, GPT-3's overlap test)
with an evaluation record's question or answer is dropped; its shard's
``.dropped.jsonl`` names the record and the n-gram.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Iterator, Sequence

import apache_beam as beam
import numpy as np

from data import synthesis
from data.curation import beam as curation_beam

_SPACES = re.compile(r"\s+")
_WORDS = re.compile(r"\w+")


def normalized_hash(text: str) -> str:
  """SHA-1 of the text in NFKC, lower case, with whitespace runs collapsed."""
  normal = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
  return hashlib.sha1(normal.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class MinHashLSH:
  """Fuzzy dedup settings: ``bands`` × ``rows`` permutations, word ``shingle``-grams,
  estimated Jaccard ``threshold`` to drop, permutation ``seed``."""

  bands: int = 16
  rows: int = 8
  threshold: float = 0.8
  shingle: int = 5
  seed: int = 1

  def __post_init__(self):
    if self.bands < 1 or self.rows < 1 or self.shingle < 1:
      raise ValueError(f"dedup.fuzzy: bands={self.bands}, rows={self.rows} and "
                       f"shingle={self.shingle} must be positive")
    if not 0.0 < self.threshold <= 1.0:
      raise ValueError(f"dedup.fuzzy.threshold={self.threshold}: want a Jaccard in (0, 1]")

  def signature(self, text: str) -> np.ndarray:
    """(bands * rows,) MinHash values of the text's word shingles (a text shorter than
    a shingle is one shingle of all its words)."""
    import datasketch  # pylint: disable=g-import-not-at-top
    words = _WORDS.findall(text.lower())
    n = min(self.shingle, len(words)) or 1
    grams = {" ".join(words[i:i + n]).encode("utf-8") for i in range(max(len(words) - n + 1, 1))}
    minhash = datasketch.MinHash(num_perm=self.bands * self.rows, seed=self.seed)
    minhash.update_batch(sorted(grams))
    return minhash.hashvalues.copy()

  def band_keys(self, signature: np.ndarray) -> list[tuple[int, bytes]]:
    return [(b, signature[b * self.rows:(b + 1) * self.rows].tobytes())
            for b in range(self.bands)]


def _exact_verdicts(group):
  _, ids = group
  first, *others = sorted(ids)
  for doc_id in others:
    yield doc_id, ("exact_duplicate", {"duplicate_of": list(first)})


def _bucket_verdicts(bucket, threshold: float):
  _, members = bucket
  (first, first_signature), *others = sorted(members, key=lambda m: m[0])
  for doc_id, signature in others:
    similarity = float(np.mean(signature == first_signature))
    if similarity >= threshold:
      yield doc_id, ("near_duplicate", {"duplicate_of": list(first),
                                        "jaccard": round(similarity, 3)})


def _one_verdict(item):
  """The verdict on a document dropped by both: exact first, else the first near one."""
  doc_id, verdicts = item
  return doc_id, min(verdicts, key=lambda v: (v[0] != "exact_duplicate", str(v[1])))


class Deduplicate(beam.PTransform):
  """(DocId, document) → (DocId, (reason, detail)) for each duplicate to drop:
  'exact_duplicate' and, with ``fuzzy``, 'near_duplicate'."""

  def __init__(self, fuzzy: MinHashLSH | None, field: str = "text"):
    super().__init__()
    self._fuzzy, self._field = fuzzy, field

  def expand(self, documents):
    field, fuzzy = self._field, self._fuzzy
    verdicts = [documents
                | "exact key" >> beam.Map(lambda item: (normalized_hash(item[1][field]), item[0]))
                | "exact groups" >> beam.GroupByKey()
                | "exact verdicts" >> beam.FlatMap(_exact_verdicts)]
    if fuzzy is not None:
      verdicts.append(
          documents
          | "signatures" >> beam.Map(lambda item: (item[0], fuzzy.signature(item[1][field])))
          | "bands" >> beam.FlatMap(lambda item: [(key, item) for key in fuzzy.band_keys(item[1])])
          | "buckets" >> beam.GroupByKey()
          | "near verdicts" >> beam.FlatMap(_bucket_verdicts, fuzzy.threshold))
    return (verdicts | beam.Flatten() | "by document" >> beam.GroupByKey()
            | "one verdict" >> beam.Map(_one_verdict))


def dedup_stage(fuzzy: MinHashLSH | None, field: str = "text",
                name: str = "dedup") -> curation_beam.GlobalStage:
  return curation_beam.GlobalStage(name, Deduplicate(fuzzy, field))


def decontamination_stage(eval_texts: Sequence[str], *, ngram: int = 13, field: str = "text",
                          name: str = "decontaminate") -> curation_beam.ShardStage:
  """Drops ('contaminated') every document sharing a word ``ngram``-gram with one of
  ``eval_texts``, noting the first shared n-gram and the text's index."""
  index = synthesis.contamination_index(eval_texts, ngram)

  def process(path: str, counts: curation_beam.ShardCounts) -> Iterator[dict]:
    for document in curation_beam.read_shard(path):
      counts.inputs += 1
      shared = index.keys() & synthesis.ngrams(document[field], ngram)
      if shared:
        gram = min(shared)
        counts.drop("contaminated", {"url": document.get("url", ""), "eval_record": index[gram],
                                     "ngram": " ".join(gram)})
        continue
      yield document

  return curation_beam.ShardStage(name, process)
