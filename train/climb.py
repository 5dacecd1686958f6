r"""CLIMB: clustering-based iterative data-mixture bootstrapping (arXiv 2504.13161).

Two steps, each a function the CLI (``main``) calls in order and a rerun skips once done:

1. ``embed_and_cluster``: the documents of ``config.documents`` are embedded (the
   mean-pooled final hidden states of ``config.embedder``, one of our checkpoints,
   through ``model/embedding.py``; or, with no embedder, a hashed word n-gram
   embedding), k-means groups them into ``config.clusters`` clusters (scikit-learn) and
   clusters whose centroids are close merge into super-clusters (agglomerative, Ward, on
   the centroids: ``config.super_clusters`` of them, or those closer than
   ``config.merge_distance``). Each super-cluster becomes one ArrayRecord data source
   (``clusters/<name>.array_record``, raw text) with its token count (the run's
   tokenizer) in ``clusters.json``.
2. ``search``: the iterative mixture search. The prior is the super-clusters' token
   share^0.5, renormalised; a proposal is Dirichlet(prior × strength) with the strength
   log-uniform in [0.1, 5] (10**uniform(log10 0.1, log10 5): the paper's code draws it
   on a log scale), rejected while any weight is above min(15 · prior, 1). Round 1
   trains ``search.rounds[0]`` proxies on random proposals; every later round fits a
   LightGBM regressor (max depth 4, learning rate 0.01) from the mixture weights of every
   proxy so far to its score, predicts ``search.candidates`` fresh proposals and trains
   proxies on the predicted best ``search.rounds[r]`` of them (the paper: 64 → 32 → 16).
   A proxy is a short pretraining run of ``config.proxy`` on the mixture, trained through
   the one driver as a stage of ``train/stages.py`` (cached by content); its score is
   its held-out loss on ``config.target`` (the target domain's held-out text): lower is
   better everywhere here. The result is the predictor's best of a last round of
   candidates (the paper's choice, ``search.choose='predicted'``) or the best measured
   proxy (``'measured'``).

The search's directory::

  clusters.json          super-clusters: {sources: {name: source fields}, tokens, documents,
                         clusters (k-means cluster → super-cluster)}
  clusters/*.array_record
  inputs.json            the clusters and search settings (a resume must match them)
  rounds/round<r>.json   the round's proposals (and their predicted scores after round 1)
  proxies/round<r>-<i>.json   one proxy's mixture and measured score
  mixture.json           the result: {sources, weights, score, ...}; read by
                         ``data.config.read_mixture`` (a training run on it:
                         ``--config=configs/climb.py:<workdir>/mixture.json``)
  search.json            per round the proposals, measured and predicted scores

Every file is written atomically when its step ends; proposals are a function of
(``search.seed``, round) and are kept once made, so a killed search run again proposes
the same mixtures and trains only the proxies without a result. With
``search.parallel_proxies`` > 1 the proxies of a round train in that many processes
(sharing one accelerator: set XLA_PYTHON_CLIENT_PREALLOCATE=false, or
XLA_PYTHON_CLIENT_MEM_FRACTION, so each takes only what it needs).

  python -m train.climb --config=configs/climb.py:search --workdir=runs/climb
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import ml_collections
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from data import config as data_config
from data import sources as sources_lib
from data import tokenizer as tokenizer_lib
from train import cli
from train import stages as stages_lib
from train import workdir as workdir_lib

TARGET = "target"   # the eval text file of the target domain: figure ``loss/target``
CHOICES = ("predicted", "measured")
# A word: a run of letters and digits (one character counts: code's `x`), or one symbol.
WORD = r"(?u)\w+|[^\w\s]"


# ------------------------------------------------------------------------- embeddings


def hashed_ngram_embedding(texts: Sequence[str], dim: int = 256,
                           n: tuple[int, int] = (1, 2)) -> np.ndarray:
  """(N, dim) float32: counts of each text's lower-cased word n-grams (``WORD``s, n in
  the range ``n``) hashed into ``dim`` signed buckets, L2-normalised (a text without
  words: zeros). Deterministic across processes (murmurhash, not Python's salted
  ``hash``)."""
  from sklearn.feature_extraction import text as sklearn_text  # pylint: disable=g-import-not-at-top
  vectorizer = sklearn_text.HashingVectorizer(n_features=dim, ngram_range=tuple(n),
                                              token_pattern=WORD, alternate_sign=True,
                                              norm="l2")
  return vectorizer.transform(list(texts)).toarray().astype(np.float32)


def checkpoint_embedding(config: ml_collections.ConfigDict, checkpoint: str,
                         texts: Sequence[str], max_tokens: int = 0) -> np.ndarray:
  """(N, D) float32: the mean-pooled final hidden states of ``checkpoint`` (a run's workdir
  or a Hugging Face directory, under ``config``'s model and tokenizer) over each text's
  first ``max_tokens`` tokens (all if 0), batched on the run's mesh, L2-normalised."""
  from train import fusion  # pylint: disable=g-import-not-at-top  # the embedding program
  embeddings = fusion.embed_with(config, checkpoint, texts, max_tokens=max_tokens)
  return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


# ------------------------------------------------------------------------- clustering


def cluster(embeddings: np.ndarray, k: int, super_clusters: int, seed: int, *,
            merge_distance: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(assignments (N,), super_assignments (N,), centroids (k, D)): k-means into ``k``
  clusters, then the centroids merged by Ward agglomeration into ``super_clusters``
  groups, or, with ``merge_distance`` > 0, into the groups whose merges stay below that
  distance. Super-clusters are numbered by their first document."""
  from sklearn import cluster as sklearn_cluster  # pylint: disable=g-import-not-at-top
  embeddings = np.asarray(embeddings, np.float64)
  distinct = len(np.unique(embeddings, axis=0))
  if not 1 <= k <= distinct:
    raise ValueError(f"clusters={k}: want between 1 and the {distinct} distinct documents")
  kmeans = sklearn_cluster.KMeans(n_clusters=k, n_init=10, random_state=seed)
  assignments = kmeans.fit_predict(embeddings)
  centroids = kmeans.cluster_centers_
  if merge_distance > 0:
    merge = sklearn_cluster.AgglomerativeClustering(n_clusters=None,
                                                    distance_threshold=merge_distance)
  elif 1 <= super_clusters <= k:
    merge = sklearn_cluster.AgglomerativeClustering(n_clusters=super_clusters)
  else:
    raise ValueError(f"super_clusters={super_clusters}: want between 1 and clusters={k} "
                     "(or a merge_distance)")
  super_of_cluster = merge.fit_predict(centroids) if k > 1 else np.zeros(1, np.int64)
  raw = super_of_cluster[assignments]
  numbering = {label: index for index, label in enumerate(dict.fromkeys(raw.tolist()))}
  super_assignments = np.asarray([numbering[label] for label in raw.tolist()], np.int64)
  return assignments.astype(np.int64), super_assignments, centroids


def write_cluster_sources(texts: Sequence[str], super_assignments: np.ndarray,
                          directory: str, tokenizer: tokenizer_lib.Tokenizer
                          ) -> dict[str, Any]:
  """One ArrayRecord source per super-cluster in ``directory`` (``cluster<i>``, raw text
  records), each written atomically; {sources: {name: source fields}, tokens: {name:
  count}, documents: {name: count}}."""
  os.makedirs(directory, exist_ok=True)
  out = {"sources": {}, "tokens": {}, "documents": {}}
  labels = np.asarray(super_assignments)
  width = len(str(int(labels.max())))
  for label in range(int(labels.max()) + 1):
    name = f"cluster{label:0{width}d}"
    members = [texts[i] for i in np.flatnonzero(labels == label)]
    path = os.path.join(directory, f"{name}.array_record")
    temporary = f"{path}.tmp{os.getpid()}"
    sources_lib.write_array_record(temporary, members)
    os.replace(temporary, path)
    out["sources"][name] = data_config.source_config("array_record", os.path.abspath(path),
                                                      field="").to_dict()
    out["tokens"][name] = sum(len(tokenizer.encode(text)) for text in members)
    out["documents"][name] = len(members)
  return out


def read_documents(documents: Mapping[str, ml_collections.ConfigDict]) -> list[str]:
  """The texts of every source in ``documents`` ({name: source fields}), in order."""
  texts = []
  for source in documents.values():
    dataset = sources_lib.open_source(ml_collections.ConfigDict(dict(source)))
    texts.extend(text for _, text in dataset)
  return texts


def embed_and_cluster(config: ml_collections.ConfigDict, workdir: str,
                      report: Callable[[str], None] = print) -> dict[str, Any]:
  """Step 1: ``clusters.json`` and the super-clusters' sources (read back if there)."""
  path = os.path.join(workdir, "clusters.json")
  if os.path.exists(path):
    report(f"clusters: read back from {path}")
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  texts = read_documents(config.documents)
  report(f"clusters: embedding {len(texts)} documents "
         f"({config.embedder or 'hashed n-grams'})")
  if config.embedder:
    embeddings = checkpoint_embedding(config.proxy, config.embedder, texts,
                                      config.embedding.max_tokens)
  else:
    embeddings = hashed_ngram_embedding(texts, config.embedding.dim,
                                        tuple(config.embedding.ngram))
  assignments, super_assignments, _ = cluster(
      embeddings, config.clusters, config.super_clusters, config.search.seed,
      merge_distance=config.merge_distance)
  tokenizer = tokenizer_lib.load_tokenizer(config.proxy.data.tokenizer_path)
  out = write_cluster_sources(texts, super_assignments, os.path.join(workdir, "clusters"),
                              tokenizer)
  out["clusters"] = {str(c): int(super_assignments[np.flatnonzero(assignments == c)[0]])
                     for c in sorted(set(assignments.tolist()))}
  workdir_lib.write_json(path, out)
  report(f"clusters: {config.clusters} clusters into {len(out['sources'])} super-clusters, "
         f"tokens {out['tokens']}")
  return out


# ----------------------------------------------------------------------------- search


def mixture_prior(tokens: Sequence[float]) -> np.ndarray:
  """The search's prior: each cluster's token share to the power 0.5, renormalised."""
  share = np.asarray(tokens, np.float64)
  if share.ndim != 1 or not len(share) or (share < 0).any() or share.sum() <= 0:
    raise ValueError(f"token counts {list(tokens)}: want non-negative with a positive sum")
  root = np.sqrt(share / share.sum())
  return root / root.sum()


def propose(prior: np.ndarray, count: int, rng: np.random.Generator, *,
            strength: tuple[float, float] = (0.1, 5.0), cap: float = 15.0,
            max_draws: int = 1_000_000) -> np.ndarray:
  """(count, C) mixtures: Dirichlet(prior × s), s = 10**uniform(log10 strength), each
  kept only if every weight is at most min(cap · prior, 1); a ValueError after
  ``max_draws`` draws (a prior the rule leaves no room in)."""
  prior = np.asarray(prior, np.float64)
  limit = np.minimum(cap * prior, 1.0)
  low, high = np.log10(strength[0]), np.log10(strength[1])
  out, draws = [], 0
  while len(out) < count:
    batch = max(2 * (count - len(out)), 64)
    if draws + batch > max_draws:
      raise ValueError(f"propose: {len(out)} of {count} mixtures within min({cap}·prior, 1) "
                       f"after {draws} draws (prior {prior.round(4).tolist()})")
    draws += batch
    scales = 10.0 ** rng.uniform(low, high, size=batch)
    alphas = np.maximum(prior[None, :] * scales[:, None], 1e-300)
    # Gamma draws normalised: numpy's dirichlet gives NaN rows for tiny alphas.
    gammas = rng.gamma(alphas)
    totals = gammas.sum(axis=1, keepdims=True)
    valid = totals[:, 0] > 0
    weights = gammas[valid] / totals[valid]
    weights = weights[(weights <= limit[None, :]).all(axis=1)]
    out.extend(weights[:count - len(out)])
  return np.asarray(out).reshape(count, len(prior))


def fit_predictor(weights_NC: np.ndarray, scores_N: np.ndarray, *, n_estimators: int,
                  seed: int = 0):
  """A LightGBM regressor (max depth 4, learning rate 0.01: arXiv 2504.13161) from
  mixture weights to score; leaves may hold a single proxy (the searches are small)."""
  try:
    import lightgbm  # pylint: disable=g-import-not-at-top  # the `data` extra
  except ImportError as e:
    raise ImportError("CLIMB's predictor needs LightGBM: pip install -e \".[data]\" "
                      "(or pip install lightgbm)") from e
  regressor = lightgbm.LGBMRegressor(
      max_depth=4, num_leaves=15, learning_rate=0.01, n_estimators=n_estimators,
      min_child_samples=1, min_child_weight=0.0, min_data_in_bin=1, subsample=1.0,
      colsample_bytree=1.0, random_state=seed, deterministic=True, force_row_wise=True,
      n_jobs=1, verbose=-1)
  regressor.fit(np.asarray(weights_NC, np.float64), np.asarray(scores_N, np.float64))
  return regressor


def predicted_best(regressor, prior: np.ndarray, count: int, rng: np.random.Generator, *,
                   candidates: int, strength: tuple[float, float], cap: float
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(count, C) mixtures of lowest predicted score among ``candidates`` proposals, and
  their predictions, best first."""
  pool = propose(prior, candidates, rng, strength=strength, cap=cap)
  predicted = regressor.predict(pool)
  order = np.argsort(predicted, kind="stable")[:count]
  return pool[order], predicted[order]


def _read_json(path: str) -> Optional[Any]:
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _score_proxies(mixtures: Sequence[dict[str, float]], train_proxy: Callable,
                   parallel: int) -> Any:
  """Yields (index, score) as the proxies on ``mixtures`` finish."""
  if parallel <= 1:
    for index, mixture in enumerate(mixtures):
      yield index, float(train_proxy(mixture))
    return
  context = multiprocessing.get_context("spawn")   # JAX does not survive fork
  with concurrent.futures.ProcessPoolExecutor(parallel, mp_context=context) as pool:
    futures = {pool.submit(train_proxy, mixture): i for i, mixture in enumerate(mixtures)}
    for future in concurrent.futures.as_completed(futures):
      yield futures[future], float(future.result())


def round_proposals(settings: ml_collections.ConfigDict, number: int, prior: np.ndarray,
                    measured_w: Sequence[Sequence[float]], measured_s: Sequence[float]
                    ) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """(mixtures, their predicted scores) of round ``number`` (from 1; None for round 1's
  random proposals; the round after the last gives the final choice): a function of
  ``settings.seed``, the round and the proxies measured before it."""
  rng = np.random.default_rng([settings.seed, number])
  sampling = dict(strength=tuple(settings.strength), cap=settings.cap)
  if number == 1:
    return propose(prior, settings.rounds[0], rng, **sampling), None
  regressor = fit_predictor(np.asarray(measured_w), np.asarray(measured_s),
                            n_estimators=settings.n_estimators, seed=settings.seed)
  count = settings.rounds[number - 1] if number <= len(settings.rounds) else 1
  return predicted_best(regressor, prior, count, rng, candidates=settings.candidates,
                        **sampling)


def _check_inputs(workdir: str, inputs: dict) -> None:
  """Records what the search's files are a function of; a ValueError if ``workdir``
  holds a search of other inputs."""
  recorded = _read_json(os.path.join(workdir, "inputs.json"))
  if recorded is None:
    workdir_lib.write_json(os.path.join(workdir, "inputs.json"), inputs)
  elif recorded != inputs:
    raise ValueError(f"{workdir} holds a search of other clusters or settings "
                     f"({recorded}); resume it with those, or search in another workdir")


def search(settings: ml_collections.ConfigDict, workdir: str, names: Sequence[str],
           tokens: Sequence[float], train_proxy: Callable[[dict[str, float]], float],
           report: Callable[[str], None] = print) -> dict[str, Any]:
  """Step 2: the rounds of ``settings.rounds`` proxies over the clusters ``names`` with
  token counts ``tokens``; ``train_proxy(mixture {name: weight}) -> score`` (lower is
  better; picklable when ``settings.parallel_proxies`` > 1). Proposals and proxies with
  a result in ``workdir`` are read back, not made again. Returns search.json's content,
  whose 'weights' are the chosen mixture."""
  if settings.choose not in CHOICES:
    raise ValueError(f"search.choose={settings.choose!r}: one of {CHOICES}")
  if not settings.rounds or min(settings.rounds) < 1:
    raise ValueError(f"search.rounds={tuple(settings.rounds)}: want proxy counts >= 1")
  if settings.candidates < max(settings.rounds):
    raise ValueError(f"search.candidates={settings.candidates}: want at least the largest "
                     f"round ({max(settings.rounds)})")
  names = list(names)
  prior = mixture_prior(tokens)
  for folder in ("rounds", "proxies"):
    os.makedirs(os.path.join(workdir, folder), exist_ok=True)
  _check_inputs(workdir, {"names": names, "tokens": [float(t) for t in tokens],
                          "settings": {k: v for k, v in json.loads(settings.to_json()).items()
                                       if k not in ("choose", "parallel_proxies")}})
  measured_w, measured_s, rounds = [], [], []
  for number in range(1, len(settings.rounds) + 1):
    round_path = os.path.join(workdir, "rounds", f"round{number}.json")
    proposal = _read_json(round_path)
    if proposal is None:
      weights, predicted = round_proposals(settings, number, prior, measured_w, measured_s)
      proposal = {"round": number, "weights": weights.tolist(),
                  "predicted": None if predicted is None else predicted.tolist()}
      workdir_lib.write_json(round_path, proposal)
    scores = _train_round(workdir, number, [dict(zip(names, w)) for w in proposal["weights"]],
                          train_proxy, settings.parallel_proxies, report)
    measured_w.extend(proposal["weights"])
    measured_s.extend(scores)
    rounds.append({**proposal, "measured": scores})
  best = int(np.argmin(measured_s))
  weights, predicted = round_proposals(settings, len(settings.rounds) + 1, prior, measured_w,
                                       measured_s)
  result = {"names": names, "prior": prior.tolist(), "rounds": rounds,
            "best_measured": {"weights": dict(zip(names, measured_w[best])),
                              "score": measured_s[best]},
            "best_predicted": {"weights": dict(zip(names, weights[0].tolist())),
                               "predicted": float(predicted[0])},
            "choose": settings.choose}
  result["weights"] = result[f"best_{settings.choose}"]["weights"]
  workdir_lib.write_json(os.path.join(workdir, "search.json"), result)
  return result


def _train_round(workdir: str, number: int, mixtures: Sequence[dict[str, float]],
                 train_proxy: Callable, parallel: int, report: Callable[[str], None]
                 ) -> list[float]:
  """The scores of round ``number``'s proxies: read back where a result is, else trained
  and each written when it finishes (``proxies/round<r>-<i>.json``)."""
  paths = [os.path.join(workdir, "proxies", f"round{number}-{index:03d}.json")
           for index in range(len(mixtures))]
  scores = [(_read_json(path) or {}).get("score") for path in paths]
  pending = [i for i, score in enumerate(scores) if score is None]
  report(f"climb round {number}: {len(mixtures)} proxies, {len(pending)} to train")
  for position, score in _score_proxies([mixtures[i] for i in pending], train_proxy, parallel):
    index = pending[position]
    scores[index] = score
    workdir_lib.write_json(paths[index], {"round": number, "index": index,
                                          "weights": mixtures[index], "score": score})
    report(f"climb round {number} proxy {index}: score {score:.4f}")
  return scores


def write_mixture(path: str, sources: Mapping[str, Mapping], weights: Mapping[str, float],
                  **provenance) -> None:
  """``path``: {sources: {name: source fields}, weights: {name: weight}, ...provenance},
  the mixture ``data.config.read_mixture`` reads; written atomically."""
  workdir_lib.write_json(path, {"sources": {n: dict(s) for n, s in sources.items()},
                                "weights": dict(weights), **provenance})


# ----------------------------------------------------------------------------- proxies


def proxy_run(proxy: ml_collections.ConfigDict, sources: Mapping[str, Mapping],
              mixture: Mapping[str, float]) -> ml_collections.ConfigDict:
  """The run config of a proxy: ``proxy`` reading ``sources`` with one stage of
  ``mixture``'s weights."""
  run = copy.deepcopy(proxy)
  with run.unlocked():
    run.data.sources = {n: ml_collections.ConfigDict(dict(s)) for n, s in sources.items()}
    run.data.stages = (data_config.stage_config("climb", dict(mixture)),)
  return run


@dataclasses.dataclass
class DriverProxy:
  """Trains a proxy through the driver as a ``train/stages.py`` stage in ``cache`` (a
  finished one is read back) and scores it: its held-out loss on the ``target`` text
  (``max_text_rows`` rows of it). Picklable, for parallel proxies."""
  proxy: ml_collections.ConfigDict
  sources: dict
  target: str
  cache: str
  max_text_rows: int = 64

  def __call__(self, mixture: Mapping[str, float]) -> float:
    run = proxy_run(self.proxy, self.sources, mixture)
    pipeline = {"proxy": stages_lib.stage(run, steps=run.train.steps)}
    resolved = stages_lib.resolve(pipeline, ["proxy"], self.cache, seed=run.train.seed,
                                  fast=False)["proxy"]
    stages_lib.train(resolved)
    section = copy.deepcopy(run.eval)
    with section.unlocked():
      section.text_files = {TARGET: self.target}
      section.records = ""
      section.max_text_rows = self.max_text_rows
    figures, _ = stages_lib.evaluate(resolved, section)
    return float(figures[f"loss/{TARGET}"])


def run(config: ml_collections.ConfigDict, workdir: str,
        report: Callable[[str], None] = print) -> dict[str, Any]:
  """Both steps, then ``mixture.json``; returns search.json's content."""
  os.makedirs(workdir, exist_ok=True)
  clusters = embed_and_cluster(config, workdir, report)
  names = list(clusters["sources"])
  trainer = DriverProxy(config.proxy, clusters["sources"], config.target,
                        stages_lib.cache_root(config.cache_dir), config.max_text_rows)
  result = search(config.search, workdir, names, [clusters["tokens"][n] for n in names],
                  trainer, report)
  chosen = result[f"best_{result['choose']}"]
  write_mixture(os.path.join(workdir, "mixture.json"), clusters["sources"], result["weights"],
                method="CLIMB (arXiv 2504.13161)", choose=result["choose"],
                **{k: v for k, v in chosen.items() if k != "weights"})
  report(f"climb: mixture {json.dumps(result['weights'])} in "
         f"{os.path.join(workdir, 'mixture.json')}")
  return result


# ------------------------------------------------------------------------------ claim


def _corpus_documents(name: str) -> list[str]:
  """The documents of a shipped corpus file (.txt blank-line separated, .jsonl 'text')."""
  format_ = "jsonl" if name.endswith(".jsonl") else "text"
  dataset = sources_lib.open_source(data_config.source_config(format_,
                                                              data_config.corpus_path(name)))
  return [text for _, text in dataset]


def _tuples(value: Any) -> Any:
  """``value`` (JSON) with its lists as tuples, as a config holds them."""
  if isinstance(value, Mapping):
    return {key: _tuples(item) for key, item in value.items()}
  if isinstance(value, (list, tuple)):
    return tuple(_tuples(item) for item in value)
  return value


def _write_documents(path: str, texts: Sequence[str]) -> None:
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n\n".join(texts) + "\n")


def claim_dataset(directory: str, *, documents: Sequence[tuple[str, int]], target: str,
                  proxy: Mapping[str, Any], settings: Mapping[str, Any], clusters: int,
                  super_clusters: int, embedding_dim: int = 256,
                  ngram: Sequence[int] = (1, 2), seed: int = 0, max_text_rows: int = 64,
                  proxy_cache: str = "",
                  train_proxy: Optional[Callable[[dict[str, float]], float]] = None
                  ) -> dict[str, Any]:
  """The ``climb`` claim's data (a ``datasets`` build, ``train.stages.build_dataset``):
  CLIMB (arXiv 2504.13161) over a pool of shipped documents, written into ``directory``.

  The pool: ``documents`` ((corpus file, count), ...), that many documents drawn from
  each file (``seed``) and pooled without their file (the label is kept for the figures
  only). They are embedded (hashed word n-grams), clustered (``clusters`` k-means,
  ``super_clusters`` after merging) and written as one source per super-cluster. The
  target domain is the corpus file ``target`` (held out: no pool file), its documents
  split in two halves: ``target_dev.txt`` scores the proxies (their ``loss/target`` on
  ``max_text_rows`` rows), ``target_eval.txt`` is left for the claim's evaluation, never
  seen by the search. The search (``settings``: ``search()``'s) trains proxies of the
  run config ``proxy`` (as JSON: lists are read as tuples) through the driver in the
  stage cache ``proxy_cache`` ('' the cache ``directory`` is built in,
  ``<cache>/datasets/<name>``, so a killed build reads its proxies back);
  ``train_proxy`` replaces them (tests).

  Writes ``clusters/*.array_record``, ``search/`` (the search's files), ``mixture.json``
  (the chosen mixture), ``uniform.json`` (equal weights over the same sources) and
  ``natural.json`` (each source by its token share: the pool as it comes), all with
  source paths relative to ``directory``, and returns the figures: the pool, each
  super-cluster's documents by file and token share, the prior, every round's proposals
  with their measured (and predicted) scores, the chosen, uniform and natural weights.
  """
  documents = dict(documents)
  if target in documents:
    raise ValueError(f"target={target!r} is a pool file: the target must be held out")
  rng = np.random.default_rng(seed)
  texts, kinds = [], []
  for name, count in documents.items():
    pool = _corpus_documents(name)
    if not 1 <= count <= len(pool):
      raise ValueError(f"documents[{name!r}]={count}: want 1 to the file's {len(pool)}")
    texts.extend(pool[i] for i in sorted(rng.choice(len(pool), count, replace=False)))
    kinds.extend([name] * count)
  held_out = _corpus_documents(target)
  order = rng.permutation(len(held_out))
  half = len(held_out) // 2
  splits = {"dev": [held_out[i] for i in sorted(order[:half])],
            "eval": [held_out[i] for i in sorted(order[half:])]}
  for split, split_texts in splits.items():
    _write_documents(os.path.join(directory, f"target_{split}.txt"), split_texts)

  embeddings = hashed_ngram_embedding(texts, embedding_dim, tuple(ngram))
  _, super_assignments, _ = cluster(embeddings, clusters, super_clusters, seed)
  proxy_config = ml_collections.ConfigDict(_tuples(proxy))
  tokenizer = tokenizer_lib.load_tokenizer(proxy_config.data.tokenizer_path)
  written = write_cluster_sources(texts, super_assignments,
                                  os.path.join(directory, "clusters"), tokenizer)
  names = list(written["sources"])
  if train_proxy is None:
    cache = proxy_cache or os.path.dirname(os.path.dirname(os.path.abspath(directory)))
    train_proxy = DriverProxy(proxy_config, written["sources"],
                              os.path.join(directory, "target_dev.txt"), cache, max_text_rows)
  result = search(ml_collections.ConfigDict(dict(settings)), os.path.join(directory, "search"),
                  names, [written["tokens"][n] for n in names], train_proxy)
  relative = {n: {**s, "path": os.path.relpath(s["path"], directory)}
              for n, s in written["sources"].items()}
  uniform = {n: 1.0 / len(names) for n in names}
  total = sum(written["tokens"].values())
  natural = {n: written["tokens"][n] / total for n in names}
  write_mixture(os.path.join(directory, "mixture.json"), relative, result["weights"],
                method="CLIMB (arXiv 2504.13161)", choose=result["choose"])
  write_mixture(os.path.join(directory, "uniform.json"), relative, uniform, method="uniform")
  write_mixture(os.path.join(directory, "natural.json"), relative, natural,
                method="token shares")
  labels = np.asarray(super_assignments)
  return {
      "pool": dict(documents), "target": {"file": target, "dev_documents": len(splits["dev"]),
                                          "eval_documents": len(splits["eval"])},
      "clusters": {n: {"documents": written["documents"][n], "tokens": written["tokens"][n],
                       "token_share": natural[n],
                       "by_file": {k: int(sum(1 for i in np.flatnonzero(labels == index)
                                              if kinds[i] == k)) for k in documents}}
                   for index, n in enumerate(names)},
      "prior": dict(zip(names, result["prior"])),
      "rounds": [{"round": r["round"],
                  "proposals": [{"weights": dict(zip(names, w)), "measured": m,
                                 "predicted": p}
                                for w, m, p in zip(r["weights"], r["measured"],
                                                   r["predicted"] or [None] * len(r["weights"]))]}
                 for r in result["rounds"]],
      "best_measured": result["best_measured"], "best_predicted": result["best_predicted"],
      "mixture": result["weights"], "uniform": uniform, "natural": natural}


def main(argv: list[str]) -> None:
  with cli.entry_point(argv):
    run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
  # Defined here, not on import: train.main imports this module (a claim's dataset).
  config_flags.DEFINE_config_file(
      "config", None, "The search config (configs/climb.py:search).", lock_config=True)
  flags.DEFINE_string("workdir", None, "The search's directory.")
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.climb --config=configs/climb.py:search --workdir=<dir>",
      required=("config", "workdir")))
