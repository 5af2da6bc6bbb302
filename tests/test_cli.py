"""The CLI as a user runs it: real subprocesses, exit codes and one-line errors."""

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO


def edgefleet(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "edgefleet", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_export_inspect_predict_bench(tmp_path, digits_teacher_weights, digits_data):
    out = tmp_path / "digits"
    p = edgefleet("export", "--weights", digits_teacher_weights, "--out", out, "--targets", "onnx-fp32,onnx-int8",
                  "--json", tmp_path / "r.json")
    assert "onnx-int8" in p.stdout and "fallback chain" in p.stdout
    assert (tmp_path / "r.json").exists()
    p = edgefleet("inspect", out)
    assert "onnx-int8" in p.stdout and "fallback chain: onnx-int8 > onnx-fp32" in p.stdout
    np.save(tmp_path / "x.npy", digits_data.x_test[:4])
    p = edgefleet("predict", out, tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    rows = [line.split("\t") for line in p.stdout.splitlines() if not line.startswith("#")]
    assert [r[1] for r in rows] == [str(v) for v in np.load(tmp_path / "y.npy").argmax(1)]
    assert np.mean([int(r[1]) == y for r, y in zip(rows, digits_data.y_test[:4])]) >= 0.75
    np.save(tmp_path / "one.npy", digits_data.x_test[0])  # one sample without the batch axis
    assert len(edgefleet("predict", out, tmp_path / "one.npy", "--target", "onnx-fp32").stdout.splitlines()) == 2
    p = edgefleet("bench", out, "--seconds", "0.05", "--json", tmp_path / "b.json")
    assert p.stdout.count("onnxruntime") == 4


@pytest.mark.parametrize("args, code, message", [
    (["export", "--recipe", "nope.toml"], 2, "no such file or built-in recipe"),
    (["export", "--model", "tests.fixtures.models:raises"], 3, "raised ValueError"),
    (["export", "--model", "tests.fixtures.models:two_unsupported"], 3, "aten.leaky_relu at"),
    (["export", "--data", "mnist-9000"], 4, "neither a built-in data set"),
    (["export", "--prune", "0.5", "--recipe", "small"], 2, "not both"),
    (["inspect", "/nonexistent"], 5, "not a bundle"),
])
def test_errors_are_one_line_with_exit_codes(args, code, message):
    p = edgefleet(*args, check=False)
    assert p.returncode == code, p.stderr
    assert message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr


def test_predict_wrong_shape(tmp_path, digits_bundle):
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 8, 8), np.float32))
    p = edgefleet("predict", digits_bundle, tmp_path / "bad.npy", check=False)
    assert p.returncode == 4 and "expected shape [N, 1, 8, 8], got [2, 3, 8, 8]" in p.stderr
