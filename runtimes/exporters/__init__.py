"""Exporters: serializers of the IR into one artifact target each.

An exporter is a class with ``target`` (a manifest target such as ``onnx-int8``), ``runtime`` (the
backend that runs it), ``precision`` (``fp32``/``int8``) and ``export(graph, path)``. Int8 targets
take a quantized graph and write *its* quantization parameters; an op the format cannot express
raises :class:`~edgefleet.UnsupportedOpError` naming the op and the node.

>>> from edgefleet.runtimes import exporters
>>> exporters.get("onnx-int8")().export(qgraph, "model.int8.onnx")   # doctest: +SKIP
"""

from __future__ import annotations

from edgefleet._errors import ConfigError
from edgefleet._registry import LazyRegistry

__all__ = ["get", "targets", "register", "island_ops"]

_EXPORTERS = LazyRegistry("export target", ConfigError, {
    "onnx-fp32": "edgefleet.runtimes.exporters.onnx_export:OnnxFp32Exporter",
    "onnx-int8": "edgefleet.runtimes.exporters.onnx_export:OnnxInt8Exporter",
    "tflite-fp32": "edgefleet.runtimes.exporters.tflite_export:TfliteFp32Exporter",
    "tflite-int8": "edgefleet.runtimes.exporters.tflite_export:TfliteInt8Exporter",
    "efm-int8": "edgefleet.runtimes.exporters.efm_export:EfmExporter",
})
register = _EXPORTERS.register
targets = _EXPORTERS.names
get = _EXPORTERS.get


def island_ops(*names: str) -> tuple[str, ...]:
    """The op kinds every int8 target of ``names`` (default: every registered target) can lower as
    float32 precision islands: an exporter's ``island_ops``, or every kind when it declares none. Unknown
    names are left out here (the export reports them as not shipped)."""
    from edgefleet.compress.ir.islands import ISLAND_OPS

    int8 = [get(t) for t in (names or targets()) if t in targets() and get(t).precision == "int8"]
    return tuple(op for op in ISLAND_OPS if all(op in getattr(e, "island_ops", ISLAND_OPS) for e in int8))
