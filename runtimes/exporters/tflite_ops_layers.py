"""TFLite lowerings of the IR's layers with weights or windows: linear, conv2d (plain, grouped, depthwise),
pooling and mean. A mixin of :class:`~.tflite_lower.Lowering` (which owns tensors and layouts).

Weights are transposed once here to TFLite's layouts (CONV_2D ``[O, kh, kw, I]``, DEPTHWISE_CONV_2D
``[1, kh, kw, O]`` with per-channel scales along axis 3); PyTorch's symmetric padding becomes TFLite's
SAME/VALID where that gives the same windows, else an explicit PAD (zeros, or the zero point in int8).
"""

from __future__ import annotations

import numpy as np

from edgefleet._errors import UnsupportedOpError

from . import tflite_layout as L
from .tflite_writer import BuiltinOperator as B

_FUSED = {"none": 0, "relu": 1, "relu6": 3}
_PAD = {"SAME": 0, "VALID": 1}


class LayerOps:
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
        if groups == cin and cin_g == 1 and groups > 1:
            w, b = self._weights(node, node.params.get("weight"), lambda t: t.transpose(1, 2, 3, 0), 3)
            self.m.op(B.DEPTHWISE_CONV_2D, [x[0], w, b], [self._out(node, True)], "DepthwiseConv2DOptions",
                      DepthMultiplier=o // groups, **fields)
        else:
            # groups > 1 is implied by a filter with fewer input channels than the input (``cin / groups``);
            # LiteRT 2.x's builtin kernels and XNNPACK run that (tested); older TFLite runtimes may not
            w, b = self._weights(node, node.params.get("weight"), lambda t: t.transpose(0, 2, 3, 1), 0)
            self.m.op(B.CONV_2D, [x[0], w, b], [self._out(node, True)], "Conv2DOptions", **fields)

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


    def _op_sum(self, node) -> None:
        """SUM; int8 on TFLite's own kernel, which rescales the integer sum to the output's qparams."""
        a = node.attrs
        shape = self.g.values[node.inputs[0]].shape
        nhwc = self._prefer_nhwc(node.inputs[:1]) and a["keepdim"]
        x = self._get(node.inputs[0], nhwc)
        axes = [L.stored_axis(ax % len(shape), len(shape), nhwc) for ax in a["axes"]]
        self.m.op(B.SUM, [x.index, self._i32(f"{node.name}/axes", axes)], [self._out(node, nhwc)],
                  "ReducerOptions", KeepDims=bool(a["keepdim"]))
