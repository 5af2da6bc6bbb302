"""Bad input never crashes: truncated, corrupted or future-version files and wrong inputs raise a
Python exception whose message says what is wrong."""

import struct

import numpy as np
import pytest

from edgefleet import DataError, RuntimeBackendError, _native, runtimes
from edgefleet.compress.ir import run_int

from .efm_cases import small_cnn, small_encoder


def test_valid_file_loads_and_introspects():
    data, qg = small_cnn()
    m = _native.Model.from_bytes(data)
    assert m.version == 1
    assert m.ops == ["conv2d", "depthwise_conv2d", "add", "avg_pool2d", "reshape", "linear", "softmax"]
    assert m.inputs[0]["shape"] == (None, 2, 4, 4) and m.inputs[0]["dtype"] == "float32"
    assert m.arena_bytes(8) > m.arena_bytes(1) > 0
    x = np.random.default_rng(1).standard_normal((3, 2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(m.run([x], raw=True)[0], run_int(qg, x, raw=True)["y"])


def test_transformer_ops_file_loads_and_matches_the_reference():
    data, qg = small_encoder()
    m = _native.Model.from_bytes(data)
    assert "matmul" in m.ops and "embedding" in m.ops and m.inputs[0]["dtype"] == "int64"
    idx = np.random.default_rng(2).integers(0, 20, (3, 6)).astype(np.int64)
    ref = run_int(qg, idx, raw=True)["y"].astype(int)
    assert np.abs(m.run([idx], raw=True)[0].astype(int) - ref).max() <= 1  # layer norm: 1 LSB


@pytest.mark.parametrize("cut", [0, 10, 127, 128, 500, -1])
def test_truncated_file(cut):
    data, _ = small_cnn()
    with pytest.raises(_native.NativeError, match="truncated|not an .efm"):
        _native.Model.from_bytes(data[:cut] if cut >= 0 else data[:-1])


def test_bad_magic():
    data, _ = small_cnn()
    with pytest.raises(_native.NativeError, match="bad magic"):
        _native.Model.from_bytes(b"ONNX" + data[4:])


def test_version_mismatch_names_both_versions():
    data, _ = small_cnn()
    future = data[:4] + struct.pack("<I", 3) + data[8:]
    with pytest.raises(_native.NativeError, match="unsupported .efm version 3 .*versions 1 and 2"):
        _native.Model.from_bytes(future)


def test_flipped_byte_fails_the_checksum():
    data, _ = small_cnn()
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x40
    with pytest.raises(_native.NativeError, match="checksum mismatch"):
        _native.Model.from_bytes(bytes(bad))


def test_validators_catch_corruption_without_the_checksum():
    """With the checksum skipped, the structural checks still refuse an impossible file."""
    data, _ = small_cnn()
    hdr = bytearray(data)
    struct.pack_into("<I", hdr, 28, 10 ** 6)  # n_ops
    with pytest.raises(_native.NativeError, match="op count exceeds the file"):
        _native.Model.from_bytes(bytes(hdr), verify=False)
    hdr = bytearray(data)
    struct.pack_into("<Q", hdr, 48, len(data) - 8)  # tensor table at the very end
    with pytest.raises(_native.NativeError, match="section table points outside the file"):
        _native.Model.from_bytes(bytes(hdr), verify=False)
    ops_off = struct.unpack_from("<Q", data, 56)[0]
    bad = bytearray(data)
    struct.pack_into("<I", bad, ops_off, 99)  # first opcode
    with pytest.raises(_native.NativeError, match="unknown opcode 99"):
        _native.Model.from_bytes(bytes(bad), verify=False)
    bad = bytearray(data)
    struct.pack_into("<i", bad, ops_off + 16 + 4 * 2, 7)  # conv kernel height 3 -> 7 (larger than the input)
    with pytest.raises(_native.NativeError, match="output shape does not match"):
        _native.Model.from_bytes(bytes(bad), verify=False)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.efm").write_bytes(b"")
    with pytest.raises(_native.NativeError, match="truncated"):
        _native.Model(str(tmp_path / "empty.efm"))
    with pytest.raises(FileNotFoundError):
        _native.Model(str(tmp_path / "missing.efm"))


def test_runtime_backend_translates_errors(tmp_path):
    data, _ = small_cnn()
    bad = tmp_path / "bad.efm"
    bad.write_bytes(data[:-7])
    with pytest.raises(RuntimeBackendError, match="native.*truncated"):
        runtimes.load("native", bad)
    good = tmp_path / "good.efm"
    good.write_bytes(data)
    rt = runtimes.load("native", good)
    x = np.zeros((2, 2, 4, 4), np.float32)
    with pytest.raises(DataError, match=r"expected shape \[N, 2, 4, 4\]"):
        rt.run(x[:, :1])
    with pytest.raises(DataError, match="expected dtype"):
        rt.run(x.astype(np.complex64))
    with pytest.raises(DataError, match="NaN"):
        rt.run(np.full_like(x, np.nan))
    with pytest.raises(RuntimeBackendError, match="batch is empty"):  # the base class wraps _run's errors
        rt.run(x[:0])


def test_binding_checks_inputs_itself():
    data, _ = small_cnn()
    m = _native.Model.from_bytes(data)
    x = np.zeros((2, 2, 4, 4), np.float32)
    with pytest.raises(_native.NativeError, match="expected dtype float32"):
        m.run([x.astype(np.float64)])
    with pytest.raises(_native.NativeError, match=r"expected shape \['N', 2, 4, 4\], got \[2, 2, 4\]"):
        m.run([x[..., 0]])
    with pytest.raises(_native.NativeError, match="1 inputs, got 2"):
        m.run([x, x])
    with pytest.raises(_native.NativeError, match="batch size must be at least 1"):
        m.run([x[:0]])


def test_unavailable_extension_is_reported_not_raised(monkeypatch):
    import builtins

    from edgefleet.runtimes.backends import native as backend

    real_import = builtins.__import__

    def no_native(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "edgefleet" and fromlist and "_native" in fromlist:
            raise ImportError("No module named 'edgefleet._native'")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_native)
    reason = runtimes.get("native").unavailable_reason()
    assert reason and "edgefleet._native is not built" in reason
    assert "native" not in runtimes.available()
    del backend
