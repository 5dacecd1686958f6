"""libtpu on a host without TPUs: told that the host is one worker, so it stays quiet.

With libtpu installed (the ``tpu`` and ``test`` extras) JAX starts it in every process,
and on a host without TPU chips it looks for a metadata server, finds none and prints
what it could not determine ("Failed to find host bounds", "unexpected worker hostname"
and a source location trace) before it gives up. Told that the host is one process of
one host (``NO_TPU_HOST_ENV``), it gives up silently, and still describes any topology
for ``python -m train.aot`` (the same devices, the same compiled step). Importing
``model`` calls ``describe_host_without_tpus()``, so library users, notebooks and every
entry point get this before JAX starts a backend; hosts with TPUs, and values the user
set, are left alone.
"""

from __future__ import annotations

import os

# What libtpu would otherwise look up on a metadata server: this host is one process of
# one host. (Not TPU_WORKER_HOSTNAMES, which would quiet it too: train/distributed.py
# takes that for a Cloud TPU job. JAX's own cluster detection reads these only on a
# host with TPU chips.)
NO_TPU_HOST_ENV = {"TPU_PROCESS_ADDRESSES": "localhost:8476", "TPU_HOST_BOUNDS": "1,1,1"}


def has_tpu_chips() -> bool:
  """Whether TPU chips are attached, by JAX's own probe (which also tells libtpu to skip
  its metadata server when there are none). A JAX without that private probe counts as
  a TPU host: nothing is changed."""
  try:
    from jax._src import hardware_utils  # pylint: disable=g-import-not-at-top
    return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0
  except (ImportError, AttributeError):
    return True


def describe_host_without_tpus() -> None:
  """On a host without TPU chips, sets NO_TPU_HOST_ENV where the environment does not
  (it takes effect if libtpu has not started yet: before the first JAX backend)."""
  if not has_tpu_chips():
    for name, value in NO_TPU_HOST_ENV.items():
      os.environ.setdefault(name, value)
