"""Calibration and the fp32 reference on onnxruntime give what the numpy reference interpreter gives:
the same observed ranges and the same int8 parameters up to float rounding, in bounded calls."""

import numpy as np
import pytest

from edgefleet.compress import zoo
from edgefleet.compress.capture import capture
from edgefleet.compress.ir import QuantConfig, quantize_graph, run_float
from edgefleet.compress.ir import quantize as quantize_mod
from edgefleet.compress.ir.ort_float import float_runner
from edgefleet.compress.verify import FP32_MAX_ABS, float_outputs

SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def se_cnn():
    """A small EfficientNet-B0 (depthwise convs, SiLU, squeeze-excite, TF same padding) and inputs."""
    import torch

    torch.manual_seed(0)
    model = zoo.efficientnet_b0(width=0.25, depth=0.34, num_classes=10).eval()
    x = np.random.default_rng(1).standard_normal((40, *SHAPE)).astype(np.float32)
    return capture(model, SHAPE), x


def test_every_float_tensor_is_tapped_and_equals_the_reference(se_cnn):
    graph, x = se_cnn
    run = float_runner(graph, every_tensor=True)
    assert run is not None, "onnxruntime is installed: the vectorised engine must run this graph"
    seen_fast, seen_ref = {}, {}
    out = run(graph, x[:4], observe=lambda n, a: seen_fast.setdefault(n, a))
    ref = run_float(graph, x[:4], observe=lambda n, a: seen_ref.setdefault(n, a))
    floats = [n for n, a in seen_ref.items() if a.dtype.kind == "f"]
    assert list(seen_fast) == floats  # every float tensor, in the reference's order
    for name in floats:
        np.testing.assert_allclose(seen_fast[name], seen_ref[name], rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(out["output"], ref["output"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_onnxruntime_calibration_gives_the_reference_qparams(se_cnn, method):
    graph, x = se_cnn
    batches = [x[:16], x[16:32]]
    cfg = QuantConfig(method=method)
    fast = quantize_graph(graph, batches, cfg, engine="onnxruntime")
    ref = quantize_graph(graph, batches, cfg, engine="reference")
    assert fast.qparams.keys() == ref.qparams.keys()
    for name, qp in ref.qparams.items():
        got = fast.qparams[name]
        np.testing.assert_allclose(got.scale, qp.scale, rtol=1e-4, err_msg=name)
        assert abs(int(got.zero_point) - int(qp.zero_point)) <= 1, name
    for a, b in zip(fast.nodes, ref.nodes):
        if "weight_q" in b.params:
            np.testing.assert_array_equal(a.params["weight_q"], b.params["weight_q"], err_msg=b.name)
        if "bias_q" in b.params:  # int32 at scale s_in * s_w: s_in's rounding shows in the last digits
            np.testing.assert_allclose(a.params["bias_q"], b.params["bias_q"], rtol=1e-5, atol=1, err_msg=b.name)


def test_calibration_runs_large_batches_in_bounded_calls(se_cnn, monkeypatch):
    graph, x = se_cnn
    calls = []
    whole = quantize_mod.calibrate(graph, [x[:16]], QuantConfig(method="minmax"))
    monkeypatch.setattr(quantize_mod, "CALIBRATION_CALL_BYTES", 1)  # one sample per call
    real = quantize_mod.run_float
    monkeypatch.setattr(quantize_mod, "run_float", lambda g, b, **kw: calls.append(len(b)) or real(g, b, **kw))
    split = quantize_mod.calibrate(graph, [x[:16]], QuantConfig(method="minmax"), engine="reference")
    assert calls == [1] * 16
    for name in whole.lo:  # the same ranges: min and max do not depend on how the batch was cut
        assert split.lo[name] == pytest.approx(whole.lo[name], rel=1e-4, abs=1e-5), name
        assert split.hi[name] == pytest.approx(whole.hi[name], rel=1e-4, abs=1e-5), name


def test_unknown_calibration_engine_is_refused(se_cnn):
    from edgefleet._errors import ConfigError

    graph, x = se_cnn
    with pytest.raises(ConfigError, match="calibration engine 'numpy'"):
        quantize_graph(graph, [x[:4]], engine="numpy")


def test_fp32_reference_comes_from_onnxruntime_held_to_the_reference(se_cnn):
    graph, x = se_cnn
    out, how = float_outputs(graph, x)
    assert how == "onnxruntime"
    assert np.abs(out - run_float(graph, x)["output"]).max() <= FP32_MAX_ABS


def test_full_reservoirs_take_only_the_range_from_onnxruntime(se_cnn, monkeypatch):
    """Once a tensor's reservoir is full, onnxruntime hands over its min and max, not its values:
    the same ranges and the same samples as the reference, with fewer tensors copied out."""
    graph, x = se_cnn
    cfg = QuantConfig(method="mse", max_samples=2048)
    batches = [x[i:i + 4] for i in range(0, 40, 4)]
    calls = {"fast": 0, "ref": 0}
    real = quantize_mod._Observer.__call__

    def counting(engine):
        def call(self, name, arr):
            calls[engine] += 1
            return real(self, name, arr)
        return call

    monkeypatch.setattr(quantize_mod._Observer, "__call__", counting("fast"))
    fast = quantize_mod.calibrate(graph, batches, cfg)
    monkeypatch.setattr(quantize_mod._Observer, "__call__", counting("ref"))
    ref = quantize_mod.calibrate(graph, batches, cfg, engine="reference")
    assert calls["fast"] < calls["ref"] / 2
    assert fast.lo.keys() == ref.lo.keys()
    for name in ref.lo:
        assert fast.lo[name] == pytest.approx(ref.lo[name], rel=1e-4, abs=1e-5), name
        assert fast.hi[name] == pytest.approx(ref.hi[name], rel=1e-4, abs=1e-5), name
        np.testing.assert_allclose(fast.sample(name), ref.sample(name), rtol=1e-4, atol=1e-5, err_msg=name)
