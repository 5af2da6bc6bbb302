"""Ops that move or select values without arithmetic (``reshape``, ``transpose``, ``pad``, ``slice``)
and ``concat``. All but ``concat`` keep the input's qparams."""

from __future__ import annotations

import numpy as np

from edgefleet._errors import ModelError

from . import kernels as K
from .ops import _SEQ, OpDef, define


def _reshape(node, xs, *_):
    x = xs[0]
    return x.reshape((x.shape[0], *node.attrs["shape"][1:]))


define(OpDef("reshape", (1, 1), _reshape, _reshape, {"shape": _SEQ}, (),
             "reshape keeping the batch axis (`shape[0] == -1`): view, flatten, squeeze, unsqueeze",
             "unchanged integers", "input"))


def _transpose(node, xs, *_):
    return xs[0].transpose(node.attrs["perm"])


define(OpDef("transpose", (1, 1), _transpose, _transpose, {"perm": _SEQ}, (),
           "permute axes, batch axis kept (`perm[0] == 0`)", "unchanged integers", "input"))


def _pad_widths(node, ndim):
    pads = node.attrs["pads"]
    return [(int(pads[2 * i]), int(pads[2 * i + 1])) for i in range(ndim)]


def _check_pad(node):
    pads = node.attrs["pads"]
    if len(pads) % 2 or any(int(p) < 0 for p in pads) or any(pads[:2]):
        raise ModelError(f"{node.where()}: pad needs non-negative (before, after) pairs per axis and none on the "
                         f"batch axis, got {list(pads)}")


def _float_pad(node, xs):
    return np.pad(xs[0], _pad_widths(node, xs[0].ndim), constant_values=np.float32(node.attrs["value"]))


def _int_pad(node, xs, qin, out):
    fill = out.quantize(np.float32(node.attrs["value"]).reshape(()))
    return np.pad(xs[0], _pad_widths(node, xs[0].ndim), constant_values=fill)


define(OpDef("pad", (1, 1), _float_pad, _int_pad, {"pads": _SEQ, "value": float}, (),
             "constant padding, asymmetric: `pads` = (before, after) per axis (TF 'same' padding, ZeroPad2d)",
             "pads with the value quantized by the input's qparams (the zero point for 0)", "input", None, _check_pad))


def _check_slice(node):
    a = node.attrs
    if a["axis"] < 1 or a["step"] < 1 or not 0 <= a["start"] <= a["stop"]:
        raise ModelError(f"{node.where()}: slice needs axis >= 1, step >= 1 and 0 <= start <= stop, got "
                         f"axis {a['axis']} [{a['start']}:{a['stop']}:{a['step']}]")


def _slice(node, xs, *_):
    a, x = node.attrs, xs[0]
    index = [slice(None)] * x.ndim
    index[a["axis"]] = slice(a["start"], a["stop"], a["step"])
    return x[tuple(index)]


define(OpDef("slice", (1, 1), _slice, _slice, {"axis": int, "start": int, "stop": int, "step": int}, (),
             "`x[..., start:stop:step, ...]` on one axis (>= 1): slice, narrow, select, split, chunk",
             "unchanged integers", "input", None, _check_slice))


def _int_concat(node, xs, qin, out):
    parts = []
    for xi, qi, mult in zip(xs, qin, node.params["mults"]):
        if qi.same_as(out):
            parts.append(xi.astype(np.int64))
        else:
            r = (K.centered(xi, qi) * int(mult) + (1 << (K.ADD_SHIFT - 1))) >> K.ADD_SHIFT
            parts.append(np.clip(r + out.scalar_zero_point, -128, 127))
    return np.concatenate(parts, axis=node.attrs["axis"]).astype(np.int8)


def _prepare_concat(node, qin, out, cfg):
    node.params["mults"] = np.array([round(q.scalar_scale / out.scalar_scale * (1 << K.ADD_SHIFT)) for q in qin], np.int64)


define(OpDef("concat", (1, 64), lambda node, xs: np.concatenate(xs, axis=node.attrs["axis"]), _int_concat,
             {"axis": int}, (), "concatenate along `axis` (>= 1)",
             "inputs rescaled to the output's qparams (20 fraction bits) unless already equal", "calibrated",
             _prepare_concat))
