"""Retro-Search (arXiv 2504.04383): the trace bookkeeping (data/retro_search.py), the
switch-word ban in the sampler (model/generate.py), the batched revision with a reviser
checkpoint in both modes (train/retro_search.py) and the SFT loop's 'retro_search'
synthesis (train/sft.py), on tiny random Llamas."""

import json

import jax
import jax.numpy as jnp
import pytest

from configs import sft as sft_config
from data import answers
from data import config as data_config
from data import make_corpus
from data import retro_search
from data import sources
from data import tokenizer as tokenizer_lib
from model import generate as generate_lib
from model import hf
from model import lm
from train import config as run_config
from train import retro_search as train_retro_search
from train import sft
from train import synthesize

# Detours with an "Answer:" line before them: a rollout without one keeps the answer.
DETOURED = "7 + 8\n\n15\nAnswer: 15\n\nWait, 7 + 8\n\n15\nAnswer: 15"
PLAIN = "7 + 8\n\n15\nAnswer: 15"
RECORDS = [{"question": "What is 7 + 8?", "solution": DETOURED, "answer": "15"},
           {"question": "What is 7 + 8?", "solution": PLAIN, "answer": "15"}]


# ------------------------------------------------------------------ the bookkeeping


def test_thoughts_split_at_switch_words_that_begin_a_line_and_join_back():
  trace = "a\n\nWait, b\n\nc Wait no\n\nAlternatively, d\nHmm e\nWaiting f"
  thoughts = retro_search.split_thoughts(trace)
  assert thoughts == ["a\n\n", "Wait, b\n\nc Wait no\n\n", "Alternatively, d\n",
                      "Hmm e\nWaiting f"]
  assert "".join(thoughts) == trace
  assert retro_search.split_thoughts("Wait, a\n\nb") == ["Wait, a\n\nb"]
  assert retro_search.split_steps("a\n\nb\nc\n \n\n\nd\n") == ["a", "b\nc", "d\n"]
  assert retro_search.value("a\n\nb", True, 0.9) == pytest.approx(0.81)
  assert retro_search.value("a", False, 0.9) == 0.0
  with pytest.raises(ValueError, match="gamma=0"):
    retro_search.value("a", True, 0.0)
  with pytest.raises(ValueError, match="switch words"):
    retro_search.split_thoughts("a", (" Wait",))


def test_a_trace_without_a_switch_word_is_kept_as_it_is():
  revision = retro_search.Revision.start(PLAIN, True)
  assert retro_search.rollout_prefix(revision) is None
  assert retro_search.result(revision) == PLAIN
  with pytest.raises(ValueError, match="done"):
    retro_search.consider(revision, "x", True, gamma=0.9)


def test_a_rollout_replaces_the_suffix_only_when_its_value_is_higher():
  trace = "s1\n\nWait, s2\n\ns3\n\nAlternatively, s4\n\nAnswer: 1"   # 3 thoughts
  for rollout, correct, taken in [
      ("s3\n\ns4\n\nAnswer: 1", False, False),            # wrong: V = 0
      ("s3\n\ns4\n\ns5\n\ns6\n\nAnswer: 1", True, False),   # right, 5 steps vs 5: equal
      ("s3\n\ns4\n\ns5\n\ns6\n\ns7\n\nAnswer: 1", True, False),   # longer
      ("Answer: 1", True, True)]:                           # 1 step vs 5
    revision = retro_search.Revision.start(trace, True)
    assert retro_search.rollout_prefix(revision) == "s1\n\n"
    assert retro_search.consider(revision, rollout, correct, gamma=0.9) is taken
    assert revision.trace == ("s1\n\n" + rollout if taken else trace)
    assert revision.rollouts == 1 and revision.accepted == taken
  # Taken: the search goes on from the new trace (whose only thought is done) ...
  assert retro_search.rollout_prefix(revision) is None
  # ... not taken: with the trace's next thought.
  revision = retro_search.Revision.start(trace, True)
  retro_search.consider(revision, "x", False, gamma=0.9)
  assert retro_search.rollout_prefix(revision) == "s1\n\nWait, s2\n\ns3\n\n"
  retro_search.consider(revision, "s4 Wait\n\nWait, s5\n\nAnswer: 1", True, gamma=0.9)
  # 2 steps vs 2: kept; the output is the shortest correct trace seen.
  assert revision.accepted == 0 and retro_search.result(revision) == trace
  revision = retro_search.Revision.start(trace, True)
  retro_search.consider(revision, "t\n\nWait, long long long\n\nAnswer: 1", True, gamma=0.9)
  assert retro_search.rollout_prefix(revision) == "s1\n\nt\n\n"   # the rollout's thought
  retro_search.consider(revision, "Answer: 1", True, gamma=0.9)
  assert revision.candidates == [trace, "s1\n\nt\n\nWait, long long long\n\nAnswer: 1",
                                 "s1\n\nt\n\nAnswer: 1"]
  assert retro_search.result(revision) == "s1\n\nt\n\nAnswer: 1"


def test_the_claims_corpus_traces_have_detours_and_right_answers():
  rng = __import__("random").Random(0)
  problems = make_corpus.chain_sums(rng, 200)
  traces = [make_corpus.detoured(p, rng) for p in problems]
  assert all(answers.is_correct(t["solution"], t) for t in traces[:20])
  assert all(t["text"] == f"{t['question']}\n{t['solution']}" for t in traces)
  thoughts = [len(retro_search.split_thoughts(t["solution"])) for t in traces]
  assert min(thoughts) == 1 and 1.5 < sum(thoughts) / len(thoughts) < 2.3
  # The first thought computes the answer; the detours repeat it.
  assert all(answers.is_correct(retro_search.split_thoughts(t["solution"])[0], t)
             for t in traces[:20])
  assert any(t["solution"].count("Alternatively") for t in traces)


# ---------------------------------------------------------------- with a model


def llama_config(pattern: str):
  config = sft_config.get_config()
  config.model.update(dict(d_model=32, mlp_dim=64, pattern=pattern))
  config.eval.max_new_tokens = 4
  return config


@pytest.fixture(scope="module")
def revisers(tmp_path_factory):
  """{'strong': (config, HF directory), 'weak': ...}: random tiny Llamas, the weak one
  with one layer."""
  out = {}
  for name, pattern in (("strong", "*-*-"), ("weak", "*-")):
    config = llama_config(pattern)
    model_cfg = run_config.model_config(config.model)
    directory = tmp_path_factory.mktemp(name)
    hf.save_hf_checkpoint(lm.init(jax.random.PRNGKey(0), model_cfg), model_cfg,
                          str(directory), architecture="LlamaForCausalLM")
    out[name] = config, str(directory)
  return out


@pytest.fixture(scope="module")
def tokenizer():
  return tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))


def test_switch_tokens_are_the_first_token_of_each_switch_word(tokenizer):
  ids = train_retro_search.switch_token_ids(tokenizer, ("Wait",))
  newline = tokenizer.encode("\n")
  assert not set(ids) & set(newline) and len(ids) >= 2
  for text in ("Wait", " Wait", "\nWait"):
    assert set(tokenizer.encode(text)) & set(ids)


def test_banned_tokens_never_come_in_the_first_new_tokens(revisers):
  config, _ = revisers["strong"]
  model_cfg = run_config.model_config(config.model)
  params = lm.init(jax.random.PRNGKey(0), model_cfg)
  prompt = jnp.asarray([[5, 6, 7], [8, 9, 10]], jnp.int32)
  mask = jnp.ones_like(prompt)
  greedy = lambda **ban: generate_lib.generate(
      params, prompt, mask, jax.random.PRNGKey(1), model_cfg=model_cfg,
      sampling=generate_lib.SamplingConfig(max_new_tokens=6, temperature=0.0, **ban)).tokens
  free = greedy()
  banned = tuple(int(t) for t in free[:, :3].reshape(-1))
  tokens = greedy(banned_tokens=banned, banned_new_tokens=3)
  assert not set(tokens[:, :3].reshape(-1).tolist()) & set(banned)
  assert (greedy(banned_tokens=banned) == free).all()   # a bound of 0: off
  with pytest.raises(ValueError, match="banned_new_tokens=7"):
    generate_lib.SamplingConfig(max_new_tokens=6, banned_new_tokens=7)


@pytest.mark.parametrize("mode", ["self_improvement", "weak_to_strong"])
def test_revision_keeps_right_traces_no_longer_and_records_lengths(revisers, tmp_path,
                                                                   mode):
  """Self-improvement: the traces' own (strong) model revises; weak-to-strong: the
  one-layer model does. The random reviser's rollouts carry no answer line of their own,
  so after the first thought's "Answer: 15" they are right, and shorter."""
  config, directory = revisers["strong" if mode == "self_improvement" else "weak"]
  traces = tmp_path / "traces.jsonl"
  traces.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
  out = tmp_path / "revised.jsonl"
  counts = train_retro_search.retro_search_file(
      config, directory, str(traces), str(out), template="text", temperature=1.0,
      max_new_tokens=6, gamma=0.9, banned_new_tokens=2, batch_size=4)
  revised = sources.read_records(str(out))
  tokens = lambda text: len(tokenizer_lib.load_tokenizer(
      config.data.tokenizer_path).encode(text))
  assert [r["question"] for r in revised] == [r["question"] for r in RECORDS]
  for before, after in zip(RECORDS, revised):
    search = after["provenance"]["retro_search"]
    assert search["original"] == before["solution"] and search["reviser"] == directory
    assert answers.is_correct(after["solution"], after)
    assert search["after"]["tokens"] == tokens(after["solution"]) <= tokens(
        before["solution"]) == search["before"]["tokens"]
  assert revised[1]["solution"] == PLAIN and revised[1]["provenance"]["retro_search"][
      "rollouts"] == 0   # no switch word: kept as it is
  assert revised[0]["solution"] != DETOURED and revised[0]["solution"].startswith(
      "7 + 8\n\n15\nAnswer: 15\n\n")
  assert counts["traces"] == 2 and counts["no_switch"] == 1 and counts["revised"] == 1
  assert counts["rollouts"] == counts["accepted"] == counts["rounds"] == 1
  assert counts["tokens_after"] < counts["tokens_before"]
  with open(f"{out}.counts.json") as f:
    assert json.load(f) == counts


def test_sft_trains_on_retro_searched_traces_of_its_synthesis(revisers, tmp_path,
                                                              monkeypatch):
  """kind 'retro_search': the synthesised traces (fixed here) are revised by the run's
  starting weights, or by a given weak reviser, into the records it trains on."""
  from tests.test_synthesize import sft_batches   # pylint: disable=g-import-not-at-top
  config, strong = revisers["strong"]
  _, weak = revisers["weak"]
  seeds = tmp_path / "seeds.jsonl"
  seeds.write_text("".join(json.dumps({"question": r["question"], "answer": "15"}) + "\n"
                           for r in RECORDS))
  monkeypatch.setattr(synthesize, "sample_solutions", lambda ctx, params, problems, **_: [
      [r["solution"]] for r in RECORDS])
  for reviser in ("", weak):
    run = config.copy_and_resolve_references()
    run.init_checkpoint = strong
    run.sft.records, run.sft.toggle = "", "none"
    run.sft.synthesis.update(dict(problems=str(seeds), samples=1, max_new_tokens=6,
                                  template="text", kind="retro_search", reviser=reviser,
                                  gamma=0.9, banned_new_tokens=2))
    run.train.update(dict(seq_len=64, global_batch_size=8))
    workdir = tmp_path / f"run{bool(reviser)}"
    sft_batches(run, workdir)
    traces = sources.read_records(str(workdir / sft.TRACES))
    records = sources.read_records(str(workdir / sft.SYNTHESIZED))
    assert [t["solution"] for t in traces] == [DETOURED, PLAIN]
    assert len(records) == 2 and records[1]["solution"] == PLAIN
    assert records[0]["provenance"]["retro_search"]["reviser"] == (reviser or strong)
    assert len(records[0]["solution"]) < len(DETOURED)


# ------------------------------------------------------------------ the claim


def test_retro_search_claim_arms_differ_only_in_the_search_and_compare_two_figures():
  from configs.claims import long_cot, retro_search as claim   # pylint: disable=g-import-not-at-top
  from train import claims, stages   # pylint: disable=g-import-not-at-top
  config = claim.get_config()
  claims.check(config)
  runs = {stage: config.stages[stage].run.to_dict() for stage in ("sft_original", "sft_retro")}
  retro = {field: runs["sft_retro"]["sft"]["synthesis"].pop(field)
           for field in ("kind", "gamma", "banned_new_tokens", "reviser", "reviser_model")}
  assert runs["sft_original"]["sft"]["synthesis"].pop("kind") == "solutions"
  assert retro["kind"] == "retro_search" and retro["reviser"] == ""   # self-improvement
  assert runs["sft_original"] == runs["sft_retro"]
  assert {claims.arm_metric(config, arm) for arm in ("retro", "original")} == {"pass@1"}
  assert {claims.arm_metric(config, a) for a in ("retro_length", "original_length")} == {
      "length"}
  assert [claims.comparison_parts(c) for c in config.claim.comparisons] == [
      ("retro_length", "original_length", 0.0), ("retro", "original", claim.MARGIN)]
  # The seed problems are neither evaluated nor gated on, nor pretrained on.
  seeds = {r["question"] for r in sources.read_records(
      config.stages.sft_retro.run.sft.synthesis.problems)}
  for path in (config.eval.records, config.claim.gate.eval.records):
    assert not seeds & {r["question"] for r in sources.read_records(path)}
  pretrained = {r["text"].split("\n", 1)[0] for r in sources.read_records(
      data_config.corpus_path("retro_sums.jsonl"))}
  assert not seeds & pretrained
  assert claim.MAX_SOLUTIONS <= config.claim.gate.threshold * len(seeds)
  # The arithmetic stage is long_cot's base: one cache entry for both claims.
  key = lambda c, stage: stages.resolve(c.stages, [stage], "/c", seed=0, fast=False)[
      stage].key
  assert key(config, "arithmetic") == key(long_cot.get_config(), "base")


@pytest.mark.slow
def test_fast_retro_search_claim(fast_claim):
  """The fast retro_search claim: both arms train on as many records, the retro arm's
  right and no longer than the original arm's; the signs are not asserted."""
  workdir, summary = fast_claim("retro_search")
  assert summary["seeds"] == [0] and len(summary["comparisons"]) == 2
  original = sources.read_records(str(workdir / "seed0" / "sft_original" / sft.SYNTHESIZED))
  revised = sources.read_records(str(workdir / "seed0" / "sft_retro" / sft.SYNTHESIZED))
  assert len(original) == len(revised)
  assert [r["provenance"]["retro_search"]["original"] for r in revised] == [
      r["solution"] for r in original]
  assert all(answers.is_correct(r["solution"], r) and r["provenance"]["retro_search"][
      "after"]["tokens"] <= r["provenance"]["retro_search"]["before"]["tokens"]
             for r in revised)
  print("fast retro_search:", {arm: figures for arm, figures in summary["arms"].items()})
