"""Runtimes: exporters (IR -> artifact) and backends (artifact -> outputs) behind one interface.

>>> from edgefleet import runtimes
>>> runtimes.names()                                  # doctest: +SKIP
['onnxruntime', 'torch', ...]
>>> rt = runtimes.load("onnxruntime", "out/digits/model.int8.onnx")   # doctest: +SKIP
>>> rt.run(x)["logits"].shape                         # doctest: +SKIP
"""

from __future__ import annotations

from edgefleet._errors import RuntimeBackendError
from edgefleet._registry import LazyRegistry

from .base import Runtime, TensorSpec

__all__ = ["Runtime", "TensorSpec", "names", "get", "load", "available", "for_target", "open_artifact"]

# One registry, keyed by name; each backend is its own module, imported only when asked for.
_BACKENDS = LazyRegistry("runtime", RuntimeBackendError, {
    "onnxruntime": "edgefleet.runtimes.backends.ort:OnnxRuntime",
    "torch": "edgefleet.runtimes.backends.torch_ref:TorchRuntime",
    "litert": "edgefleet.runtimes.backends.litert:LiteRtRuntime",
    "native": "edgefleet.runtimes.backends.native:NativeRuntime",
    "wasm": "edgefleet.runtimes.backends.wasm:WasmRuntime",
})
register = _BACKENDS.register
names = _BACKENDS.names


def get(name: str) -> type[Runtime]:
    return _BACKENDS.get(name)


def load(name: str, path, **options) -> Runtime:
    return get(name)(path, **options)


def available() -> list[str]:
    """Names of the backends whose libraries import on this machine."""
    return [name for name in names() if get(name).is_available()]


def for_target(target: str) -> list[str]:
    """Backends able to run an artifact target such as ``onnx-int8``."""
    return [name for name in names() if target in get(name).targets]


def open_artifact(bundle, *, target: str | None = None, runtime: str | None = None, **options) -> tuple[str, Runtime]:
    """Open a bundle's artifact with a runtime: the first target of the fallback chain (or ``target``)
    that some available backend (or ``runtime``) can run. Returns ``(target, runtime_instance)``."""
    targets = [target] if target else bundle.fallback_chain
    reasons = []
    for t in targets:
        art = bundle.artifact(t)
        for name in [runtime] if runtime else [art.runtime, *for_target(t)]:
            cls = get(name)
            if t not in cls.targets:
                reasons.append(f"{name} cannot run {t}")
                continue
            why = cls.unavailable_reason()
            if why:
                reasons.append(f"{name}: {why}")
                continue
            ranges = {s["name"]: tuple(s["range"]) for s in bundle.manifest["inputs"] if "range" in s}
            return t, cls(art.path, **{"input_ranges": ranges, **options})
    raise RuntimeBackendError(f"no runtime can open {', '.join(targets)} on this machine: {'; '.join(reasons)}")
