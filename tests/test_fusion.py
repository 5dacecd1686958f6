"""FusionFactory (arXiv 2507.10540): routing data, labels, routers, thought templates,
fusion records (train/routing.py, train/thought_templates.py, train/fusion.py,
model/embedding.py) and the fusion_routing claim's router arm (train/claims.py)."""

import collections
import copy
import dataclasses
import json
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

import cli_runs
from configs import sft as sft_config
from configs.claims import fusion_routing
from data import answers
from data import config as data_config
from data import sources
from model import hf
from model import lm
from train import claims
from train import config as run_config
from train import driver
from train import fusion
from train import loops
from train import routing
from train import sft
from train import sharding
from train import thought_templates


def _data(correct, tokens, kinds=None, names=("a", "b", "c")):
  q = len(correct)
  queries = [{"question": f"q{i}", "answer": str(i), **({"kind": kinds[i]} if kinds else {})}
             for i in range(q)]
  return routing.RoutingData(
      [routing.Candidate(n, f"/ckpt/{n}") for n in names[:len(correct[0])]], queries,
      np.asarray(correct), np.asarray(tokens),
      [[f"{n} answers q{i}\nAnswer: {i}" for n in names[:len(correct[0])]] for i in range(q)])


# ---------------------------------------------------------------------- labels


def test_labels_under_the_three_tradeoffs():
  # q0: a and b right, b cheaper; c wrong but cheapest. q1: only a right, and dearest.
  data = _data([[1, 1, 0], [1, 0, 0]], [[30, 10, 2], [30, 2, 2]])
  got = {name: routing.labels(data, *ab).tolist() for name, ab in routing.TRADEOFFS.items()}
  assert got == {"performance": [1, 0], "balanced": [1, 1], "cost": [2, 1]}
  chex.assert_shape(routing.scores(data, 1.0, 0.0), (2, 3))


def test_performance_and_cost_are_normalised_per_task():
  values = np.asarray([[0.0, 10.0], [100.0, 300.0], [7.0, 7.0]])
  out = routing.normalise_per_task(values, ["x", "y", "z"])
  np.testing.assert_allclose(out, [[0, 1], [0, 1], [0, 0]])
  # Cost normalised within the task: the long task's tokens do not swamp the short one's.
  data = _data([[1, 1], [1, 1]], [[3, 5], [400, 100]], kinds=["short", "long"])
  assert routing.labels(data, 0.5, 0.5).tolist() == [0, 1]


# ---------------------------------------------------------------------- routers


def _clusters(n, seed):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n)
  centres = np.stack([np.full(8, -1.0), np.full(8, 1.0)])
  return centres[labels] + rng.normal(0, 0.7, (n, 8)), labels


@pytest.mark.parametrize("method", routing.METHODS)
def test_router_learns_a_separable_routing_and_round_trips(method, tmp_path):
  train_x, train_y = _clusters(120, 0)
  test_x, test_y = _clusters(200, 1)
  router = routing.Router.fit(train_x, train_y, ["sums", "tens"], method=method,
                              hidden=(16,))
  routes = router.predict(test_x)
  assert np.mean(np.asarray(routes) == np.where(test_y == 1, "tens", "sums")) > 0.95
  router.save(str(tmp_path / "router.pkl"))
  loaded = routing.Router.load(str(tmp_path / "router.pkl"))
  assert loaded.predict(test_x) == routes and loaded.method == method
  # Restricted to one candidate, every query goes there.
  assert set(router.predict(test_x, allowed=["tens"])) == {"tens"}


def test_router_bad_input_is_defined_or_one_clear_error(tmp_path):
  x, y = _clusters(20, 0)
  router = routing.Router.fit(x, y, ["sums", "tens"])
  with pytest.raises(ValueError, match="no routing data for candidates \\['ghost'\\]"):
    router.predict(x, allowed=["sums", "ghost"])
  assert router.predict(np.zeros((0, 8))) == []                 # no queries: no routes
  with pytest.raises(ValueError, match="no queries"):
    routing.Router.fit(np.zeros((0, 8)), np.zeros(0), ["sums", "tens"])
  with pytest.raises(ValueError, match="method 'svm'"):
    routing.Router.fit(x, y, ["sums", "tens"], method="svm")
  constant = routing.Router.fit(x, np.ones(20, int), ["sums", "tens"], method="mlp")
  assert set(constant.predict(x)) == {"tens"}                 # one label: always there
  data = _data([[1, 0]], [[3, 4]])
  with pytest.raises(ValueError, match="'ghost' has no routing data"):
    data.index("ghost")
  with pytest.raises(ValueError, match="not a saved router"):
    (tmp_path / "bad.pkl").write_bytes(__import__("pickle").dumps([1]))
    routing.Router.load(str(tmp_path / "bad.pkl"))


def test_routing_data_round_trips_and_refuses_bad_shapes(tmp_path):
  data = _data([[1, 0], [0, 1]], [[3, 4], [5, 6]], kinds=["s", "c"])
  routing.save(data, str(tmp_path / "r.json"))
  loaded = routing.load(str(tmp_path / "r.json"))
  np.testing.assert_array_equal(loaded.correct_QC, data.correct_QC)
  assert loaded.responses == data.responses and loaded.names == ["a", "b"]
  with pytest.raises(ValueError, match="responses must be 2 queries × 2 candidates"):
    routing.RoutingData(data.candidates, data.queries, data.correct_QC, data.tokens_QC,
                        data.responses[:1])


def test_route_figures():
  data = _data([[1, 0], [0, 1], [0, 0], [1, 1]], [[3, 9], [4, 8], [5, 7], [6, 6]],
               kinds=["s", "c", "c", "s"])
  figures = fusion.route_figures(data, ["a", "b", "a", "b"], np.asarray([0, 1, 0, 0]))
  assert figures["pass@1"] == 0.75 and figures["oracle@1"] == 0.75
  assert figures["length"] == (3 + 8 + 5 + 6) / 4
  assert figures["pass@1/s"] == 1.0 and figures["pass@1/c"] == 0.5
  assert figures["routed/a"] == 0.5 and figures["alone/b"] == 0.5
  assert figures["router_agreement"] == 0.75
  with pytest.raises(ValueError, match="'ghost' has no routing data"):
    fusion.route_figures(data, ["a", "b", "a", "ghost"])


# -------------------------------------------------------------- fusion records


def test_fusion_records_are_the_top_k_right_responses_per_query():
  data = _data([[1, 1, 0], [0, 0, 0], [0, 1, 1]], [[9, 5, 1], [1, 2, 3], [4, 8, 2]])
  top1 = fusion.fusion_records(data, top_k=1)
  assert [(r["question"], r["provenance"]["candidate"]) for r in top1] == [
      ("q0", "b"), ("q2", "c")]                                # q1: nothing right
  assert top1[0]["solution"] == "b answers q0\nAnswer: 0" and top1[0]["answer"] == "0"
  top2 = fusion.fusion_records(data, top_k=2)
  assert [r["provenance"]["candidate"] for r in top2] == ["b", "a", "c", "b"]
  kept = fusion.fusion_records(data, top_k=1, min_correct=0.0)
  assert [r["provenance"]["candidate"] for r in kept] == ["b", "a", "c"]
  with pytest.raises(ValueError, match="top_k=0"):
    fusion.fusion_records(data, top_k=0)


# ----------------------------------------------------------------- templates


def test_templates_are_summarised_retrieved_for_the_nearest_query_and_prepended():
  answers_ = ["8 + 5\n13\nAnswer: 13", "8 + 5\n13\nAnswer: 13", "7 + 6\n13\nAnswer: 13"]
  assert thought_templates.extractive_summary(answers_) == "8 + 5\n13\nAnswer: 13"
  assert thought_templates.extractive_summary(answers_, quorum=1.0) == "13\nAnswer: 13"
  data = _data([[1, 0], [0, 1], [0, 0]], [[3, 4], [5, 6], [1, 1]])
  top = thought_templates.top_answers(data, top_k=2)
  assert top == [["a answers q0\nAnswer: 0"], ["b answers q1\nAnswer: 1"], []]
  bank = thought_templates.bank(["q0", "q1", "q2"], ["t0", "t1", ""],
                                np.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
  assert bank.questions == ["q0", "q1"]                         # q2 has no template
  got = thought_templates.retrieve(bank, np.asarray([[0.1, 2.0], [3.0, 0.2]]), n=1)
  assert got == [["q1\nt1"], ["q0\nt0"]]
  assert thought_templates.retrieve(bank, np.asarray([[0.1, 2.0]]), n=2) == [
      ["q1\nt1", "q0\nt0"]]
  assert thought_templates.prepend("What?", got[0]) == "q1\nt1\n\nWhat?"
  empty = thought_templates.bank([], [], np.zeros((0, 2)))
  assert thought_templates.retrieve(empty, np.ones((2, 2))) == [[], []]
  assert thought_templates.prepend("What?", []) == "What?"
  with pytest.raises(ValueError, match="do not match"):
    thought_templates.retrieve(bank, np.ones((1, 3)))


# ---------------------------------------------------- with models (two random)


@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
  """Two random tiny transformers saved as Hugging Face directories, and their config."""
  config = sft_config.get_config()
  model_cfg = loops.model_config(config)
  out = []
  for seed in (0, 1):
    path = tmp_path_factory.mktemp(f"candidate{seed}")
    hf.save_hf_checkpoint(lm.init(jax.random.PRNGKey(seed), model_cfg), model_cfg,
                          str(path), architecture="LlamaForCausalLM")
    out.append(str(path))
  return config, out


@pytest.fixture(scope="module")
def routing_data(candidates):
  config, paths = candidates
  queries = sources.read_records(data_config.corpus_path("fusion_valid.jsonl"))[126:130]
  return fusion.routing_data(config, fusion.parse_candidates(paths), queries,
                             template="text", max_new_tokens=4)


def test_routing_data_of_two_checkpoints(routing_data, candidates):
  data = routing_data
  chex.assert_shape([data.correct_QC, data.tokens_QC], (4, 2))
  assert data.names == [p.rsplit("/", 1)[-1] for p in candidates[1]]
  assert ((1 <= data.tokens_QC) & (data.tokens_QC <= 4)).all()
  assert len(data.responses) == 4 and all(len(r) == 2 for r in data.responses)
  # The verdicts are the checker's on the responses; the two models answer differently.
  for q, query in enumerate(data.queries):
    for c in range(2):
      assert data.correct_QC[q, c] == answers.is_correct(data.responses[q][c], query)
  assert data.responses != [[r[0], r[0]] for r in data.responses]
  assert {q["kind"] for q in data.queries} == {"chain_sum", "add_digit"}


def test_routing_data_bad_input(candidates, tmp_path):
  config, paths = candidates
  with pytest.raises(ValueError, match="no queries"):
    fusion.routing_data(config, fusion.parse_candidates(paths), [], template="text",
                        max_new_tokens=4)
  (tmp_path / "empty.jsonl").write_text("")
  with pytest.raises(ValueError, match="empty.jsonl: no records"):
    fusion.read_queries(str(tmp_path / "empty.jsonl"))
  with pytest.raises(ValueError, match="mode 'maybe'"):
    fusion.parse_candidates([f"{paths[0]}:maybe"])
  with pytest.raises(FileNotFoundError, match="no such directory"):
    fusion.routing_data(config, fusion.parse_candidates([str(tmp_path / "none")]),
                        [{"question": "q", "answer": "1"}], template="text",
                        max_new_tokens=4)


def test_sft_fusion_synthesis_keeps_the_best_response_of_itself_and_its_teacher(
    candidates, routing_data, tmp_path):
  config, paths = candidates
  config = copy.deepcopy(config)
  problems = tmp_path / "problems.jsonl"
  problems.write_text("".join(json.dumps(q) + "\n" for q in routing_data.queries))
  config.sft.records = ""
  config.sft.synthesis.update(dict(problems=str(problems), kind="fusion", template="text",
                                   max_new_tokens=4, samples=1, filter="none"))
  config.init_checkpoint = paths[0]
  config.teacher = dict(checkpoint=paths[1])
  model_cfg = loops.model_config(config)
  ctx = loops.Context(config=config, model_cfg=model_cfg, tokenizer=driver.load_tokenizer(config, model_cfg),
      mesh=sharding.make_mesh(config.mesh), optimizer=None,
      schedule=None, workdir=str(tmp_path / "run"))
  [path] = sft.records_paths(ctx)
  records = sources.read_records(path)
  best = routing.ranking(routing_data, 1.0, 0.0)[:, 0]
  assert [r["provenance"]["candidate"] for r in records] == [f"candidate{c}" for c in best]
  assert [r["solution"] for r in records] == [
      routing_data.responses[q][c].strip() for q, c in enumerate(best)]
  with open(f"{path}.counts.json") as f:
    assert json.load(f)["records"] == 4
  with config.unlocked():
    config.sft.synthesis.filter = "answer"
  ctx = dataclasses.replace(ctx, workdir=str(tmp_path / "strict"))
  if not routing_data.correct_QC.any():   # random models: nothing right, one clear error
    with pytest.raises(ValueError, match="no candidate answered any of them right"):
      sft.records_paths(ctx)


@pytest.mark.parametrize("summariser", fusion.SUMMARISERS)
def test_template_bank_of_routing_data(candidates, summariser):
  config, paths = candidates
  data = _data([[1, 0], [0, 0], [1, 1]], [[3, 4], [5, 6], [2, 2]])
  bank = fusion.make_templates(config, data, paths[0], top_k=2, summariser=summariser,
                               max_new_tokens=4)
  assert bank.questions == ["q0", "q2"]                         # q1: no right answer
  chex.assert_shape(bank.embeddings_ND, (2, 64))
  assert all(t.startswith(f"{q}\n") for q, t in zip(bank.questions, bank.templates))
  if summariser == "extractive":
    assert bank.templates[1] == "q2\na answers q2\nAnswer: 2"  # the best answer's lines
  # A query retrieves the template of its own question first.
  ctx, params = fusion.load_model(config, paths[0])
  assert thought_templates.retrieve(bank, fusion.embed_questions(ctx, params, ["q2"])) == [
      [bank.templates[1]]]


def test_embeddings_are_mean_pooled_over_real_tokens(candidates):
  config, paths = candidates
  ctx, params = fusion.load_model(config, paths[0])
  questions = ["What is 1 + 2 + 3?", "How many 4s are in 4 4 1 2 3 4 5?", "What is 1 + 2 + 3?"]
  together = fusion.embed_questions(ctx, params, questions)
  chex.assert_shape(together, (3, ctx.model_cfg.d_model))
  alone = fusion.embed_questions(ctx, params, questions[:1])
  np.testing.assert_allclose(together[0], alone[0], atol=1e-5)   # padding never counts
  np.testing.assert_allclose(together[0], together[2], atol=1e-6)
  assert not np.allclose(together[0], together[1], atol=1e-3)
  chex.assert_shape(fusion.embed_questions(ctx, params, []), (0, ctx.model_cfg.d_model))


# ----------------------------------------------------------------- the claim


def test_fusion_corpus_files_are_right_balanced_and_held_out():
  read = lambda name: sources.read_records(data_config.corpus_path(name))
  valid, dev, queries = (read(f"fusion_{n}.jsonl") for n in ("valid", "dev", "queries"))
  texts = {r["text"].split("\n", 1)[0] for name in ("sums", "tens")
           for r in read(f"fusion_{name}.jsonl")}
  for records, each in ((valid, 128), (dev, 64), (queries, 256)):
    assert sorted(collections.Counter(r["kind"] for r in records).values()) == [each, each]
    for r in records:
      assert int(r["answer"]) == eval(r["question"].removeprefix("What is ").rstrip("?"))
  held_out = {r["question"] for r in valid + dev}
  assert len(held_out) == 384 and not held_out & texts
  assert {r["question"] for r in queries} <= texts




def test_claim_router_arm_sees_both_specialists_tokens_and_checks_its_section():
  config = fusion_routing.get_config()
  claims.check(config)
  for fast in (False, True):
    tokens = claims.arm_tokens(config, fast)
    assert tokens["router"] == tokens["union"] == tokens["sums"] + tokens["tens"]
    assert tokens["fused"] == tokens["self"]
  assert claims.arm_stages(config, "router") == ["sums", "tens"]
  bad = copy.deepcopy(config)
  bad.routers.router.stages = ("sums", "ghost")
  with pytest.raises(run_config.ConfigError, match="routers.router.stages names 'ghost'"):
    claims.check(bad)
  bad = copy.deepcopy(config)
  bad.routers.router.method = "svm"
  with pytest.raises(run_config.ConfigError, match="routers.router.method='svm'"):
    claims.check(bad)
  bad = copy.deepcopy(config)
  bad.routers = {"nobody": dict(bad.routers.router)}
  with pytest.raises(run_config.ConfigError, match="routers.nobody: no such arm"):
    claims.check(bad)


def test_records_command_line(tmp_path):
  data = _data([[1, 1], [0, 1]], [[9, 5], [1, 2]])
  routing.save(data, str(tmp_path / "r.json"))
  result = subprocess.run(
      [sys.executable, "-m", "train.fusion", "records", f"--data={tmp_path / 'r.json'}",
       f"--out={tmp_path / 'f.jsonl'}", "--top_k=1"], cwd=cli_runs.ROOT, env=cli_runs.env(1), capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads(result.stdout.strip().splitlines()[-1]) == {"queries": 2, "records": 2}
  records = sources.read_records(str(tmp_path / "f.jsonl"))
  assert [r["provenance"]["candidate"] for r in records] == ["b", "b"]


@pytest.mark.slow
def test_fast_claim_runs_the_router_and_fusion_arms(fast_claim):
  _, summary = fast_claim("fusion_routing")
  arms = summary["arms"]
  assert arms["router"]["tokens_seen"] == arms["union"]["tokens_seen"]
  assert {"oracle@1", "routed/sums", "routed/tens"} <= set(arms["router"])
  routed = arms["router"]["routed/sums"]["mean"] + arms["router"]["routed/tens"]["mean"]
  assert routed == pytest.approx(1.0)
  assert [(c["better"], c["worse"]) for c in summary["comparisons"]] == [
      ("router", "union"), ("fused", "self")]
  assert summary["gate"]["stages"] == ["sums", "tens"]
