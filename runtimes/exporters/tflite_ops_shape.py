"""TFLite lowerings of the IR's matmul, reshape, transpose, pad, slice, concat and embedding. A mixin
of :class:`~.tflite_lower.Lowering`."""

from __future__ import annotations

import numpy as np

from . import tflite_layout as L
from .tflite_layout import Stored
from .tflite_writer import BuiltinOperator as B


class ShapeOps:
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
        if perm == tuple(range(len(perm))) and node.outputs[0] not in self.g.outputs:
            # e.g. x.permute(0, 2, 3, 1) of an NHWC-stored map: already in that order, no op at all
            self.env[node.outputs[0]] = {False: Stored(x.index)}
            return
        self.m.op(B.TRANSPOSE, [x.index, self._i32(f"{node.name}/perm", perm)], [self._out(node)], "TransposeOptions")

    def _op_pad(self, node) -> None:
        """PADV2 with the padding value (int8: quantized with the tensor's own qparams, as the IR)."""
        rank = len(self.g.values[node.inputs[0]].shape)
        nhwc = rank == 4 and self._prefer_nhwc(node.inputs)
        x = self._get(node.inputs[0], nhwc)
        pads = np.asarray(node.attrs["pads"], np.int32).reshape(rank, 2)
        if nhwc:
            pads = pads[list(L.TO_NHWC)]
        t = self.m.tensors[x.index]
        value = np.float32(node.attrs["value"])
        if self.int8:
            value = self.g.qparams[node.inputs[0]].quantize(value.reshape(()))
        fill = self.m.const(f"{node.name}/value", np.asarray([value]), t.dtype, t.quant)
        self.m.op(B.PADV2, [x.index, self._i32(f"{node.name}/paddings", pads), fill], [self._out(node, nhwc)],
                  "PadV2Options")

    def _op_slice(self, node) -> None:
        a, rank = node.attrs, len(self.g.values[node.inputs[0]].shape)
        nhwc = rank == 4 and self._prefer_nhwc(node.inputs)
        x = self._get(node.inputs[0], nhwc)
        shape = self.m.shape_of(x.index)
        axis = L.stored_axis(a["axis"], rank, nhwc)
        begin, end, strides = [0] * rank, list(shape), [1] * rank
        begin[axis], end[axis], strides[axis] = a["start"], a["stop"], a["step"]
        ins = [x.index] + [self._i32(f"{node.name}/{k}", v) for k, v in (("begin", begin), ("end", end), ("strides", strides))]
        # mask bit 0: the (dynamic) batch axis is taken whole
        self.m.op(B.STRIDED_SLICE, ins, [self._out(node, nhwc)], "StridedSliceOptions", BeginMask=1, EndMask=1)

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


