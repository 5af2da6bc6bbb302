"""Exporters: serializers of the IR into one artifact target each.

An exporter is a class with ``target`` (a manifest target such as ``onnx-int8``), ``runtime`` (the
backend that runs it), ``precision`` (``fp32``/``int8``) and ``export(graph, path)``. Int8 targets
take a quantized graph and write *its* quantization parameters; an op the format cannot express
raises :class:`~edgefleet.UnsupportedOpError` naming the op and the node.

>>> from edgefleet.runtimes import exporters
>>> exporters.get("onnx-int8")().export(qgraph, "model.int8.onnx")   # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from edgefleet._errors import ConfigError

__all__ = ["get", "targets", "register"]

_EXPORTERS: dict[str, str] = {
    "onnx-fp32": "edgefleet.runtimes.exporters.onnx_export:OnnxFp32Exporter",
    "onnx-int8": "edgefleet.runtimes.exporters.onnx_export:OnnxInt8Exporter",
    "tflite-fp32": "edgefleet.runtimes.exporters.tflite_export:TfliteFp32Exporter",
    "tflite-int8": "edgefleet.runtimes.exporters.tflite_export:TfliteInt8Exporter",
    "efm-int8": "edgefleet.runtimes.exporters.efm_export:EfmExporter",
}


def register(target: str, path: str) -> None:
    _EXPORTERS[target] = path


def targets() -> list[str]:
    return list(_EXPORTERS)


def get(target: str):
    try:
        module, cls = _EXPORTERS[target].split(":")
    except KeyError:
        raise ConfigError(f"unknown export target {target!r}; known: {', '.join(_EXPORTERS)}") from None
    return getattr(importlib.import_module(module), cls)
