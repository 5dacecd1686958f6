"""What the command-line entry points share: one-line errors for bad flags, bad input and
failed runs (an error a library raises keeps its traceback; ``--traceback`` or
REASONAX_TRACEBACK=1 shows every one), config files found from any directory,
``--print_config``, and quiet library logging."""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import sys
from collections.abc import Sequence
from typing import Callable

from absl import app
from absl import flags
from absl import logging

from train import config as run_config
from train import errors
from train import xla_flags

# Set to 1: every error shows its full traceback (as --traceback does).
TRACEBACK_VARIABLE = "REASONAX_TRACEBACK"

_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the config's fields and values, after the "
    "--config.<section>.<field>=<value> overrides, and exit.")
_TRACEBACK = flags.DEFINE_bool(
    "traceback", False, f"Show every error with its full traceback, not as one error: "
    f"line (also {TRACEBACK_VARIABLE}=1).")


def _find_config_file(argument: str) -> str:
  """A ``--config`` value (``path[:arguments]``) with its path found from any directory
  (``train.config.find_path``); exits with one line if there is no such file."""
  path, colon, arguments = argument.partition(":")
  found = run_config.find_path(path)
  if not os.path.isfile(found):
    sys.exit(f"error: config file not found: {path}")
  return found + colon + arguments


def _with_config_file_found(argv: list[str]) -> list[str]:
  """``argv`` with the value of ``--config=PATH`` or ``--config PATH`` found."""
  out = list(argv)
  for index, argument in enumerate(out):
    if argument.startswith("--config="):
      out[index] = "--config=" + _find_config_file(argument[len("--config="):])
    elif argument == "--config" and index + 1 < len(out):
      out[index + 1] = _find_config_file(out[index + 1])
  return out


def flags_parser(usage: str, required: Sequence[str] = ()
                 ) -> Callable[[list[str]], list[str]]:
  """An absl ``flags_parser``: a bad flag or config override, a missing config file or
  a missing ``required`` flag is one line; ``--print_config`` prints the config's fields
  and exits (then only ``--config`` is required)."""
  def parse(argv: list[str]) -> list[str]:
    argv = _parse_or_exit(_with_config_file_found(argv), usage)
    if _PRINT_CONFIG.value and "config" not in flags.FLAGS:
      sys.exit(f"error: --print_config needs a command that takes --config\nusage: {usage}")
    needed = ("config",) if _PRINT_CONFIG.value else required
    missing = [name for name in needed if flags.FLAGS[name].value is None]
    if missing:
      sys.exit(f"error: --{missing[0]} is required\nusage: {usage}")
    if _PRINT_CONFIG.value:
      print("\n".join(run_config.fields(flags.FLAGS.config)))
      sys.exit(0)
    return argv
  return parse


def _parse_or_exit(argv: list[str], usage: str) -> list[str]:
  """``flags.FLAGS(argv)``; a bad flag, config file or override exits with one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"error: {e}\nusage: {usage}")
  except SyntaxError as e:
    sys.exit(f"error: bad config: {e.filename}:{e.lineno}: {e.msg}")
  except (AttributeError, KeyError, TypeError, ValueError, OSError) as e:
    # config_flags raises AttributeError "'name' Did you mean ..." for an unknown field,
    # and an OSError or a ValueError for a config file it cannot read. (The flags are not
    # parsed: --traceback is read from argv.)
    if traceback_wanted() or "--traceback" in argv:
      raise
    what = "no such config field" if isinstance(e, AttributeError) else "bad config"
    while e.args and isinstance(e.args[0], BaseException):
      e = e.args[0]  # AttributeError(KeyError(message))
    sys.exit(f"error: {what}: {one_line(e)}")


def one_line(error: BaseException) -> str:
  message = str(error.args[0] if len(error.args) == 1 else error)
  return " ".join(message.split())


# Failures with a message meant for the user (bad input, a failed run), when our own
# checks raise them (``raised_for_the_user``); anything else is a bug and keeps its
# traceback.
USER_ERRORS = (ValueError, OSError, errors.WorkdirError, errors.NonFiniteError,
               errors.LoopError)
# The project's packages (setup.py), whose checks raise the USER_ERRORS meant for users
# (by file: an entry point's module is __main__).
_PACKAGE_DIRECTORIES = tuple(os.path.join(run_config.REPOSITORY, name) + os.sep
                             for name in ("configs", "data", "model", "rl", "train"))


def raised_for_the_user(error: BaseException) -> bool:
  """Whether a USER_ERRORS ``error`` has a message for the user: raised in our packages
  (the innermost frame of its traceback), or an OSError (the system's answer, naming the
  file, wherever it was asked). Libraries raise ValueError for bugs too (JAX for shapes
  and shardings): from them it keeps its traceback."""
  if isinstance(error, OSError):
    return True
  innermost = error.__traceback__
  while innermost is not None and innermost.tb_next is not None:
    innermost = innermost.tb_next
  if innermost is None:
    return False
  source = os.path.abspath(innermost.tb_frame.f_code.co_filename)
  return source.startswith(_PACKAGE_DIRECTORIES)


def traceback_wanted() -> bool:
  """--traceback or REASONAX_TRACEBACK=1: errors show their tracebacks."""
  parsed = flags.FLAGS.is_parsed() and _TRACEBACK.value
  return parsed or os.environ.get(TRACEBACK_VARIABLE) == "1"


_ORBAX_SOURCES = f"{os.sep}orbax{os.sep}"


def _quiet_abandoned_checkpoint_reads(unraisable, default_hook=sys.__unraisablehook__,
                                      orbax_sources=_ORBAX_SOURCES) -> None:
  """After a read of a damaged checkpoint fails, orbax's abandoned reads report their
  errors (and "Event loop is closed") as unraisable exceptions when they are collected;
  the failure itself was already reported (and the run fell back), so those are
  dropped. Anything else goes to Python's default hook. (Defaults bind what the hook
  needs: it also runs while the interpreter shuts down and clears module globals.)"""
  closed_loop = (isinstance(unraisable.exc_value, RuntimeError)
                 and "Event loop is closed" in str(unraisable.exc_value))
  code = getattr(unraisable.object, "cr_code", None)
  orbax_read = code is not None and orbax_sources in code.co_filename
  if not (closed_loop or orbax_read):
    default_hook(unraisable)


class _NoAbandonedTasks(std_logging.Filter):
  """The same abandoned reads, reported by asyncio when their tasks are collected."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return "exception was never retrieved" not in record.getMessage()


@contextlib.contextmanager
def errors_as_one_line():
  """Exits with one ``error:`` line for USER_ERRORS ``raised_for_the_user`` (unless
  ``traceback_wanted``) and Ctrl-C, 0 after a preemption."""
  sys.unraisablehook = _quiet_abandoned_checkpoint_reads
  std_logging.getLogger("asyncio").addFilter(_NoAbandonedTasks())
  try:
    yield
  except errors.Preempted as e:
    print(e, flush=True)
    sys.exit(0)
  except KeyboardInterrupt as e:
    # A run says how its save in flight ended and which checkpoint is the newest.
    print(f"error: {one_line(e) if e.args else 'interrupted'}", file=sys.stderr, flush=True)
    sys.exit(130)
  except USER_ERRORS as e:
    if traceback_wanted() or not raised_for_the_user(e):
      raise
    sys.exit(f"error: {one_line(e)}")


class _NoOrbaxWarnings(std_logging.Filter):
  """Drops orbax's warnings about its own options (e.g. reading a run's checkpoints
  read-only); its errors still show."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.ERROR or _ORBAX_SOURCES not in record.pathname


def quiet_library_logging() -> None:
  """Warnings and errors only from libraries (orbax logs every save at INFO), unless
  the user asked for a verbosity."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
    logging.get_absl_handler().addFilter(_NoOrbaxWarnings())


@contextlib.contextmanager
def entry_point(argv: list[str]):
  """What every command's ``main`` runs in: no stray arguments, the project's XLA flags
  (before anything starts a JAX backend), quiet library logging, one-line errors."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  xla_flags.apply()
  quiet_library_logging()
  with errors_as_one_line():
    yield
