"""numpy building blocks shared by the op definitions: windows, convolution, integer rounding and
requantization, and the quantization parameters of ranges and weights."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .graph import QParams

ADD_SHIFT = 20  # fixed-point fraction bits of add/concat operand multipliers


def windows(x: np.ndarray, kernel, stride, padding, dilation=(1, 1), pad_value=0.0) -> np.ndarray:
    """NCHW -> N, C, Ho, Wo, kh, kw view of the (padded) sliding windows."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    v = sliding_window_view(x, (eh, ew), axis=(2, 3))
    return v[:, :, ::sh, ::sw, ::dh, ::dw]


def conv2d(x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups: int, pad_value=0.0) -> np.ndarray:
    """Grouped 2-D convolution without bias in x's dtype (use float64 for exact integer sums)."""
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    win = windows(x, (kh, kw), stride, padding, dilation, pad_value)  # N,C,Ho,Wo,kh,kw
    ho, wo = win.shape[2:4]
    win = win.reshape(n, groups, cg, ho, wo, kh, kw)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    if cg == 1 and o == groups:  # depthwise: no reduction over channels
        out = np.einsum("nghwij,gij->nghw", win[:, :, 0], wg[:, 0, 0])
        return out
    out = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return out.reshape(n, o, ho, wo)


def pool_windows_count(shape_hw, kernel, stride, padding) -> np.ndarray:
    """Number of non-padding elements in each pooling window (for count_include_pad=False)."""
    ones = np.ones((1, 1, *shape_hw), np.float64)
    return windows(ones, kernel, stride, padding).sum(axis=(-1, -2))[0, 0]


def rounded_div(num: np.ndarray, den) -> np.ndarray:
    """Integer division rounded half away from zero (num int64, den positive int or array)."""
    den = np.asarray(den, np.int64)
    half = den // 2
    return np.where(num >= 0, (num + half) // den, -((-num + half) // den))


def quantize_multiplier(m) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers -> (M, n) with ``m ~= M * 2**-n``, ``2**30 <= M < 2**31`` (int64 arrays)."""
    m = np.atleast_1d(np.asarray(m, np.float64))
    if (m < 0).any():
        raise ValueError("requantization multipliers must be non-negative")
    mant, exp = np.frexp(m)
    mult = np.round(mant * (1 << 31)).astype(np.int64)
    carry = mult == (1 << 31)
    mult = np.where(carry, mult // 2, mult)
    exp = exp + carry
    shift = (31 - exp).astype(np.int64)
    tiny = (m == 0) | (shift > 62)
    mult = np.where(tiny, 0, mult)
    shift = np.where(tiny, 1, shift)
    if (shift < 1).any():
        raise ValueError(f"requantization multiplier too large: {m.max()}")
    return mult, shift


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``(acc * M + 2**(n-1)) >> n`` in int64 (rounds half up). mult/shift broadcast against acc."""
    acc = acc.astype(np.int64)
    return (acc * mult + (np.int64(1) << (shift - 1))) >> shift


def channel_shape(ndim: int, axis: int) -> list[int]:
    shape = [1] * ndim
    shape[axis] = -1
    return shape


def range_qparams(lo: float, hi: float) -> QParams:
    """Asymmetric int8 qparams covering [lo, hi] (widened to include 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = np.float32((hi - lo) / 255.0)
    zp = int(np.clip(np.round(-128 - lo / float(scale)), -128, 127))
    return QParams.per_tensor(float(scale), zp)


def weight_qparams(w: np.ndarray, qmax: int) -> QParams:
    """Per-output-channel (axis 0) symmetric qparams with ``|q| <= qmax``."""
    absmax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1).astype(np.float64)
    scale = np.where(absmax > 0, absmax / qmax, 1.0).astype(np.float32)
    return QParams(scale, np.zeros(w.shape[0], np.int32), axis=0, qmin=-qmax, qmax=qmax)


def centered(q: np.ndarray, qp: QParams) -> np.ndarray:
    """int8 values minus their zero point, as int64."""
    return q.astype(np.int64) - qp.scalar_zero_point


def finish(acc: np.ndarray, node, out: QParams) -> np.ndarray:
    """Add the output zero point and clamp (to the node's fused-activation bounds, if any)."""
    lo, hi = node.attrs.get("clamp", (out.qmin, out.qmax))
    return np.clip(acc + out.scalar_zero_point, lo, hi).astype(np.int8)


def multiplier_params(node, real_multiplier) -> None:
    node.params["multiplier"], node.params["shift"] = quantize_multiplier(real_multiplier)
