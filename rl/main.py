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

_CONFIG = config_flags.DEFINE_config_file("config", None, "Run config (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv: list[str]) -> list[str]:
  """absl parsing; a bad flag or config override ends the run with one clear line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"error: {e}\nusage: python -m rl.main --config=configs/<loop>.py "
             "--workdir=<dir> [--config.<section>.<field>=<value> ...]")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    sys.exit(f"error: bad config override: {e}")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runner.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
