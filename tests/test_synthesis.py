"""Solution synthesis filters (data/synthesis.py): answer match or majority, length,
duplicates, n-gram decontamination, provenance and counts; the selection of a fixed
number."""

import pytest

from data import synthesis


def test_filters_keep_right_short_distinct_uncontaminated_solutions():
  problems = [
      {"question": "What is 2 + 2 written as a number?", "answer": "4"},
      {"question": "Tom has three apples and buys two more apples at the market today. "
                   "How many apples does he have now?"},
      {"question": "What is one half as a decimal?", "answer": "0.5"},
  ]
  solutions = [
      ["2 + 2 = 4\nAnswer: 4", "2 + 2 = 5\nAnswer: 5", "2 + 2 = 4\nAnswer:  4 ",
       "so " * 50 + "\nAnswer: 4", "Answer: 4"],
      ["3 + 2 = 5\nAnswer: 5", "Answer: 6", "three and two make five\nAnswer: 5"],
      ["\\boxed{\\frac{1}{2}}", "\\boxed{1/2}"],
  ]
  eval_questions = ["Tom has three apples and buys two more apples at the market today. "
                    "How many pears?"]
  records, counts = synthesis.filter_solutions(
      problems, solutions, eval_questions=eval_questions, ngram=8, max_tokens=20,
      meta={"teacher": "t", "temperature": 1.0})
  kept = [(r["provenance"]["problem"], r["provenance"]["sample"]) for r in records]
  # Problem 0: the wrong answer, the over-long one and the whitespace duplicate go.
  # Problem 1 shares an 8-gram with an evaluation question: dropped whole.
  # Problem 2: \frac{1}{2} and 1/2 both equal the reference 0.5.
  assert kept == [(0, 0), (0, 4), (2, 0), (2, 1)]
  assert counts == {"decontaminate": {"in": 10, "out": 7}, "answer": {"in": 7, "out": 6},
                    "length": {"in": 6, "out": 5}, "duplicate": {"in": 5, "out": 4}}
  first = records[0]
  assert first["answer"] == "4" and first["provenance"]["teacher"] == "t"
  assert set(first["provenance"]["filters"]) == set(synthesis.FILTERS)


def test_without_a_reference_the_majority_answer_decides_and_unfiltered_keeps_all():
  problems = [{"question": "a"}, {"question": "b"}]
  solutions = [["Answer: 7", "Answer: 7.0", "Answer: 3"], ["", "  "]]   # b: no answers
  records, _ = synthesis.filter_solutions(problems, solutions)
  assert [(r["provenance"]["sample"], r["answer"]) for r in records] == [(0, "7"), (1, "7")]
  records, counts = synthesis.filter_solutions(problems, solutions, strict=False)
  assert counts["answer"] == {"in": 5, "out": 5} and counts["duplicate"]["out"] == 4
  assert len(records) == 4   # b's two empty samples are one after whitespace
  assert records[2]["provenance"]["filters"]["answer"].startswith("kept unfiltered")


def test_selection_draws_a_fixed_number_in_order_and_refuses_too_few():
  records = [{"n": i} for i in range(10)]
  chosen = synthesis.select_solutions(records, 4, seed=3)
  assert len(chosen) == 4 and chosen == sorted(chosen, key=lambda r: r["n"])
  assert chosen == synthesis.select_solutions(records, 4, seed=3)
  assert chosen != synthesis.select_solutions(records, 4, seed=4)
  assert synthesis.select_solutions(records, 10, seed=0) == records
  with pytest.raises(ValueError, match="kept 10 solutions, fewer than the 11"):
    synthesis.select_solutions(records, 11, seed=0)
