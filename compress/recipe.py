"""Recipes: an ordered list of passes with parameters, written in TOML.

.. code-block:: toml

    name = "small"
    [[passes]]
    name = "prune"
    amount = 0.5
    [[passes]]
    name = "quantize"
    method = "mse"

Built-in recipes live in ``compress/recipes/`` (``default``: int8 only; ``small``: prune + lowrank +
distill + int8). The CLI flags build the same :class:`Recipe`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet._errors import ConfigError

from .passes import Pass, get_pass

BUILTIN_DIR = Path(__file__).parent / "recipes"


@dataclass
class Recipe:
    name: str
    passes: list[Pass] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict, where: str = "recipe") -> "Recipe":
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table")
        unknown = set(data) - {"name", "passes"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a recipe has 'name' and 'passes'")
        entries = data.get("passes")
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"{where}: missing 'passes' (a list of [[passes]] tables)")
        passes = []
        for i, entry in enumerate(entries):
            loc = f"{where}: passes[{i}]"
            if not isinstance(entry, dict) or "name" not in entry:
                raise ConfigError(f"{loc}: missing key 'name' (the pass to run)")
            params = {k: v for k, v in entry.items() if k != "name"}
            try:
                passes.append(get_pass(entry["name"])(**params))
            except ConfigError as e:
                raise ConfigError(f"{loc}: {e}") from e
        name = data.get("name", "custom")
        if not isinstance(name, str):
            raise ConfigError(f"{where}: 'name' must be a string")
        return cls(name, passes)

    @classmethod
    def from_toml(cls, source: str | Path) -> "Recipe":
        """A path to a ``.toml`` file, or a built-in recipe name (``default``, ``small``)."""
        path = Path(source)
        if not path.exists() and (BUILTIN_DIR / f"{source}.toml").exists():
            path = BUILTIN_DIR / f"{source}.toml"
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError as e:
            builtin = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.toml")))
            raise ConfigError(f"recipe {source}: no such file or built-in recipe (built-in: {builtin})") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"recipe {path}: invalid TOML: {e}") from e
        return cls.from_dict(data, where=f"recipe {path.name}")

    def to_dict(self) -> dict:
        return {"name": self.name, "passes": [{"name": p.name, **p.params_dict()} for p in self.passes]}

    def has(self, name: str) -> bool:
        return any(p.name == name for p in self.passes)

    def describe(self) -> str:
        return " -> ".join(repr(p) for p in self.passes)


def recipe_from_flags(*, prune: float | None = None, structured: bool = True, lowrank: float | None = None,
                      distill: int | None = None, method: str = "mse", weight_bits: int = 7, qat: bool = False) -> Recipe:
    """The recipe the CLI flags describe, in the fixed order prune -> lowrank -> distill -> quantize."""
    passes: list[dict] = []
    if prune:
        passes.append({"name": "prune", "amount": prune, "structured": structured})
    if lowrank:
        passes.append({"name": "lowrank", "energy": lowrank})
    if distill:
        passes.append({"name": "distill", "epochs": distill})
    passes.append({"name": "quantize", "method": method, "weight_bits": weight_bits, "qat": qat})
    return Recipe.from_dict({"name": "flags", "passes": passes}, where="command-line flags")
