"""The real-models benchmark's smoke run: one family, every variant measured and written to JSON."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("edgefleet._native", reason="the native extension is not built")


def test_real_models_smoke_run_writes_every_variant(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/real_models.py", "--smoke", "--models", "resnet18",
                           "--train-samples", "64", "--test-samples", "32", "--rounds", "1", "--seconds", "0.05", "--out", str(tmp_path / "r.json"),
                           "--teachers", str(tmp_path / "teachers")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "native kernel table:" in proc.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    variants = {r["variant"]: r for r in doc["results"] if r["model"] == "resnet18"}
    assert set(variants) == {"torch fp32", "ort fp32", "ort quantize_static", "edgefleet onnx-int8",
                             "edgefleet tflite-int8", "edgefleet efm-int8"}
    for name, r in variants.items():
        assert r["latency"]["batch1"]["calls"] >= 1 and r["latency"]["batch32"]["median_ms"] > 0, name
    assert list((tmp_path / "teachers").glob("resnet18-*.pt"))  # the trained teacher is cached for the next run
    ours = variants["edgefleet efm-int8"]
    assert ours["bytes"] < 0.3 * variants["ort fp32"]["bytes"]
    assert doc["machine"]["cpu_flags"] is not None and doc["native_kernels"]
