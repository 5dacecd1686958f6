"""Query-level routing (FusionFactory, arXiv 2507.10540, §3.2): routing data, the
performance–cost labels and the routers that learn them.

Routing data (``RoutingData``): queries run by candidates, each a (checkpoint, mode)
pair (mode: the reasoning toggle, 'on', 'off' or '' for none), with per query and
candidate ``correct`` (the checker's verdict, the share of right samples with several),
``tokens`` (completion tokens: the cost) and the ``response``. ``train/fusion.py`` makes
it by running checkpoints; saved as JSON::

  {"candidates": [{"name", "checkpoint", "mode"}], "queries": [{question, answer, ...}],
   "correct": [[per candidate] per query], "tokens": [...], "responses": [...],
   "settings": {...}}

Labels (the paper's performance–cost trade-off): per task (a query's ``kind``, else
'all'), performance and cost are min-max normalised over every (query, candidate) of
that task (0 when they do not vary), score = α · perf − β · cost, and a query's label is
the candidate of the highest score (ties: fewer tokens, then the earlier candidate).
``TRADEOFFS`` holds the paper's three settings (α, β): (1, 0), (0.5, 0.5), (0.2, 0.8).

Routers (``Router``): a scikit-learn classifier from query embeddings (``train/fusion.py``:
mean-pooled final hidden states of one of our models) to the label: 'knn' (k nearest
neighbours, cosine distance) or 'mlp' (a multi-layer perceptron on standardised
embeddings). A router trained on one label only always routes there. Asking about a
candidate without routing data is a ValueError naming it; routing no queries gives no
routes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
from sklearn import dummy
from sklearn import neighbors
from sklearn import neural_network
from sklearn import pipeline
from sklearn import preprocessing

from train import workdir as workdir_lib

# (α, β) of score = α · performance − β · cost: the paper's three settings.
TRADEOFFS = {"performance": (1.0, 0.0), "balanced": (0.5, 0.5), "cost": (0.2, 0.8)}
METHODS = ("knn", "mlp")
ROUTER_FORMAT = "reasonax-router-1"


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A model the router may pick: ``checkpoint`` run with the reasoning toggle ``mode``."""
  name: str
  checkpoint: str
  mode: str = ""


@dataclasses.dataclass
class RoutingData:
  """Queries × candidates: ``correct_QC`` (in [0, 1]), ``tokens_QC``, ``responses``
  (a list per query of one text per candidate)."""
  candidates: list[Candidate]
  queries: list[dict]
  correct_QC: np.ndarray
  tokens_QC: np.ndarray
  responses: list[list[str]]
  settings: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    q, c = len(self.queries), len(self.candidates)
    names = [candidate.name for candidate in self.candidates]
    if len(set(names)) != c:
      raise ValueError(f"routing data: candidate names repeat: {names}")
    self.correct_QC = np.asarray(self.correct_QC, np.float64).reshape(q, c)
    self.tokens_QC = np.asarray(self.tokens_QC, np.float64).reshape(q, c)
    if len(self.responses) != q or any(len(r) != c for r in self.responses):
      raise ValueError(f"routing data: responses must be {q} queries × {c} candidates")

  @property
  def names(self) -> list[str]:
    return [candidate.name for candidate in self.candidates]

  def tasks(self) -> list[str]:
    return [task_of(query) for query in self.queries]

  def index(self, name: str) -> int:
    """The column of candidate ``name``; a ValueError if it has no routing data."""
    if name not in self.names:
      raise ValueError(f"candidate {name!r} has no routing data; candidates: {self.names}")
    return self.names.index(name)

  def to_json(self) -> dict:
    return {"candidates": [dataclasses.asdict(c) for c in self.candidates],
            "queries": self.queries, "correct": self.correct_QC.tolist(),
            "tokens": self.tokens_QC.tolist(), "responses": self.responses,
            "settings": self.settings}

  @classmethod
  def from_json(cls, value: Mapping, where: str = "routing data") -> "RoutingData":
    missing = [k for k in ("candidates", "queries", "correct", "tokens", "responses")
               if k not in value]
    if missing:
      raise ValueError(f"{where}: missing fields {missing}")
    return cls([Candidate(**c) for c in value["candidates"]], list(value["queries"]),
               np.asarray(value["correct"]), np.asarray(value["tokens"]),
               [list(r) for r in value["responses"]], dict(value.get("settings", {})))


def save(data: RoutingData, path: str) -> None:
  """Writes ``data`` as JSON, atomically."""
  with workdir_lib.atomic_file(path) as f:
    json.dump(data.to_json(), f, ensure_ascii=False)


def load(path: str) -> RoutingData:
  if not os.path.exists(path):
    raise FileNotFoundError(f"routing data {path}: no such file")
  with open(path, encoding="utf-8") as f:
    return RoutingData.from_json(json.load(f), where=path)


def task_of(query: Mapping) -> str:
  """The task a query is normalised within: its ``kind``, else 'all'."""
  return str(query.get("kind", "all"))


# --------------------------------------------------------------------------- labels


def normalise_per_task(values_QC: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
  """``values_QC`` min-max normalised to [0, 1] within each task's rows (0 where a task's
  values do not vary)."""
  values_QC = np.asarray(values_QC, np.float64)
  out = np.zeros_like(values_QC)
  tasks = np.asarray(tasks)
  for task in dict.fromkeys(tasks.tolist()):
    rows = tasks == task
    low, high = values_QC[rows].min(), values_QC[rows].max()
    if high > low:
      out[rows] = (values_QC[rows] - low) / (high - low)
  return out


def scores(data: RoutingData, alpha: float, beta: float) -> np.ndarray:
  """(Q, C) α · normalised performance − β · normalised cost (arXiv 2507.10540)."""
  tasks = data.tasks()
  return (alpha * normalise_per_task(data.correct_QC, tasks)
          - beta * normalise_per_task(data.tokens_QC, tasks))


def ranking(data: RoutingData, alpha: float, beta: float) -> np.ndarray:
  """(Q, C) candidate indices of each query, best first: highest score, then fewest
  tokens, then the earlier candidate."""
  score_QC = scores(data, alpha, beta)
  order = [sorted(range(len(data.candidates)),
                  key=lambda c, q=q: (-score_QC[q, c], data.tokens_QC[q, c], c))
           for q in range(len(data.queries))]
  return np.asarray(order, np.int64).reshape(len(data.queries), len(data.candidates))


def labels(data: RoutingData, alpha: float, beta: float) -> np.ndarray:
  """(Q,) the best candidate of each query under (α, β)."""
  return ranking(data, alpha, beta)[:, 0] if data.queries else np.zeros(0, np.int64)


# --------------------------------------------------------------------------- routers


def _classifier(method: str, *, k: int, hidden: Sequence[int], seed: int, labels_Q):
  if len(set(labels_Q.tolist())) == 1:
    return dummy.DummyClassifier(strategy="most_frequent")
  if method == "knn":
    return neighbors.KNeighborsClassifier(n_neighbors=min(k, len(labels_Q)),
                                          metric="cosine")
  return pipeline.make_pipeline(
      preprocessing.StandardScaler(),
      neural_network.MLPClassifier(hidden_layer_sizes=tuple(hidden), max_iter=1000,
                                   random_state=seed))


@dataclasses.dataclass
class Router:
  """A fitted classifier from embeddings to candidates (``fit``)."""
  candidates: list[str]
  method: str
  settings: dict
  estimator: Any

  @classmethod
  def fit(cls, embeddings_QD: np.ndarray, labels_Q: np.ndarray, candidates: Sequence[str],
          *, method: str = "knn", k: int = 5, hidden: Sequence[int] = (64,),
          seed: int = 0, **settings) -> "Router":
    """A router of ``method`` trained on (embedding, label) pairs; labels index
    ``candidates``."""
    if method not in METHODS:
      raise ValueError(f"router method {method!r}: want one of {METHODS}")
    embeddings_QD = np.asarray(embeddings_QD, np.float64)
    labels_Q = np.asarray(labels_Q, np.int64)
    if embeddings_QD.ndim != 2 or len(embeddings_QD) != len(labels_Q):
      raise ValueError(f"router: embeddings {embeddings_QD.shape} and labels "
                       f"{labels_Q.shape} must be (Q, D) and (Q,)")
    if not len(labels_Q):
      raise ValueError("router: no queries to learn from (empty routing data)")
    if labels_Q.min() < 0 or labels_Q.max() >= len(candidates):
      raise ValueError(f"router: labels must index the {len(candidates)} candidates")
    estimator = _classifier(method, k=k, hidden=hidden, seed=seed, labels_Q=labels_Q)
    estimator.fit(embeddings_QD, labels_Q)
    return cls(list(candidates), method,
               {"k": k, "hidden": list(hidden), "seed": seed, **settings}, estimator)

  def probabilities(self, embeddings_QD: np.ndarray) -> np.ndarray:
    """(Q, C) the router's probability of each candidate (0 for one it never saw as a
    label)."""
    embeddings_QD = np.asarray(embeddings_QD, np.float64)
    out = np.zeros((len(embeddings_QD), len(self.candidates)))
    if len(embeddings_QD):
      out[:, self.estimator.classes_] = self.estimator.predict_proba(embeddings_QD)
    return out

  def predict(self, embeddings_QD: np.ndarray,
              allowed: Optional[Sequence[str]] = None) -> list[str]:
    """The candidate chosen for each query (none for no queries), among ``allowed``
    (default: all); a candidate without routing data is a ValueError."""
    allowed = list(self.candidates if allowed is None else allowed)
    unknown = [name for name in allowed if name not in self.candidates]
    if unknown or not allowed:
      raise ValueError(f"router: no routing data for candidates {unknown or allowed}; it "
                       f"routes among {self.candidates}")
    columns = [self.candidates.index(name) for name in allowed]
    probabilities_QC = self.probabilities(embeddings_QD)[:, columns]
    return [allowed[c] for c in np.argmax(probabilities_QC, axis=1)]

  def save(self, path: str) -> None:
    with workdir_lib.atomic_file(path, "wb") as f:
      pickle.dump({"format": ROUTER_FORMAT, "candidates": self.candidates,
                   "method": self.method, "settings": self.settings,
                   "estimator": self.estimator}, f)

  @classmethod
  def load(cls, path: str) -> "Router":
    if not os.path.exists(path):
      raise FileNotFoundError(f"router {path}: no such file")
    with open(path, "rb") as f:
      value = pickle.load(f)
    if not isinstance(value, dict) or value.get("format") != ROUTER_FORMAT:
      raise ValueError(f"router {path}: not a saved router ({ROUTER_FORMAT})")
    return cls(value["candidates"], value["method"], value["settings"], value["estimator"])
