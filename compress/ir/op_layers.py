"""Ops with weights or a reduction over two operands: ``linear``, ``conv2d``, ``matmul``, ``embedding``."""

from __future__ import annotations

import numpy as np

from edgefleet._errors import DataError, ModelError

from . import kernels as K
from .ops import _SEQ, OpDef, define

ACTIVATIONS = ("none", "relu", "relu6")


def _act(y: np.ndarray, act: str) -> np.ndarray:
    if act == "relu":
        return np.maximum(y, 0)
    if act == "relu6":
        return np.clip(y, 0, 6)
    return y


def _check_act(node):
    if node.attrs.get("act", "none") not in ACTIVATIONS:
        raise ModelError(f"{node.where()}: unknown fused activation {node.attrs['act']!r}")


def _channel_shape(node) -> list[int]:
    return [-1] if node.op == "linear" else [1, -1, 1, 1]


def _float_weighted(node, xs):
    x, p, a = xs[0], node.params, node.attrs
    if node.op == "linear":
        y = x @ p["weight"].T
    else:
        y = K.conv2d(x, p["weight"], a["stride"], a["padding"], a["dilation"], a["groups"])
    if "bias" in p:
        y = y + p["bias"].reshape(_channel_shape(node))
    return _act(y.astype(np.float32), a["act"])


def _int_weighted(node, xs, qin, out):
    p, a = node.params, node.attrs
    xc = K.centered(xs[0], qin[0]).astype(np.float64)
    w = p["weight_q"].astype(np.float64)
    if node.op == "linear":
        acc = np.rint(xc @ w.T).astype(np.int64)
    else:
        acc = np.rint(K.conv2d(xc, w, a["stride"], a["padding"], a["dilation"], a["groups"])).astype(np.int64)
    cshape = _channel_shape(node)
    if "bias_q" in p:
        acc = acc + p["bias_q"].astype(np.int64).reshape(cshape)
    return K.finish(K.requantize(acc, p["multiplier"].reshape(cshape), p["shift"].reshape(cshape)), node, out)


def _prepare_weighted(node, qin, out, cfg):
    p = node.params
    wq = K.weight_qparams(p["weight"], cfg.weight_qmax)
    p["weight_q"] = wq.quantize(p["weight"])
    p["weight_scale"] = wq.scale
    bias_scale = (np.float32(qin[0].scalar_scale) * wq.scale).astype(np.float32)
    p["bias_scale"] = bias_scale
    bias = p.get("bias", np.zeros(wq.scale.shape, np.float32))
    p["bias_q"] = np.clip(np.round(bias.astype(np.float64) / bias_scale.astype(np.float64)),
                          -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
    K.multiplier_params(node, bias_scale.astype(np.float64) / np.float64(out.scalar_scale))
    lo, hi = out.qmin, out.qmax
    if node.attrs["act"] in ("relu", "relu6"):
        lo = max(lo, out.scalar_zero_point)
    if node.attrs["act"] == "relu6":
        hi = min(hi, out.scalar_zero_point + int(round(6.0 / out.scalar_scale)))
    node.attrs["clamp"] = (int(lo), int(hi))


_INT_WEIGHTED = ("int32 accumulate of `(x - zx) * Wq` plus `bias_q`, requantized per output channel, "
                 "clamped by `act`; weights per-channel symmetric 7-bit (or 8-bit)")
define(OpDef("linear", (1, 1), _float_weighted, _int_weighted, {"act": str}, ("weight",),
             "`x @ W.T + b` over the last axis, then `act` (none/relu/relu6)", _INT_WEIGHTED,
             "calibrated", _prepare_weighted, _check_act))
define(OpDef("conv2d", (1, 1), _float_weighted, _int_weighted,
             {"stride": _SEQ, "padding": _SEQ, "dilation": _SEQ, "groups": int, "act": str}, ("weight",),
             "2-D convolution (stride, symmetric padding, dilation, groups incl. depthwise), then `act`",
             _INT_WEIGHTED, "calibrated", _prepare_weighted, _check_act))


def _int_matmul(node, xs, qin, out):
    acc = np.rint(K.centered(xs[0], qin[0]).astype(np.float64) @ K.centered(xs[1], qin[1]).astype(np.float64))
    return K.finish(K.requantize(acc.astype(np.int64), node.params["multiplier"], node.params["shift"]), node, out)


def _prepare_matmul(node, qin, out, cfg):
    K.multiplier_params(node, np.float64(qin[0].scalar_scale) * np.float64(qin[1].scalar_scale) / np.float64(out.scalar_scale))


define(OpDef("matmul", (2, 2), lambda node, xs: xs[0] @ xs[1], _int_matmul, {}, (),
             "batched `a @ b` of two activations (equal batch dims)", "int32 accumulate of centered operands, requantize",
             "calibrated", _prepare_matmul, float_domain=True))


def _float_embedding(node, xs):
    return node.params["weight"][_indices(node, xs[0], len(node.params["weight"]))]


def _indices(node, x: np.ndarray, rows: int) -> np.ndarray:
    if x.dtype.kind not in "iu":
        raise DataError(f"{node.where()}: embedding indices must be integers (int64), got {x.dtype}")
    if x.size and (x.min() < 0 or x.max() >= rows):
        bad = int(x.min()) if x.min() < 0 else int(x.max())
        raise DataError(f"{node.where()}: embedding index {bad} is out of range [0, {rows}) (vocabulary size {rows})")
    return x


def _int_embedding(node, xs, qin, out):
    return node.params["weight_q"][_indices(node, xs[0], len(node.params["weight_q"]))]


def _embedding_qparams(node, qin):
    w = node.params["weight"]
    return K.range_qparams(float(w.min()), float(w.max()))


def _prepare_embedding(node, qin, out, cfg):
    node.params["weight_q"] = out.quantize(node.params["weight"])


define(OpDef("embedding", (1, 1), _float_embedding, _int_embedding, {}, ("weight",),
             "gather rows of `weight` by int64 indices (an index outside the table is a DataError)",
             "the table quantized per tensor over its own range; gather", _embedding_qparams, _prepare_embedding))
