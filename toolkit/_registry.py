"""A registry of named plug-ins, each a ``"module:attr"`` path imported only when first asked for.

One shape for every registry (runtimes, exporters): heavy libraries load lazily, and an unknown
name raises the caller's error class listing what is known.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def registrar(table: dict) -> Callable:
    """A decorator factory that files a function under one or more keys of ``table``:
    ``lowers = registrar(LOWERINGS)`` then ``@lowers("linear", "conv2d")`` (an op's lowering per
    exporter, an ATen handler in capture)."""
    def keys(*names: str) -> Callable:
        def register(fn):
            for name in names:
                table[name] = fn
            return fn
        return register
    return keys


class LazyRegistry:
    def __init__(self, kind: str, error: type[Exception], entries: dict[str, str]):
        self.kind, self.error, self._entries = kind, error, dict(entries)

    def register(self, name: str, path: str) -> None:
        """Add or replace an entry by ``"module:attr"`` (for plug-ins)."""
        self._entries[name] = path

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> Any:
        try:
            module, attr = self._entries[name].split(":")
        except KeyError:
            raise self.error(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries)}") from None
        return getattr(importlib.import_module(module), attr)
