"""Window and reduction ops: ``max_pool2d``, ``avg_pool2d``, ``mean``. Their int8 output keeps the
input's qparams."""

from __future__ import annotations

import numpy as np

from . import kernels as K
from .ops import _SEQ, OpDef, define


def _float_max(node, xs):
    a = node.attrs
    return K.windows(xs[0], a["kernel"], a["stride"], a["padding"], pad_value=-np.inf).max(axis=(-1, -2))


def _int_max(node, xs, qin, out):
    a = node.attrs
    return K.windows(xs[0], a["kernel"], a["stride"], a["padding"], pad_value=-128).max(axis=(-1, -2)).astype(np.int8)


define(OpDef("max_pool2d", (1, 1), _float_max, _int_max, {"kernel": _SEQ, "stride": _SEQ, "padding": _SEQ}, (),
             "max pooling (padding never wins)", "max of the integers; qparams of the input", "input"))


def _float_avg(node, xs):
    a, x = node.attrs, xs[0]
    s = K.windows(x, a["kernel"], a["stride"], a["padding"]).sum(axis=(-1, -2))
    if a["count_include_pad"]:
        return s / (a["kernel"][0] * a["kernel"][1])
    return s / K.pool_windows_count(x.shape[2:], a["kernel"], a["stride"], a["padding"])


def _int_avg(node, xs, qin, out):
    a, x = node.attrs, xs[0]
    zp = qin[0].scalar_zero_point
    s = K.windows(x.astype(np.int64), a["kernel"], a["stride"], a["padding"], pad_value=zp).sum(axis=(-1, -2))
    count = a["kernel"][0] * a["kernel"][1]
    if not a["count_include_pad"]:
        # padded cells hold the zero point; remove them and divide by the real count
        real = K.pool_windows_count(x.shape[2:], a["kernel"], a["stride"], a["padding"]).astype(np.int64)
        s = s - (count - real) * zp
        count = real
    return np.clip(K.rounded_div(s, count), -128, 127).astype(np.int8)


define(OpDef("avg_pool2d", (1, 1), _float_avg, _int_avg,
             {"kernel": _SEQ, "stride": _SEQ, "padding": _SEQ, "count_include_pad": bool}, (),
             "average pooling", "integer sum, division rounded half away from zero; qparams of the input", "input"))


def _float_mean(node, xs):
    return xs[0].mean(axis=tuple(node.attrs["axes"]), keepdims=node.attrs["keepdim"])


def _int_mean(node, xs, qin, out):
    a, x = node.attrs, xs[0]
    s = x.astype(np.int64).sum(axis=tuple(a["axes"]), keepdims=a["keepdim"])
    count = int(np.prod([x.shape[i] for i in a["axes"]]))
    return np.clip(K.rounded_div(s, count), -128, 127).astype(np.int8)


define(OpDef("mean", (1, 1), _float_mean, _int_mean, {"axes": _SEQ, "keepdim": bool}, (),
             "mean over `axes` (global average pooling, adaptive pooling to 1x1)",
             "as `avg_pool2d`; qparams of the input", "input"))


def _float_sum(node, xs):
    return xs[0].sum(axis=tuple(node.attrs["axes"]), keepdims=node.attrs["keepdim"])


def _int_sum(node, xs, qin, out):
    a = node.attrs
    acc = K.centered(xs[0], qin[0]).sum(axis=tuple(a["axes"]), keepdims=a["keepdim"])
    return K.finish(K.requantize(acc, node.params["multiplier"], node.params["shift"]), node, out)


def _prepare_sum(node, qin, out, cfg):
    K.multiplier_params(node, np.float64(qin[0].scalar_scale) / np.float64(out.scalar_scale))


define(OpDef("sum", (1, 1), _float_sum, _int_sum, {"axes": _SEQ, "keepdim": bool}, (),
             "sum over `axes` (masked mean pooling)",
             "int32 sum of centered values, requantized to the output's calibrated qparams", "calibrated", _prepare_sum))
