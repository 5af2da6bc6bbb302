"""Precision islands on the native runtime (format version 2): float32 activations between
dequantize and quantize, float linear / add / layer_norm, against run_int on every kernel table."""

import struct

import numpy as np
import pytest

from edgefleet import UnsupportedOpError, _native
from edgefleet.compress.ir import islands
from edgefleet.runtimes.exporters.efm_export import build_efm
from edgefleet.runtimes.exporters.efm_format import DT_FLOAT32, DT_INT8, FORMAT_VERSION, INT8_VERSION, OP, OPCODES, TENSOR

from edgefleet.compress.ir import run_int
from .efm_cases import island_graph, small_islands
from .opgraphs import build, quantized, weights


@pytest.mark.parametrize("seq,d,hidden,n_out,act", [(1, 8, 16, 3, "none"), (5, 24, 37, 17, "relu6"),
                                                     (7, 33, 64, 40, "relu"), (3, 16, 5, 1, "none")])
def test_island_ops_match_reference(seq, d, hidden, n_out, act, kernels):
    qg, x, _ = island_graph(seq, d, hidden, n_out, seed=seq * 7 + d, act=act)
    ref = run_int(qg, x, raw=True)["y"]
    got = _native.Model.from_bytes(build_efm(qg), kernels=kernels).run([x], raw=True)[0]
    assert got.dtype == ref.dtype == np.float32  # an island's graph output stays float32, as run_int
    # float32 summation order differs from numpy's BLAS: the int8 tensor n may differ by 1 LSB, so y by
    # about one LSB of its calibrated grid
    lsb = qg.qparams["y"].scalar_scale
    assert np.abs(got - ref).max() <= 1.5 * lsb, np.abs(got - ref).max() / lsb


def test_islands_write_version_2_and_pure_int8_stays_version_1():
    qg, _, plain = island_graph(2, 8, 8, 4, seed=1)
    assert int.from_bytes(build_efm(qg)[4:8], "little") == FORMAT_VERSION == 2
    assert int.from_bytes(build_efm(plain)[4:8], "little") == INT8_VERSION == 1
    ops = _native.Model.from_bytes(build_efm(qg)).ops
    # x is dequantized once for its two island readers; a and r never leave float32
    assert ops == ["dequantize", "linear_f32", "add_f32", "layer_norm_f32", "quantize", "linear", "dequantize",
                   "linear_f32"]


def test_threads_give_identical_bytes():
    qg, x, _ = island_graph(32, 64, 256, 96, seed=3)
    data = build_efm(qg)
    one = _native.Model.from_bytes(data, threads=1).run([x], raw=True)[0]
    many = _native.Model.from_bytes(data, threads=3).run([x], raw=True)[0]
    np.testing.assert_array_equal(one, many)


def test_island_op_without_a_float_kernel_is_refused_by_name():
    rng = np.random.default_rng(0)
    nodes = [("linear", ["x"], "a", {"act": "none"}, {"weight": weights(rng, 8, 8)}),
             ("softmax", ["a"], "y", {"axis": -1}, {})]
    qg = quantized(build((8,), nodes, "y"), rng, (8,))
    with pytest.raises(UnsupportedOpError, match="op 'softmax' runs in a float32 precision island"):
        build_efm(islands.mark(qg, {"n1": {"group": "softmax"}}))


def _records(data: bytes):
    tensors_off, ops_off = struct.unpack_from("<QQ", data, 48)
    n_tensors, n_ops = struct.unpack_from("<II", data, 32)
    return (np.frombuffer(data, TENSOR, n_tensors, tensors_off), tensors_off,
            np.frombuffer(data, OP, n_ops, ops_off), ops_off)


def test_malformed_float_records_are_refused_by_name():
    data, _ = small_islands()
    tensors, tensors_off, ops, ops_off = _records(data)

    def patched(fmt, offset, value):
        bad = bytearray(data)
        struct.pack_into(fmt, bad, offset, value)
        return bytes(bad)

    # an older-format header on a file with float32 tensors (what a version 1 loader refuses by version)
    with pytest.raises(_native.NativeError, match="float32 activation in a version 1 file"):
        _native.Model.from_bytes(patched("<I", 4, INT8_VERSION), verify=False)
    f32 = int(np.flatnonzero(tensors["dtype"] == DT_FLOAT32)[0])
    with pytest.raises(_native.NativeError, match="op must (read|write) (a )?float32 activation"):
        _native.Model.from_bytes(patched("<I", tensors_off + f32 * TENSOR.itemsize + 4, DT_INT8), verify=False)
    lin = int(np.flatnonzero(ops["opcode"] == OPCODES["linear_f32"])[0])
    attr = ops_off + lin * OP.itemsize + OP.fields["attr"][1]
    with pytest.raises(_native.NativeError, match="linear_f32: unknown activation"):
        _native.Model.from_bytes(patched("<i", attr + 8, 7), verify=False)
    with pytest.raises(_native.NativeError, match="linear_f32: shapes do not match"):
        _native.Model.from_bytes(patched("<i", attr, 1000), verify=False)
    deq = int(np.flatnonzero(ops["opcode"] == OPCODES["dequantize"])[0])
    with pytest.raises(_native.NativeError, match="op must write an int8 activation"):  # dequantize -> quantize
        _native.Model.from_bytes(patched("<I", ops_off + deq * OP.itemsize, OPCODES["quantize"]), verify=False)
