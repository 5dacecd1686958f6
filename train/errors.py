"""The failures a run reports to its user in one line (``train/cli.py``), besides bad
input (ValueError, e.g. ``train.config.ConfigError``) and I/O errors (OSError)."""


class WorkdirError(RuntimeError):
  """The workdir cannot be used: not writable, or another run holds it."""


class NonFiniteError(RuntimeError):
  """A step produced a NaN or infinite loss, gradient norm or parameter norm."""


class LoopError(RuntimeError):
  """A loop's host-side work failed (e.g. a reward function raised); the message says
  which part and on what."""


class Preempted(Exception):
  """SIGTERM: the run saved a checkpoint and stops (exit 0)."""
