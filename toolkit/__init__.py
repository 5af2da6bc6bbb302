"""edgefleet: take a trained PyTorch model to a fleet of edge devices and browsers.

The public API is small: bundles (:class:`Bundle`, :func:`pack`, :func:`unpack`), the error
hierarchy, and the CLI (``edgefleet --help``). Heavy parts live in sub-packages and import their
dependencies lazily: ``edgefleet.compress`` (torch), ``edgefleet.runtimes`` (onnxruntime, ...),
``edgefleet.coordinator`` (grpcio).
"""

from __future__ import annotations

from ._errors import (
    BackendUnavailable,
    BudgetError,
    BundleError,
    ConfigError,
    DataError,
    EdgefleetError,
    ModelError,
    ParityError,
    RuntimeBackendError,
    UnsupportedOpError,
)
from .bundle import Bundle, BundleWriter, pack, unpack

__version__ = "0.1.0"

__all__ = [
    "Bundle", "BundleWriter", "pack", "unpack",
    "EdgefleetError", "ConfigError", "ModelError", "UnsupportedOpError", "DataError", "BundleError",
    "RuntimeBackendError", "BackendUnavailable", "ParityError", "BudgetError",
    "__version__", "Device",
]


def __getattr__(name: str):
    # the device SDK loads on first use, so ``import edgefleet`` stays light
    if name == "Device":
        from .device import Device
        return Device
    raise AttributeError(f"module 'edgefleet' has no attribute {name!r}")
