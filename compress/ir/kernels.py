"""numpy building blocks shared by the float and the integer reference interpreters."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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
