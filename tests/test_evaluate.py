"""Evaluation: pass@k and maj@k against hand-computed values, held-out loss, and the
standalone command on a Hugging Face directory, refusing what it cannot do."""

import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from cli_runs import ROOT, env, one_line
from configs import sft as sft_config
from data import answers
from data import config as data_config
from model import hf
from model import lm
from train import config as run_config
from train import evaluate
from train.errors import NonFiniteError


@pytest.mark.parametrize("n, c, k, expected", [
    (5, 2, 1, 2 / 5),
    (5, 2, 2, 1 - math.comb(3, 2) / math.comb(5, 2)),   # 0.7
    (4, 0, 2, 0.0),
    (4, 4, 1, 1.0),
    (3, 1, 3, 1.0),
    (10, 3, 5, 1 - math.comb(7, 5) / math.comb(10, 5)),
])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
  assert evaluate.pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_and_maj_at_k_of_fixed_completions():
  records = [{"question": "1+2=", "answer": "3"},
             {"question": "3+4=", "answer": "7"},
             {"question": "Pick", "answer": "B", "kind": "mcq", "options": ["x", "y"]}]
  completions = {
      # 2 of 4 right; the vote is a tie between 3 and 5, the first seen (3) wins: right.
      0: ["Answer: 3", "Answer: 5", "\\boxed{5}", "so the answer is 3."],
      # none right: pass@4 = 0, maj = 0.
      1: ["Answer: 8", "Answer: 6", "Answer: 8", "no idea"],
      # 1 of 4 right; the majority (A) is wrong.
      2: ["\\boxed{A}", "\\boxed{A}", "\\boxed{B}", "\\boxed{A}"],
  }
  passed, voted, right = evaluate.sampled_counts(records, completions, k=4)
  # pass@4 with n = k = 4: 1 if any sample is right.
  assert passed == pytest.approx(1.0 + 0.0 + 1.0)
  assert voted == 1
  assert right == pytest.approx(2 / 4 + 0 / 4 + 1 / 4)
  passed_at_2, _, _ = evaluate.sampled_counts(records, completions, k=2)
  assert passed_at_2 == pytest.approx((1 - 1 / 6) + 0.0 + (1 - 3 / 6))


def test_majority_vote_breaks_ties_by_first_seen():
  math = {"question": "q", "answer": "3"}
  assert answers.majority_vote(["4", "3", "3", "4"], math) == 0
  assert answers.majority_vote(["3 ", " 3", "4"], math) == 0


def test_majority_vote_groups_equivalent_answers_and_skips_empty_ones():
  half = {"question": "q", "answer": "1/2"}
  # By string "3" would win 2 to 1; by equivalence 1/2 wins 3 to 2.
  assert answers.majority_vote(["0.5", "1/2", "\\frac{1}{2}", "3", "3"], half) == 0
  # Samples without an answer do not vote: three empty ones do not outvote two "7"s.
  assert answers.majority_vote(["", " ", "\n", "7", "7"], half) == 3
  assert answers.majority_vote(["", ""], half) is None
  mcq = {"question": "q", "answer": "B", "kind": "mcq", "options": ["x", "y"]}
  assert answers.majority_vote(["A", "(B)", "B. y", "A", "B"], mcq) == 1
  records = [half]
  completions = {0: ["\\boxed{0.5}", "\\boxed{1/2}", "\\boxed{3}", "\\boxed{3}"]}
  _, voted, _ = evaluate.sampled_counts(records, completions, k=4)
  assert voted == 1


def tiny_llama_config(**model_overrides):
  """The SFT config with a tiny Llama (``model_overrides`` on top) and a small eval."""
  config = sft_config.get_config()
  config.model.d_model, config.model.mlp_dim = 32, 64
  for name, value in model_overrides.items():
    config.model[name] = value
  config.eval.max_text_rows, config.eval.max_records, config.eval.max_new_tokens = 2, 4, 4
  return config


def save_hf_directory(config, directory, change_params=lambda params: params) -> str:
  """The config's model (initial weights, changed by ``change_params``) saved as a
  Hugging Face directory."""
  model_cfg = run_config.model_config(config.model)
  params = change_params(lm.init(jax.random.PRNGKey(0), model_cfg))
  hf.save_hf_checkpoint(params, model_cfg, str(directory), architecture="LlamaForCausalLM")
  return str(directory)


def test_standalone_evaluation_of_a_hugging_face_directory(tmp_path):
  """A tiny Llama exported to a Hugging Face directory, evaluated with a run config's
  eval section: held-out loss, greedy accuracy and decoding speed, written to
  --output/eval.jsonl."""
  config = tiny_llama_config()
  config.eval.decode_timing = True
  save_hf_directory(config, tmp_path / "hf")
  with pytest.raises(ValueError, match="give --output"):
    evaluate.evaluate_checkpoint(config, str(tmp_path / "hf"))
  figures = evaluate.evaluate_checkpoint(config, str(tmp_path / "hf"), str(tmp_path / "out"))
  records = [json.loads(line) for line in open(config.eval.records)][:4]
  kinds = {r["kind"] for r in records}
  assert set(figures) == {"loss/english", "loss/reasoning", "pass@1", "length",
                          "correct_length", "decode_tokens_per_s",
                          *(f"pass@1/{kind}" for kind in kinds)}
  assert figures["decode_tokens_per_s"] > 0
  per_kind = sum(figures[f"pass@1/{r['kind']}"] for r in records) / len(records)
  assert per_kind == pytest.approx(figures["pass@1"])
  assert np.log(1024) - 1 < figures["loss/english"] < np.log(1024) + 1   # an untrained model
  (record,) = [json.loads(line) for line in open(tmp_path / "out" / "eval.jsonl")]
  assert record["checkpoint"] == str(tmp_path / "hf")
  assert record["pass@1"] == figures["pass@1"] == 0.0


def test_a_tokenizer_the_model_cannot_embed_is_one_line_naming_both(tmp_path):
  """A Hugging Face model of 512 ids evaluated with the config's 1024-id tokenizer (was:
  NaN losses, pass@1 0 and exit 0)."""
  hf_directory = save_hf_directory(tiny_llama_config(vocab_size=512), tmp_path / "hf")
  result = subprocess.run(
      [sys.executable, "-m", "train.evaluate", "--config=configs/sft.py",
       f"--checkpoint={hf_directory}", f"--output={tmp_path / 'out'}"],
      cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
  tokenizer_path = sft_config.get_config().data.tokenizer_path
  assert one_line(result) == (
      f"error: data.tokenizer_path={tokenizer_path} has 1024 ids but "
      f"{os.path.join(hf_directory, 'config.json')} vocab_size=512: the model has no "
      "embedding for ids 512 to 1023; use the model's own tokenizer")
  assert not (tmp_path / "out").exists()


def test_a_non_finite_figure_stops_the_evaluation_naming_it(tmp_path):
  config = tiny_llama_config()
  config.eval.records = ""
  config.eval.text_files = {"english": config.eval.text_files["english"]}
  nan_embedding = lambda params: {**params, "embed": params["embed"] * np.nan}
  hf_directory = save_hf_directory(config, tmp_path / "hf", nan_embedding)
  with pytest.raises(NonFiniteError, match=r"^step 0: evaluation figure loss/english is nan$"):
    evaluate.evaluate_checkpoint(config, hf_directory, str(tmp_path / "out"))
  assert not (tmp_path / "out" / "eval.jsonl").exists()


def test_text_rows_pack_every_document_in_order(tmp_path):
  path = tmp_path / "valid.txt"
  path.write_text("one two three\n\nfour five\n\nsix")
  from data import tokenizer as tokenizer_lib  # pylint: disable=import-outside-toplevel
  tokenizer = tokenizer_lib.load_tokenizer(data_config.corpus_path("tokenizer.model"))
  rows = evaluate.text_rows(str(path), tokenizer, seq_len=64, max_rows=0, num_packing_bins=4)
  assert rows["tokens"].shape[1] == 64
  segments = rows["segment_ids"][rows["segment_ids"] > 0]
  assert len(np.unique(segments)) == 3       # three documents, none dropped
  expected = sum(len(tokenizer.encode(d)) for d in ("one two three", "four five", "six"))
  assert rows["loss_mask"].sum() == expected  # every token and eos after the first is a target
