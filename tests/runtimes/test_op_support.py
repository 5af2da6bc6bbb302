"""Which export target (and so which runtime) supports which IR op, read from the exporters' lowering
registries, and ``docs/ops.md`` printing that table from the same source."""

from pathlib import Path

from edgefleet.compress.ir import OPS
from edgefleet.runtimes import exporters
from edgefleet.runtimes.exporters import support

ALL = ("onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8", "efm-int8")

#: the op-support table, op by op (a change to any exporter's registry must show up here)
EXPECTED = {op: ALL for op in (
    "linear", "conv2d", "matmul", "embedding", "max_pool2d", "avg_pool2d", "mean", "sum", "add", "mul", "relu",
    "relu6", "clamp", "hardswish", "hardsigmoid", "sigmoid", "silu", "tanh", "gelu", "cast", "div", "softmax",
    "layer_norm", "reshape", "transpose", "pad", "slice", "concat")}
RUNTIMES = {"onnx-fp32": "onnxruntime", "onnx-int8": "onnxruntime", "tflite-fp32": "litert",
            "tflite-int8": "litert", "efm-int8": "native"}


def test_every_op_is_listed_with_the_targets_that_lower_it():
    table = support.support_table()
    assert set(table) == set(OPS) == set(EXPECTED)
    for op, row in table.items():
        assert {t for t, ok in row.items() if ok} == set(EXPECTED[op]), op


def test_every_target_of_the_table_is_a_registered_exporter_and_its_runtime():
    assert set(support.TARGETS) == set(exporters.targets())
    for target, runtimes in support.TARGETS.items():
        assert exporters.get(target).runtime == RUNTIMES[target] == runtimes[0]
    assert support.runtimes_of("pad") == ["litert", "native", "onnxruntime", "wasm"]


def test_docs_print_the_current_table():
    doc = Path(__file__).resolve().parents[2] / "docs" / "ops.md"
    assert doc.read_text() == support.markdown(), \
        "docs/ops.md is stale: python -m edgefleet.runtimes.exporters.support docs/ops.md"
    for op in OPS:
        assert f"| `{op}` |" in doc.read_text()
