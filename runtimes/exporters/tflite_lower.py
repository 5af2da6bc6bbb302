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

from dataclasses import dataclass

import numpy as np

from edgefleet._errors import ConfigError, ModelError, UnsupportedOpError

from . import tflite_layout as L
from .tflite_writer import BuiltinOperator as B
from .tflite_writer import Quant, TfliteModel

_FUSED = {"none": 0, "relu": 1, "relu6": 3}
_PAD = {"SAME": 0, "VALID": 1}


@dataclass
class _Stored:
    """One IR value as written: a tensor index, stored NHWC or not, and (for a 2-D flatten of an NHWC
    map) the IR feature held by each stored column."""

    index: int
    nhwc: bool = False
    feature_order: np.ndarray | None = None


class Lowering:
    def __init__(self, graph, *, int8: bool, full_integer: bool = False):
        self.g, self.int8, self.full_integer = graph, int8, full_integer
        self.m = TfliteModel(f"edgefleet {graph.name} ({'int8' if int8 else 'fp32'})")
        self.env: dict[str, dict[bool, _Stored]] = {}  # value -> {nhwc?: stored tensor}
        self._check_graph()

    # -- entry -----------------------------------------------------------------------------------
    def run(self) -> TfliteModel:
        for v in self.g.inputs:
            self._input(v)
        for node in self.g.nodes:
            lower = getattr(self, f"_op_{node.op}", None)
            if lower is None:
                raise UnsupportedOpError(f"TFLite export: op {node.op!r} has no TFLite lowering ({node.where()})")
            self.node = node
            try:
                lower(node)
            except (ModelError, ConfigError):
                raise
            except Exception as e:
                raise ModelError(f"TFLite export failed lowering op {node.op!r} ({node.where()}): "
                                 f"{type(e).__name__}: {e}") from e
        for name in self.g.outputs:
            self._output(name)
        return self.m

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

    def _new(self, value: str, nhwc: bool = False, name: str | None = None) -> _Stored:
        v = self.g.values[value]
        tensor = self.m.tensor(name or value, L.stored_shape(v.shape, nhwc), self._dtype(value), self._quant(value),
                               dynamic_batch=v.shape[0] is None)
        stored = _Stored(tensor, nhwc)
        self.env.setdefault(value, {})[nhwc] = stored
        return stored

    def _out(self, node, nhwc: bool = False) -> int:
        """The tensor for a node's output. Graph outputs get a suffixed name: the exact name is kept for
        the float tensor of the boundary (see :meth:`_output`)."""
        value = node.outputs[0]
        name = f"{value}/int8" if value in self.g.outputs and (self.int8 or nhwc) else value
        if value in self.g.outputs and nhwc and not self.int8:
            name = f"{value}/nhwc"
        return self._new(value, nhwc, name).index

    def _temp(self, name: str, shape, dtype: str | None = None, quant: Quant | None = None, like: int | None = None) -> int:
        if like is not None:
            t = self.m.tensors[like]
            dtype, quant = dtype or t.dtype, quant if quant is not None else t.quant
        return self.m.tensor(name, shape, dtype or "float32", quant, dynamic_batch=True)

    def _i32(self, name: str, values) -> int:
        return self.m.const(name, np.asarray(values, np.int32), "int32")

    def _get(self, value: str, nhwc: bool) -> _Stored:
        """``value`` stored in the asked layout, adding a TRANSPOSE (once, cached) when needed."""
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
        dst = self._temp(f"{value}/{'nhwc' if nhwc else 'nchw'}", shape, like=src.index)
        self.m.op(B.TRANSPOSE, [src.index, self._i32(f"{value}/perm", perm)], [dst], "TransposeOptions")
        have[nhwc] = _Stored(dst, nhwc)
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
            self.env[v.name] = {False: _Stored(idx)}
        else:
            idx = self.m.tensor(v.name, shape, "float32", dynamic_batch=dynamic)
            q = self._new(v.name, False, f"{v.name}/int8")
            self.m.op(B.QUANTIZE, [idx], [q.index])
        self.m.inputs.append(idx)
        # A 1-channel image is the same bytes in NCHW and NHWC: a RESHAPE, not a TRANSPOSE.
        if len(v.shape) == 4 and v.shape[1] == 1:
            src = self.env[v.name][False]
            dst = self._temp(f"{v.name}/nhwc", L.stored_shape(v.shape, True), like=src.index)
            self.m.op(B.RESHAPE, [src.index, self._i32(f"{v.name}/shape", (-1, *L.stored_shape(v.shape, True)[1:]))], [dst])
            self.env[v.name][True] = _Stored(dst, True)

    def _output(self, name: str) -> None:
        stored = self.env[name].get(False)
        if stored is None:  # only NHWC exists
            stored = self._get(name, False)
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
        if self.int8:
            zeros = np.zeros(p["weight_scale"].shape, np.int64)
            w = self.m.const(f"{node.name}/weight", layout(p["weight_q"]), "int8", Quant(p["weight_scale"], zeros, q_axis))
            b = self.m.const(f"{node.name}/bias", p["bias_q"], "int32", Quant(p["bias_scale"], zeros, 0))
        else:
            w = self.m.const(f"{node.name}/weight", layout(w_float), "float32")
            bias = p.get("bias", np.zeros(w_float.shape[0], np.float32))
            b = self.m.const(f"{node.name}/bias", bias, "float32")
        return w, b

    # -- ops -------------------------------------------------------------------------------------
    def _op_linear(self, node) -> None:
        x = self.env[node.inputs[0]].get(False) or self._get(node.inputs[0], False)
        order = x.feature_order
        w, b = self._weights(node, node.params.get("weight"),
                             (lambda a: a) if order is None else (lambda a: a[:, order]), 0)
        rank = len(self.g.values[node.inputs[0]].shape)
        self.m.op(B.FULLY_CONNECTED, [x.index, w, b], [self._out(node)], "FullyConnectedOptions",
                  FusedActivationFunction=_FUSED[node.attrs["act"]], KeepNumDims=rank > 2)

    def _op_conv2d(self, node) -> None:
        a = node.attrs
        ref = node.params.get("weight_q", node.params.get("weight"))
        o, cin_g, kh, kw = ref.shape
        groups = a["groups"]
        cin = self.g.values[node.inputs[0]].shape[1]
        x = self._padded(node, (kh, kw), a["dilation"], None)  # PAD: zeros (float) or the zero point (int8)
        fields = dict(Padding=x[1], StrideW=a["stride"][1], StrideH=a["stride"][0],
                      FusedActivationFunction=_FUSED[a["act"]],
                      DilationWFactor=a["dilation"][1], DilationHFactor=a["dilation"][0])
        if groups == 1:
            w, b = self._weights(node, node.params.get("weight"), lambda t: t.transpose(0, 2, 3, 1), 0)
            self.m.op(B.CONV_2D, [x[0], w, b], [self._out(node, True)], "Conv2DOptions", **fields)
        elif groups == cin and cin_g == 1:
            w, b = self._weights(node, node.params.get("weight"), lambda t: t.transpose(1, 2, 3, 0), 3)
            self.m.op(B.DEPTHWISE_CONV_2D, [x[0], w, b], [self._out(node, True)], "DepthwiseConv2DOptions",
                      DepthMultiplier=o // groups, **fields)
        else:
            raise UnsupportedOpError(f"TFLite export: conv2d with groups={groups} over {cin} channels (grouped, "
                                     f"neither plain nor depthwise) has no TFLite builtin ({node.where()})")

    def _padded(self, node, kernel, dilation, pad_value):
        """Input (NHWC) and TFLite padding mode; adds an explicit PAD when TFLite's SAME/VALID cannot
        reproduce PyTorch's symmetric padding. ``pad_value`` None pads with the zero point (PAD)."""
        a = node.attrs
        x = self._get(node.inputs[0], True)
        _, h, w, _ = self.m.shape_of(x.index)
        modes = [L.tflite_padding(size, k, s, d, p)
                 for size, k, s, d, p in zip((h, w), kernel, a["stride"], dilation, a["padding"])]
        if modes[0] == modes[1] and modes[0] is not None:
            return x.index, _PAD[modes[0]]
        (ph, pw), shape = a["padding"], self.m.shape_of(x.index)
        padded = self._temp(f"{node.name}/pad", (shape[0], shape[1] + 2 * ph, shape[2] + 2 * pw, shape[3]), like=x.index)
        pads = self._i32(f"{node.name}/paddings", [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        if pad_value is None:
            self.m.op(B.PAD, [x.index, pads], [padded], "PadOptions")
        else:
            t = self.m.tensors[x.index]
            value = self.m.const(f"{node.name}/pad_value", np.asarray([pad_value]), t.dtype, t.quant)
            self.m.op(B.PADV2, [x.index, pads, value], [padded], "PadV2Options")
        return padded, _PAD["VALID"]

    def _pool(self, node, code, pad_value) -> None:
        a = node.attrs
        x, padding = self._padded(node, a["kernel"], (1, 1), pad_value)
        self.m.op(code, [x], [self._out(node, True)], "Pool2DOptions", Padding=padding, StrideW=a["stride"][1],
                  StrideH=a["stride"][0], FilterWidth=a["kernel"][1], FilterHeight=a["kernel"][0],
                  FusedActivationFunction=0)

    def _op_max_pool2d(self, node) -> None:
        self._pool(node, B.MAX_POOL_2D, -128 if self.int8 else float(np.finfo(np.float32).min))

    def _op_avg_pool2d(self, node) -> None:
        a = node.attrs
        if any(a["padding"]) and not a["count_include_pad"]:
            h, w = self.g.values[node.inputs[0]].shape[2:]
            modes = {L.tflite_padding(s, k, st, 1, p) for s, k, st, p in zip((h, w), a["kernel"], a["stride"], a["padding"])}
            if modes != {"SAME"}:  # SAME pooling excludes padding from the count, like count_include_pad=False
                raise UnsupportedOpError(f"TFLite export: avg_pool2d with padding {a['padding']} and "
                                         f"count_include_pad=False has no TFLite equivalent ({node.where()})")
        self._pool(node, B.AVERAGE_POOL_2D, None if self.int8 else 0.0)

    def _op_mean(self, node) -> None:
        a = node.attrs
        shape = self.g.values[node.inputs[0]].shape
        axes = sorted(ax % len(shape) for ax in a["axes"])
        if len(shape) == 4 and axes == [2, 3]:
            # global average pooling: AVERAGE_POOL_2D rounds its integer sum half away from zero, as the IR
            x = self._get(node.inputs[0], True)
            _, h, w, c = self.m.shape_of(x.index)
            if a["keepdim"]:
                out = self._out(node, True)
            else:
                out = self._temp(f"{node.name}/pooled", (1, 1, 1, c), like=x.index)
            self.m.op(B.AVERAGE_POOL_2D, [x.index], [out], "Pool2DOptions", Padding=_PAD["VALID"], StrideW=1,
                      StrideH=1, FilterWidth=w, FilterHeight=h, FusedActivationFunction=0)
            if not a["keepdim"]:
                self.m.op(B.RESHAPE, [out, self._i32(f"{node.name}/shape", (-1, c))], [self._out(node)])
            return
        nhwc = self._prefer_nhwc(node.inputs[:1]) and a["keepdim"]
        x = self._get(node.inputs[0], nhwc)
        stored_axes = [L.stored_axis(ax, len(shape), nhwc) for ax in axes]
        self.m.op(B.MEAN, [x.index, self._i32(f"{node.name}/axes", stored_axes)], [self._out(node, nhwc)],
                  "ReducerOptions", KeepDims=bool(a["keepdim"]))

    def _binary(self, node, code) -> None:
        nhwc = self._prefer_nhwc(node.inputs)
        ins = [self._get(v, nhwc).index for v in node.inputs]
        if len(ins) == 1:
            p, rank = node.params, len(self.g.values[node.inputs[0]].shape)
            if self.int8:
                q = Quant(np.asarray(p["const_scale"]).reshape(-1), np.asarray(p["const_zero_point"]).reshape(-1))
                const = L.broadcast_const(np.asarray(p["const_q"]), rank, nhwc)
                ins.append(self.m.const(f"{node.name}/const", const, "int8", q))
            else:
                const = L.broadcast_const(np.asarray(p["const"], np.float32), rank, nhwc)
                ins.append(self.m.const(f"{node.name}/const", const, "float32"))
        options = "AddOptions" if code == B.ADD else "MulOptions"
        self.m.op(code, ins, [self._out(node, nhwc)], options, FusedActivationFunction=0)

    def _op_add(self, node) -> None:
        self._binary(node, B.ADD)

    def _op_mul(self, node) -> None:
        self._binary(node, B.MUL)

    def _unary(self, node, code, options: str | None = None, **fields) -> None:
        nhwc = self._prefer_nhwc(node.inputs)
        x = self._get(node.inputs[0], nhwc)
        self.m.op(code, [x.index], [self._out(node, nhwc)], options, **fields)

    def _op_relu(self, node) -> None:
        self._unary(node, B.RELU)

    def _op_relu6(self, node) -> None:
        self._unary(node, B.RELU6)

    def _op_hardswish(self, node) -> None:
        self._unary(node, B.HARD_SWISH)

    def _op_gelu(self, node) -> None:
        self._unary(node, B.GELU, "GeluOptions", Approximate=node.attrs.get("approximate", "none") == "tanh")

    def _op_sigmoid(self, node) -> None:
        # int8 LOGISTIC insists on output qparams (1/256, -128); other calibrations use the IR's table
        if self.int8 and not self._fixed_qparams(node, 1 / 256, -128):
            return self._lut(node)
        self._unary(node, B.LOGISTIC)

    def _op_tanh(self, node) -> None:
        if self.int8 and not self._fixed_qparams(node, 1 / 128, 0):
            return self._lut(node)
        self._unary(node, B.TANH)

    def _op_silu(self, node) -> None:
        if self.int8:
            return self._lut(node)
        nhwc = self._prefer_nhwc(node.inputs)
        x = self._get(node.inputs[0], nhwc)
        sig = self._temp(f"{node.name}/sigmoid", self.m.shape_of(x.index), like=x.index)
        self.m.op(B.LOGISTIC, [x.index], [sig])
        self.m.op(B.MUL, [x.index, sig], [self._out(node, nhwc)], "MulOptions", FusedActivationFunction=0)

    def _fixed_qparams(self, node, scale: float, zero_point: int) -> bool:
        qp = self.g.qparams[node.outputs[0]]
        return abs(qp.scalar_scale - scale) < 1e-9 and qp.scalar_zero_point == zero_point

    def _lut(self, node) -> None:
        """int8 ``y = table[x + 128]`` as CAST -> ADD -> GATHER: exactly the IR's lookup table."""
        nhwc = self._prefer_nhwc(node.inputs)
        x = self._get(node.inputs[0], nhwc)
        shape = self.m.shape_of(x.index)
        wide = self._temp(f"{node.name}/int32", shape, "int32")
        self.m.op(B.CAST, [x.index], [wide])
        index = self._temp(f"{node.name}/index", shape, "int32")
        self.m.op(B.ADD, [wide, self._i32(f"{node.name}/offset", 128)], [index], "AddOptions", FusedActivationFunction=0)
        table = self.m.const(f"{node.name}/table", node.params["table"], "int8", self._quant(node.outputs[0]))
        self.m.op(B.GATHER, [table, index], [self._out(node, nhwc)], "GatherOptions", Axis=0, BatchDims=0)

    def _op_softmax(self, node) -> None:
        rank = len(self.g.values[node.inputs[0]].shape)
        axis = node.attrs["axis"] % rank
        nhwc = rank == 4 and axis == 1 and True in self.env[node.inputs[0]]
        if L.stored_axis(axis, rank, nhwc) != rank - 1:
            raise UnsupportedOpError(f"TFLite export: softmax over axis {axis} of a {rank}-D tensor; TFLite's "
                                     f"SOFTMAX works on the last axis only ({node.where()})")
        x = self._get(node.inputs[0], nhwc)
        self.m.op(B.SOFTMAX, [x.index], [self._out(node, nhwc)], "SoftmaxOptions", Beta=1.0)

    def _op_layer_norm(self, node) -> None:
        """Float32 between DEQUANTIZE and QUANTIZE in int8 (as the IR defines it)."""
        x = self._get(node.inputs[0], False)
        shape = self.m.shape_of(x.index)
        rank, n = len(shape), node.name
        reduced = (*shape[:-1], 1)
        xf = x.index
        if self.int8:
            xf = self._temp(f"{n}/float", shape)
            self.m.op(B.DEQUANTIZE, [x.index], [xf])
        last = self._i32(f"{n}/axis", [rank - 1])

        def f32(tag, shp=shape):
            return self._temp(f"{n}/{tag}", shp, "float32")

        def const(tag, value):
            return self.m.const(f"{n}/{tag}", np.asarray(value, np.float32), "float32")

        mean, centered, sq, var, var_eps, rstd, normed, scaled = (
            f32("mean", reduced), f32("centered"), f32("squared"), f32("var", reduced), f32("var_eps", reduced),
            f32("rstd", reduced), f32("normed"), f32("scaled"))
        self.m.op(B.MEAN, [xf, last], [mean], "ReducerOptions", KeepDims=True)
        self.m.op(B.SUB, [xf, mean], [centered], "SubOptions", FusedActivationFunction=0)
        self.m.op(B.MUL, [centered, centered], [sq], "MulOptions", FusedActivationFunction=0)
        self.m.op(B.MEAN, [sq, last], [var], "ReducerOptions", KeepDims=True)
        self.m.op(B.ADD, [var, const("eps", node.attrs["eps"])], [var_eps], "AddOptions", FusedActivationFunction=0)
        self.m.op(B.RSQRT, [var_eps], [rstd])
        self.m.op(B.MUL, [centered, rstd], [normed], "MulOptions", FusedActivationFunction=0)
        self.m.op(B.MUL, [normed, const("gamma", node.params["gamma"])], [scaled], "MulOptions", FusedActivationFunction=0)
        if self.int8:
            y = f32("y")
            self.m.op(B.ADD, [scaled, const("beta", node.params["beta"])], [y], "AddOptions", FusedActivationFunction=0)
            self.m.op(B.QUANTIZE, [y], [self._out(node)])
        else:
            self.m.op(B.ADD, [scaled, const("beta", node.params["beta"])], [self._out(node)], "AddOptions",
                      FusedActivationFunction=0)

    def _op_matmul(self, node) -> None:
        a, b = (self._get(v, False).index for v in node.inputs)
        if self.int8 and not self.full_integer and self.g.qparams[node.inputs[1]].scalar_zero_point != 0:
            # XNNPACK runs int8 BATCH_MATMUL only with a zero right-hand zero point; otherwise TFLite's
            # own kernel is ~15x slower than XNNPACK's float one. Dequantized operands are exact in
            # float32; the float sum's relative error (~1e-7) moves the result across a rounding
            # boundary of the output quantization only rarely, by 1 LSB (measured in tests/tflite).
            fa, fb = (self._dequantized(node, v, t) for v, t in zip(node.inputs, (a, b)))
            y = self._temp(f"{node.name}/float", L.stored_shape(self.g.values[node.outputs[0]].shape, False))
            self.m.op(B.BATCH_MATMUL, [fa, fb], [y], "BatchMatMulOptions", AdjX=False, AdjY=False)
            self.m.op(B.QUANTIZE, [y], [self._out(node)])
            return
        self.m.op(B.BATCH_MATMUL, [a, b], [self._out(node)], "BatchMatMulOptions", AdjX=False, AdjY=False)

    def _dequantized(self, node, value: str, index: int) -> int:
        f = self._temp(f"{node.name}/{value}/float", self.m.shape_of(index))
        self.m.op(B.DEQUANTIZE, [index], [f])
        return f

    def _op_reshape(self, node) -> None:
        src_value, out_shape = node.inputs[0], self.g.values[node.outputs[0]].shape
        in_shape = self.g.values[src_value].shape
        have = self.env[src_value]
        x = have.get(False)
        if x is None:
            c, h, w = in_shape[1:]
            consumers = self.g.consumers(node.outputs[0])
            if c == 1 or h * w == 1:  # same bytes in NCHW and NHWC
                x = have[True]
            elif (len(out_shape) == 2 and consumers and node.outputs[0] not in self.g.outputs
                  and all(n.op == "linear" for n in consumers)):
                x = have[True]
                self.m.op(B.RESHAPE, [x.index, self._i32(f"{node.name}/shape", (-1, *out_shape[1:]))], [self._out(node)])
                self.env[node.outputs[0]][False].feature_order = L.nhwc_flatten_order(c, h, w)
                return
            else:
                x = self._get(src_value, False)
        self.m.op(B.RESHAPE, [x.index, self._i32(f"{node.name}/shape", (-1, *out_shape[1:]))], [self._out(node)])

    def _op_transpose(self, node) -> None:
        nhwc = False not in self.env[node.inputs[0]]
        x = self._get(node.inputs[0], nhwc)
        perm = L.stored_perm(node.attrs["perm"], nhwc)
        self.m.op(B.TRANSPOSE, [x.index, self._i32(f"{node.name}/perm", perm)], [self._out(node)], "TransposeOptions")

    def _op_concat(self, node) -> None:
        rank = len(self.g.values[node.outputs[0]].shape)
        nhwc = self._prefer_nhwc(node.inputs)
        ins = []
        for v in node.inputs:
            x = self._get(v, nhwc).index
            if self.int8 and not self.g.qparams[v].same_as(self.g.qparams[node.outputs[0]]):
                # int8 CONCATENATION needs one scale for all inputs: requantize those that differ
                rq = self._temp(f"{node.name}/{v}/requant", self.m.shape_of(x), "int8", self._quant(node.outputs[0]))
                self.m.op(B.QUANTIZE, [x], [rq])
                x = rq
            ins.append(x)
        self.m.op(B.CONCATENATION, ins, [self._out(node, nhwc)], "ConcatenationOptions",
                  Axis=L.stored_axis(node.attrs["axis"], rank, nhwc), FusedActivationFunction=0)

    def _op_embedding(self, node) -> None:
        idx = self._get(node.inputs[0], False).index
        if self.int8:
            table = self.m.const(f"{node.name}/weight", node.params["weight_q"], "int8", self._quant(node.outputs[0]))
        else:
            table = self.m.const(f"{node.name}/weight", node.params["weight"], "float32")
        self.m.op(B.GATHER, [table, idx], [self._out(node)], "GatherOptions", Axis=0, BatchDims=0)


def lower(graph, *, int8: bool, full_integer: bool = False) -> TfliteModel:
    """Lower ``graph`` to a :class:`TfliteModel` (int8: the graph must be quantized). ``full_integer``
    keeps every matmul in int8 even where XNNPACK would not run it (for integer-only accelerators)."""
    return Lowering(graph, int8=int8, full_integer=full_integer).run()
