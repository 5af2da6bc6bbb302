"""Bad input to the TFLite exporter: a clear error naming what and where, of a class the export
pipeline catches per target (so that artifact is skipped and the rest of the bundle still exports)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from _tfl_helpers import Built
from edgefleet import ConfigError, EdgefleetError, ModelError, UnsupportedOpError
from edgefleet.compress.capture import capture
from edgefleet.runtimes import exporters


class OddAvgPool(nn.Module):
    """avg_pool2d whose padding excludes itself from the count but is not TFLite's SAME padding."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)

    def forward(self, x):
        return nn.functional.avg_pool2d(self.conv(x), 3, stride=2, padding=1, count_include_pad=False)


@pytest.mark.parametrize("target", ["tflite-fp32", "tflite-int8"])
def test_unsupported_op_names_the_op_and_the_node(target, tmp_path):
    torch.manual_seed(0)
    b = Built(OddAvgPool(), (4, 8, 8))
    graph = b.qgraph if target == "tflite-int8" else b.graph
    path = tmp_path / "m.tflite"
    with pytest.raises(UnsupportedOpError) as e:
        exporters.get(target)().export(graph, path)
    msg = str(e.value)
    assert "avg_pool2d" in msg and "count_include_pad=False" in msg and "'avg_pool2d_1'" in msg
    assert "test_tflite_bad_input.py:" in msg  # the user's source line
    assert isinstance(e.value, EdgefleetError)  # what the pipeline catches to skip this artifact
    assert not path.exists()  # nothing half-written


def test_dynamic_axis_beyond_batch_is_refused(tmp_path):
    graph = capture(nn.Sequential(nn.Linear(16, 8)).eval(), (10, 16))
    graph.values[graph.nodes[0].outputs[0]].shape = (None, None, 8)  # e.g. a dynamic sequence length
    with pytest.raises(ModelError) as e:
        exporters.get("tflite-fp32")().export(graph, tmp_path / "m.tflite")
    msg = str(e.value)
    assert f"{graph.nodes[0].outputs[0]!r}" in msg and "dynamic axis 1" in msg and "batch" in msg


def test_int8_of_an_unquantized_graph_is_a_config_error(tmp_path):
    graph = capture(nn.Sequential(nn.Linear(16, 8)).eval(), (16,))
    with pytest.raises(ConfigError, match="quantiz") as e:
        exporters.get("tflite-int8")().export(graph, tmp_path / "m.int8.tflite")
    assert "tflite-int8" in str(e.value)


def test_int8_with_a_layer_missing_its_integer_weights(tmp_path):
    torch.manual_seed(0)
    b = Built(nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)), (16,))
    qgraph = b.qgraph.copy()
    del qgraph.nodes[-1].params["weight_q"]
    with pytest.raises(ConfigError) as e:
        exporters.get("tflite-int8")().export(qgraph, tmp_path / "m.int8.tflite")
    assert qgraph.nodes[-1].name in str(e.value)


def test_the_same_graph_still_exports_to_fp32_after_an_int8_refusal(tmp_path):
    """A refusal is per target: the float artifact of the same graph is unaffected."""
    from edgefleet import runtimes

    graph = capture(nn.Sequential(nn.Linear(16, 8)).eval(), (16,))
    with pytest.raises(ConfigError):
        exporters.get("tflite-int8")().export(graph, tmp_path / "m.int8.tflite")
    path = exporters.get("tflite-fp32")().export(graph, tmp_path / "m.tflite")
    out = runtimes.load("litert", path).run(np.ones((2, 16), np.float32))["output"]
    assert out.shape == (2, 8)
