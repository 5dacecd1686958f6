"""Meshes and shardings: logical axis names → mesh axes by one rules table.

The mesh always has the axes ``('data', 'fsdp', 'tensor')`` (sizes from the run config,
-1 = all remaining devices). Parameters carry logical axes (``lm.logical_axes``), and
``logical_axis_rules`` maps each logical name to mesh axes, e.g.::

    (('batch', ('data', 'fsdp')), ('embed', 'fsdp'), ('mlp', 'tensor'), ('head_dim', None))

A name may appear several times: its candidates are tried in order, the first whose mesh
axes divide the dimension and are unused wins, else the dimension is replicated
(``model.partitioning``, which also pins activations by the same rules inside a step).
So one rules table serves every model size and a tiny model on a big mesh simply
replicates what does not divide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
import optax
from jax.sharding import AbstractMesh, AxisType, Mesh, NamedSharding, PartitionSpec

from model import lm, partitioning
from model.config import ModelConfig
from model.partitioning import AnyMesh, Rules, logical_to_mesh_spec

MESH_AXES = ("data", "fsdp", "tensor")
BATCH = "batch"  # logical name of the batch dimension of inputs


def mesh_shape(mesh_config, num_devices: int) -> dict[str, int]:
  """Axis sizes {'data': d, 'fsdp': f, 'tensor': t}; at most one size may be -1 (fill)."""
  sizes = {name: int(mesh_config[name]) for name in MESH_AXES}
  fill = [name for name, size in sizes.items() if size == -1]
  if len(fill) > 1:
    raise ValueError(f"mesh: only one axis may be -1 (fill), got {sizes}")
  bad = [name for name, size in sizes.items() if size == 0 or size < -1]
  if bad:
    raise ValueError(f"mesh: axis sizes must be positive or -1, got {sizes}")
  known = math.prod(size for size in sizes.values() if size != -1)
  if fill:
    if num_devices % known:
      raise ValueError(f"mesh {sizes}: {num_devices} devices are not a multiple of {known}")
    sizes[fill[0]] = num_devices // known
  if math.prod(sizes.values()) != num_devices:
    raise ValueError(f"mesh {sizes} needs {math.prod(sizes.values())} devices, "
                     f"there are {num_devices}")
  return sizes


def make_mesh(mesh_config, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A mesh with GSPMD (Auto) axes over ``devices`` (default: all global devices)."""
  devices = jax.devices() if devices is None else list(devices)
  sizes = mesh_shape(mesh_config, len(devices))
  return jax.make_mesh(tuple(sizes.values()), MESH_AXES, devices=devices,
                       axis_types=(AxisType.Auto,) * len(MESH_AXES))


def abstract_mesh(mesh_config, num_devices: int) -> AbstractMesh:
  """A device-less mesh for ahead-of-time lowering to a topology we do not have."""
  sizes = mesh_shape(mesh_config, num_devices)
  return AbstractMesh(tuple(sizes.values()), MESH_AXES,
                      axis_types=(AxisType.Auto,) * len(MESH_AXES))


def check_rules(rules: Rules, logical_names: Sequence[str]) -> None:
  """Every logical name must have a rule and every rule must name known mesh axes."""
  for name, axes in rules:
    unknown = [axis for axis in partitioning.as_tuple(axes) if axis not in MESH_AXES]
    if unknown:
      raise ValueError(f"logical_axis_rules: {name!r} maps to unknown mesh axes {unknown}; "
                       f"mesh axes are {MESH_AXES}")
  missing = sorted(set(logical_names) - {name for name, _ in rules})
  if missing:
    raise ValueError(f"logical_axis_rules has no rule for logical axes {missing} "
                     "(map them to mesh axes, or to None to replicate)")


def logical_shardings(logical_tree, abstract_tree, mesh: AnyMesh, rules: Rules):
  """NamedSharding tree for arrays ``abstract_tree`` with logical axes ``logical_tree``."""
  return jax.tree.map(
      lambda spec, x: NamedSharding(mesh, logical_to_mesh_spec(spec, x.shape, rules, mesh)),
      logical_tree, abstract_tree,
      is_leaf=lambda x: isinstance(x, PartitionSpec))


def param_shardings(cfg: ModelConfig, mesh: AnyMesh, rules: Rules):
  """NamedSharding tree of ``lm.init(rng, cfg)`` under ``rules``."""
  logical = lm.logical_axes(cfg)
  names = {name for spec in jax.tree.leaves(logical, is_leaf=lambda x: isinstance(
      x, PartitionSpec)) for name in spec if name is not None}
  check_rules(rules, sorted(names))
  return logical_shardings(logical, lm.abstract_params(cfg), mesh, rules)


def replicated(mesh: AnyMesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def row_sharding(mesh: AnyMesh, rules: Rules, rank: int) -> NamedSharding:
  """Sharding of a (rows, ...) input of rank ``rank``: rows over the 'batch' rule's axes."""
  axes = next((partitioning.as_tuple(a) for name, a in rules if name == BATCH), ())
  return NamedSharding(mesh, PartitionSpec(axes or None, *([None] * (rank - 1))))


def process_rows(rows_sharding: NamedSharding, num_rows: int) -> slice:
  """The rows of a (num_rows, ...) array that this process's devices hold, as one slice:
  what it supplies to ``jax.make_array_from_process_local_data`` and reads back."""
  indices = rows_sharding.addressable_devices_indices_map((num_rows, 1)).values()
  ranges = sorted({index[0].indices(num_rows)[:2] for index in indices})
  start, stop = ranges[0][0], max(end for _, end in ranges)
  covered = sum(end - begin for begin, end in ranges)
  if covered != stop - start:
    raise ValueError(f"this process's devices hold non-contiguous rows {ranges} of "
                     f"{num_rows}: order the mesh so that each process holds one block")
  return slice(start, stop)


def batch_parallelism(mesh: AnyMesh, rules: Rules) -> int:
  """How many ways the batch dimension is split."""
  axes = next((partitioning.as_tuple(a) for name, a in rules if name == BATCH), ())
  return math.prod(mesh.shape[a] for a in axes)


def optimizer_state_shardings(optimizer: optax.GradientTransformation, abstract_opt_state,
                              param_shardings, mesh: AnyMesh):
  """Moments shard like their parameters; counters and other scalars are replicated."""
  return optax.tree_map_params(
      optimizer, lambda _, sharding: sharding, abstract_opt_state, param_shardings,
      transform_non_params=lambda _: replicated(mesh),
      is_leaf=lambda x: isinstance(x, NamedSharding))


def with_shardings(abstract_tree, shardings):
  """ShapeDtypeStructs that carry their sharding (for ``lower`` and orbax restore)."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_tree, shardings)


def bytes_per_device(abstract_tree, shardings) -> int:
  """Bytes one device holds of ``abstract_tree`` under ``shardings`` (largest shard)."""
  return sum(
      math.prod(s.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize
      for x, s in zip(jax.tree.leaves(abstract_tree), jax.tree.leaves(shardings)))


def process_blocks(rows_sharding: NamedSharding) -> int:
  """How many distinct row blocks the processes hold (1 when every process holds all
  rows, the process count when the rows are split over every process)."""
  shape = (math.prod(rows_sharding.mesh.shape[a] for a in partitioning.as_tuple(rows_sharding.spec[0])), 1)
  blocks = {}
  for device, index in rows_sharding.devices_indices_map(shape).items():
    blocks.setdefault(device.process_index, set()).add(index[0].indices(shape[0])[:2])
  return len({frozenset(ranges) for ranges in blocks.values()})


def local_rows(x: jax.Array) -> np.ndarray:
  """This process's rows (``process_rows``) of a global array sharded over its rows."""
  shards = {}
  for shard in x.addressable_shards:
    shards.setdefault(shard.index[0].start or 0, shard.data)
  return np.concatenate([np.asarray(shards[start]) for start in sorted(shards)])
