"""Lower edgefleet's IR onto TFLite builtin ops (float32, or full-integer int8 with float boundaries).

One :class:`Lowering` walks the graph's nodes in order and appends operators to a
:class:`~.tflite_writer.TfliteModel`. Every int8 constant written is one the quantize pass computed
(``weight_q``/``weight_scale``, ``bias_q``/``bias_scale``, ``const_q``, lookup tables) and every
activation tensor carries the graph's own qparams; nothing is re-derived here.

Layout. The model's *external* input and output keep the IR's layout (NCHW for images) because the SDK
feeds the same array to every runtime. Inside, a 4-D tensor is stored NHWC from the first op that
needs it (CONV_2D, pooling) until an op that needs the IR layout; weights are transposed once, at
export. That costs one TRANSPOSE at an NCHW image input (none when C == 1) and none per layer.
A flatten of an NHWC map feeding only linear layers needs no TRANSPOSE either: the linear weights'
columns are permuted to the stored order instead (see :func:`~.tflite_layout.nhwc_flatten_order`).
"""

from __future__ import annotations

import numpy as np

from edgefleet._errors import ConfigError, ModelError, UnsupportedOpError

from . import tflite_layout as L
from .tflite_layout import Stored
from .tflite_ops_elementwise import ElementwiseOps
from .tflite_ops_layers import LayerOps
from .tflite_ops_shape import ShapeOps
from .tflite_writer import BuiltinOperator as B
from .tflite_writer import Quant, TfliteModel


class Lowering(LayerOps, ElementwiseOps, ShapeOps):
    """The walk over the graph and the bookkeeping every op lowering uses: which tensor holds each IR
    value in which layout, boundary QUANTIZE/DEQUANTIZE, and weight constants. The ``_op_<name>``
    methods come from the mixins, one file per family of ops."""

    def __init__(self, graph, *, int8: bool, full_integer: bool = False):
        self.g, self.int8, self.full_integer = graph, int8, full_integer
        self.m = TfliteModel(f"edgefleet {graph.name} ({'int8' if int8 else 'fp32'})")
        self.env: dict[str, dict[bool, Stored]] = {}  # value -> {nhwc?: stored tensor}
        self.island = False  # lowering a precision island's node (float math, int8 weights)
        self._check_graph()

    # -- entry -----------------------------------------------------------------------------------
    def run(self) -> TfliteModel:
        for v in self.g.inputs:
            self._input(v)
        for node in self.g.nodes:
            lower = lowering_for(node.op)
            if lower is None:
                raise UnsupportedOpError(f"TFLite export: op {node.op!r} has no TFLite lowering ({node.where()})")
            try:
                if self.int8 and node.name in self.g.islands:
                    self._island(node, lower)
                else:
                    lower(self, node)
            except (ModelError, ConfigError):
                raise
            except Exception as e:
                raise ModelError(f"TFLite export failed lowering op {node.op!r} ({node.where()}): "
                                 f"{type(e).__name__}: {e}") from e
        for name in self.g.outputs:
            self._output(name)
        return self.m

    def _island(self, node, lower) -> None:
        """A precision island: DEQUANTIZE of each int8 input, the op's float lowering (weights: int8
        constants through DEQUANTIZE), QUANTIZE of the output unless it stays float (no qparams)."""
        saved = {v: self.env[v] for v in node.inputs}
        for v in node.inputs:
            self.env[v] = {nhwc: self._island_input(stored) for nhwc, stored in saved[v].items()}
        self.int8, self.island = False, True
        try:
            lower(self, node)
        finally:
            self.int8, self.island = True, False
            self.env.update(saved)
        out = node.outputs[0]
        if out not in self.g.float_tensors():
            floats = self.env[out]
            self.env[out] = {}
            for nhwc, stored in floats.items():
                q = self._new(out, nhwc, f"{out}/int8" if out in self.g.outputs else None)
                self.m.op(B.QUANTIZE, [stored.index], [q.index])

    def _island_input(self, stored: Stored) -> Stored:
        t = self.m.tensors[stored.index]
        if t.dtype != "int8":
            return stored
        f = self._temp(f"{t.name}/float", t.shape, "float32")
        self.m.op(B.DEQUANTIZE, [stored.index], [f])
        return Stored(f, stored.nhwc, stored.feature_order)

    def _check_graph(self) -> None:
        for v in [*self.g.inputs, *self.g.values.values()]:
            for axis, d in enumerate(v.shape):
                if d is None and axis > 0:
                    raise ModelError(f"TFLite export: tensor {v.name!r} has a dynamic axis {axis} (shape "
                                     f"{list(v.shape)}); only the batch axis 0 may be dynamic in a .tflite model")
        if not self.int8:
            return
        if not self.g.quantized:
            raise ConfigError(f"target tflite-int8 needs a quantized graph, but graph {self.g.name!r} has no "
                              "quantization parameters: run the quantize pass first (or export tflite-fp32)")
        for node in self.g.nodes:
            if node.op in ("linear", "conv2d") and not {"weight_q", "bias_q", "weight_scale"} <= set(node.params):
                raise ConfigError(f"target tflite-int8: {node.where()} has no int8 weights (weight_q/bias_q); "
                                  "quantize the graph before exporting")

    # -- tensors ---------------------------------------------------------------------------------
    def _dtype(self, value: str) -> str:
        v = self.g.values.get(value)
        if v is not None and v.dtype != "float32":
            return v.dtype
        return "int8" if self.int8 else "float32"

    def _quant(self, value: str) -> Quant | None:
        if not self.int8 or self._dtype(value) != "int8":
            return None
        qp = self.g.qparams[value]
        return Quant(qp.scale, qp.zero_point)

    def _new(self, value: str, nhwc: bool = False, name: str | None = None) -> Stored:
        v = self.g.values[value]
        tensor = self.m.tensor(name or value, L.stored_shape(v.shape, nhwc), self._dtype(value), self._quant(value),
                               dynamic_batch=v.shape[0] is None)
        stored = Stored(tensor, nhwc)
        self.env.setdefault(value, {})[nhwc] = stored
        return stored

    def _out(self, node, nhwc: bool = False) -> int:
        """The tensor for a node's output. Graph outputs get a suffixed name: the exact name is kept for
        the float tensor of the boundary (see :meth:`_output`)."""
        value, name = node.outputs[0], node.outputs[0]
        if value in self.g.outputs:
            name = (f"{value}/int8" if self.int8 else f"{value}/float" if self.island else f"{value}/nhwc" if nhwc
                    else value)
        return self._new(value, nhwc, name).index

    def _temp(self, name: str, shape, dtype: str | None = None, quant: Quant | None = None, like: int | None = None) -> int:
        if like is not None:
            t = self.m.tensors[like]
            dtype, quant = dtype or t.dtype, quant if quant is not None else t.quant
        return self.m.tensor(name, shape, dtype or "float32", quant, dynamic_batch=True)

    def _i32(self, name: str, values) -> int:
        return self.m.const(name, np.asarray(values, np.int32), "int32")

    def _get(self, value: str, nhwc: bool, name: str | None = None) -> Stored:
        """``value`` stored in the asked layout, adding a TRANSPOSE (or a RESHAPE where the bytes do not
        move) once, cached, when needed; ``name`` names its output (default: value name + layout)."""
        have = self.env[value]
        if nhwc in have:
            return have[nhwc]
        src = have[not nhwc]
        rank = len(self.g.values[value].shape) if value in self.g.values else 4
        if rank != 4:
            raise ModelError(f"TFLite export: {value!r} is {rank}-D; only 4-D tensors change layout")
        if src.feature_order is not None:
            raise ModelError(f"TFLite export: {value!r} holds a permuted flatten and cannot change layout")
        perm = L.TO_NHWC if nhwc else L.TO_NCHW
        shape = tuple(self.m.shape_of(src.index)[p] for p in perm)
        dst = self._temp(name or f"{value}/{'nhwc' if nhwc else 'nchw'}", shape, like=src.index)
        _, c, h, w = self.g.values[value].shape
        if c == 1 or h * w == 1:  # the same bytes in both layouts: a RESHAPE (free), not a TRANSPOSE
            self.m.op(B.RESHAPE, [src.index, self._i32(f"{value}/shape", (-1, *shape[1:]))], [dst])
        else:
            self.m.op(B.TRANSPOSE, [src.index, self._i32(f"{value}/perm", perm)], [dst], "TransposeOptions")
        have[nhwc] = Stored(dst, nhwc)
        return have[nhwc]

    def _prefer_nhwc(self, values) -> bool:
        """Elementwise ops run in whatever layout their 4-D inputs already have."""
        return all(len(self.g.values[v].shape) == 4 for v in values) and any(True in self.env[v] for v in values)

    # -- boundaries ------------------------------------------------------------------------------
    def _input(self, v) -> None:
        shape = L.stored_shape(v.shape, False)
        dynamic = v.shape[0] is None
        if v.dtype != "float32" or not self.int8:
            idx = self.m.tensor(v.name, shape, v.dtype, dynamic_batch=dynamic)
            self.env[v.name] = {False: Stored(idx)}
        else:
            idx = self.m.tensor(v.name, shape, "float32", dynamic_batch=dynamic)
            q = self._new(v.name, False, f"{v.name}/int8")
            self.m.op(B.QUANTIZE, [idx], [q.index])
        self.m.inputs.append(idx)

    def _output(self, name: str) -> None:
        stored = self.env[name].get(False)
        if stored is None:  # only NHWC exists: the TRANSPOSE back writes the float output itself
            stored = self._get(name, False, None if self.int8 else name)
        if stored.feature_order is not None:
            raise ModelError(f"TFLite export: graph output {name!r} is a permuted flatten")
        t = self.m.tensors[stored.index]
        if self.int8 and t.dtype == "int8":
            out = self.m.tensor(name, t.shape, "float32", dynamic_batch=t.dynamic_batch)
            self.m.op(B.DEQUANTIZE, [stored.index], [out])
        elif t.name != name:
            out = self.m.tensor(name, t.shape, t.dtype, dynamic_batch=t.dynamic_batch)
            self.m.op(B.RESHAPE, [stored.index, self._i32(f"{name}/shape", (-1, *t.shape[1:]))], [out])
        else:
            out = stored.index
        self.m.outputs.append(out)

    # -- weights ---------------------------------------------------------------------------------
    def _weights(self, node, w_float: np.ndarray, layout, q_axis: int):
        """Weight and bias constants; ``layout`` maps an IR-shaped weight to the stored one."""
        p = node.params
        if self.island:
            zeros = np.zeros(p["weight_scale"].shape, np.int64)
            wq = self.m.const(f"{node.name}/weight_q", layout(p["weight_q"]), "int8", Quant(p["weight_scale"], zeros, q_axis))
            w = self.m.tensor(f"{node.name}/weight", self.m.shape_of(wq), "float32")
            self.m.op(B.DEQUANTIZE, [wq], [w])
            bias = p.get("bias", np.zeros(p["weight_q"].shape[0], np.float32))
            return w, self.m.const(f"{node.name}/bias", bias, "float32")
        if self.int8:
            zeros = np.zeros(p["weight_scale"].shape, np.int64)
            w = self.m.const(f"{node.name}/weight", layout(p["weight_q"]), "int8", Quant(p["weight_scale"], zeros, q_axis))
            b = self.m.const(f"{node.name}/bias", p["bias_q"], "int32", Quant(p["bias_scale"], zeros, 0))
        else:
            w = self.m.const(f"{node.name}/weight", layout(w_float), "float32")
            bias = p.get("bias", np.zeros(w_float.shape[0], np.float32))
            b = self.m.const(f"{node.name}/bias", bias, "float32")
        return w, b


def lowering_for(op: str):
    """The lowering of IR op ``op``: the ``_op_<name>`` method of one of the mixins, or None."""
    return getattr(Lowering, f"_op_{op}", None)


def lower(graph, *, int8: bool, full_integer: bool = False) -> TfliteModel:
    """Lower ``graph`` to a :class:`TfliteModel` (int8: the graph must be quantized). ``full_integer``
    keeps every matmul in int8 even where XNNPACK would not run it (for integer-only accelerators)."""
    return Lowering(graph, int8=int8, full_integer=full_integer).run()
