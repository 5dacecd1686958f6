"""Logical axis names → mesh axes, for parameters and for activations inside a step.

Parameters carry logical axes (``params.py``); activations are named where the model
makes them (``constrain(x, ('batch', 'length', 'embed'))``). One rules table maps names
to mesh axes, e.g.::

    (('batch', ('data', 'fsdp')), ('embed', 'fsdp'), ('mlp', 'tensor'), ('head_dim', None))

A name may appear several times: its candidates are tried in order and the first whose
mesh axes divide the dimension and are not yet used by another dimension of the same
array wins; otherwise the dimension is replicated.

The model runs unchanged on one device: ``constrain`` and ``mesh_rules`` do something
only inside ``activation_sharding(mesh, rules)``, which the training driver wraps around
the step it traces (and the Pallas kernels read to ``shard_map`` themselves).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Sequence
from typing import Union

import jax
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec

MeshAxes = Union[None, str, tuple[str, ...]]
Rules = Sequence[tuple[str, MeshAxes]]
AnyMesh = Union[Mesh, AbstractMesh]

_ACTIVE: contextvars.ContextVar[tuple[AnyMesh, tuple] | None] = contextvars.ContextVar(
    "activation_sharding", default=None)


def as_tuple(axes: MeshAxes) -> tuple[str, ...]:
  if axes is None:
    return ()
  return (axes,) if isinstance(axes, str) else tuple(axes)


def logical_to_mesh_spec(logical: Sequence[str | None], shape: Sequence[int],
                         rules: Rules, mesh: AnyMesh) -> PartitionSpec:
  """The mesh PartitionSpec of one array with logical axes ``logical`` and ``shape``."""
  if len(logical) != len(shape):
    raise ValueError(f"logical axes {tuple(logical)} do not match shape {tuple(shape)}")
  used: set[str] = set()
  physical = []
  for name, dim in zip(logical, shape):
    chosen = None
    if name is not None:
      for rule_name, axes in rules:
        if rule_name != name:
          continue
        axes = tuple(a for a in as_tuple(axes) if mesh.shape[a] > 1)
        size = math.prod(mesh.shape[a] for a in axes)
        if not used.intersection(axes) and dim % size == 0:
          chosen = axes
          break
    if chosen:
      used.update(chosen)
      physical.append(chosen[0] if len(chosen) == 1 else chosen)
    else:
      physical.append(None)
  return PartitionSpec(*physical)


@contextlib.contextmanager
def activation_sharding(mesh: AnyMesh, rules: Rules):
  """Within: ``constrain`` pins activations and the kernels shard_map over ``mesh``."""
  token = _ACTIVE.set((mesh, tuple(rules)))
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def mesh_rules() -> tuple[AnyMesh, tuple] | None:
  """(mesh, rules) of the enclosing ``activation_sharding`` with more than one device."""
  active = _ACTIVE.get()
  return active if active is not None and active[0].size > 1 else None


def spec(x, logical: Sequence[str | None]) -> PartitionSpec | None:
  """The PartitionSpec ``constrain`` would give ``x`` (None outside a mesh)."""
  active = mesh_rules()
  if active is None:
    return None
  mesh, rules = active
  return logical_to_mesh_spec(logical, x.shape, rules, mesh)


def constrain(x: jax.Array, logical: Sequence[str | None]) -> jax.Array:
  """``x`` sharded by its logical axes (one name or None per dimension); the identity
  outside ``activation_sharding``."""
  active = mesh_rules()
  if active is None:
    return x
  mesh, rules = active
  sharding = NamedSharding(mesh, logical_to_mesh_spec(logical, x.shape, rules, mesh))
  return jax.lax.with_sharding_constraint(x, sharding)


def mesh_axes(name: str, size: int) -> MeshAxes:
  """The mesh axes the active rules give a dimension of ``size`` named ``name``."""
  mesh, rules = _ACTIVE.get()
  return logical_to_mesh_spec((name,), (size,), rules, mesh)[0]


def shard_map_layouts(fn, args, in_layouts: Sequence[str], out_layouts: Sequence[str],
                      letters: dict[str, MeshAxes]):
  """``fn(*args)`` under ``shard_map`` over the active mesh (kernels that XLA cannot
  partition). Layouts name each dimension by a letter ("b l h p"); ``letters`` maps
  the sharded letters to mesh axes, and every other dimension is whole in each shard."""
  mesh, _ = _ACTIVE.get()
  to_spec = lambda layout: PartitionSpec(*(letters.get(c) for c in layout.split()))
  return jax.shard_map(fn, mesh=mesh, in_specs=tuple(map(to_spec, in_layouts)),
                       out_specs=tuple(map(to_spec, out_layouts)), check_vma=False)(*args)


def on_mesh(fn, mesh: AnyMesh, rules: Rules):
  """``fn`` run (and so traced, under ``jax.jit``) inside ``activation_sharding``."""
  @functools.wraps(fn)
  def in_mesh(*args, **kwargs):
    with activation_sharding(mesh, rules):
      return fn(*args, **kwargs)
  return in_mesh
