"""The runtime interface: one base class that owns validation, timing and error translation.

A backend subclasses :class:`Runtime` and fills in three hooks only:

- ``_available()`` -> ``None`` when its library imports, else a reason string;
- ``_load(path)`` -> ``(input_specs, output_names)``;
- ``_run(feeds)`` -> list of output arrays, in ``output_names`` order.

Everything a user touches — checking input names, dtypes and shapes, turning a library's exception
into :class:`~edgefleet.RuntimeBackendError` naming the backend and the step — lives here, so every
backend behaves the same at its boundary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from edgefleet._errors import BackendUnavailable, DataError, RuntimeBackendError


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of a model input; ``None`` marks a dynamic axis (the batch axis)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


class Runtime:
    """Base class of every backend. Use :func:`edgefleet.runtimes.load` to get one."""

    name: ClassVar[str] = ""
    #: the pip extra that installs this backend's library
    extra: ClassVar[str] = ""
    #: artifact targets (see the manifest) this backend runs
    targets: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: str | Path, *, threads: int | None = None,
                 input_ranges: Mapping[str, tuple[int, int]] | None = None):
        """``input_ranges`` bounds integer inputs (``{"input_ids": (0, vocab - 1)}``, from the
        manifest's ``inputs[i].range``): a value outside is refused before the backend sees it."""
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailable(f"runtime {self.name!r} is not available: {reason}")
        self.path = Path(path)
        self.threads = threads
        self.input_ranges = dict(input_ranges or {})
        if not self.path.is_file():
            raise RuntimeBackendError(f"runtime {self.name!r}: artifact {self.path} does not exist")
        try:
            self.input_specs, self.output_names = self._load(self.path)
        except RuntimeBackendError:
            raise
        except Exception as e:
            raise RuntimeBackendError(f"runtime {self.name!r} could not load {self.path}: {type(e).__name__}: {e}") from e
        self.last_latency_s: float | None = None

    # -- hooks ---------------------------------------------------------------------------------
    @classmethod
    def _available(cls) -> str | None:
        raise NotImplementedError

    def _load(self, path: Path) -> tuple[list[TensorSpec], list[str]]:
        raise NotImplementedError

    def _run(self, feeds: dict[str, Any]) -> list[Any]:
        raise NotImplementedError

    # -- public --------------------------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            reason = cls._available()
        except Exception as e:  # a broken install is "unavailable", with the reason
            reason = f"{type(e).__name__}: {e}"
        if reason and cls.extra:
            reason += f" (install it with: pip install 'edgefleet[{cls.extra}]')"
        return reason

    @classmethod
    def is_available(cls) -> bool:
        return cls.unavailable_reason() is None

    def run(self, inputs: Mapping[str, Any] | Any) -> dict[str, Any]:
        """Run the model. ``inputs`` is a mapping of input name to array, or one array for a
        single-input model. Returns a dict of output name to array."""
        feeds = self._check_inputs(inputs)
        start = time.perf_counter()
        try:
            outputs = self._run(feeds)
        except Exception as e:
            raise RuntimeBackendError(f"runtime {self.name!r} failed running {self.path.name}: {type(e).__name__}: {e}") from e
        self.last_latency_s = time.perf_counter() - start
        return dict(zip(self.output_names, outputs))

    def _check_inputs(self, inputs: Mapping[str, Any] | Any) -> dict[str, Any]:
        import numpy as np

        if not isinstance(inputs, Mapping):
            if len(self.input_specs) != 1:
                raise DataError(f"runtime {self.name!r}: model has {len(self.input_specs)} inputs; pass a dict of "
                                f"{', '.join(s.name for s in self.input_specs)}")
            inputs = {self.input_specs[0].name: inputs}
        expected = {s.name for s in self.input_specs}
        unknown = set(inputs) - expected
        missing = expected - set(inputs)
        if unknown or missing:
            raise DataError(f"runtime {self.name!r}: inputs {sorted(inputs)} do not match the model's {sorted(expected)}")
        feeds = {}
        for spec in self.input_specs:
            value = np.asarray(inputs[spec.name])
            if value.dtype != np.dtype(spec.dtype):
                value = _convert(spec, value)
            check_shape(spec, value.shape)
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise DataError(f"input {spec.name!r}: holds NaN or infinite values")
            if spec.name in self.input_ranges and value.size:
                lo, hi = self.input_ranges[spec.name]
                bad = (value < lo) | (value > hi)
                if bad.any():
                    where = tuple(int(i) for i in np.argwhere(bad)[0])
                    raise DataError(f"input {spec.name!r}: value {int(value[where])} at index {list(where)} is outside "
                                    f"the valid range [{lo}, {hi}] ({int(bad.sum())} value(s) out of range; token "
                                    f"ids must be below the vocabulary size {hi + 1})")
            feeds[spec.name] = np.ascontiguousarray(value)
        return feeds

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.path}>"


def _convert(spec: TensorSpec, value):
    """Safe conversions only: any real number to float32; integers to a wider-or-equal integer
    input (int32 ids into an int64 input). Floats are never truncated into an integer input."""
    import numpy as np

    want = np.dtype(spec.dtype)
    if want.kind == "f" and value.dtype.kind in "fiub":
        return value.astype(want)
    if want.kind in "iu" and value.dtype.kind in "iu":
        info = np.iinfo(want)
        if value.size and (value.min() < info.min or value.max() > info.max):
            raise DataError(f"input {spec.name!r}: values do not fit {spec.dtype}")
        return value.astype(want)
    hint = " (token ids and masks are integers: pass an integer array)" if want.kind in "iu" else ""
    raise DataError(f"input {spec.name!r}: expected dtype {spec.dtype}, got {value.dtype}{hint}")


def check_shape(spec: TensorSpec, shape: Sequence[int]) -> None:
    if len(shape) != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape, shape)):
        want = "[" + ", ".join("N" if d is None else str(d) for d in spec.shape) + "]"
        raise DataError(f"input {spec.name!r}: expected shape {want}, got {list(shape)}")
