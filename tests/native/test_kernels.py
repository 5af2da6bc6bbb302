"""The GEMM kernel entry point against numpy's int64 arithmetic: both kernel tables, the 7-bit
vpmaddubsw path, extreme operands, exact-half rounding and saturation."""

import numpy as np
import pytest

from edgefleet import _native
from edgefleet.compress.ir import kernels as K
from edgefleet.runtimes.exporters.efm_export import pack_weights

from .conftest import PATHS


def reference(a, w, bias, mult, shift, zo, lo, hi):
    acc = (a.astype(np.int64) + 128) @ w.astype(np.int64).T + bias
    return np.clip(K.requantize(acc, mult.astype(np.int64), shift.astype(np.int64)) + zo, lo, hi).astype(np.int8)


def run(a, w, bias, mult, shift, zo, lo, hi, kernel):
    kp = (w.shape[1] + 3) // 4 * 4
    ap = np.zeros((a.shape[0], kp), np.int8)
    ap[:, :a.shape[1]] = a
    return _native.gemm(ap, pack_weights(w), w.shape[0], bias, mult, shift, zo, lo, hi, kernel=kernel)


KERNELS = [*PATHS, *(f"{p}-w7" for p in PATHS if p != "portable")]


# "large": 64-bit requantization; "small": int32 lanes, short sequence (multipliers < 1);
# "small, m>1": int32 lanes, general sequence
@pytest.mark.parametrize("small_bias", ["large", "small", "small, m>1"])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (4, 32, 8), (5, 37, 19), (9, 256, 17), (3, 1024, 64)])
def test_gemm_matches_int64_numpy(m, k, n, kernel, small_bias):
    rng = np.random.default_rng(m * k * n)
    qmax = 63 if kernel == "avx2-w7" else 127  # vpdpbusd (avxvnni) is exact for 8-bit weights
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    w = rng.integers(-qmax, qmax + 1, (n, k)).astype(np.int8)
    a[0, :] = 127  # the extremes: every product at its largest magnitude
    w[0, :] = -qmax
    bias = rng.integers(-2 ** 31, 2 ** 31, n).astype(np.int64)
    mult, shift = K.quantize_multiplier(rng.uniform(1e-5, 1e-2, n))
    if small_bias != "large":
        bias //= 2 ** 12
    if small_bias == "small, m>1":
        mult, shift = K.quantize_multiplier(rng.uniform(1e-4, 4.0, n))  # some multipliers above 1
    args = (bias, mult.astype(np.int32), shift.astype(np.int32), -3, -128, 127)
    np.testing.assert_array_equal(run(a, w, *args, kernel), reference(a, w, *args))


@pytest.mark.parametrize("kernel", KERNELS)
def test_requantization_rounds_exact_halves_up(kernel):
    """M = 2^30, shift 31 halves the accumulator: odd sums land exactly on .5 and round up."""
    a = np.full((1, 4), -128 + 1, np.int8)  # (a + 128) = 1
    w = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [-1, 0, 0, 0], [-1, -1, -1, 0]], np.int8)
    bias = np.array([0, 0, 0, 0], np.int64)
    mult, shift = np.full(4, 1 << 30, np.int32), np.full(4, 31, np.int32)
    got = run(a, w, bias, mult, shift, 0, -128, 127, kernel)
    np.testing.assert_array_equal(got[0], [1, 2, 0, -1])  # 0.5 -> 1, 1.5 -> 2, -0.5 -> 0, -1.5 -> -1
    np.testing.assert_array_equal(got, reference(a, w, bias, mult, shift, 0, -128, 127))


@pytest.mark.skipif("avx2" not in PATHS, reason="no AVX2 on this CPU")
def test_why_weights_are_7_bit():
    """vpmaddubsw saturates int16 pair sums: with 8-bit weights the AVX2 7-bit kernel is wrong, which
    is why the loader takes it only when every |w| <= 63 (the general kernel stays exact)."""
    a = np.full((1, 8), 127, np.int8)             # u8 255
    w = np.full((1, 8), 127, np.int8)             # 255*127*2 = 64770 > 32767
    args = (np.zeros(1, np.int64), np.array([1 << 30], np.int32), np.array([43], np.int32), 0, -128, 127)
    exact = reference(a, w, *args)
    assert exact[0, 0] == 32  # 8 * 255 * 127 / 2^13, far from the clamp (saturated sums give 16)
    assert (run(a, w, *args, "avx2") == exact).all()
    assert (run(a, w, *args, "avx2-w7") != exact).all()
    if "avxvnni" in PATHS:
        assert (run(a, w, *args, "avxvnni-w7") == exact).all()


def test_gemm_entry_point_checks_its_arguments():
    with pytest.raises(_native.NativeError, match="multiple of 4"):
        _native.gemm(np.zeros((1, 3), np.int8), np.zeros(24, np.int8), 1, [0], [1], [1], 0, -128, 127)
    with pytest.raises(_native.NativeError, match="packed weights"):
        _native.gemm(np.zeros((1, 4), np.int8), np.zeros(8, np.int8), 1, [0], [1], [1], 0, -128, 127)
    with pytest.raises(_native.NativeError, match="shift"):
        _native.gemm(np.zeros((1, 4), np.int8), np.zeros(32, np.int8), 1, [0], [1], [0], 0, -128, 127)
