r"""Command-line entry point for the post-training loops (SFT, distillation, GRPO, RLP).

  python -m rl.main --config=configs/grpo.py --workdir=runs/grpo \
      --config.init_checkpoint=runs/sft --config.train.steps=100

``config.loop`` names the loop; any field can be overridden as
``--config.<section>.<field>=value``. See rl/README.md.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from rl import runner
from train import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Run config (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.quiet_library_logging()
  try:
    runner.run(_CONFIG.value, _WORKDIR.value)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.flags_parser(
      "python -m rl.main --config=configs/<loop>.py --workdir=<dir> "
      "[--config.<section>.<field>=<value> ...]"))
