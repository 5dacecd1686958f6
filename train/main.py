r"""The one command line for every loop.

  python -m train.main --config=configs/<experiment>.py --workdir=runs/<name> \
      [--config.<section>.<field>=<value> ...]

``config.loop`` picks the loop (pretrain, sft, distill, grpo, rlp; ``train/loops.py``), or
``claim``: every arm of a claim through its stage pipeline (``train/claims.py``).
Rerunning the same command resumes from the newest intact checkpoint; a rerun that
changes what decides the run's trajectory (model, optimizer, data, seed, batch, ...) is
refused before anything is written, unless ``--allow_config_changes`` (a larger
``train.steps`` trains on; every change is recorded in ``config_history.jsonl``). A mistyped
override, a value out of range or a missing file stops the run before anything is
compiled or written; every failure ends with one ``error:`` line and a non-zero exit
(SIGTERM: a checkpoint, then exit 0); a finished run (its last checkpoint and
``summary.json``) says so and does nothing. For multi-process runs see train/README.md.

A config's fields, what ``--config.<section>.<field>=<value>`` can set, with their
values:

  python -m train.main --config=configs/<experiment>.py --print_config

Config paths are taken from the working directory, else from the repository, so
``--config=configs/<experiment>.py`` works from any directory.
"""

from __future__ import annotations


from absl import app
from absl import flags
from ml_collections import config_flags

from train import claims
from train import cli
from train import config as config_lib
from train import distributed
from train import driver

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Run config file (configs/*.py); --print_config lists its fields.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for multi-process runs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_ALLOW_CONFIG_CHANGES = flags.DEFINE_bool(
    "allow_config_changes", False, "Resume a run with settings that change its trajectory "
    "(optimizer, model, data, seed, batch, ...); the changes go on record in the workdir's "
    "config_history.jsonl.")
flags.adopt_module_key_flags(cli)  # --print_config and --traceback in --help


def main(argv: list[str]) -> None:
  with cli.entry_point(argv):
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    if claims.is_claim(_CONFIG.value):
      if _ALLOW_CONFIG_CHANGES.value:
        raise config_lib.ConfigError("--allow_config_changes resumes a run, not a claim's "
                                     "stages; run a changed claim in a new --workdir")
      claims.run(_CONFIG.value, _WORKDIR.value)
    else:
      driver.run(_CONFIG.value, _WORKDIR.value, allow_changes=_ALLOW_CONFIG_CHANGES.value)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.main --config=configs/<name>.py --workdir=<dir> "
      "[--config.<section>.<field>=<value> ...]", required=("config", "workdir")))
