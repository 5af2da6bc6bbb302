"""What the .tflite file holds, read back with the ``tflite`` schema bindings: the TFLite invariants
(identifier, empty buffer 0, signature), int8 parameters that are the graph's own, and the layout rule
(weights transposed at export, no per-layer TRANSPOSE)."""

from __future__ import annotations

import numpy as np
import tflite
from tflite.TensorType import TensorType
from tflite.utils import opcode2name


def _read(path):
    buf = path.read_bytes()
    return buf, tflite.Model.GetRootAsModel(buf, 0)


def _ops(model):
    sg = model.Subgraphs(0)
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    return [(opcode2name(codes[sg.Operators(i).OpcodeIndex()]), sg.Operators(i)) for i in range(sg.OperatorsLength())]


def _tensor(model, i):
    return model.Subgraphs(0).Tensors(i)


def _const(model, t):
    data = model.Buffers(t.Buffer()).DataAsNumpy()
    dtype = {TensorType.INT8: np.int8, TensorType.INT32: np.int32, TensorType.FLOAT32: np.float32}[t.Type()]
    return np.frombuffer(data.tobytes(), dtype).reshape(t.ShapeAsNumpy())


def test_file_invariants_and_signature(zoo_built, tmp_path):
    from edgefleet.runtimes import exporters

    b = zoo_built("digits_cnn")
    path = exporters.get("tflite-int8")().export(b.qgraph, tmp_path / "m.int8.tflite")
    buf, model = _read(path)
    assert buf[4:8] == b"TFL3"
    assert model.Version() == 3
    assert model.Buffers(0).DataLength() == 0
    sig = model.SignatureDefs(0)
    assert sig.SignatureKey() == b"serving_default"
    assert [sig.Inputs(i).Name() for i in range(sig.InputsLength())] == [b"input"]
    assert [sig.Outputs(i).Name() for i in range(sig.OutputsLength())] == [b"output"]
    x = _tensor(model, sig.Inputs(0).TensorIndex())
    assert x.Type() == TensorType.FLOAT32  # an app passes floats
    assert list(x.ShapeSignatureAsNumpy()) == [-1, 1, 8, 8] and list(x.ShapeAsNumpy()) == [1, 1, 8, 8]
    names = [name for name, _ in _ops(model)]
    assert names[0] == "QUANTIZE" and names[-1] == "DEQUANTIZE"
    for i in range(1, model.BuffersLength()):  # constant data is 16-byte aligned inside the file
        if model.Buffers(i).DataLength():
            assert model.Buffers(i).DataAsNumpy().ctypes.data % 16 == np.frombuffer(buf, np.uint8).ctypes.data % 16


def test_int8_parameters_are_the_graphs_own(zoo_built, tmp_path):
    """Per-channel int8 weights (zero points 0; axis 0, depthwise axis 3), int32 bias with scale
    s_in * s_w, activation qparams: all exactly the quantize pass's numbers."""
    from edgefleet.runtimes import exporters

    b = zoo_built("mobilenet_v2_stack")
    path = exporters.get("tflite-int8")().export(b.qgraph, tmp_path / "m.int8.tflite")
    _, model = _read(path)
    layers = [n for n in b.qgraph.nodes if n.op in ("conv2d", "linear")]
    ops = [(name, op) for name, op in _ops(model) if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert len(ops) == len(layers)
    seen = set()
    for node, (name, op) in zip(layers, ops):
        x, w, bias = (_tensor(model, op.Inputs(i)) for i in range(3))
        y = _tensor(model, op.Outputs(0))
        seen.add(name)
        axis = 3 if name == "DEPTHWISE_CONV_2D" else 0
        wq, bq = w.Quantization(), bias.Quantization()
        assert w.Type() == TensorType.INT8 and bias.Type() == TensorType.INT32
        assert wq.QuantizedDimension() == axis and not wq.ZeroPointAsNumpy().any()
        np.testing.assert_array_equal(wq.ScaleAsNumpy(), node.params["weight_scale"])
        np.testing.assert_array_equal(bq.ScaleAsNumpy(), node.params["bias_scale"])
        s_in = b.qgraph.qparams[node.inputs[0]].scalar_scale
        np.testing.assert_allclose(bq.ScaleAsNumpy(), np.float32(s_in) * node.params["weight_scale"], rtol=1e-6)
        np.testing.assert_array_equal(_const(model, bias), node.params["bias_q"])
        layout = {"CONV_2D": (0, 2, 3, 1), "DEPTHWISE_CONV_2D": (1, 2, 3, 0)}.get(name)
        expect = node.params["weight_q"] if layout is None else node.params["weight_q"].transpose(layout)
        np.testing.assert_array_equal(_const(model, w), expect)
        qy = b.qgraph.qparams[node.outputs[0]]
        assert y.Quantization().ScaleAsNumpy()[0] == np.float32(qy.scalar_scale)
        assert y.Quantization().ZeroPointAsNumpy()[0] == qy.scalar_zero_point
        assert x.Quantization().ScaleAsNumpy()[0] == np.float32(s_in)
    assert seen == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def test_layout_changes_once_at_the_input(zoo_built, tmp_path):
    """NCHW -> NHWC is one TRANSPOSE at the image input; none per layer, none before the head."""
    from edgefleet.runtimes import exporters

    for name, transposes in (("mobilenet_v2_stack", 1), ("digits_cnn", 0)):  # digits: 1 channel -> a RESHAPE
        b = zoo_built(name)
        for target, graph in (("tflite-fp32", b.graph), ("tflite-int8", b.qgraph)):
            path = exporters.get(target)().export(graph, tmp_path / f"{name}.{target}.tflite")
            ops = [n for n, _ in _ops(_read(path)[1])]
            assert ops.count("TRANSPOSE") == transposes, (name, target, ops)


def test_op_vocabulary_of_the_encoder(zoo_built, tmp_path):
    from edgefleet.runtimes import exporters

    b = zoo_built("bert_encoder")
    path = exporters.get("tflite-int8")().export(b.qgraph, tmp_path / "bert.int8.tflite")
    ops = set(n for n, _ in _ops(_read(path)[1]))
    # int8 GELU is the IR's own table (CAST/ADD/GATHER) and softmax the IR's integer softmax (REDUCE_MAX,
    # GATHER of the exp table, SUM, FLOOR_DIV): exact, where TFLite's GELU and SOFTMAX round their own way
    assert {"FULLY_CONNECTED", "BATCH_MATMUL", "GATHER", "CAST", "REDUCE_MAX", "SUM", "FLOOR_DIV", "RESHAPE",
            "TRANSPOSE", "MUL", "ADD", "MEAN", "RSQRT", "QUANTIZE", "DEQUANTIZE"} <= ops
    assert not {"GELU", "SOFTMAX"} & ops


def test_full_integer_keeps_attention_matmuls_int8(zoo_built, tmp_path):
    """Default: a matmul whose right operand has a non-zero zero point runs in float (XNNPACK);
    ``full_integer=True``: every BATCH_MATMUL takes int8 operands."""
    from edgefleet.runtimes.exporters.tflite_export import TfliteInt8Exporter

    b = zoo_built("bert_encoder")
    for full_integer in (False, True):
        path = TfliteInt8Exporter(full_integer=full_integer).export(b.qgraph, tmp_path / f"{full_integer}.tflite")
        model = _read(path)[1]
        kinds = {_tensor(model, op.Inputs(0)).Type() for name, op in _ops(model) if name == "BATCH_MATMUL"}
        assert kinds == ({TensorType.INT8} if full_integer else {TensorType.FLOAT32})



def test_channels_last_permute_costs_no_op(tmp_path):
    """``x.permute(0, 2, 3, 1)`` of a map already stored NHWC is free: the only TRANSPOSE left is the
    input's, and the answer is still right."""
    import torch
    from _tfl_helpers import Built
    from torch import nn

    from edgefleet import runtimes
    from edgefleet.compress.ir import run_float, run_int
    from edgefleet.runtimes import exporters

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).permute(0, 2, 3, 1))

    torch.manual_seed(0)
    b = Built(Head(), (3, 5, 6))
    for target, graph, run in (("tflite-fp32", b.graph, run_float), ("tflite-int8", b.qgraph, run_int)):
        path = exporters.get(target)().export(graph, tmp_path / f"{target}.tflite")
        assert [n for n, _ in _ops(_read(path)[1])].count("TRANSPOSE") == 1
        out = runtimes.load("litert", path).run(b.x)["output"]
        tol = 1e-5 if target == "tflite-fp32" else 1.0001 * b.lsb
        assert np.abs(out - run(graph, b.x)["output"]).max() <= tol


def test_parity_gate_rejects_a_mis_quantized_tflite(zoo_built, tmp_path):
    """If the file's quantization disagreed with the graph's, the pipeline's parity gate would see it."""
    from edgefleet import runtimes
    from edgefleet.compress.verify import parity, parity_ok
    from edgefleet.runtimes import exporters

    b = zoo_built("digits_cnn")
    bad = b.qgraph.copy()
    conv = next(n for n in bad.nodes if n.op == "conv2d")
    conv.params["weight_scale"] = conv.params["weight_scale"] * 1.3  # the artifact lies about its weights
    conv.params["bias_scale"] = conv.params["bias_scale"] * 1.3
    for graph, expect in ((bad, False), (b.qgraph, True)):
        path = exporters.get("tflite-int8")().export(graph, tmp_path / f"{expect}.tflite")
        out = runtimes.load("litert", path).run(b.x)["output"]
        ok, reason = parity_ok("int8", parity("int8", out, b.graph, b.qgraph, b.x))
        assert ok is expect, reason
