"""What the command-line entry points share: one-line errors for bad flags, bad input and
failed runs, and quiet library logging."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable

from absl import flags
from absl import logging

from train import driver
from train import loops
from train import workdir


def flags_parser(usage: str) -> Callable[[list[str]], list[str]]:
  """An absl ``flags_parser`` that turns a bad flag or config override into one line."""
  def parse(argv: list[str]) -> list[str]:
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      sys.exit(f"error: {e}\nusage: {usage}")
    except (AttributeError, KeyError, TypeError, ValueError, OSError) as e:
      # config_flags raises AttributeError "'name' Did you mean ..." for an unknown field,
      # and an OSError or a ValueError for a config file it cannot read.
      what = "no such config field" if isinstance(e, AttributeError) else "bad config"
      while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]  # AttributeError(KeyError(message))
      sys.exit(f"error: {what}: {one_line(e)}")
  return parse


def one_line(error: BaseException) -> str:
  message = str(error.args[0] if len(error.args) == 1 else error)
  return " ".join(message.split())


# Failures with a message meant for the user (bad input, a failed run); anything else is
# a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, workdir.WorkdirError, driver.NonFiniteError,
               loops.LoopError)


@contextlib.contextmanager
def errors_as_one_line():
  """Exits with one ``error:`` line for USER_ERRORS and Ctrl-C, 0 after a preemption."""
  try:
    yield
  except driver.Preempted as e:
    print(e, flush=True)
    sys.exit(0)
  except KeyboardInterrupt:
    print("error: interrupted (pending checkpoint saves finished); rerun the same command "
          "to resume", file=sys.stderr, flush=True)
    sys.exit(130)
  except USER_ERRORS as e:
    sys.exit(f"error: {one_line(e)}")


def quiet_library_logging() -> None:
  """Warnings and errors only from libraries (orbax logs every save at INFO), unless
  the user asked for a verbosity."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
