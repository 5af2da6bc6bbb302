"""Capture into the IR, the reference interpreters, and the integer arithmetic they define."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from edgefleet import ModelError, UnsupportedOpError
from edgefleet.compress import zoo
from edgefleet.compress.capture import capture
from edgefleet.compress.ir import OPS, QuantConfig, quantize_graph, run_float, run_int
from edgefleet.compress.ir import kernels as K
from edgefleet.compress.ir.graph import Graph, Node, Value


@pytest.mark.parametrize("name", list(zoo.INPUT_SHAPES))
def test_zoo_models_capture_and_match_torch(name):
    torch.manual_seed(0)
    model = getattr(zoo, name)().eval()
    shape = zoo.INPUT_SHAPES[name]
    graph = capture(model, shape)
    x = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    out = run_float(graph, x)["output"]
    assert np.abs(out - ref).max() < 1e-4
    assert graph.inputs[0].shape[0] is None  # dynamic batch axis


def test_batch_norm_is_folded_and_relu_fused():
    graph = capture(zoo.digits_cnn().eval(), (1, 8, 8))
    convs = [n for n in graph.nodes if n.op == "conv2d"]
    assert all(n.attrs["folded_bn"] for n in convs)
    assert all(n.attrs["act"] == "relu" for n in convs)
    assert not any(n.op in ("relu", "batch_norm") for n in graph.nodes)
    assert convs[0].module == "features.0" and convs[0].param_names["weight"] == "features.0.weight"


class _Cumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


def test_unsupported_op_is_refused_with_name_and_location():
    with pytest.raises(UnsupportedOpError) as e:
        capture(_Cumsum(), (4,))
    msg = str(e.value)
    assert "aten.cumsum" in msg and "test_ir.py:" in msg


class _Standalone(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(6)
        self.lin = nn.Linear(6, 3)

    def forward(self, x):
        return self.lin(torch.sigmoid(self.bn(x)) - 0.5) / 2.0


def test_standalone_batch_norm_sub_and_div_by_constant():
    m = _Standalone().eval()
    m.bn.running_mean.uniform_(-1, 1)
    m.bn.running_var.uniform_(0.5, 2)
    graph = capture(m, (6,))
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    assert np.abs(run_float(graph, x)["output"] - ref).max() < 1e-5


def test_graph_validation_catches_structural_errors():
    g = Graph([Value("input", (None, 4))], [Node("relu", "r", ["missing"], ["y"])], ["y"], {"y": Value("y", (None, 4))})
    with pytest.raises(ModelError, match="used before it is defined"):
        g.validate()
    g.nodes[0] = Node("frobnicate", "f", ["input"], ["y"])
    with pytest.raises(UnsupportedOpError, match="frobnicate"):
        g.validate()


def test_every_op_has_float_and_int_semantics_and_a_quantization_rule():
    for name, spec in OPS.items():
        assert callable(spec.float) and callable(spec.int), name
        assert spec.doc and spec.int_doc, name
        assert spec.quant in ("calibrated", "input") or callable(spec.quant), name


def test_quantize_multiplier_and_requantize_are_exact_rounding():
    rng = np.random.default_rng(0)
    m = np.concatenate([rng.uniform(1e-6, 1.0, 200), [0.5, 1.0 - 1e-12, 2.0 ** -20, 3.7]])
    mult, shift = K.quantize_multiplier(m)
    assert ((mult >= 2 ** 30) & (mult < 2 ** 31)).all()
    assert np.allclose(mult * 2.0 ** -shift, m, rtol=2 ** -30)
    acc = np.concatenate([rng.integers(-2 ** 31 + 1, 2 ** 31 - 1, 200), [0, 1, -1, 2 ** 31 - 1, -(2 ** 31) + 1]])
    for a in acc[:50]:
        for M, n in zip(mult[:20], shift[:20]):
            got = int(K.requantize(np.array([a]), np.int64(M), np.int64(n))[0])
            exact = Fraction(int(a) * int(M), 2 ** int(n))
            assert got == int((exact + Fraction(1, 2)).__floor__())  # round half up


def test_int8_reference_tracks_float_and_is_deterministic():
    torch.manual_seed(0)
    graph = capture(zoo.mobilenet_v2_stack().eval(), (3, 96, 96))
    x = np.random.default_rng(0).standard_normal((4, 3, 96, 96)).astype(np.float32)
    qg = quantize_graph(graph, [x], QuantConfig(method="minmax"))
    a, b = run_int(qg, x, raw=True)["output"], run_int(qg, x, raw=True)["output"]
    assert a.dtype == np.int8 and np.array_equal(a, b)
    err = np.abs(run_int(qg, x)["output"] - run_float(graph, x)["output"])
    assert err.max() < 0.1 * np.abs(run_float(graph, x)["output"]).max()


def test_weights_are_seven_bit_per_channel_by_default():
    graph = capture(zoo.digits_cnn().eval(), (1, 8, 8))
    x = np.random.default_rng(0).standard_normal((8, 1, 8, 8)).astype(np.float32)
    for bits, qmax in ((7, 63), (8, 127)):
        qg = quantize_graph(graph, [x], QuantConfig(weight_bits=bits))
        conv = next(n for n in qg.nodes if n.op == "conv2d")
        assert np.abs(conv.params["weight_q"]).max() == qmax
        assert conv.params["weight_scale"].shape == (conv.params["weight"].shape[0],)
        np.testing.assert_allclose(conv.params["bias_scale"], qg.qparams["input"].scalar_scale * conv.params["weight_scale"], rtol=1e-6)


def test_mse_calibration_beats_minmax_on_outliers():
    from edgefleet.compress.ir.quantize import _Observer, _calibrated_range, _quant_error

    rng = np.random.default_rng(0)
    sample = np.concatenate([rng.standard_normal(20000), [80.0, -60.0]]).astype(np.float32)
    obs = _Observer(1 << 16, 0)
    obs("t", sample)
    errs = {m: _quant_error(sample, _calibrated_range(obs, "t", QuantConfig(method=m))) for m in ("minmax", "percentile", "mse")}
    assert errs["mse"] < errs["minmax"] and errs["mse"] <= errs["percentile"]
    scales = {m: _calibrated_range(obs, "t", QuantConfig(method=m)).scalar_scale for m in ("minmax", "percentile")}
    assert scales["percentile"] < scales["minmax"] / 5  # the outliers are clipped


def test_bad_quant_config_is_refused():
    from edgefleet import ConfigError
    with pytest.raises(ConfigError, match="method"):
        QuantConfig(method="magic")
    with pytest.raises(ConfigError, match="weight_bits"):
        QuantConfig(weight_bits=4)
