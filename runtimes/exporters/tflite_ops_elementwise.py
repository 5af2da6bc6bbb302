"""TFLite lowerings of the IR's elementwise ops, activations, softmax and layer norm. A mixin of
:class:`~.tflite_lower.Lowering`.

Elementwise ops run in whatever layout their 4-D inputs already have (constants are re-laid-out to
match). int8 activations use TFLite's own ops where their output quantization is free (RELU, RELU6,
HARD_SWISH, GELU) and the IR's lookup table (CAST/ADD/GATHER, exact) where TFLite would impose fixed
output parameters the graph does not have (LOGISTIC, TANH) or has no int8 op (SiLU).
"""

from __future__ import annotations

import numpy as np

from . import tflite_layout as L
from .tflite_writer import BuiltinOperator as B
from .tflite_writer import Quant


class ElementwiseOps:
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

    def _op_div(self, node) -> None:
        """int8: float32 DIV between DEQUANTIZE and QUANTIZE, as the IR defines it."""
        nhwc = self._prefer_nhwc(node.inputs)
        ins = [self._get(v, nhwc).index for v in node.inputs]
        if not self.int8:
            self.m.op(B.DIV, ins, [self._out(node, nhwc)], "DivOptions", FusedActivationFunction=0)
            return
        floats = []
        for v, i in zip(node.inputs, ins):
            f = self._temp(f"{node.name}/{v}/float", self.m.shape_of(i), "float32")
            self.m.op(B.DEQUANTIZE, [i], [f])
            floats.append(f)
        out_shape = L.stored_shape(self.g.values[node.outputs[0]].shape, nhwc)
        y = self._temp(f"{node.name}/float", out_shape, "float32")
        self.m.op(B.DIV, floats, [y], "DivOptions", FusedActivationFunction=0)
        self.m.op(B.QUANTIZE, [y], [self._out(node, nhwc)])

    def _op_cast(self, node) -> None:
        x = self._get(node.inputs[0], False)
        if not self.int8:
            self.m.op(B.CAST, [x.index], [self._out(node)])
            return
        y = self._temp(f"{node.name}/float", self.m.shape_of(x.index), "float32")
        self.m.op(B.CAST, [x.index], [y])
        self.m.op(B.QUANTIZE, [y], [self._out(node)])

    def _op_clamp(self, node) -> None:
        if self.int8:
            return self._lut(node)
        nhwc = self._prefer_nhwc(node.inputs)
        x = self._get(node.inputs[0], nhwc)
        low = self._temp(f"{node.name}/max", self.m.shape_of(x.index), like=x.index)
        lo = self.m.const(f"{node.name}/min_value", np.asarray(node.attrs["min"], np.float32), "float32")
        hi = self.m.const(f"{node.name}/max_value", np.asarray(node.attrs["max"], np.float32), "float32")
        self.m.op(B.MAXIMUM, [x.index, lo], [low])
        self.m.op(B.MINIMUM, [low, hi], [self._out(node, nhwc)])

    def _op_hardsigmoid(self, node) -> None:
        if self.int8:
            return self._lut(node)
        nhwc = self._prefer_nhwc(node.inputs)
        x = self._get(node.inputs[0], nhwc)
        shape = self.m.shape_of(x.index)
        shifted, clipped = (self._temp(f"{node.name}/{t}", shape, like=x.index) for t in ("plus3", "relu6"))
        three = self.m.const(f"{node.name}/three", np.asarray(3.0, np.float32), "float32")
        sixth = self.m.const(f"{node.name}/sixth", np.asarray(1.0 / 6.0, np.float32), "float32")
        self.m.op(B.ADD, [x.index, three], [shifted], "AddOptions", FusedActivationFunction=0)
        self.m.op(B.RELU6, [shifted], [clipped])
        self.m.op(B.MUL, [clipped, sixth], [self._out(node, nhwc)], "MulOptions", FusedActivationFunction=0)

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
        x = self._get(node.inputs[0], nhwc)
        stored = L.stored_axis(axis, rank, nhwc)
        if stored == rank - 1:
            self.m.op(B.SOFTMAX, [x.index], [self._out(node, nhwc)], "SoftmaxOptions", Beta=1.0)
            return
        # TFLite's SOFTMAX reduces the last axis only: swap the axis there and back (a permutation
        # changes no value, so int8 parameters carry through unchanged)
        perm = list(range(rank))
        perm[stored], perm[-1] = perm[-1], perm[stored]
        shape = self.m.shape_of(x.index)
        swapped_shape = tuple(shape[p] for p in perm)
        perm_const = self._i32(f"{node.name}/perm", perm)
        swapped = self._temp(f"{node.name}/swapped", swapped_shape, like=x.index)
        self.m.op(B.TRANSPOSE, [x.index, perm_const], [swapped], "TransposeOptions")
        soft = self._temp(f"{node.name}/softmax", swapped_shape, quant=self._quant(node.outputs[0]), like=x.index)
        self.m.op(B.SOFTMAX, [swapped], [soft], "SoftmaxOptions", Beta=1.0)
        self.m.op(B.TRANSPOSE, [soft, perm_const], [self._out(node, nhwc)], "TransposeOptions")

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

