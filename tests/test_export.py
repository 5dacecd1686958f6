"""``python -m train.export``: a trained run as a Hugging Face directory that transformers
loads as it is, generating greedily what our generator does, with a tokenizer that gives
our ids; and its one-line errors.

The run is the session's short pretraining run (tests/conftest.py's ``reference_run``,
configs/tiny_hybrid.py: squared-ReLU MLPs and NoPE attention, so NemotronH). The export
writes NemotronH's time_step_min = time_step_limit[0] = 0, which makes every transformers
version compute our function (see model/hf.py): nothing here depends on which is
installed.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from cli_runs import ROOT, STEPS, env, one_line
from configs import tiny_hybrid
from data import tokenizer as tokenizer_lib
from model import generate
from model import hf
from model import lm
from train import checkpoint as checkpoint_lib
from train import config as run_config
from train import export as export_lib

PROMPTS = ("Once upon a time", "What is 23 + 19?\n<think>")
NEW_TOKENS = 12
REL_TOL = 1e-4


def export_command(workdir, output, *extra):
  return subprocess.run(
      [sys.executable, "-m", "train.export", f"--workdir={workdir}", f"--output={output}",
       *extra], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def run(reference_run):
  """(workdir, model config, tokenizer) of the session's pretraining run."""
  workdir, _ = reference_run("pretrain")
  config = export_lib.read_run_config(str(workdir))
  return (workdir, run_config.model_config(config.model),
          tokenizer_lib.load_tokenizer(config.data.tokenizer_path))


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
  workdir = run[0]
  output = tmp_path_factory.mktemp("export") / "hf"
  result = export_command(workdir, output)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"exported step {STEPS} of {workdir} to {output} as NemotronHForCausalLM" in \
      result.stdout
  return str(output)


def _our_greedy(params, cfg, ids):
  tokens, mask = generate.left_pad([ids])
  out = generate.generate(params, tokens, mask, jax.random.PRNGKey(0), model_cfg=cfg,
                          sampling=generate.SamplingConfig(max_new_tokens=NEW_TOKENS,
                                                           temperature=0.0))
  return np.asarray(out.tokens[0]).tolist()


def test_transformers_loads_the_export_and_generates_our_greedy_tokens(run, exported):
  workdir, cfg, tokenizer = run
  with open(os.path.join(exported, "config.json")) as f:
    config = json.load(f)
  assert config["architectures"] == ["NemotronHForCausalLM"]
  assert config["time_step_min"] == config["time_step_limit"][0] == 0.0
  with open(os.path.join(exported, "generation_config.json")) as f:
    assert json.load(f) == {"bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0}
  hf_tokenizer = transformers.AutoTokenizer.from_pretrained(exported)
  assert (hf_tokenizer.bos_token, hf_tokenizer.eos_token, hf_tokenizer.pad_token) == (
      "<s>", "</s>", "<pad>")
  model = transformers.AutoModelForCausalLM.from_pretrained(exported).eval()
  assert type(model).__name__ == "NemotronHForCausalLM"
  assert model.generation_config.eos_token_id == tokenizer.eos_id

  params, step = checkpoint_lib.load_params(str(workdir), cfg, None)  # on one device
  assert step == STEPS
  for prompt in PROMPTS:
    ids = hf_tokenizer(prompt)["input_ids"]
    assert ids == tokenizer.encode(prompt)
    ours = _our_greedy(params, cfg, ids)
    with torch.no_grad():
      hf_tokens = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids)),
                                 do_sample=False, max_new_tokens=NEW_TOKENS)[0, len(ids):]
      hf_logits = model(torch.tensor([ids + ours])).logits[0].numpy()
    assert hf_tokens.tolist() == ours[:len(hf_tokens)], prompt   # HF stops after eos
    assert hf_tokenizer.decode(hf_tokens, skip_special_tokens=True) == tokenizer.decode(
        hf_tokens.tolist())
    logits, _ = lm.forward(params, jnp.asarray([ids + ours]), cfg)
    assert np.abs(logits[0] - hf_logits).max() <= REL_TOL * np.abs(hf_logits).max()


def test_export_of_a_chosen_step(run, tmp_path):
  workdir, cfg, _ = run
  result = export_command(workdir, tmp_path / "hf", "--step=8")
  assert result.returncode == 0, result.stderr[-3000:]
  exported = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"))
  params, step = checkpoint_lib.load_params(str(workdir), cfg, None, step=8)
  assert step == 8
  np.testing.assert_array_equal(exported.get_input_embeddings().weight.detach().numpy(),
                                np.asarray(params["embed"]))


def test_errors_are_one_line(run, tmp_path):
  workdir = run[0]
  assert "no checkpoint of step 7 in" in one_line(export_command(workdir, tmp_path / "a",
                                                                 "--step=7"))
  no_checkpoint = tmp_path / "new_run"
  no_checkpoint.mkdir()
  shutil.copy(workdir / "config.json", no_checkpoint / "config.json")
  assert f"no checkpoint in {no_checkpoint}" in one_line(
      export_command(no_checkpoint, tmp_path / "b"))
  assert "config.json not found" in one_line(export_command(tmp_path / "c", tmp_path / "d"))
  assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")


def test_token_ids_go_to_config_and_generation_config(tmp_path):
  cfg = run_config.model_config(tiny_hybrid.get_config().model)
  params = lm.init(jax.random.PRNGKey(0), cfg)
  chat = hf.TokenIds(bos=2, eos=(9, 3), pad=0)   # a chat model: end of turn, eos
  hf.save_hf_checkpoint(params, cfg, str(tmp_path), token_ids=chat)
  generation = transformers.GenerationConfig.from_pretrained(str(tmp_path))
  assert (generation.bos_token_id, generation.eos_token_id, generation.pad_token_id) == (
      2, [9, 3], 0)
  config = transformers.AutoConfig.from_pretrained(str(tmp_path))
  assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (2, [9, 3], 0)
  for bad, field in ((dict(eos=()), "eos"), (dict(pad=cfg.vocab_size), "pad")):
    with pytest.raises(ValueError, match=f"token_ids.{field}="):
      hf.save_hf_checkpoint(params, cfg, str(tmp_path / "bad"),
                            token_ids=dataclasses.replace(chat, **bad))
  assert not os.path.exists(tmp_path / "bad")
