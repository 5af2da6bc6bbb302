"""The pass contract: named, registered, typed parameters; checked before and after it runs.

A pass subclasses :class:`Pass`, declares ``name`` and ``params`` (each a :class:`Param` with a type,
default and a one-line description) and implements ``_run(state) -> dict`` returning what it changed
and measured. :meth:`Pass.run` validates, times, and wraps any failure with the pass's name.

>>> from edgefleet.compress.passes import get_pass
>>> get_pass("prune")(amount=0.5).params_dict()["amount"]     # doctest: +SKIP
0.5
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from edgefleet._errors import ConfigError, EdgefleetError, ModelError

_REGISTRY: dict[str, type["Pass"]] = {}


@dataclass(frozen=True)
class Param:
    name: str
    type: type | tuple
    default: Any
    doc: str
    choices: tuple | None = None
    check: Callable[[Any], bool] | None = None
    check_doc: str = ""

    def validate(self, value: Any, where: str) -> Any:
        kinds = self.type if isinstance(self.type, tuple) else (self.type,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value is None and self.default is None:
            return None
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(f"{where}.{self.name}: expected {_names(kinds)}, got bool {value!r}")
        if not isinstance(value, kinds):
            raise ConfigError(f"{where}.{self.name}: expected {_names(kinds)}, got {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where}.{self.name}: {value!r} is not one of {', '.join(map(repr, self.choices))}")
        if self.check is not None and not self.check(value):
            raise ConfigError(f"{where}.{self.name}: {value!r} is out of range ({self.check_doc})")
        return value


def _names(kinds) -> str:
    return " or ".join(k.__name__ for k in kinds)


@dataclass
class PassResult:
    name: str
    params: dict
    changed: dict = field(default_factory=dict)
    seconds: float = 0.0


class Pass:
    name: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: "module" passes edit state.model (torch); "graph" passes produce state.qgraph (IR)
    kind: ClassVar[str] = "module"

    def __init__(self, **kwargs: Any):
        where = f"pass {self.name}"
        known = {p.name: p for p in self.params}
        unknown = set(kwargs) - set(known)
        if unknown:
            raise ConfigError(f"{where}: unknown parameter(s) {', '.join(sorted(unknown))}; known: {', '.join(known) or 'none'}")
        self.values: dict[str, Any] = {}
        for p in self.params:
            if p.name in kwargs:
                self.values[p.name] = p.validate(kwargs[p.name], where)
            elif p.default is ...:
                raise ConfigError(f"{where}: missing required parameter {p.name!r} ({p.doc})")
            else:
                self.values[p.name] = p.default
        self._check_params()

    def __getattr__(self, item: str) -> Any:
        values = self.__dict__.get("values", {})
        if item in values:
            return values[item]
        raise AttributeError(item)

    def params_dict(self) -> dict:
        return dict(self.values)

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.values.items())})"

    # hooks ------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Cross-parameter checks; raise ConfigError."""

    def _precondition(self, state) -> None:
        """Raise ModelError when the pass cannot run on this state."""

    def _run(self, state) -> dict:
        raise NotImplementedError

    def backoff(self) -> "Pass | None":
        """A milder version of this pass for the accuracy budget, or None when there is none."""
        return None

    # driver -----------------------------------------------------------------------------------
    def run(self, state) -> PassResult:
        start = time.perf_counter()
        try:
            self._precondition(state)
            changed = self._run(state) or {}
        except EdgefleetError as e:
            raise type(e)(f"pass {self.name}: {e}") from e
        except Exception as e:
            raise ModelError(f"pass {self.name} failed: {type(e).__name__}: {e}") from e
        return PassResult(self.name, self.params_dict(), changed, time.perf_counter() - start)


def register_pass(cls: type[Pass]) -> type[Pass]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def get_pass(name: str) -> type[Pass]:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown pass {name!r}; known passes: {', '.join(sorted(_REGISTRY))}") from None


def pass_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # one module per pass; importing registers it
    from . import distill, heads, lowrank, prune, quantize, shallow  # noqa: F401
