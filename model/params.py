"""Parameter declarations: shape, logical axis names and initialiser in one place.

A model declares its parameters as a pytree of ``ParamSpec`` leaves. From that one tree
we derive the initialised parameters, their logical axes (mapped to mesh axes by a
rules table at training time) and abstract shapes for ahead-of-time lowering.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


@dataclasses.dataclass(frozen=True)
class ParamSpec:
  """One parameter: its shape, one logical axis name per dimension, its initialiser."""
  shape: tuple[int, ...]
  axes: tuple[str | None, ...]
  init: Initializer

  def __post_init__(self):
    if len(self.shape) != len(self.axes):
      raise ValueError(f"ParamSpec shape {self.shape} and axes {self.axes} differ in rank")


def is_spec(x) -> bool:
  return isinstance(x, ParamSpec)


def normal(std: float) -> Initializer:
  return lambda key, shape, dtype: std * jax.random.normal(key, shape, dtype)


def constant(value: float) -> Initializer:
  return lambda key, shape, dtype: jnp.full(shape, value, dtype)


def uniform(low: float, high: float, transform=lambda u: u) -> Initializer:
  return lambda key, shape, dtype: transform(
      jax.random.uniform(key, shape, dtype, low, high)).astype(dtype)


def initialize(specs, rng: jax.Array, dtype) -> dict:
  """Materialise a ParamSpec tree; each leaf gets a key folded from its position."""
  leaves, treedef = jax.tree.flatten(specs, is_leaf=is_spec)
  keys = jax.random.split(rng, len(leaves))
  return jax.tree.unflatten(
      treedef, [s.init(k, s.shape, dtype) for s, k in zip(leaves, keys)])


def axes_of(specs):
  """Logical axes as ``PartitionSpec`` leaves (a pytree leaf, unlike a tuple)."""
  return jax.tree.map(lambda s: jax.sharding.PartitionSpec(*s.axes), specs,
                      is_leaf=is_spec)


def abstract(specs, dtype):
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, dtype), specs,
                      is_leaf=is_spec)
