"""Normalizations: ``softmax`` and ``layer_norm``."""

from __future__ import annotations

import numpy as np

from .graph import QParams
from .ops import OpDef, define

SOFTMAX_QPARAMS = QParams.per_tensor(1.0 / 256.0, -128)


def _float_softmax(node, xs):
    axis = node.attrs["axis"]
    e = np.exp(xs[0] - xs[0].max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _int_softmax(node, xs, qin, out):
    axis = node.attrs["axis"]
    xi = xs[0].astype(np.int64)
    d = xi.max(axis=axis, keepdims=True) - xi
    e = node.params["exp_table"].astype(np.int64)[d]
    total = e.sum(axis=axis, keepdims=True)
    y = (e * 512 + total) // (2 * total) - 128
    return np.clip(y, -128, 127).astype(np.int8)


def _prepare_softmax(node, qin, out, cfg):
    d = np.arange(256, dtype=np.float64)
    node.params["exp_table"] = np.round(np.exp(-d * qin[0].scalar_scale) * 65536).astype(np.int32)


#: a softmax input more than this below the calibrated maximum is an additive mask (-1e4, -inf)
MASK_GAP = 64.0
#: ... and is quantized at least this far below the maximum, where exp() is 0 in the 16-bit table
MASKED_DEPTH = 16.0


def _softmax_input_range(lo: float, hi: float, sample: np.ndarray) -> tuple[float, float]:
    """Additive attention masks put -1e4 (or -inf) into a softmax's input; its weight is 0 either way.
    The int8 range covers the unmasked values and reaches at least ``MASKED_DEPTH`` below the maximum,
    so masked values saturate at -128 where the exp table is 0, and the unmasked keep their resolution."""
    if lo >= hi - MASK_GAP:
        return lo, hi
    kept = sample[sample > hi - MASK_GAP]
    low = float(kept.min()) if kept.size else hi - MASK_GAP
    return min(low, hi - MASKED_DEPTH), hi


define(OpDef("softmax", (1, 1), _float_softmax, _int_softmax, {"axis": int}, (), "softmax over `axis`",
             "exp lookup table (16 fraction bits) of `max - x`, integer division; output scale 1/256, zero point -128; "
             "an input range wider than 64 (an additive mask) is narrowed to the unmasked values",
             lambda node, qin: SOFTMAX_QPARAMS, _prepare_softmax, input_range=_softmax_input_range, float_domain=True))


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(eps)) * gamma + beta


def _int_layer_norm(node, xs, qin, out):
    p = node.params
    xf = qin[0].dequantize(xs[0])
    return out.quantize(layer_norm(xf, p["gamma"], p["beta"], node.attrs["eps"]).astype(np.float32))


define(OpDef("layer_norm", (1, 1), lambda n, xs: layer_norm(xs[0], n.params["gamma"], n.params["beta"], n.attrs["eps"]),
             _int_layer_norm, {"eps": float}, ("gamma", "beta"), "layer norm over the last axis with `gamma`/`beta`",
             "float32 between dequantize and quantize (runtimes agree within 1 LSB)", float_domain=True))
