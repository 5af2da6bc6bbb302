"""End to end through the export pipeline: a model with an op TFLite cannot express still exports to
the other targets, and the TFLite artifact is skipped with the op and node in the report."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn


class OddPoolCNN(nn.Module):
    """Digits-sized CNN with an average pool whose padding is excluded from the count but is not TFLite's
    SAME padding: ONNX has it, TFLite cannot express it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        y = nn.functional.avg_pool2d(torch.relu(self.conv(x)), 3, stride=2, padding=1, count_include_pad=False)
        return self.fc(torch.flatten(y, 1))


def odd_pool_cnn() -> nn.Module:
    return OddPoolCNN()


@pytest.mark.slow
def test_unsupported_op_skips_only_the_tflite_artifact(tmp_path):
    from edgefleet.compress.pipeline import ExportConfig, run_export

    cfg = ExportConfig(model=f"{__name__}:odd_pool_cnn", data="digits", train_epochs=3, out=str(tmp_path / "bundle"),
                       targets=("onnx-fp32", "tflite-fp32", "tflite-int8"), measure_latency=False, max_drop=100.0)
    result = run_export(cfg)
    verdicts = {v.target: v for v in result.verdicts}
    assert verdicts["onnx-fp32"].shipped
    for target in ("tflite-fp32", "tflite-int8"):
        assert not verdicts[target].shipped
        assert "avg_pool2d" in verdicts[target].reason and "count_include_pad=False" in verdicts[target].reason
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert [a["target"] for a in manifest["artifacts"]] == ["onnx-fp32"]
    assert not list((tmp_path / "bundle").glob("*.tflite"))
    assert "count_include_pad=False" in (tmp_path / "bundle" / "report.html").read_text()
