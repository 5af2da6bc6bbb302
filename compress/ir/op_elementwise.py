"""Elementwise ops: ``add``/``mul`` (two tensors, or a tensor and a constant, with broadcasting) and
the unary activations, whose int8 form is a lookup table (see :func:`~.ops.lut_op`)."""

from __future__ import annotations

import math

import numpy as np

from edgefleet._errors import ModelError

from . import kernels as K
from .graph import QParams
from .ops import OpDef, define, lut_op


def _check_binary(node):
    if len(node.inputs) == 1 and "const" not in node.params and "const_q" not in node.params:
        raise ModelError(f"{node.where()}: {node.op} with one input needs params['const']")


def _float_binary(node, xs):
    other = xs[1] if len(xs) > 1 else node.params["const"]
    return xs[0] + other if node.op == "add" else xs[0] * other


def _int_binary(node, xs, qin, out):
    p = node.params
    if len(xs) > 1:
        b, qb = xs[1], qin[1]
    else:
        b, qb = p["const_q"], QParams.per_tensor(float(p["const_scale"]), int(p["const_zero_point"]))
    ac, bc = K.centered(xs[0], qin[0]), K.centered(b, qb)
    if node.op == "add":
        y = (ac * p["mult_a"] + bc * p["mult_b"] + (1 << (K.ADD_SHIFT - 1))) >> K.ADD_SHIFT
    else:
        y = K.requantize(ac * bc, p["multiplier"], p["shift"])
    return K.finish(y, node, out)


def _prepare_binary(node, qin, out, cfg):
    p = node.params
    if len(node.inputs) == 1:
        c = p["const"]
        qb = K.range_qparams(float(c.min()), float(c.max()))
        p["const_q"], p["const_scale"], p["const_zero_point"] = qb.quantize(c), qb.scale, qb.zero_point
    else:
        qb = qin[1]
    if node.op == "add":
        p["mult_a"] = np.int64(round(qin[0].scalar_scale / out.scalar_scale * (1 << K.ADD_SHIFT)))
        p["mult_b"] = np.int64(round(qb.scalar_scale / out.scalar_scale * (1 << K.ADD_SHIFT)))
    else:
        K.multiplier_params(node, np.float64(qin[0].scalar_scale) * np.float64(qb.scalar_scale) / np.float64(out.scalar_scale))


define(OpDef("add", (1, 2), _float_binary, _int_binary, {}, (),
             "elementwise `a + b` with broadcasting (b a tensor or `params.const`)",
             "fixed-point rescale of both centered operands (20 fraction bits), clamped", "calibrated",
             _prepare_binary, _check_binary))
define(OpDef("mul", (1, 2), _float_binary, _int_binary, {}, (),
             "elementwise `a * b` with broadcasting (squeeze-excitation gates, scales)",
             "product of centered operands, requantized", "calibrated", _prepare_binary, _check_binary))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gelu(x, node):
    x64 = np.asarray(x, np.float64)
    if node.attrs.get("approximate", "none") == "tanh":
        return 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x64 * (1 + erf(x64 / math.sqrt(2)))


def _check_gelu(node):
    if node.attrs.get("approximate", "none") not in ("none", "tanh"):
        raise ModelError(f"{node.where()}: gelu approximate must be 'none' or 'tanh'")


def _check_clamp(node):
    lo, hi = node.attrs["min"], node.attrs["max"]
    if not lo < hi:
        raise ModelError(f"{node.where()}: clamp needs min < max, got [{lo}, {hi}]")


lut_op("relu", lambda x, n: np.maximum(x, 0), "`max(x, 0)`")
lut_op("relu6", lambda x, n: np.clip(x, 0, 6), "`min(max(x, 0), 6)`")
lut_op("clamp", lambda x, n: np.clip(x, n.attrs["min"], n.attrs["max"]), "`min(max(x, min), max)` (hardtanh, clamp)",
       {"min": float, "max": float}, _check_clamp)
lut_op("hardswish", lambda x, n: x * np.clip(x + 3, 0, 6) / 6, "`x * relu6(x + 3) / 6`")
lut_op("hardsigmoid", lambda x, n: np.clip(x + 3, 0, 6) / 6, "`relu6(x + 3) / 6`")
lut_op("sigmoid", lambda x, n: _sigmoid(x), "`1 / (1 + exp(-x))`")
lut_op("silu", lambda x, n: x * _sigmoid(x), "`x * sigmoid(x)` (swish)")
lut_op("tanh", lambda x, n: np.tanh(x), "`tanh(x)`")
lut_op("gelu", _gelu, "`x * Phi(x)` (attribute `approximate`: `none` = erf, `tanh`)", None, _check_gelu)


def _int_cast(node, xs, qin, out):
    return out.quantize(xs[0].astype(np.float32))


define(OpDef("cast", (1, 1), lambda node, xs: xs[0].astype(np.float32), _int_cast, {}, (),
             "integer input (int64: an attention mask, a count) to float32",
             "the integers quantized with the output's calibrated qparams"))


def _float_div(node, xs):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(xs[0], xs[1]).astype(np.float32)


def _int_div(node, xs, qin, out):
    a, b = qin[0].dequantize(xs[0]), qin[1].dequantize(xs[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.divide(a, b).astype(np.float32)
    # a zero divisor saturates by the dividend's sign; 0 / 0 gives the zero point
    y = np.where(np.isnan(y), np.float32(0), y)
    return out.quantize(y)


define(OpDef("div", (2, 2), _float_div, _int_div, {}, (),
             "elementwise `a / b` of two activations with broadcasting (masked means)",
             "float32 between dequantize and quantize (x / 0 saturates, 0 / 0 gives the zero point)",
             float_domain=True))
