"""TFLite/LiteRT exporters (``tflite-fp32``, ``tflite-int8``) that write the flatbuffer themselves.

No TensorFlow, no jax: the IR is lowered onto TFLite builtin ops (:mod:`.tflite_lower`) and written
with the ``flatbuffers`` package and the ``tflite`` schema bindings (:mod:`.tflite_writer`), both
installed by ``pip install 'edgefleet[tflite]'``.

>>> TfliteInt8Exporter().export(qgraph, "model.int8.tflite")     # doctest: +SKIP

Both artifacts take and return float32 in the IR's own layout (NCHW images, as the user's PyTorch
model), with named inputs and outputs in a ``serving_default`` SignatureDef; the int8 one quantizes
at its input and dequantizes at its outputs, and holds int8 weights (per-channel) and int8
activations with exactly the graph's quantization parameters (a matmul of two activations whose
right-hand zero point is not 0 runs in float between DEQUANTIZE and QUANTIZE, because XNNPACK only
accelerates the int8 one with a zero right-hand zero point; ``full_integer=True`` keeps it int8).
See :mod:`.tflite_lower` for the NCHW -> NHWC choice.

Every op of the IR's set lowers to TFLite builtins (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D,
MAX/AVERAGE_POOL_2D, MEAN, ADD, MUL, RELU/RELU6/HARD_SWISH/LOGISTIC/TANH/GELU, SOFTMAX, BATCH_MATMUL,
RESHAPE, TRANSPOSE, CONCATENATION, GATHER; layer norm as MEAN/SUB/MUL/RSQRT/ADD in float32). Refused
with an error naming the node: ``avg_pool2d`` with ``count_include_pad=False`` and padding other than
TFLite's SAME, and any dynamic axis other than the batch.
"""

from __future__ import annotations

from pathlib import Path

from edgefleet._errors import ConfigError

__all__ = ["TfliteFp32Exporter", "TfliteInt8Exporter"]


def _lower_module():
    try:
        from . import tflite_lower
    except ImportError as e:
        raise ConfigError(f"the TFLite exporter needs the flatbuffers and tflite packages ({e}); install them "
                          "with: pip install 'edgefleet[tflite]'") from e
    return tflite_lower


class _TfliteExporter:
    target = ""
    runtime = "litert"
    precision = ""
    file_name = ""

    def __init__(self, *, full_integer: bool = False):
        #: keep matmuls of two activations in int8 even where XNNPACK would only run them in float
        #: (integer-only accelerators); the default computes those between DEQUANTIZE/QUANTIZE
        self.full_integer = full_integer

    def export(self, graph, path) -> Path:
        """Write ``graph`` as a ``.tflite`` file at ``path``; returns the path.

        Raises :class:`~edgefleet.UnsupportedOpError` for an op TFLite cannot express,
        :class:`~edgefleet.ModelError` for a dynamic axis other than the batch, and
        :class:`~edgefleet.ConfigError` for int8 asked of an unquantized graph.
        """
        model = _lower_module().lower(graph, int8=self.precision == "int8", full_integer=self.full_integer)
        path = Path(path)
        path.write_bytes(model.to_bytes())
        return path


class TfliteFp32Exporter(_TfliteExporter):
    target, precision, file_name = "tflite-fp32", "fp32", "model.tflite"


class TfliteInt8Exporter(_TfliteExporter):
    target, precision, file_name = "tflite-int8", "int8", "model.int8.tflite"
