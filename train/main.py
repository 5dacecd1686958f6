r"""Command-line entry point for pretraining.

  python -m train.main --config=configs/tiny_hybrid.py --workdir=runs/tiny \
      --config.train.steps=200 --config.optimizer.learning_rate=1e-3

Any config field can be overridden as ``--config.<section>.<field>=value``; unknown
fields and values of the wrong type stop the run before anything is compiled. For
multi-process runs see train/README.md.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from train import cli
from train import distributed
from train import trainer

_CONFIG = config_flags.DEFINE_config_file("config", None, "Run config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for multi-process runs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.quiet_library_logging()
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    prepared = trainer.setup(_CONFIG.value, _WORKDIR.value)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")
  trainer.run(prepared)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.main --config=configs/<name>.py --workdir=<dir> "
      "[--config.<section>.<field>=<value> ...]"))
