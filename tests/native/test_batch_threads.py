"""Batched convolutions and intra-op threads change how the work is grouped, never the numbers:
a batch-32 convolution equals 32 batch-1 runs, and every thread count gives the same bytes as one
thread (on every kernel table this CPU has)."""

import functools

import numpy as np
import pytest

from edgefleet import _native
from edgefleet.compress.ir import run_int
from edgefleet.runtimes.exporters.efm_export import build_efm

from .opgraphs import build, edge_batch, quantized, weights

CONVS = [  # C, O, H, W, kernel, stride, padding, groups: pointwise, 3x3 (whole 8-pixel rows or not), depthwise
    (16, 24, 12, 12, (1, 1), (1, 1), (0, 0), 1),
    (8, 12, 7, 5, (1, 1), (1, 1), (0, 0), 1),     # P = 35: pixel blocks straddle images
    (6, 16, 10, 16, (3, 3), (1, 1), (1, 1), 1),
    (5, 9, 9, 11, (3, 3), (2, 2), (1, 1), 1),
    (12, 12, 14, 14, (3, 3), (2, 2), (1, 1), 12),
    (4, 8, 8, 8, (3, 3), (1, 1), (1, 1), 2),
]


def conv_graph(case, seed=0):
    c, o, h, w, k, s, p, g = case
    rng = np.random.default_rng(seed)
    attrs = {"stride": s, "padding": p, "dilation": (1, 1), "groups": g, "act": "relu6"}
    nodes = [("conv2d", ["x"], "y", attrs, {"weight": weights(rng, o, c // g, *k), "bias": weights(rng, o)})]
    return quantized(build((c, h, w), nodes, "y"), rng, (c, h, w)), rng


@pytest.mark.parametrize("case", CONVS)
def test_batch_32_convolution_equals_32_batch_1_runs(case, kernels):
    qg, rng = conv_graph(case)
    x = edge_batch(rng, (case[0], case[2], case[3]), n=32)
    model = _native.Model.from_bytes(build_efm(qg), kernels=kernels, threads=1)
    batched = model.run([x], raw=True)[0]
    one_by_one = np.concatenate([model.run([x[i:i + 1]], raw=True)[0] for i in range(32)])
    np.testing.assert_array_equal(batched, one_by_one)
    np.testing.assert_array_equal(batched, run_int(qg, x, raw=True)["y"])


@functools.lru_cache(maxsize=None)
def mobilenet_and_mlp():
    from .test_models import captured

    return [captured("mobilenet_v2_stack")[2], captured("mlp")[2], captured("digits_cnn")[2]]


@pytest.mark.parametrize("threads", [2, 5])
def test_threads_give_the_same_bytes_as_one_thread(threads, kernels):
    rng = np.random.default_rng(3)
    graphs = [(conv_graph(case, seed=i)[0], (1, 32)) for i, case in enumerate(CONVS)]
    graphs += [(qg, (1, 6)) for qg in mobilenet_and_mlp()]
    for qg, batches in graphs:
        shape = qg.inputs[0].shape[1:]
        data = build_efm(qg)
        one = _native.Model.from_bytes(data, kernels=kernels, threads=1)
        many = _native.Model.from_bytes(data, kernels=kernels, threads=threads)
        assert one.threads == 1 and many.threads == threads
        for batch in batches:
            x = rng.standard_normal((batch, *shape)).astype(np.float32)
            got = one.run([x], raw=True)[0]
            np.testing.assert_array_equal(many.run([x], raw=True)[0], got)
            if threads == 2:  # and both equal the integer reference
                np.testing.assert_array_equal(got, run_int(qg, x, raw=True)[qg.outputs[0]])


def test_threads_option_is_checked_and_defaults_to_the_physical_cores():
    qg, _ = conv_graph(CONVS[0])
    data = build_efm(qg)
    assert _native.Model.from_bytes(data).threads == _native.default_threads() >= 1
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(_native.NativeError, match="threads must be a positive integer"):
            _native.Model.from_bytes(data, threads=bad)


def test_the_native_backend_and_the_device_pass_threads_through(tmp_path):
    from edgefleet import runtimes

    qg, rng = conv_graph(CONVS[2])
    path = tmp_path / "m.int8.efm"
    path.write_bytes(build_efm(qg))
    for threads in (1, 3):
        rt = runtimes.load("native", path, threads=threads)
        assert rt._model.threads == threads
    # the device's engine loads its runtimes with the threads it was given
    from edgefleet.device._engine import default_runner_factory

    assert default_runner_factory("efm-int8", path, threads=3).runtime._model.threads == 3
    x = rng.standard_normal((4, 6, 10, 16)).astype(np.float32)
    np.testing.assert_array_equal(runtimes.load("native", path, threads=3).run(x)["y"],
                                  runtimes.load("native", path, threads=1).run(x)["y"])
