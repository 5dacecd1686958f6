r"""Export a run's checkpoint as a Hugging Face model directory, in one command.

  python -m train.export --workdir=runs/<name> [--step=N] --output=<dir> \
      [--architecture=NemotronHForCausalLM]

Reads the run's ``config.json`` (written by the driver: the model section, or the
resolved model of a run that derives it, and ``data.tokenizer_path``), restores the
parameters of the newest intact checkpoint (or of ``--step``) and writes to ``--output``:

  model.safetensors, config.json   ``model.hf.save_hf_checkpoint``; the architecture is
                                   the model family's (all 'M': Mamba2, a uniform '*-'
                                   repeated with RoPE: Llama or Qwen2, other RoPE models
                                   without 'M': DeciLM, else NemotronH) unless given
  generation_config.json           bos, pad and the ids that end a completion as the
                                   run evaluates it (``eval.template``: eos for text, also
                                   the end of turn for chat)
  tokenizer.json,                  the run's tokenizer (``Tokenizer.save_hf``), which
  tokenizer_config.json            ``transformers.AutoTokenizer`` loads

so that ``AutoModelForCausalLM.from_pretrained(output)`` (for DeciLM with NVIDIA's
modeling code beside it and ``trust_remote_code=True``) and
``AutoTokenizer.from_pretrained(output)`` give the run's model and tokenizer. Every
failure ends with one ``error:`` line (``train/cli.py``; ``--traceback`` shows it whole).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import ml_collections
from absl import app
from absl import flags

from data import prompts
from data import tokenizer as tokenizer_lib
from model import hf
from train import checkpoint as checkpoint_lib
from train import cli
from train import config as run_config


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The run config a driver run recorded in ``workdir/config.json``."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be the workdir of a "
                            "train.main run")
  try:
    with open(path, encoding="utf-8") as f:
      return ml_collections.ConfigDict(json.load(f))
  except ValueError as e:  # invalid JSON or UTF-8
    raise ValueError(f"{path}: not a run's config ({cli.one_line(e)})") from None


def export(workdir: str, output: str, step: Optional[int] = None,
           architecture: Optional[str] = None) -> int:
  """Writes the weights of ``workdir``'s checkpoint (the newest intact one, or ``step``)
  with the run's tokenizer to ``output`` as a Hugging Face model; returns the step."""
  if os.path.abspath(output) == os.path.abspath(workdir):
    raise ValueError(f"--output={output} is the run's workdir (its config.json would be "
                     "overwritten): export to another directory")
  config = read_run_config(workdir)
  model_cfg = run_config.recorded_model_config(config)
  tokenizer = tokenizer_lib.load_tokenizer(config.data.tokenizer_path)
  params, step = checkpoint_lib.load_params(workdir, model_cfg, None, step=step)
  token_ids = hf.TokenIds(bos=tokenizer.bos_id, pad=tokenizer.pad_id,
                          eos=prompts.stop_token_ids(tokenizer, config.eval.template))
  hf.save_hf_checkpoint(params, model_cfg, output, architecture, token_ids=token_ids)
  try:
    tokenizer.save_hf(output)
  except ValueError as e:
    raise ValueError(f"data.tokenizer_path={config.data.tokenizer_path}: {e}") from None
  return step


def main(argv: list[str]) -> None:
  with cli.entry_point(argv):
    step = export(_WORKDIR.value, _OUTPUT.value, _STEP.value, _ARCHITECTURE.value)
    architecture = hf.read_config(_OUTPUT.value)["architectures"][0]
    print(f"exported step {step} of {_WORKDIR.value} to {_OUTPUT.value} as {architecture}")


if __name__ == "__main__":
  _WORKDIR = flags.DEFINE_string("workdir", None, "A run's workdir (train.main's --workdir).")
  _STEP = flags.DEFINE_integer("step", None,
                               "The checkpoint step (default: the newest intact one).")
  _OUTPUT = flags.DEFINE_string("output", None, "The Hugging Face directory to write.")
  _ARCHITECTURE = flags.DEFINE_enum(
      "architecture", None, sorted(hf.ARCHITECTURES),
      "The transformers class (default: the model family's).")
  flags.declare_key_flag("traceback")  # in --help
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.export --workdir=<run dir> [--step=N] --output=<dir> "
      "[--architecture=<transformers class>]", required=("workdir", "output")))
