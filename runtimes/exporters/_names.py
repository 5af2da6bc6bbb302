"""Unique tensor/node names for the serializers (ONNX, TFLite)."""

from __future__ import annotations


class UniqueNames:
    """Hands out ``base``, then ``base_2``, ``base_3``, ... so that no name is given twice."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def reserve(self, name: str) -> None:
        self._taken.add(name)

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while name in self._taken:
            i += 1
            name = f"{base}_{i}"
        self._taken.add(name)
        return name
