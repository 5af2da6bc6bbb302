"""End to end through the export pipeline: a model with an op TFLite cannot express still exports to
the other targets, and the TFLite artifact is skipped with the op and node in the report."""

from __future__ import annotations

import json

import pytest
from torch import nn


def grouped_cnn() -> nn.Module:
    """Digits-sized CNN whose second convolution is grouped (groups=2): ONNX has it, TFLite has no builtin."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 64, 10))


@pytest.mark.slow
def test_unsupported_op_skips_only_the_tflite_artifact(tmp_path):
    from edgefleet.compress.pipeline import ExportConfig, run_export

    cfg = ExportConfig(model=f"{__name__}:grouped_cnn", data="digits", train_epochs=3, out=str(tmp_path / "bundle"),
                       targets=("onnx-int8", "tflite-fp32", "tflite-int8"), measure_latency=False, max_drop=100.0)
    result = run_export(cfg)
    verdicts = {v.target: v for v in result.verdicts}
    assert verdicts["onnx-int8"].shipped
    for target in ("tflite-fp32", "tflite-int8"):
        assert not verdicts[target].shipped
        assert "conv2d" in verdicts[target].reason and "groups=2" in verdicts[target].reason
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert [a["target"] for a in manifest["artifacts"]] == ["onnx-int8"]
    assert not list((tmp_path / "bundle").glob("*.tflite"))
    assert "groups=2" in (tmp_path / "bundle" / "report.html").read_text()
