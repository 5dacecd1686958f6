"""Joining a multi-process JAX job: explicit coordinator flags or cluster auto-detection."""

from __future__ import annotations

import os
from typing import Optional

import jax

# Environment variables of launchers that ``jax.distributed.initialize()`` detects itself.
_CLUSTER_ENVIRONMENTS = {
    "SLURM_JOB_ID": "SLURM",
    "OMPI_COMM_WORLD_SIZE": "Open MPI",
    "TPU_WORKER_HOSTNAMES": "Cloud TPU",
}


def detected_cluster() -> Optional[str]:
  """The cluster jax would auto-detect, or None on a plain single machine."""
  if int(os.environ.get("SLURM_NTASKS", "1")) <= 1 and "SLURM_JOB_ID" in os.environ:
    return None  # a single-task SLURM allocation is a plain single-process run
  for variable, name in _CLUSTER_ENVIRONMENTS.items():
    if variable in os.environ:
      return name
  return None


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None, process_id: Optional[int] = None,
               timeout_s: int = 300) -> None:
  """Joins the job described by the arguments or the environment; no-op when alone.

  With ``coordinator_address`` (host:port of process 0), ``num_processes`` and
  ``process_id`` set, those are used; otherwise a SLURM / MPI / Cloud TPU environment is
  detected by jax; otherwise this is a single-process run.
  """
  explicit = [coordinator_address, num_processes, process_id]
  if any(value is not None for value in explicit):
    if any(value is None for value in explicit):
      raise ValueError("multi-process flags: give all of --coordinator_address, "
                       "--num_processes and --process_id, or none")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id,
                               initialization_timeout=timeout_s)
  elif detected_cluster() is not None:
    jax.distributed.initialize(initialization_timeout=timeout_s)
