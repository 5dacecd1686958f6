"""Answer extraction and checking (data/answers.py) and the rewards built on it."""

import json
import threading
import time

import math_verify
import pytest

from data import answers
from data import config as config_lib
from rl import rewards

# Where our verdict differs from math-verify called directly on the raw strings
# (``_raw_math_verify``), the reason is our extraction.
_UNCLOSED_THINK = "text inside an unclosed <think> does not count"
_CLOSED_THINK = "a boxed answer inside a closed <think> block does not count"
_END_OF_TURN = "text after the end-of-turn marker does not count"
_WHOLE_TEXT = "with no box, Answer: line or 'the answer is', the whole text is the answer"
_WORDS = "word answers are compared as text (math-verify reads letters as symbols)"

# (gold, completion, score, why ours differs from raw math-verify or None).
CASES = [
    # Mixed numbers: 3 1/2 is 7/2.
    ("3/2", r"\boxed{3\frac{1}{2}}", 0, None),
    ("7/2", r"\boxed{3\frac{1}{2}}", 1, None),
    (r"\frac{7}{2}", r"\boxed{3 \frac12}", 1, None),
    (r"3\frac{1}{2}", r"\boxed{\frac{7}{2}}", 1, None),
    (r"2\frac{1}{3}", r"\boxed{\frac{5}{3}}", 0, None),
    # Fractions and roots, with and without braces.
    (r"\sqrt{3}/2", r"\boxed{\frac{\sqrt{3}}{2}}", 1, None),
    (r"\sqrt{3}/2", r"\boxed{\frac{\sqrt{2}}{3}}", 0, None),
    (r"\frac{1}{2}", r"\boxed{\frac12}", 1, None),
    ("0.5", r"\boxed{\dfrac{1}{2}}", 1, None),
    (r"\sqrt{3}", r"\boxed{\sqrt3}", 1, None),
    (r"2\sqrt{2}", r"\boxed{\sqrt{8}}", 1, None),
    (r"\sqrt{2}", r"\boxed{\sqrt{3}}", 0, None),
    (r"\frac{1}{3}", r"\boxed{0.333333}", 1, None),   # floats are rounded to 6 places
    (r"\frac{1}{3}", r"\boxed{0.33}", 0, None),
    # Units.
    ("5", r"\boxed{5\text{ cm}}", 1, None),
    (r"5\text{ cm}", r"\boxed{5}", 1, None),
    (r"5 \text{ cm}", r"\boxed{6\text{ cm}}", 0, None),
    ("12", r"\boxed{12 \text{ meters}}", 1, None),
    # Degrees, percent, dollars.
    ("30", r"\boxed{30^\circ}", 1, None),
    (r"30^\circ", r"\boxed{30}", 1, None),
    (r"45^\circ", r"\boxed{30^\circ}", 0, None),
    ("50", r"\boxed{50\%}", 1, None),
    (r"50\%", r"\boxed{0.5}", 1, None),
    (r"25\%", r"\boxed{50\%}", 0, None),
    ("5", r"\boxed{\$5}", 1, None),
    (r"\$5.00", r"\boxed{5}", 1, None),
    ("18.90", r"\boxed{\$18.90}", 1, None),
    ("18.90", r"\boxed{\$19.80}", 0, None),
    # Plus-minus, sets and solution lists in any order.
    (r"\pm 2", r"\boxed{2, -2}", 1, None),
    ("2, -2", r"\boxed{\pm 2}", 1, None),
    (r"\pm 2", r"\boxed{2}", 0, None),
    (r"\{1,2,3\}", r"\boxed{\{3,1,2\}}", 1, None),
    (r"\{1,2,3\}", r"\boxed{\{3,1,4\}}", 0, None),
    ("1, 2", r"\boxed{2, 1}", 1, None),
    ("x=1, x=2", r"\boxed{x=2, x=1}", 1, None),
    ("1, 2", r"\boxed{x=1 \text{ or } x=2}", 1, None),
    ("1, 2, 3", r"\boxed{1, 2}", 0, None),
    # Intervals.
    ("[1,2)", r"\boxed{[1,2)}", 1, None),
    ("[1,2)", r"\boxed{[1,2]}", 0, None),
    (r"(-\infty, 0)", r"\boxed{(-\infty,0)}", 1, None),
    # Expressions and equations.
    ("8", "x = 2*(3+1)", 1, None),
    ("8", r"\boxed{x = 8}", 1, None),
    (r"x^2+2x+1", r"\boxed{(x+1)^2}", 1, None),
    (r"x^2+1", r"\boxed{(x+1)^2}", 0, None),
    ("1000", r"\boxed{10^{3}}", 1, None),
    ("1024", r"\boxed{2^{10}}", 1, None),
    (r"2\pi", r"\boxed{2 \pi}", 1, None),
    (r"\pi", r"\boxed{3.14}", 0, None),
    ("1000000", r"\boxed{1,000,000}", 1, None),
    ("7", r"\boxed{7.0}", 1, None),
    ("7", r"\boxed{7.1}", 0, None),
    ("0.5", r"Answer is \boxed{\frac{1}{2}}", 1, None),
    # "The answer is ..." without a box.
    ("7", "The answer is 7.", 1, None),
    ("7", r"So the final answer is $\frac{14}{2}$.", 1, None),
    ("7", "The answer is 7.1", 0, None),
    # The shipped corpus's Answer: line.
    ("1292", "<think>\nAdd the ones.\n</think>\nAnswer: 1292", 1, None),
    ("1017", "Answer: 1,017", 1, None),
    ("42", "Answer: 42.", 1, None),
    ("42", "Answer: 42\nAnswer: 41", 0, None),
    ("nothing", "Box 2 contains the cup.\nAnswer: nothing", 1, _WORDS),
    ("the key and the ring", "Answer: The  Key and the ring", 1, _WORDS),
    ("the book and the ring", "Answer: the book", 0, None),
    (r"\text{Tuesday}", r"\boxed{\text{tuesday}}", 1, None),
    ("no", r"\boxed{No}", 1, None),
    ("the key", r"\boxed{the yek}", 0, _WORDS),
    ("Tuesday", r"\boxed{Monday}", 0, None),
    # Thinking blocks.
    ("12", r"<think>6 * 2</think>\boxed{12}<|end|>", 1, None),
    ("12", r"<think>so \boxed{12}", 0, _UNCLOSED_THINK),
    ("12", r"<think>maybe \boxed{12}</think>\boxed{13}", 0, None),
    ("12", r"<think>\boxed{13}</think>The answer is 12.", 1, _CLOSED_THINK),
    # End-of-turn markers of our template, Llama-3, Qwen2, sentencepiece and Gemma.
    ("13", "13<|end|>", 1, None),
    ("12", "13<|end|>", 0, None),
    ("4", r"\boxed{4}<|eot_id|><|start_header_id|>user<|end_header_id|>\boxed{5}", 1,
     _END_OF_TURN),
    ("4", r"\boxed{4}<|im_end|>", 1, None),
    ("4", "4</s>", 1, None),
    ("4", "4<eos>", 1, None),
    # Not answers.
    ("12", "twelve", 0, None),
    ("17", "I think it is 17 or so", 0, _WHOLE_TEXT),
    ("0", "__import__('os').getcwd()", 0, None),
    ("3", "", 0, None),
]


def _raw_math_verify(gold, completion):
  """math-verify as its README uses it: the gold answer boxed, the completion raw."""
  return math_verify.verify(math_verify.parse("\\boxed{" + gold + "}"),
                            math_verify.parse(completion))


@pytest.mark.parametrize("gold, completion, score, why", CASES)
def test_math_answers(gold, completion, score, why):
  assert rewards.REWARDS.get("math")(completion, {"answer": gold}) == score
  assert answers.is_correct(completion, {"kind": "math", "answer": gold}) == bool(score)
  raw = _raw_math_verify(gold, completion)
  if why is None:
    assert raw == bool(score), "agrees with raw math-verify unless `why` says otherwise"
  else:
    assert raw != bool(score), f"raw math-verify agrees: drop the note {why!r}"


def test_enough_cases():
  assert len(CASES) >= 60
  assert sum(score == 0 for _, _, score, _ in CASES) >= 25


def test_extraction():
  assert answers.final_answer(r"<think>a</think>x \boxed{\frac{1}{2}} y") == r"\frac{1}{2}"
  assert answers.final_answer(r"\boxed{1} then \boxed{\sqrt{2}}") == r"\sqrt{2}"
  assert answers.final_answer("<think>\\boxed{1}") == ""
  assert answers.final_answer("steps\nAnswer: 51.\n<|end|>") == "51"
  assert answers.final_answer("Thus the answer is: $x=3$.") == "$x=3$"
  assert answers.final_answer(" 42 <|im_end|>junk") == "42"
  assert answers.answer_line("steps\nAnswer: 42.\n") == "42"
  assert answers.answer_line("no final line") is None
  assert answers.last_boxed(r"\boxed{\frac{1}{\sqrt{2}}}") == r"\frac{1}{\sqrt{2}}"
  assert answers.last_boxed(r"\boxed{unclosed") is None


def _records(name):
  with open(config_lib.corpus_path(name), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def test_corpus_solutions_score_their_own_answer_only():
  records = _records("reasoning_valid.jsonl")
  math = rewards.REWARDS.get("math")
  for i, record in enumerate(records):
    assert answers.final_answer(record["solution"]) == record["answer"]
    assert answers.is_correct(record["solution"], record), record
    assert math(record["solution"], record) == 1.0
    other = next(r for r in records[i + 1:] + records[:i] if r["answer"] != record["answer"])
    assert not answers.is_correct(other["solution"], record), (record, other)


def test_untrusted_completions_are_never_run(tmp_path):
  marker = tmp_path / "ran"
  code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
  for completion in (code, f"\\boxed{{{code}}}", f"Answer: {code}", f"$2*{code}$"):
    assert rewards.REWARDS.get("math")(completion, {"answer": "0"}) == 0.0
  assert not marker.exists()


def test_huge_powers_time_out():
  start = time.perf_counter()
  assert not answers.math_equal(r"9^{9^{9^{9}}}", "1")
  assert time.perf_counter() - start < 4 * answers.TIMEOUT_SECONDS + 1


def test_off_the_main_thread():
  """Signals work on the main thread only: other threads check in a worker process."""
  answers._verified.cache_clear()  # no verdict kept from a check on the main thread
  results = {}

  def check():
    results["equal"] = answers.math_equal(r"\frac{\sqrt{3}}{2}", r"\sqrt{3}/2")
    results["different"] = answers.math_equal(r"\frac{\sqrt{2}}{3}", r"\sqrt{3}/2")
    results["tower"] = answers.math_equal(r"9^{9^{9^{9}}}", "1")

  thread = threading.Thread(target=check)
  thread.start()
  thread.join(timeout=60)
  assert results == {"equal": True, "different": False, "tower": False}


def test_a_checker_worker_that_cannot_start_is_an_error_not_a_kept_false(monkeypatch):
  """A worker whose Math-Verify does not import: its stderr in one error, and the pair
  checked again once a worker starts (not a cached False: rewards silently 0)."""
  answers._verified.cache_clear()
  broken = ("import sys; sys.stderr.write('Traceback (most recent call last):\\n"
            "ModuleNotFoundError: no math_verify\\n'); sys.exit(3)")
  outcomes = []

  def check():
    try:
      outcomes.append(answers.math_equal(r"\frac{1}{2}", "0.5"))
    except answers.CheckerError as e:
      outcomes.append(str(e))

  for command in (broken, answers._WORKER_COMMAND):
    monkeypatch.setattr(answers, "_WORKER_COMMAND", command)
    thread = threading.Thread(target=check)
    thread.start()
    thread.join(timeout=120)
  failed, verdict = outcomes
  assert failed.startswith("the answer checker's worker process (") and failed.endswith(
      ") did not start (exit code 3); its stderr ends: Traceback (most recent call last): "
      "/ ModuleNotFoundError: no math_verify"), failed
  assert verdict is True


def test_a_repeated_pair_is_checked_once(monkeypatch):
  calls = []
  verify = answers._verify_here
  monkeypatch.setattr(answers, "_verify_here", lambda *pair: calls.append(pair) or verify(*pair))
  answers._verified.cache_clear()
  assert [answers.math_equal("5 blA", "7") for _ in range(3)] == [False] * 3
  assert answers.math_equal(r"\frac{1}{2}", "0.5") and answers.math_equal("1/2", "0.5")
  assert calls == [("7", "5 blA"), ("0.5", r"\frac{1}{2}"), ("0.5", "1/2")]


def test_map_checks_gives_the_main_thread_verdicts_in_order_from_parallel_workers(
    monkeypatch):
  pairs = [("5 apples", "5"), ("5 pieces", "5"), (r"\frac{1}{2}", "0.5"), ("x=5", "5"),
           ("nothing", "nothing"), ("3", "4"), ("2 cupboard", "2")] * 3
  expected = [answers.math_equal(a, b) for a, b in pairs]          # on the main thread
  assert expected[:7] == [True, False, True, True, True, False, False]
  answers._verified.cache_clear()  # the workers check again, not the kept verdicts
  monkeypatch.setattr(answers, "CHECK_THREADS", 2)
  threads = set()

  def check(pair):
    threads.add(threading.get_ident())
    return answers.math_equal(*pair)
  assert answers.map_checks(check, pairs) == expected
  assert threads and threading.get_ident() not in threads

  def fail_on_odd(i):
    if i % 2:
      raise ValueError(f"item {i}")
    return i
  with pytest.raises(ValueError, match="item 1"):
    answers.map_checks(fail_on_odd, range(6))


def test_other_rewards():
  mcq = {"kind": "mcq", "answer": "C"}
  assert rewards.REWARDS.get("multiple_choice")("so \\boxed{(C)}", mcq) == 1.0
  assert rewards.REWARDS.get("multiple_choice")("\\boxed{B}", mcq) == 0.0
  open_ended = {"kind": "open", "answer": "The Eiffel Tower"}
  assert rewards.REWARDS.get("open_ended")("\\boxed{eiffel tower.}", open_ended) == 1.0
  assert rewards.REWARDS.get("format")("<think>hm</think>\\boxed{C}", mcq) == 1.0
  assert rewards.REWARDS.get("format")("<think>\\boxed{C}", mcq) == 0.0
  assert rewards.REWARDS.get("crossthink")("<think>.</think>\\boxed{C}", mcq) == 1.0
  assert rewards.REWARDS.get("crossthink")("C", mcq) == 0.0   # right letter, no box
  math = {"kind": "math", "answer": r"\frac{1}{2}"}
  assert rewards.REWARDS.get("crossthink")("<think>.</think>\\boxed{0.5}", math) == 1.0
  total, parts = rewards.score({"math": 1.0, "format": 0.5},
                               ["\\boxed{4}", "4"], [{"answer": "4"}] * 2)
  assert total.tolist() == [1.5, 1.0] and parts["format"].tolist() == [1.0, 0.0]
  assert answers.record_kind({"kind": "boxes"}) == "math"
  assert answers.choice_letter("D. Paris") == "D"
  assert answers.normalize_text("The  Eiffel Tower!") == "eiffel tower"


def test_thought_is_the_first_think_block():
  assert answers.thought("<think> 2 </think>6") == " 2 "
  assert answers.thought("x <think>1</think> y <think>2</think>") == "1"
  assert answers.thought("<think> 7 and on") == " 7 and on"
  assert answers.thought("no thought") == ""
  assert answers.is_correct(answers.thought("<think> 2 </think>6"), {"answer": "2"})
