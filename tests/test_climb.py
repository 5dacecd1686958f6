"""CLIMB (arXiv 2504.13161, ``train/climb.py``): embeddings, clusters, proposals, the
predictor, the resumable search with a fake proxy, and the mixture file the trainer
reads (one real proxy through the driver)."""

from __future__ import annotations

import json
import operator
import os

import ml_collections
import numpy as np
import pytest

from data import config as data_config
from data import tokenizer as tokenizer_lib
from train import climb
from train import config as run_config

STORIES = ["Mia put the robot on the desk and Ravi moved the boat to the bucket.",
           "One cold day Sam went to the park with his mom to play on the swings.",
           "Ella came over with some tape and they fixed the purple map together.",
           "The dog ran to the garden and the cat slept on the warm red chair."]
CODE = ["b = 9\ng = 1\nf = b\nprint(b)", "c = ['map']\nc.remove('map')\nprint(c)",
        "x = 3\ny = x + 4\nprint(y)", "h = ['key']\nh.append('cup')\nprint(h)"]


def settings(**overrides) -> ml_collections.ConfigDict:
  fields = dict(seed=0, rounds=(8, 4, 2), candidates=2000, strength=(0.1, 5.0), cap=15.0,
                n_estimators=300, choose="predicted", parallel_proxies=1)
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def test_hashed_embedding_is_deterministic_normalised_and_separates_domains():
  first = climb.hashed_ngram_embedding(STORIES + CODE)
  again = climb.hashed_ngram_embedding(STORIES + CODE)
  np.testing.assert_array_equal(first, again)
  np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
  similarity = first @ first.T
  within = [similarity[i, j] for group in (range(4), range(4, 8)) for i in group
            for j in group if i != j]
  across = [similarity[i, j] for i in range(4) for j in range(4, 8)]
  assert min(within) > max(across), (within, across)
  assert not climb.hashed_ngram_embedding([""], dim=16).any()   # no words: zeros


@pytest.mark.parametrize("merge", ["count", "distance"])
def test_cluster_recovers_planted_groups(merge):
  rng = np.random.default_rng(0)
  centres = np.eye(3, 8) * 10.0
  groups = np.repeat(np.arange(3), 40)
  points = centres[groups] + rng.normal(scale=0.3, size=(120, 8))
  assignments, super_assignments, centroids = climb.cluster(
      points, 6, 3 if merge == "count" else 0, seed=0,
      merge_distance=5.0 if merge == "distance" else 0.0)
  assert centroids.shape == (6, 8) and len(set(assignments.tolist())) == 6
  # the super-clusters are the planted groups, numbered by their first document
  np.testing.assert_array_equal(super_assignments, groups)
  with pytest.raises(ValueError, match="clusters=200"):
    climb.cluster(points, 200, 3, seed=0)


def test_prior_is_token_share_to_the_half_renormalised():
  prior = climb.mixture_prior([100, 400, 0, 500])
  expected = np.sqrt([0.1, 0.4, 0.0, 0.5])
  np.testing.assert_allclose(prior, expected / expected.sum())
  with pytest.raises(ValueError):
    climb.mixture_prior([0, 0])


def test_proposals_are_on_the_simplex_obey_the_rejection_rule_and_repeat():
  prior = climb.mixture_prior([1, 1, 1, 1, 4000, 4000])   # small clusters: a binding cap
  limit = np.minimum(15 * prior, 1.0)
  assert (limit < 1).any()
  draw = lambda seed, number: climb.propose(prior, 64, np.random.default_rng([seed, number]))
  weights = draw(0, 1)
  assert weights.shape == (64, 6)
  np.testing.assert_allclose(weights.sum(axis=1), 1.0)
  assert (weights >= 0).all() and (weights <= limit + 1e-12).all()
  np.testing.assert_array_equal(weights, draw(0, 1))
  assert not np.array_equal(weights, draw(0, 2)) and not np.array_equal(weights, draw(1, 1))
  with pytest.raises(ValueError, match="draws"):   # a cap no mixture can meet
    climb.propose(prior, 1, np.random.default_rng(0), cap=0.5, max_draws=1000)


def test_predictor_ranks_a_planted_function():
  prior = climb.mixture_prior([1, 1, 1, 1])
  rng = np.random.default_rng(0)
  weights = climb.propose(prior, 40, rng)
  regressor = climb.fit_predictor(weights, 1.0 - weights[:, 0], n_estimators=500)
  best, predicted = climb.predicted_best(regressor, prior, 5, rng, candidates=2000,
                                         strength=(0.1, 5.0), cap=15.0)
  assert best.shape == (5, 4) and (np.diff(predicted) >= 0).all()
  assert (best.argmax(axis=1) == 0).all() and best[0, 0] > 0.8, best


class FakeProxy:
  """score = distance to a planted optimum; counts calls; raises after ``fail_after``."""

  OPTIMUM = np.array([0.7, 0.1, 0.1, 0.1])

  def __init__(self, fail_after: int = -1):
    self.calls, self.fail_after = [], fail_after

  def __call__(self, mixture):
    if len(self.calls) == self.fail_after:
      raise KeyboardInterrupt("killed")
    self.calls.append(dict(mixture))
    return float(np.abs(np.array(list(mixture.values())) - self.OPTIMUM).sum())


NAMES, TOKENS = ["a", "b", "c", "d"], [100, 100, 100, 100]


@pytest.fixture(scope="module")
def full_search(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("climb"))
  proxy = FakeProxy()
  result = climb.search(settings(), workdir, NAMES, TOKENS, proxy, report=lambda m: None)
  return workdir, proxy, result


def test_search_runs_shrinking_rounds_and_finds_the_planted_optimum(full_search):
  workdir, proxy, result = full_search
  assert [len(r["weights"]) for r in result["rounds"]] == [8, 4, 2]
  assert len(proxy.calls) == 14
  assert result["rounds"][0]["predicted"] is None
  assert all(len(r["predicted"]) == len(r["weights"]) for r in result["rounds"][1:])
  # later rounds measure better than random proposals
  assert np.mean(result["rounds"][2]["measured"]) < np.mean(result["rounds"][0]["measured"])
  weights = np.array([result["weights"][n] for n in NAMES])
  assert weights.argmax() == 0 and weights[0] > 0.45, weights
  with open(os.path.join(workdir, "search.json"), encoding="utf-8") as f:
    assert json.load(f)["weights"] == result["weights"]
  measured = climb.search(settings(choose="measured"), workdir, NAMES, TOKENS, FakeProxy(),
                          report=lambda m: None)
  assert measured["weights"] == result["best_measured"]["weights"]
  assert measured["best_measured"]["score"] == min(s for r in result["rounds"]
                                                   for s in r["measured"])


def test_search_resumes_without_retraining(full_search, tmp_path):
  workdir, _, result = full_search
  killed = FakeProxy(fail_after=10)     # dies in round 2
  with pytest.raises(KeyboardInterrupt):
    climb.search(settings(), str(tmp_path), NAMES, TOKENS, killed, report=lambda m: None)
  assert len(os.listdir(tmp_path / "proxies")) == 10
  resumed = FakeProxy()
  again = climb.search(settings(), str(tmp_path), NAMES, TOKENS, resumed,
                       report=lambda m: None)
  assert len(resumed.calls) == 4          # only the proxies without a result
  assert again["weights"] == result["weights"]
  assert [r["measured"] for r in again["rounds"]] == [r["measured"] for r in result["rounds"]]
  # one round's results deleted: only those proxies train again
  for name in os.listdir(tmp_path / "proxies"):
    if name.startswith("round3-"):
      os.remove(tmp_path / "proxies" / name)
  rerun = FakeProxy()
  assert climb.search(settings(), str(tmp_path), NAMES, TOKENS, rerun,
                      report=lambda m: None)["weights"] == result["weights"]
  assert rerun.calls == [dict(zip(NAMES, w)) for w in result["rounds"][2]["weights"]]
  with pytest.raises(ValueError, match="other clusters or settings"):
    climb.search(settings(seed=1), str(tmp_path), NAMES, TOKENS, FakeProxy(),
                 report=lambda m: None)


def test_parallel_proxies_give_the_sequential_result(tmp_path):
  proxy = operator.itemgetter("a")      # picklable, light: score = the weight of 'a'
  small = dict(rounds=(4, 2), candidates=500, n_estimators=100)
  sequential = climb.search(settings(**small), str(tmp_path / "one"), NAMES, TOKENS, proxy,
                            report=lambda m: None)
  parallel = climb.search(settings(**small, parallel_proxies=2), str(tmp_path / "two"),
                          NAMES, TOKENS, proxy, report=lambda m: None)
  assert parallel["rounds"] == sequential["rounds"]
  assert parallel["weights"] == sequential["weights"]
  assert sorted(os.listdir(tmp_path / "two" / "proxies")) == [
      "round1-000.json", "round1-001.json", "round1-002.json", "round1-003.json",
      "round2-000.json", "round2-001.json"]


@pytest.fixture(scope="module")
def cluster_sources(tmp_path_factory):
  """Two super-cluster sources (stories, code) and a mixture file over them."""
  directory = tmp_path_factory.mktemp("sources")
  tokenizer = tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))
  texts = STORIES * 30 + CODE * 30
  labels = np.array([0] * 120 + [1] * 120)
  written = climb.write_cluster_sources(texts, labels, str(directory / "clusters"), tokenizer)
  path = str(directory / "mixture.json")
  climb.write_mixture(path, written["sources"], {"cluster0": 0.8, "cluster1": 0.2},
                      method="test")
  return written, path, texts, tokenizer


def test_cluster_sources_and_the_mixture_the_trainer_reads(cluster_sources):
  written, path, texts, tokenizer = cluster_sources
  assert written["documents"] == {"cluster0": 120, "cluster1": 120}
  assert written["tokens"]["cluster0"] == sum(len(tokenizer.encode(t)) for t in texts[:120])
  sources, stages = data_config.read_mixture(path)
  assert list(stages[0].weights.items()) == [("cluster0", 0.8), ("cluster1", 0.2)]
  assert climb.read_documents({"c": sources["cluster1"]}) == texts[120:]
  from configs import climb as climb_config   # pylint: disable=g-import-not-at-top
  run = climb_config.get_config(path)
  assert run.data.stages[0].mixture == path and not run.data.stages[0].weights
  data = data_config.with_mixture_files(run.data)   # read when the run starts
  assert dict(data.stages[0].weights) == {"cluster0": 0.8, "cluster1": 0.2}
  assert data.sources.cluster0.path == sources["cluster0"].path


def test_a_stage_reads_its_mixture_file_when_the_run_starts(cluster_sources, tmp_path):
  """``stage_config(..., mixture=path)``: the weights and sources of a file that may not
  exist when the config is made, read by the data pipeline; the stage key follows the
  file's content."""
  from data import pipeline  # pylint: disable=g-import-not-at-top
  from train import stages  # pylint: disable=g-import-not-at-top
  written, _, _, tokenizer = cluster_sources
  path = str(tmp_path / "mixture.json")
  data = data_config.default_data_config()
  data.stages = (data_config.stage_config("web", {"web": 1.0}, num_steps=2),
                 data_config.stage_config("searched", {}, mixture=path))
  climb.write_mixture(path, written["sources"], {"cluster0": 0.0, "cluster1": 1.0})
  resolved = data_config.with_mixture_files(data)
  assert sorted(resolved.sources) == ["cluster0", "cluster1", "reasoning", "web"]
  assert [dict(s["weights"]) for s in resolved.stages] == [
      {"web": 1.0}, {"cluster0": 0.0, "cluster1": 1.0}]
  assert resolved.stages[0]["num_steps"] == 2
  iterator = pipeline.make_iterator(data, seq_len=32, global_batch_size=4,
                                    tokenizer=tokenizer, seed=0)
  for _ in range(4):
    next(iterator)
  seen = iterator.tokens_seen
  assert seen["web"] > 0 and seen["cluster1"] > 0 and seen["cluster0"] == 0, seen
  from configs import climb as climb_config   # pylint: disable=g-import-not-at-top
  run = climb_config.get_config(path)
  first = stages.sha256_json(stages.identity(run, "")[0])
  climb.write_mixture(path, written["sources"], {"cluster0": 0.5, "cluster1": 0.5})
  assert stages.sha256_json(stages.identity(run, "")[0]) != first
  with pytest.raises(ValueError, match="the file gives the weights"):
    data.stages = (data_config.stage_config("s", {"web": 1.0}, mixture=path),)
    data_config.with_mixture_files(data)
  clash = {"web": {**written["sources"]["cluster0"]}}
  climb.write_mixture(path, clash, {"web": 1.0})
  with pytest.raises(ValueError, match="differs from data.sources.web"):
    data.stages = (data_config.stage_config("s", {}, mixture=path),)
    data_config.with_mixture_files(data)


def test_claim_dataset_pools_clusters_searches_and_writes_both_mixtures(tmp_path):
  """The ``climb`` claim's build with a fake proxy: a pool without labels, a held-out
  target split into a dev half (the search's) and an eval half, the searched and the
  uniform mixture over the same sources, and the figures."""
  from configs.claims import climb as claim_config  # pylint: disable=g-import-not-at-top
  proxy = FakeProxy()
  pool = (("english.txt", 30), ("code_updates.txt", 30), ("chain_sums.txt", 30),
          ("crossthink_facts.txt", 20))
  directory = str(tmp_path)
  figures = climb.claim_dataset(
      directory, documents=pool, target="english_valid.txt",
      proxy=json.loads(claim_config.proxy().to_json()),
      settings=settings(rounds=(4, 2), candidates=500, n_estimators=100),
      clusters=6, super_clusters=4, train_proxy=proxy)
  assert len(proxy.calls) == 6
  assert [len(r["proposals"]) for r in figures["rounds"]] == [4, 2]
  assert sum(c["documents"] for c in figures["clusters"].values()) == 110
  assert {k: sum(c["by_file"][k] for c in figures["clusters"].values())
          for k, _ in pool} == dict(pool)
  assert sum(c["token_share"] for c in figures["clusters"].values()) == pytest.approx(1.0)
  held_out = set(climb.read_documents({"t": data_config.source_config(
      "text", data_config.corpus_path("english_valid.txt"))}))
  halves = [climb.read_documents({"t": data_config.source_config(
      "text", os.path.join(directory, f"target_{split}.txt"))}) for split in ("dev", "eval")]
  assert not set(halves[0]) & set(halves[1]) and set(halves[0]) | set(halves[1]) == held_out
  sources, stages_ = data_config.read_mixture(os.path.join(directory, "mixture.json"))
  pooled = climb.read_documents(sources)
  assert len(pooled) == 110 and not set(pooled) & held_out
  assert dict(stages_[0].weights) == figures["mixture"]
  uniform_sources, uniform = data_config.read_mixture(os.path.join(directory, "uniform.json"))
  assert uniform_sources == sources and set(uniform[0].weights.values()) == {0.25}
  _, natural = data_config.read_mixture(os.path.join(directory, "natural.json"))
  assert dict(natural[0].weights) == {n: c["token_share"]
                                      for n, c in figures["clusters"].items()}
  with open(os.path.join(directory, "mixture.json"), encoding="utf-8") as f:
    assert not os.path.isabs(json.load(f)["sources"]["cluster0"]["path"])
  with pytest.raises(ValueError, match="held out"):
    climb.claim_dataset(directory, documents=pool, target="english.txt", proxy={},
                        settings=settings(), clusters=6, super_clusters=4)


def test_climb_claim_config_checks_with_its_dataset_resolved(tmp_path):
  from configs.claims import climb as claim_config  # pylint: disable=g-import-not-at-top
  from train import claims  # pylint: disable=g-import-not-at-top
  from train import stages  # pylint: disable=g-import-not-at-top
  config = claim_config.get_config()
  resolved = ml_collections.ConfigDict(stages.with_datasets(config.to_dict(),
                                                            {"climb": str(tmp_path)}))
  claims.check(resolved)
  assert resolved.stages.climb.run.data.stages[0]["mixture"] == str(tmp_path / "mixture.json")
  assert resolved.stages.uniform.run.data.stages[0]["mixture"] == str(tmp_path / "uniform.json")
  assert resolved.eval.text_files.target == str(tmp_path / "target_eval.txt")
  assert claims.arm_tokens(resolved, False) == dict.fromkeys(["climb", "uniform", "natural"],
                                                             200 * 16 * 128)
  json.dumps(config.datasets.climb.args.to_dict())   # the build's key is a JSON hash
  section = claims._dataset_section  # pylint: disable=protected-access
  built = {fast: section(config.datasets.climb, fast) for fast in (False, True)}
  assert built[False].args.settings.rounds == (8, 4, 2)
  assert built[True].args.settings.rounds == (4, 2)
  assert built[True].args.documents == built[False].args.documents


def test_driver_proxy_trains_through_the_driver_and_scores_held_out_loss(cluster_sources,
                                                                       tmp_path):
  written, _, _, _ = cluster_sources
  target = tmp_path / "target_valid.txt"
  target.write_text("\n\n".join(STORIES * 4) + "\n", encoding="utf-8")
  from configs import climb as climb_config   # pylint: disable=g-import-not-at-top
  run = climb_config.proxy()
  run.model = run_config.model_section("tiny", vocab_size=1024, d_model=64, pattern="*-",
                                       n_heads=2, n_kv_heads=2, head_dim=32, mlp_dim=128)
  run.train.steps = 4
  run.train.global_batch_size = 8   # the suite runs on 8 host devices
  run.train.seq_len = 32
  run.optimizer.warmup_steps = 1
  trainer = climb.DriverProxy(run, written["sources"], str(target), str(tmp_path / "cache"),
                              max_text_rows=4)
  score = trainer({"cluster0": 1.0, "cluster1": 0.0})
  assert np.isfinite(score) and 0 < score < np.log(1024) + 1
  entries = [e for e in os.listdir(tmp_path / "cache") if not e.endswith(".lock")]
  assert len(entries) == 1
  with open(tmp_path / "cache" / entries[0] / "config.json", encoding="utf-8") as f:
    recorded = json.load(f)
  assert recorded["data"]["stages"][0]["weights"] == {"cluster0": 1.0, "cluster1": 0.0}
  assert trainer({"cluster0": 1.0, "cluster1": 0.0}) == score     # read back from the cache
  # the proxy's weights as the embedder: mean-pooled hidden states, normalised, batched
  texts = STORIES + CODE
  embeddings = climb.checkpoint_embedding(run, str(tmp_path / "cache" / entries[0]), texts,
                                          max_tokens=12)
  assert embeddings.shape == (8, 64)
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(climb.checkpoint_embedding(
      run, str(tmp_path / "cache" / entries[0]), texts[:1], max_tokens=12), embeddings[:1],
      atol=1e-5)


def test_embed_and_cluster_writes_super_cluster_sources_once(tmp_path):
  for name, texts in (("stories", STORIES), ("code", CODE)):
    (tmp_path / f"{name}.txt").write_text("\n\n".join(texts * 5) + "\n", encoding="utf-8")
  from configs import climb as climb_config   # pylint: disable=g-import-not-at-top
  config = climb_config.get_config("search")
  config.documents = {name: data_config.source_config("text", str(tmp_path / f"{name}.txt"))
                      for name in ("stories", "code")}
  config.clusters, config.super_clusters = 4, 2
  messages = []
  clusters = climb.embed_and_cluster(config, str(tmp_path / "search"), messages.append)
  assert sorted(clusters["documents"].values()) == [20, 20]
  assert sorted(clusters["clusters"].values()) == [0, 0, 1, 1]
  by_source = {name: climb.read_documents({name: source})
               for name, source in clusters["sources"].items()}
  assert set(map(frozenset, by_source.values())) == {frozenset(STORIES), frozenset(CODE)}
  assert climb.embed_and_cluster(config, str(tmp_path / "search"), messages.append) == clusters
  assert messages[-1].startswith("clusters: read back")


@pytest.mark.slow
def test_fast_climb_claim(fast_claim):
  """The fast ``climb`` claim end to end (about 3 minutes): the dataset built before the
  stages, both arms on equal tokens, each reading its mixture file when it starts; the
  sign is not asserted."""
  workdir, summary = fast_claim("climb")
  assert summary["seeds"] == [0] and set(summary["arms"]) == {"climb", "uniform", "natural"}
  assert len({figures["tokens_seen"] for figures in summary["arms"].values()}) == 1
  built = summary["datasets"]["climb"]
  assert [len(r["proposals"]) for r in built["figures"]["rounds"]] == [4, 2]
  for arm, file, figure in (("climb", "mixture.json", "mixture"),
                            ("uniform", "uniform.json", "uniform"),
                            ("natural", "natural.json", "natural")):
    _, stages_ = data_config.read_mixture(os.path.join(built["directory"], file))
    assert dict(stages_[0].weights) == built["figures"][figure]
    with open(workdir / "seed0" / arm / "metrics.jsonl", encoding="utf-8") as f:
      seen = json.loads(f.readlines()[-1])
    read = {k.split("/")[1] for k, v in seen.items() if k.startswith("tokens_seen/") and v}
    weights = dict(stages_[0].weights)
    assert max(weights, key=weights.get) in read and read <= set(weights), (read, weights)
    if arm == "uniform":
      assert read == set(weights)
    loss = summary["arms"][arm]["loss/target"]["mean"]
    assert np.isfinite(loss) and loss < summary["baselines"]["chance"]
  assert (workdir / "climb.png").exists()
