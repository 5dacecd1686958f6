"""GenSelect (arXiv 2504.16891): summaries, selector prompts, judgments, the vote, selector
SFT records, the eval option on a small trained run and the selector-data command."""

import json
import math
import random
import subprocess
import sys

import pytest

from cli_runs import ROOT, env, one_line
from configs import tiny_hybrid
from data import answers
from data import chat
from data import config as data_config
from data import genselect
from data import sources
from data import tokenizer as tokenizer_lib
from train import evaluate
from train import genselect_data
from train import sft


@pytest.mark.parametrize("reply, n, expected", [
    ("They agree.\nJudgment: 2", 3, 2),
    ("Judgment: [1]", 2, 1),
    ("**Judgment:** 0", 2, 0),
    ("Judgment: 0 ... on second thought\nJudgment: 1", 2, 1),   # the last one counts
    ("Judgment: 1 ... no\nJudgment: 5", 3, None),   # the last is out of range: no fallback
    ("Judgment: 3", 3, None),                       # [0, n)
    ("Judgment: -1", 3, None),
    ("Judgment: 1.5", 3, None),
    ("Judgment: 12", 20, 12),
    ("Judgment: none of them", 3, None),
    ("Solution 1 is right.", 3, None),
    ("", 3, None),
])
def test_parse_judgment(reply, n, expected):
  assert genselect.parse_judgment(reply, n) == expected


def test_summary_keeps_the_last_lines_and_always_ends_with_the_answer():
  solution = "<think>" + "\n".join(f"step {i}: a fairly long line of work" for i in range(30))
  solution += "</think>so \\boxed{42}"
  text = genselect.summary(solution, max_chars=200)
  assert len(text) <= 200 and text.endswith("\nAnswer: 42")
  assert "step 29" in text and "step 0:" not in text and "<think>" not in text
  assert answers.final_answer(text) == "42"
  # A solution that ends with its answer line does not repeat it.
  assert genselect.summary("1 + 2 = 3\nAnswer: 3") == "1 + 2 = 3\nAnswer: 3"
  # No whole line fits: the end of the last one; an answer too long for the budget is cut.
  assert genselect.summary("x" * 100 + "\nAnswer: 7", max_chars=30).endswith("xx\nAnswer: 7")
  assert len(genselect.summary("y" * 100 + "\nAnswer: 7", max_chars=30)) <= 30
  assert len(genselect.summary("z" * 100, max_chars=30)) <= 30


def test_selector_prompt_numbers_the_summaries_and_asks_for_a_judgment():
  text = genselect.selector_prompt("What is 1+2?", ["Answer: 3", "Answer: 4", "Answer: 5"])
  assert "What is 1+2?" in text
  assert text.index("Solution 0:\nAnswer: 3") < text.index("Solution 2:\nAnswer: 5")
  assert text.rstrip().endswith('"Judgment: IDX", where IDX is the number of the correct '
                                "solution (0 to 2).")
  mcq = {"question": "Pick", "answer": "B", "kind": "mcq", "options": ["x", "y"]}
  assert genselect.problem_text(mcq) == "Pick\nOptions:\nA. x\nB. y"


def test_candidate_subsets_are_distinct_random_orders_fixed_by_the_seed():
  subsets = genselect.candidate_subsets(6, 3, 20, random.Random(0))
  assert len(subsets) == 20 and all(len(set(s)) == 3 and set(s) <= set(range(6))
                                    for s in subsets)
  assert len({tuple(s) for s in subsets}) > 1
  assert subsets == genselect.candidate_subsets(6, 3, 20, random.Random(0))
  with pytest.raises(ValueError, match="1 <= n <= k"):
    genselect.candidate_subsets(3, 4, 1, random.Random(0))


def test_the_vote_skips_invalid_rounds_and_falls_back_to_maj_at_k():
  record = {"question": "q", "answer": "1/2"}
  candidates = ["Answer: 3", "Answer: 0.5", "\\boxed{\\frac{1}{2}}", "Answer: 3", "Answer: 3"]
  subsets = [[0, 1], [2, 3], [4, 1], [1, 0]]
  # Rounds pick 1 (0.5), 2 (1/2), an invalid one, 0 (3): 1/2 wins 2 to 1 by equivalence.
  replies = ["Judgment: 1", "Judgment: 0", "Judgment: 7", "Judgment: 1"]
  vote = genselect.genselect_vote(candidates, subsets, replies, record)
  assert vote == genselect.Vote(choice=1, invalid=1, fallback=False)
  # Invalid rounds do not vote: two invalid rounds pointing nowhere cannot outvote one.
  vote = genselect.genselect_vote(candidates, subsets, ["Judgment: 0", "x", "", "Judgment:"],
                                  record)
  assert vote == genselect.Vote(choice=0, invalid=3, fallback=False)
  # No valid round: maj@k over all candidates (3, three votes), counted as a fallback.
  vote = genselect.genselect_vote(candidates, subsets, ["no"] * 4, record)
  assert vote == genselect.Vote(choice=0, invalid=4, fallback=True)
  # The counts over records: the first is right, the second falls back to a wrong maj@k.
  records = [record, {"question": "r", "answer": "9"}]
  completions = {0: candidates, 1: ["Answer: 8", "Answer: 8", "Answer: 9"]}
  rounds = {0: list(zip(subsets, replies)), 1: [([2, 0], "?"), ([1, 2], "Judgment: 9")]}
  assert evaluate.genselect_counts(records, completions, rounds) == (1, 1 + 2, 1)


def test_selector_records_come_from_mixed_problems_and_point_at_a_right_one(tmp_path):
  solutions = ["2 + 2 = 4\nAnswer: 4", "2 + 2 = 5\nAnswer: 5", "Answer: 4", "Answer: 22"]
  verdicts = [True, False, True, False]
  records = genselect.selector_records("What is 2 + 2?", solutions, verdicts, 3,
                                       random.Random(0), rounds=12, meta={"problem": 7})
  assert 1 <= len(records) <= 12
  assert len({tuple(r["provenance"]["candidates"]) for r in records}) == len(records)
  for record in records:
    shown = record["provenance"]["candidates"]
    assert len(shown) == 3 and record["provenance"]["problem"] == 7
    assert any(verdicts[j] for j in shown) and not all(verdicts[j] for j in shown)
    target = genselect.parse_judgment(record["answer"], 3)
    assert record["answer"] == f"Judgment: {target}" and verdicts[shown[target]]
    assert record["provenance"]["right"] == [i for i, j in enumerate(shown) if verdicts[j]]
    assert record["question"].startswith("Here is a problem and 3 candidate solutions")
  for unmixed in ([True] * 4, [False] * 4):
    assert genselect.selector_records("q", solutions, unmixed, 3, random.Random(0)) == []
  with pytest.raises(ValueError, match="2 <= n <= 4"):
    genselect.selector_records("q", solutions, verdicts, 5, random.Random(0))
  # They are SFT question/answer records: the SFT loop reads them.
  path = tmp_path / "selector.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  tokenizer = tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))
  assert len(sft.read_records(str(path), tokenizer, "pair")) == len(records)


def _problems(tmp_path, count=3):
  problems = sources.read_records(data_config.corpus_path("sums_valid.jsonl"))[:count]
  path = tmp_path / "problems.jsonl"
  path.write_text("".join(json.dumps(p) + "\n" for p in problems))
  return problems, path


def test_the_eval_option_reports_genselect_beside_maj_at_k(reference_run, tmp_path):
  workdir, _ = reference_run("pretrain")
  _, records = _problems(tmp_path)
  config = tiny_hybrid.get_config()
  config.eval.text_files = {}
  config.eval.records, config.eval.max_records = str(records), 0
  config.eval.samples, config.eval.genselect, config.eval.genselect_rounds = 3, 2, 2
  config.eval.max_new_tokens, config.eval.batch_size = 6, 8
  figures = evaluate.evaluate_checkpoint(config, str(workdir), str(tmp_path / "out"))
  assert {"pass@3", "maj@3", "genselect@3", "genselect_invalid",
          "genselect_fallback"} <= set(figures)
  for name in ("genselect@3", "genselect_invalid", "genselect_fallback"):
    assert 0.0 <= figures[name] <= 1.0 and math.isfinite(figures[name])
  # Records fall back only when every one of their rounds is invalid.
  assert figures["genselect_fallback"] <= figures["genselect_invalid"]
  if figures["genselect_invalid"] == 1.0:   # every record fell back: genselect@k is maj@k
    assert figures["genselect_fallback"] == 1.0 and figures["genselect@3"] == figures["maj@3"]
  # Refused before anything runs: more candidates than samples, or a thought judge.
  config.eval.genselect = 4
  with pytest.raises(ValueError, match=r"eval.genselect=4: .* 2 <= n <= eval.samples"):
    evaluate.evaluate_checkpoint(config, str(workdir), str(tmp_path / "out"))
  config.eval.genselect, config.eval.judge = 2, "thought"
  with pytest.raises(ValueError, match="eval.judge='final'"):
    evaluate.evaluate_checkpoint(config, str(workdir), str(tmp_path / "out"))


def test_the_command_writes_selector_records_and_counts(reference_run, tmp_path,
                                                       monkeypatch):
  """The eval test's sampling settings (the same compiled generation); each problem's
  first sample is then given the right answer and the others a wrong one, so every
  problem has mixed verdicts."""
  checkpoint, _ = reference_run("pretrain")
  problems, path = _problems(tmp_path)
  sample_solutions = genselect_data.synthesize.sample_solutions

  def one_right(ctx, params, problems, **kwargs):
    solutions = sample_solutions(ctx, params, problems, **kwargs)
    assert [len(texts) for texts in solutions] == [3] * len(problems)
    return [[f"{text}\nAnswer: {problem['answer'] if s == 0 else 'wrong'}"
             for s, text in enumerate(texts)] for problem, texts in zip(problems, solutions)]
  monkeypatch.setattr(genselect_data.synthesize, "sample_solutions", one_right)
  out = tmp_path / "selector.jsonl"
  counts = genselect_data.make_selector_data(
      tiny_hybrid.get_config(), str(checkpoint), str(path), str(out), samples=3,
      candidates=2, rounds=2, temperature=1.0, max_new_tokens=6, template="text")
  records = sources.read_records(str(out))
  assert counts == {"problems": 3, "decontaminated": 0, "mixed": 3, "too_long": 0,
                    "records": len(records)}
  assert 3 <= len(records) <= 6
  with open(f"{out}.counts.json") as f:
    assert json.load(f) == counts
  for record in records:
    provenance = record["provenance"]
    assert provenance["sampling"]["samples"] == 3
    assert problems[provenance["problem"]]["question"] in record["question"]
    target = genselect.parse_judgment(record["answer"], 2)
    assert record["answer"] == f"Judgment: {target}"
    assert provenance["candidates"][target] == 0 and 0 in provenance["candidates"]
  # A problem sharing a word n-gram with an evaluation question is never sampled.
  held_out = tmp_path / "held_out.jsonl"
  held_out.write_text(json.dumps(problems[1]) + "\n")
  sampled = []
  monkeypatch.setattr(genselect_data.synthesize, "sample_solutions",
                      lambda ctx, params, problems, **_: sampled.extend(problems) or [
                          [f"Answer: {p['answer']}",   # wrong ones of different lengths
                           "Answer: " + " ".join(["no"] * (int(p["answer"]) % 5 + 1))]
                          for p in problems])
  counts = genselect_data.make_selector_data(
      tiny_hybrid.get_config(), str(checkpoint), str(path), str(out), samples=2,
      candidates=2, eval_records=(str(held_out),), ngram=2)
  assert counts["decontaminated"] == 1 and problems[1] not in sampled
  kept = sources.read_records(str(out))
  assert {r["provenance"]["problem"] for r in kept} == {0, 2}
  # A record whose conversation is longer than max_tokens is dropped.
  tokenizer = tokenizer_lib.load_tokenizer(tiny_hybrid.get_config().data.tokenizer_path)
  lengths = sorted(len(chat.tokenize(chat.conversation(r["question"], answer=r["answer"]),
                                     tokenizer)[0]) for r in kept)
  counts = genselect_data.make_selector_data(
      tiny_hybrid.get_config(), str(checkpoint), str(path), str(out), samples=2,
      candidates=2, max_tokens=lengths[0], eval_records=(str(held_out),), ngram=2)
  assert counts["too_long"] == sum(n > lengths[0] for n in lengths) > 0
  assert counts["records"] == len(sources.read_records(str(out))) == lengths.count(lengths[0])


def test_the_command_refuses_before_any_work(tmp_path):
  config = tiny_hybrid.get_config()
  out = str(tmp_path / "out.jsonl")
  _, problems = _problems(tmp_path)
  with pytest.raises(FileNotFoundError, match="--checkpoint"):
    genselect_data.make_selector_data(config, str(tmp_path / "none"), str(problems), out)
  with pytest.raises(ValueError, match="--candidates=5: .* 2 to --samples=4"):
    genselect_data.make_selector_data(config, str(tmp_path), str(problems), out,
                                      samples=4, candidates=5)
  unanswered = tmp_path / "unanswered.jsonl"
  unanswered.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "2+2?"}\n')
  result = subprocess.run(
      [sys.executable, "-m", "train.genselect_data", "--config=configs/tiny_hybrid.py",
       f"--checkpoint={tmp_path}", f"--problems={unanswered}", f"--out={out}"],
      cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
  assert one_line(result) == (f"error: {unanswered}:2: missing field 'answer' (record has "
                              "['question'])")
  assert not (tmp_path / "out.jsonl").exists()
