"""Thought-level fusion (FusionFactory, arXiv 2507.10540, §3.3): the top answers of a
query summarised into a reusable thought template, retrieved for similar queries by
embedding similarity and prepended to them.

A template bank (``TemplateBank``, saved as JSON ``{"questions", "templates",
"embeddings"}``) holds one template per routing query. ``extractive_summary`` keeps the
lines of the best answer that at least ``quorum`` of the top answers share (the steps
they agree on; all of the best answer's lines with one answer); ``train/fusion.py`` also
summarises with one of our models and a configurable prompt. ``retrieve`` returns the
templates of the ``n`` most cosine-similar bank queries; an empty bank retrieves none,
and ``prepend`` then leaves the question as it is.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np

from train import routing
from train import workdir as workdir_lib

# How a template introduces the question it was summarised from.
TEMPLATE_FORMAT = "{question}\n{thought}"
# Between the prepended templates and the question.
SEPARATOR = "\n\n"


def extractive_summary(answers: Sequence[str], quorum: float = 0.5) -> str:
  """The lines of ``answers[0]`` (the best) found in at least ``quorum`` of ``answers``."""
  if not answers:
    raise ValueError("a thought template summarises at least one answer")
  line_sets = [set(answer.splitlines()) for answer in answers]
  kept = [line for line in answers[0].splitlines()
          if sum(line in lines for lines in line_sets) >= quorum * len(answers)]
  return "\n".join(kept)


def top_answers(data: routing.RoutingData, *, top_k: int, alpha: float = 1.0,
                beta: float = 0.0, min_correct: float = 1.0) -> list[list[str]]:
  """Per query, the responses of its ``top_k`` best candidates (``routing.ranking``)
  that are at least ``min_correct`` right (none if no candidate is)."""
  order_QC = routing.ranking(data, alpha, beta)
  return [[data.responses[q][c] for c in order_QC[q, :top_k]
           if data.correct_QC[q, c] >= min_correct] for q in range(len(data.queries))]


@dataclasses.dataclass
class TemplateBank:
  """Templates with the embeddings of the questions they came from (``embeddings_ND``)."""
  questions: list[str]
  templates: list[str]
  embeddings_ND: np.ndarray

  def __post_init__(self):
    self.embeddings_ND = np.asarray(self.embeddings_ND, np.float64)
    if len(self.questions) != len(self.templates) or (
        len(self.templates) and self.embeddings_ND.shape[0] != len(self.templates)):
      raise ValueError(f"template bank: {len(self.questions)} questions, "
                       f"{len(self.templates)} templates and embeddings "
                       f"{self.embeddings_ND.shape} must match")

  def save(self, path: str) -> None:
    with workdir_lib.atomic_file(path) as f:
      json.dump({"questions": self.questions, "templates": self.templates,
                 "embeddings": self.embeddings_ND.tolist()}, f, ensure_ascii=False)

  @classmethod
  def load(cls, path: str) -> "TemplateBank":
    if not os.path.exists(path):
      raise FileNotFoundError(f"template bank {path}: no such file")
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
    return cls(value["questions"], value["templates"], np.asarray(value["embeddings"]))


def bank(questions: Sequence[str], thoughts: Sequence[str], embeddings_QD: np.ndarray
         ) -> TemplateBank:
  """The templates of the queries with a thought (an empty thought: no template)."""
  keep = [q for q, thought in enumerate(thoughts) if thought]
  return TemplateBank([questions[q] for q in keep],
                      [TEMPLATE_FORMAT.format(question=questions[q], thought=thoughts[q])
                       for q in keep],
                      np.asarray(embeddings_QD)[keep])


def _unit(x_ND: np.ndarray) -> np.ndarray:
  return x_ND / np.maximum(np.linalg.norm(x_ND, axis=-1, keepdims=True), 1e-12)


def retrieve(templates: TemplateBank, embeddings_QD: np.ndarray, n: int = 1
             ) -> list[list[str]]:
  """Per query, the templates of the ``n`` bank questions most cosine-similar to it,
  most similar first (none from an empty bank)."""
  embeddings_QD = np.asarray(embeddings_QD, np.float64)
  if not templates.templates or n < 1:
    return [[] for _ in range(len(embeddings_QD))]
  if embeddings_QD.ndim != 2 or embeddings_QD.shape[1] != templates.embeddings_ND.shape[1]:
    raise ValueError(f"retrieve: query embeddings {embeddings_QD.shape} do not match the "
                     f"bank's {templates.embeddings_ND.shape}")
  similarity_QN = _unit(embeddings_QD) @ _unit(templates.embeddings_ND).T
  order_QN = np.argsort(-similarity_QN, axis=1, kind="stable")[:, :n]
  return [[templates.templates[i] for i in row] for row in order_QN]


def prepend(question: str, retrieved: Sequence[str]) -> str:
  """The question with the retrieved templates before it."""
  return SEPARATOR.join([*retrieved, question])
