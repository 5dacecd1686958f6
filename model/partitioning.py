"""Logical axis names → mesh axes, for parameters and for activations inside a step.

Parameters carry logical axes (``params.py``); activations are named where the model
makes them (``constrain(x, ('batch', 'length', 'embed'))``). One rules table maps names
to mesh axes, e.g.::

    (('batch', ('data', 'fsdp')), ('embed', 'fsdp'), ('mlp', 'tensor'), ('head_dim', None))

A name may appear several times: its candidates are tried in order and the first whose
mesh axes divide the dimension and are not yet used by another dimension of the same
array wins; otherwise the dimension is replicated. Mesh axes the mesh does not have
count as size 1, so the rules apply to a mesh of any axis names.

The mesh is JAX's own: the one ``jax.set_mesh(mesh)`` (or ``jax.sharding.use_mesh``,
``use_abstract_mesh`` ahead of time) makes current, which ``jax.jit`` traces under as an
abstract mesh. With one (of more than one device), ``constrain`` pins activations and the
Pallas kernels ``shard_map`` themselves over it; without one the model runs unchanged on
one device. So a user's own code needs nothing of ours::

    with jax.set_mesh(mesh):
      grads = jax.jit(jax.grad(loss))(params, tokens)      # tokens sharded over the mesh

The rules are ``DEFAULT_RULES`` unless ``axis_rules(rules)`` says otherwise while the
function is traced. ``jit(fn, mesh, rules)`` (the driver's, the generator's) is
``jax.jit`` of ``fn`` traced with ``rules`` and called, traced and lowered with ``mesh``
set as JAX's mesh.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Sequence
from typing import Any, Union

import jax
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec

MeshAxes = Union[None, str, tuple[str, ...]]
Rules = Sequence[tuple[str, MeshAxes]]
AnyMesh = Union[Mesh, AbstractMesh]

# The logical → mesh rules of the project's (data, fsdp, tensor) meshes.
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("ssm_heads", "tensor"),
    ("ssm_head_dim", None),
    ("ssm_groups", "tensor"),
    ("ssm_state", None),
    ("conv_width", None),
    # Activations only: the residual stream between layers is split along the sequence
    # over the tensor axis (which would otherwise hold it whole on every device).
    ("length", "tensor"),
)

_RULES: contextvars.ContextVar[tuple | None] = contextvars.ContextVar(
    "logical_axis_rules", default=None)


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
        axes = tuple(a for a in as_tuple(axes) if mesh.shape.get(a, 1) > 1)
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
def axis_rules(rules: Rules):
  """Within (while a function is traced): logical names map to mesh axes by ``rules``."""
  token = _RULES.set(tuple(rules))
  try:
    yield
  finally:
    _RULES.reset(token)


def current_rules() -> tuple:
  """The rules of the enclosing ``axis_rules``, else ``DEFAULT_RULES``."""
  rules = _RULES.get()
  return DEFAULT_RULES if rules is None else rules


def current_mesh() -> AbstractMesh | None:
  """JAX's current mesh (``jax.set_mesh``; abstract under ``jax.jit``) if it has more
  than one device, else None."""
  mesh = jax.sharding.get_abstract_mesh()
  return None if mesh.empty or math.prod(mesh.shape.values()) == 1 else mesh


def mesh_rules() -> tuple[AbstractMesh, tuple] | None:
  """(JAX's current mesh, the current rules), or None without a mesh of several
  devices."""
  mesh = current_mesh()
  return None if mesh is None else (mesh, current_rules())


def spec(x, logical: Sequence[str | None]) -> PartitionSpec | None:
  """The PartitionSpec ``constrain`` would give ``x`` (None outside a mesh)."""
  active = mesh_rules()
  if active is None:
    return None
  mesh, rules = active
  return logical_to_mesh_spec(logical, x.shape, rules, mesh)


def constrain(x: jax.Array, logical: Sequence[str | None]) -> jax.Array:
  """``x`` sharded by its logical axes (one name or None per dimension) over JAX's
  current mesh; the identity without one."""
  partition = spec(x, logical)
  if partition is None:
    return x
  return jax.lax.with_sharding_constraint(x, NamedSharding(current_mesh(), partition))


def mesh_axes(name: str, size: int) -> MeshAxes:
  """The mesh axes the current rules give a dimension of ``size`` named ``name`` on
  JAX's current mesh."""
  mesh, rules = mesh_rules()
  return logical_to_mesh_spec((name,), (size,), rules, mesh)[0]


def shard_map_layouts(fn, args, in_layouts: Sequence[str], out_layouts: Sequence[str],
                      letters: dict[str, MeshAxes]):
  """``fn(*args)`` under ``shard_map`` over JAX's current mesh (kernels that XLA cannot
  partition). Layouts name each dimension by a letter ("b l h p"); ``letters`` maps
  the sharded letters to mesh axes, and every other dimension is whole in each shard."""
  to_spec = lambda layout: PartitionSpec(*(letters.get(c) for c in layout.split()))
  return jax.shard_map(fn, mesh=current_mesh(), in_specs=tuple(map(to_spec, in_layouts)),
                       out_specs=tuple(map(to_spec, out_layouts)), check_vma=False)(*args)


def use_mesh(mesh: AnyMesh):
  """A context in which ``mesh`` is JAX's current mesh: ``jax.set_mesh`` for a mesh of
  devices, ``jax.sharding.use_abstract_mesh`` for a device-less one (ahead of time)."""
  if isinstance(mesh, AbstractMesh):
    return jax.sharding.use_abstract_mesh(mesh)
  return jax.set_mesh(mesh)


def with_rules(fn, rules: Rules):
  """``fn`` traced under ``axis_rules(rules)``."""
  @functools.wraps(fn)
  def traced_with_rules(*args, **kwargs):
    with axis_rules(rules):
      return fn(*args, **kwargs)
  return traced_with_rules


class MeshJitted:
  """A jitted function whose every call, trace and lowering runs with ``mesh`` as JAX's
  current mesh (``jit``)."""

  def __init__(self, jitted, mesh: AnyMesh):
    self.mesh = mesh
    self.jitted = jitted   # the ``jax.jit`` function (its compile cache, ...)

  def __call__(self, *args, **kwargs):
    with use_mesh(self.mesh):
      return self.jitted(*args, **kwargs)

  def trace(self, *args, **kwargs):
    with use_mesh(self.mesh):
      return self.jitted.trace(*args, **kwargs)

  def lower(self, *args, **kwargs):
    with use_mesh(self.mesh):
      return self.jitted.lower(*args, **kwargs)


def jit(fn, mesh: AnyMesh, rules: Rules, **jit_kwargs: Any) -> MeshJitted:
  """``jax.jit(fn, **jit_kwargs)`` with ``fn`` traced under ``axis_rules(rules)`` and
  called, traced and lowered with ``mesh`` as JAX's current mesh."""
  return MeshJitted(jax.jit(with_rules(fn, rules), **jit_kwargs), mesh)
