"""Layout and padding arithmetic for the TFLite exporter (pure numpy, no flatbuffers).

TFLite's convolution and pooling kernels are NHWC; edgefleet's IR is NCHW as in PyTorch. A 4-D IR
tensor may therefore be *stored* NHWC in the ``.tflite`` file: stored axis ``i`` holds IR axis
``TO_NHWC[i]``. These helpers translate shapes, axes, permutations and constants between the two;
:class:`Stored` records which tensor holds an IR value in which layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TO_NHWC = (0, 2, 3, 1)  # stored[i] = ir[TO_NHWC[i]]
TO_NCHW = (0, 3, 1, 2)


def stored_shape(ir_shape, nhwc: bool) -> tuple[int, ...]:
    """The shape written to the file: batch written as 1 (its signature is -1), NHWC-permuted if stored so."""
    shape = tuple(1 if d is None else int(d) for d in ir_shape)
    return tuple(shape[i] for i in TO_NHWC) if nhwc else shape


def stored_axis(axis: int, rank: int, nhwc: bool) -> int:
    axis = axis % rank
    return TO_NHWC.index(axis) if nhwc else axis


def stored_perm(ir_perm, nhwc_in: bool) -> tuple[int, ...]:
    """Permutation to apply to a stored tensor so that the result is the IR's ``ir_perm`` in IR layout."""
    if not nhwc_in:
        return tuple(ir_perm)
    return tuple(TO_NHWC.index(p) for p in ir_perm)


def broadcast_const(const: np.ndarray, rank: int, nhwc: bool) -> np.ndarray:
    """A constant operand of an elementwise op, re-laid-out to broadcast against a stored tensor."""
    if not nhwc or const.ndim == 0:
        return const
    c = const.reshape((1,) * (rank - const.ndim) + const.shape)
    return c.transpose(TO_NHWC)


def tflite_padding(size: int, kernel: int, stride: int, dilation: int, pad: int) -> str | None:
    """'VALID' or 'SAME' when TFLite's implicit padding gives exactly PyTorch's windows for
    symmetric padding ``pad``; ``None`` when an explicit PAD is needed.

    TFLite SAME: ``out = ceil(size / stride)``, padding before = ``total // 2``. PyTorch:
    ``out = floor((size + 2 * pad - eff) / stride) + 1``. They agree when both the output size and
    the padding before agree (the padding after never matters for the windows that exist).
    """
    eff = (kernel - 1) * dilation + 1
    out = (size + 2 * pad - eff) // stride + 1
    if pad == 0:
        return "VALID"
    same_out = math.ceil(size / stride)
    total = max((same_out - 1) * stride + eff - size, 0)
    if same_out == out and total // 2 == pad:
        return "SAME"
    return None


def nhwc_flatten_order(c: int, h: int, w: int) -> np.ndarray:
    """For a flatten of an NHWC-stored [N, C, H, W]: stored feature j holds IR feature order[j]."""
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


@dataclass
class Stored:
    """One IR value as written: a tensor index, stored NHWC or not, and (for a 2-D flatten of an NHWC
    map) the IR feature held by each stored column."""

    index: int
    nhwc: bool = False
    feature_order: np.ndarray | None = None
