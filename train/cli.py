"""What the command-line entry points share: flag parsing with one-line errors, logging."""

from __future__ import annotations

import sys
from typing import Callable

from absl import flags
from absl import logging


def flags_parser(usage: str) -> Callable[[list[str]], list[str]]:
  """An absl ``flags_parser`` that turns a bad flag or config override into one line."""
  def parse(argv: list[str]) -> list[str]:
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      sys.exit(f"error: {e}\nusage: {usage}")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
      # config_flags raises AttributeError "'name' Did you mean ..." for an unknown field.
      what = "no such config field" if isinstance(e, AttributeError) else "bad config"
      while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]  # AttributeError(KeyError(message))
      message = " ".join(str(e.args[0] if e.args else e).split())
      sys.exit(f"error: {what}: {message}")
  return parse


def quiet_library_logging() -> None:
  """Warnings and errors only from libraries (orbax logs every save at INFO), unless
  the user asked for a verbosity."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
