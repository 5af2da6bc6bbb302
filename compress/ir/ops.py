"""The closed op set of edgefleet's IR.

Every op lists its inputs, constant params and attributes, and its float semantics (as PyTorch's op
of the same name, NCHW). Int8 semantics are in :mod:`edgefleet.compress.ir.reference` and are the
definition every int8 runtime must reproduce:

======================  ==========================================================================
op                      float semantics / int8 semantics
======================  ==========================================================================
``linear``              ``x @ W.T + b`` then ``act``; int8: int32 accumulate of ``(x - zx) * Wq``
                        plus ``bias_q``, requantized per output channel, clamped by ``act``
``conv2d``              2-D convolution (stride, padding, dilation, groups incl. depthwise) then
                        ``act``; int8: as ``linear``
``max_pool2d``          max pooling; int8: on the integers, same qparams in and out
``avg_pool2d``          average pooling; int8: integer sum, division rounded half away from zero
``mean``                mean over ``axes`` (global average pooling); int8: as ``avg_pool2d``
``add`` / ``mul``       elementwise with broadcasting, two tensors or a tensor and ``params.const``;
                        int8: fixed-point rescale of both operands (add) / of the product (mul)
``relu`` ``relu6``      unary activations; int8: a 256-entry lookup table ``params.table`` built
``hardswish``           once at quantization from the float function, so every runtime is exact
``sigmoid`` ``silu``
``tanh`` ``gelu``
``softmax``             softmax over ``axis``; int8: exp lookup table + integer division, output
                        scale 1/256, zero point -128
``layer_norm``          layer norm over the last axis with ``gamma``/``beta``; int8: computed in
                        float32 between dequantize and quantize (runtimes agree within 1 LSB)
``matmul``              batched ``a @ b`` of two tensors; int8: int32 accumulate, requantize
``reshape``             reshape keeping the batch axis (``shape[0] == -1``); int8: unchanged
``transpose``           permute axes (``perm[0] == 0``); int8: unchanged
``concat``              concatenate along ``axis``; int8: inputs rescaled to the output's qparams
``embedding``           gather rows of ``params.weight`` by int64 indices; int8: per-tensor table
======================  ==========================================================================

Requantization (shared by ``linear``, ``conv2d``, ``mul``, ``matmul``): the real multiplier
``m = s_in * s_w / s_out`` is stored as ``M * 2**-n`` with ``2**30 <= M < 2**31``, and
``y = ((acc * M + 2**(n-1)) >> n) + z_out`` in 64-bit integers (rounding half up), then clamped.
``add`` and ``concat`` use ``n = 20`` with one multiplier per operand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from edgefleet._errors import ModelError

ACTIVATIONS = ("none", "relu", "relu6")
UNARY_LUT_OPS = ("relu", "relu6", "hardswish", "sigmoid", "silu", "tanh", "gelu")
#: ops whose int8 output reuses the input's quantization parameters
PASSTHROUGH_OPS = ("max_pool2d", "avg_pool2d", "mean", "reshape", "transpose")


@dataclass(frozen=True)
class OpSpec:
    name: str
    num_inputs: tuple[int, int]  # (min, max) activation inputs
    attrs: dict[str, type | tuple] = field(default_factory=dict)
    params: tuple[str, ...] = ()  # params that must be present (float form)
    doc: str = ""
    extra_check: Callable | None = None

    def check(self, node) -> None:
        lo, hi = self.num_inputs
        if not lo <= len(node.inputs) <= hi:
            raise ModelError(f"{node.where()}: op {self.name} takes {lo}..{hi} inputs, got {len(node.inputs)}")
        for key, kind in self.attrs.items():
            if key not in node.attrs:
                raise ModelError(f"{node.where()}: op {self.name} needs attribute {key!r}")
            if not isinstance(node.attrs[key], kind):
                raise ModelError(f"{node.where()}: attribute {key!r} has type {type(node.attrs[key]).__name__}")
        for key in self.params:
            if key not in node.params and f"{key}_q" not in node.params:
                raise ModelError(f"{node.where()}: op {self.name} needs param {key!r}")
        if self.extra_check:
            self.extra_check(node)


def _check_act(node):
    if node.attrs.get("act", "none") not in ACTIVATIONS:
        raise ModelError(f"{node.where()}: unknown fused activation {node.attrs['act']!r}")


def _check_binary(node):
    if len(node.inputs) == 1 and "const" not in node.params and "const_q" not in node.params:
        raise ModelError(f"{node.where()}: {node.op} with one input needs params['const']")


_SEQ = (list, tuple)
OPS: dict[str, OpSpec] = {spec.name: spec for spec in [
    OpSpec("linear", (1, 1), {"act": str}, ("weight",), "fully connected layer", _check_act),
    OpSpec("conv2d", (1, 1), {"stride": _SEQ, "padding": _SEQ, "dilation": _SEQ, "groups": int, "act": str},
           ("weight",), "2-D convolution", _check_act),
    OpSpec("max_pool2d", (1, 1), {"kernel": _SEQ, "stride": _SEQ, "padding": _SEQ}, (), "max pooling"),
    OpSpec("avg_pool2d", (1, 1), {"kernel": _SEQ, "stride": _SEQ, "padding": _SEQ, "count_include_pad": bool},
           (), "average pooling"),
    OpSpec("mean", (1, 1), {"axes": _SEQ, "keepdim": bool}, (), "mean over axes"),
    OpSpec("add", (1, 2), {}, (), "elementwise add", _check_binary),
    OpSpec("mul", (1, 2), {}, (), "elementwise multiply", _check_binary),
    *[OpSpec(name, (1, 1), {}, (), f"{name} activation") for name in UNARY_LUT_OPS],
    OpSpec("softmax", (1, 1), {"axis": int}, (), "softmax"),
    OpSpec("layer_norm", (1, 1), {"eps": float}, ("gamma", "beta"), "layer norm over the last axis"),
    OpSpec("matmul", (2, 2), {}, (), "batched matrix product"),
    OpSpec("reshape", (1, 1), {"shape": _SEQ}, (), "reshape, batch axis kept"),
    OpSpec("transpose", (1, 1), {"perm": _SEQ}, (), "permute axes, batch axis kept"),
    OpSpec("concat", (1, 64), {"axis": int}, (), "concatenate"),
    OpSpec("embedding", (1, 1), {}, ("weight",), "row gather"),
]}
