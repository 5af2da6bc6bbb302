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


def test_version_and_help_show_defaults():
    from edgefleet import __version__
    assert edgefleet("--version").stdout.strip() == f"edgefleet {__version__}"
    help_text = edgefleet("export", "--help").stdout
    assert "(default: classifier)" in help_text and "(default: digits)" in help_text
    predict_help = " ".join(edgefleet("predict", "--help").stdout.split())
    assert "(default: the project key)" in predict_help and "(default: None)" not in predict_help
    for command in ("inspect", "predict", "bench", "simulate", "export"):
        assert "--json [FILE]" in edgefleet(command, "--help").stdout, command


def test_json_means_the_same_in_every_command(tmp_path, digits_bundle, digits_data):
    """--json alone: stdout is one JSON document (the human output goes to stderr); --json FILE: a file."""
    import json
    np.save(tmp_path / "x.npy", digits_data.x_test[:3])
    for args in (("inspect", digits_bundle), ("predict", digits_bundle, tmp_path / "x.npy"),
                 ("bench", digits_bundle, "--seconds", "0.02", "--batches", "1")):
        p = edgefleet(*args, "--json")
        doc = json.loads(p.stdout)
        assert doc, args
        edgefleet(*args, "--json", tmp_path / "out.json")
        assert json.loads((tmp_path / "out.json").read_text()) is not None
    assert len(json.loads(edgefleet("predict", digits_bundle, tmp_path / "x.npy", "--json").stdout)["predictions"]) == 3


def test_predict_named_integer_inputs_from_npz(tmp_path):
    """A bundle whose model takes token ids: .npz in, wrong dtype and out-of-vocabulary ids refused."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tok.npz", x=rng.integers(0, 40, (300, 12)))
    out = tmp_path / "enc"
    edgefleet("export", "--model", "tests.fixtures.models:token_encoder", "--data", tmp_path / "tok.npz",
              "--task", "embedding", "--targets", "onnx-int8", "--no-latency", "--out", out)
    np.savez(tmp_path / "in.npz", input=rng.integers(0, 40, (2, 12)))
    p = edgefleet("predict", out, tmp_path / "in.npz")
    assert len([ln for ln in p.stdout.splitlines() if not ln.startswith("#")]) == 2
    np.savez(tmp_path / "bad.npz", input=np.full((1, 12), 40))
    p = edgefleet("predict", out, tmp_path / "bad.npz", check=False)
    assert p.returncode == 4 and "value 40 at index [0, 0] is outside the valid range [0, 39]" in p.stderr
    np.save(tmp_path / "f.npy", np.zeros((1, 12), np.float32))
    p = edgefleet("predict", out, tmp_path / "f.npy", check=False)
    assert p.returncode == 4 and "expected dtype int64, got float32" in p.stderr
    p = edgefleet("bench", out, "--seconds", "0.02", "--batches", "1,4")
    assert p.stdout.count("onnxruntime") == 2
