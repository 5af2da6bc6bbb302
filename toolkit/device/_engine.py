"""The local fallback chain: run a bundle's artifacts in order of preference, moving down the chain
on a runtime error, non-finite outputs, or a missed latency budget.

A *runner* is ``runner(rows) -> rows of logits`` for one artifact. By default runners come from
``edgefleet.runtimes`` (numpy + the backend's library); pass ``runner_factory(target, path)`` to run
without them (e.g. a wasm runtime under Pyodide).
"""

from __future__ import annotations

import functools
import math
import time

from edgefleet._errors import DataError, RuntimeBackendError

__all__ = ["Engine", "default_runner_factory"]


def default_runner_factory(target: str, path, threads: int | None = None, *, input_ranges=None):
    """A runner from ``edgefleet.runtimes``; rows are one array (or nested lists) or, for a model
    with several inputs, a dict of them. ``input_ranges`` bounds integer inputs (token ids)."""
    from edgefleet import runtimes

    names = [n for n in runtimes.for_target(target) if runtimes.get(n).is_available()]
    if not names:
        raise RuntimeBackendError(f"no available runtime for {target} (known: {', '.join(runtimes.names())})")
    runtime = runtimes.load(names[0], path, threads=threads, input_ranges=input_ranges)
    output = runtime.output_names[0]
    dtype = runtime.input_specs[0].dtype

    def run(rows):
        import numpy as np
        if isinstance(rows, dict):
            return runtime.run(rows)[output]
        return runtime.run(np.asarray(rows, dtype=dtype))[output]
    run.runtime = runtime  # the backend behind this runner (its options, for callers that ask)
    return run


def _ranges(bundle) -> dict:
    return {s["name"]: tuple(s["range"]) for s in bundle.manifest["inputs"] if "range" in s}


def _finite(outputs) -> bool:
    try:
        import numpy as np
        if isinstance(outputs, np.ndarray):
            return bool(np.isfinite(outputs).all())
    except ImportError:
        pass
    return all(math.isfinite(v) for row in outputs for v in row)


class Engine:
    """Runs one bundle. ``prefer`` (an artifact target) goes first, then the bundle's chain."""

    def __init__(self, bundle, *, prefer: str = "", runner_factory=None, latency_budget_ms: float | None = None,
                 threads: int | None = None):
        self.bundle = bundle
        self.factory = runner_factory or functools.partial(default_runner_factory, threads=threads,
                                                           input_ranges=_ranges(bundle))
        self.latency_budget_ms = latency_budget_ms
        chain = list(bundle.fallback_chain) or list(bundle.targets)
        if prefer and prefer in bundle.targets:
            chain = [prefer] + [t for t in chain if t != prefer]
        self.chain = chain
        self.position = 0
        self._runners: dict[str, object] = {}
        self._failed: set[str] = set()

    @property
    def artifact(self) -> str:
        return self.chain[self.position] if self.position < len(self.chain) else ""

    def _runner(self, target):
        if target not in self._runners:
            self._runners[target] = self.factory(target, self.bundle.artifact_path(target))
        return self._runners[target]

    def warm(self) -> None:
        """Load the first usable artifact now (so a swap fails before it happens, not after)."""
        while self.position < len(self.chain):
            try:
                self._runner(self.artifact)
                return
            except Exception as e:  # noqa: BLE001 - any load failure moves down the chain
                self._failed.add(self.artifact)
                self.position += 1
                last = e
        raise RuntimeBackendError(f"bundle {self.bundle.version}: no artifact of {self.chain} could be loaded") from last

    def run(self, rows) -> tuple[object, str, float, list[str]]:
        """(logits rows, artifact used, latency ms, error kinds met on the way)."""
        errors = []
        while self.position < len(self.chain):
            target = self.artifact
            try:
                runner = self._runner(target)
                start = time.perf_counter()
                out = runner(rows)
                latency_ms = (time.perf_counter() - start) * 1000
            except DataError:
                raise  # the input is wrong, not the artifact: say so and keep the chain where it is
            except Exception:  # noqa: BLE001 - a runtime error of any kind: fall back locally
                errors.append("runtime_error")
                self.position += 1
                continue
            if not _finite(out):
                errors.append("non_finite")
                self.position += 1
                continue
            if self.latency_budget_ms is not None and latency_ms > self.latency_budget_ms:
                errors.append("latency_budget")  # the answer stands; the next call uses the next artifact
                if self.position + 1 < len(self.chain):
                    self.position += 1
            return out, target, latency_ms, errors
        raise RuntimeBackendError(f"bundle {self.bundle.version}: every artifact of {self.chain} failed ({errors})")
