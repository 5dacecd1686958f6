"""Name → function tables, so a config string picks an RL piece (architecture decision 6)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

Fn = TypeVar("Fn", bound=Callable)


class Registry(Generic[Fn]):
  """Registered pure functions of one kind (advantage estimator, policy loss, reward, ...)."""

  def __init__(self, kind: str):
    self.kind = kind
    self._functions: dict[str, Fn] = {}

  def register(self, name: str) -> Callable[[Fn], Fn]:
    """Decorator: ``@REGISTRY.register('name')``; a name can be registered once."""
    def add(fn: Fn) -> Fn:
      if name in self._functions:
        raise ValueError(f"{self.kind} {name!r} is already registered")
      self._functions[name] = fn
      return fn
    return add

  def get(self, name: str) -> Fn:
    if name not in self._functions:
      raise ValueError(f"unknown {self.kind} {name!r}; registered: {self.names()}")
    return self._functions[name]

  def names(self) -> list[str]:
    return sorted(self._functions)
