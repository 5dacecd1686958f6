"""Test-wide settings: strict rank promotion, absl flags parsed for grain workers."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

jax.config.update("jax_numpy_rank_promotion", "raise")
flags.FLAGS.mark_as_parsed()
