"""Every native op is bit-exact against the IR's integer reference (run_int), on both kernel tables,
on randomized shapes and data that include saturation, exact zeros and odd sizes."""

import numpy as np
import pytest

from .conftest import assert_bit_exact
from .opgraphs import build, edge_batch, quantized, weights


def check(nodes, in_shape, kernels, seed, weight_bits=7, max_lsb=0):
    rng = np.random.default_rng(seed)
    g = build(in_shape, nodes(rng) if callable(nodes) else nodes, nodes_out(nodes, rng))
    qg = quantized(g, rng, in_shape, weight_bits)
    return assert_bit_exact(qg, edge_batch(rng, in_shape), kernels, max_lsb)


def nodes_out(nodes, rng):
    return "y"


@pytest.mark.parametrize("weight_bits", [7, 8])
@pytest.mark.parametrize("k,n,lead,act", [(1, 1, (), "none"), (3, 7, (), "relu"), (5, 8, (), "relu6"),
                                          (17, 9, (3,), "none"), (64, 33, (), "relu"), (100, 16, (2, 3), "none"),
                                          (784, 40, (), "relu")])
def test_linear(k, n, lead, act, weight_bits, kernels):
    def nodes(rng):
        return [("linear", ["x"], "y", {"act": act}, {"weight": weights(rng, n, k), "bias": weights(rng, n)})]
    check(nodes, (*lead, k), kernels, seed=k * 31 + n, weight_bits=weight_bits)


CONV_CASES = [  # C, O, H, W, kernel, stride, padding, dilation, groups
    (3, 8, 9, 9, (1, 1), (1, 1), (0, 0), (1, 1), 1),     # pointwise
    (5, 7, 7, 9, (3, 3), (2, 2), (1, 1), (1, 1), 1),     # strided, odd sizes
    (4, 6, 8, 7, (5, 3), (2, 1), (2, 0), (1, 2), 1),     # asymmetric kernel/stride/padding, dilation
    (4, 6, 6, 6, (3, 3), (1, 1), (1, 1), (1, 1), 2),     # grouped
    (6, 6, 9, 7, (3, 3), (1, 1), (1, 1), (1, 1), 6),     # depthwise
    (6, 6, 9, 8, (3, 3), (2, 2), (1, 1), (1, 1), 6),     # depthwise, strided
    (5, 5, 7, 7, (5, 5), (1, 2), (2, 2), (2, 1), 5),     # depthwise, dilated, padding corners
    (3, 6, 5, 5, (3, 3), (1, 1), (1, 1), (1, 1), 3),     # channel multiplier 2 (grouped path)
    (2, 3, 4, 4, (4, 4), (1, 1), (0, 0), (1, 1), 1),     # kernel as large as the input
    (3, 5, 6, 16, (3, 3), (1, 1), (1, 1), (2, 1), 1),   # stride 1, rows of whole 8-pixel blocks (direct pack)
    (3, 8, 5, 41, (3, 3), (2, 2), (1, 1), (1, 1), 1),   # stride 2 over wide rows (vector even-byte gather)
]


@pytest.mark.parametrize("weight_bits", [7, 8])
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("act", ["none", "relu6"])
def test_conv2d(case, act, weight_bits, kernels):
    c, o, h, w, k, s, p, d, g = case

    def nodes(rng):
        attrs = {"stride": s, "padding": p, "dilation": d, "groups": g, "act": act}
        return [("conv2d", ["x"], "y", attrs, {"weight": weights(rng, o, c // g, *k), "bias": weights(rng, o)})]
    check(nodes, (c, h, w), kernels, seed=sum(case[:4]), weight_bits=weight_bits)


@pytest.mark.parametrize("kernel,stride,padding", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)),
                                                   ((3, 2), (1, 2), (1, 0)), ((1, 1), (1, 1), (0, 0))])
@pytest.mark.parametrize("op,cip", [("max_pool2d", None), ("avg_pool2d", True), ("avg_pool2d", False)])
def test_pooling(op, cip, kernel, stride, padding, kernels):
    attrs = {"kernel": kernel, "stride": stride, "padding": padding}
    if op == "avg_pool2d":
        attrs["count_include_pad"] = cip
    check([(op, ["x"], "y", attrs, {})], (3, 7, 9), kernels, seed=7)


@pytest.mark.parametrize("shape,axes,keepdim", [((5, 7, 9), (2, 3), True), ((5, 7, 9), (2, 3), False),
                                                ((6, 10), (1,), False), ((4, 6, 8), (-1,), True)])
def test_mean(shape, axes, keepdim, kernels):
    check([("mean", ["x"], "y", {"axes": axes, "keepdim": keepdim}, {})], shape, kernels, seed=len(shape))


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("form", ["tensor", "broadcast", "scalar", "vector"])
def test_add_mul(op, form, kernels):
    shape = (4, 5, 7)

    def nodes(rng):
        if form == "tensor":   # x op tanh(x): two activations with different qparams
            return [("tanh", ["x"], "t", {}, {}), (op, ["x", "t"], "y", {}, {})]
        if form == "broadcast":  # x op mean(x) over H, W: [N,C,H,W] with [N,C,1,1]
            return [("mean", ["x"], "m", {"axes": (2, 3), "keepdim": True}, {}), (op, ["x", "m"], "y", {}, {})]
        const = np.float32(-1.75) if form == "scalar" else weights(rng, 5, 1, scale=2.0)
        return [(op, ["x"], "y", {}, {"const": const})]
    check(nodes, shape, kernels, seed=11)


def test_add_saturates_to_the_clamp(kernels):
    """A residual add whose output range is calibrated far too small saturates at -128/127."""
    rng = np.random.default_rng(3)
    g = build((16,), [("relu", ["x"], "r", {}, {}), ("add", ["x", "r"], "y", {}, {})], "y")
    qg = quantized(g, rng, (16,))
    x = edge_batch(rng, (16,)) * 100
    ref, got = assert_bit_exact(qg, x, kernels)
    assert (ref == 127).any() and (ref == -128).any()


@pytest.mark.parametrize("op", ["relu", "relu6", "hardswish", "sigmoid", "silu", "tanh", "gelu"])
def test_lookup_activations(op, kernels):
    check([(op, ["x"], "y", {}, {})], (3, 11), kernels, seed=5)


@pytest.mark.parametrize("shape,axis", [((3, 17), -1), ((5, 4, 6), 1), ((2, 128), 1)])
def test_softmax(shape, axis, kernels):
    check([("softmax", ["x"], "y", {"axis": axis}, {})], shape, kernels, seed=9)


def test_layer_norm_within_one_lsb(kernels):
    """layer_norm runs in float32 between dequantize and quantize (as run_int); float summation
    order differs from numpy's, so the documented tolerance is 1 LSB, and nearly all are equal."""
    rng = np.random.default_rng(13)
    d = 48
    g = build((6, d), [("layer_norm", ["x"], "y", {"eps": 1e-5},
                        {"gamma": 1 + weights(rng, d, scale=0.1), "beta": weights(rng, d, scale=0.1)})], "y")
    qg = quantized(g, rng, (6, d))
    ref, got = assert_bit_exact(qg, edge_batch(rng, (6, d), n=8), kernels, max_lsb=1)
    assert (ref != got).mean() < 0.01


@pytest.mark.parametrize("m,k,n", [(5, 7, 3), (16, 64, 16), (1, 1, 1)])
def test_batched_matmul(m, k, n, kernels):
    # a: [N, 2, m, k] = x; b: [N, 2, k, n] = sigmoid(x reshaped), so both operands vary independently
    def nodes(rng):
        return [("sigmoid", ["x"], "s", {}, {}), ("reshape", ["s"], "b", {"shape": (-1, 2, k, m)}, {}),
                ("linear", ["b"], "bn", {"act": "none"}, {"weight": weights(rng, n, m), "bias": weights(rng, n)}),
                ("matmul", ["x", "bn"], "y", {}, {})]
    check(nodes, (2, m, k), kernels, seed=m + k + n)


@pytest.mark.parametrize("perm", [(0, 2, 1, 3), (0, 3, 1, 2), (0, 1, 3, 2), (0, 3, 2, 1)])
def test_transpose(perm, kernels):
    check([("transpose", ["x"], "y", {"perm": perm}, {})], (3, 4, 5), kernels, seed=1)


def test_reshape(kernels):
    check([("reshape", ["x"], "y", {"shape": (-1, 5, 12)}, {})], (3, 4, 5), kernels, seed=2)


@pytest.mark.parametrize("axis", [1, -1])
def test_concat_rescales_inputs(axis, kernels):
    nodes = [("tanh", ["x"], "t", {}, {}), ("hardswish", ["x"], "h", {}, {}),
             ("concat", ["x", "t", "h", "x"], "y", {"axis": axis}, {})]
    check(nodes, (3, 5), kernels, seed=4)


def test_embedding_gathers_rows_and_refuses_bad_indices(kernels):
    from edgefleet import _native
    from edgefleet.runtimes.exporters.efm_export import build_efm

    from .conftest import run_native

    rng = np.random.default_rng(6)
    table = weights(rng, 50, 12)
    calib = rng.integers(0, 50, (4, 7))
    g = build((7,), [("embedding", ["x"], "e", {}, {"weight": table}), ("relu", ["e"], "y", {}, {})], "y",
              in_dtype="int64", calib=calib)
    from edgefleet.compress.ir import quantize_graph
    qg = quantize_graph(g, [calib.astype(np.int64)])
    idx = rng.integers(0, 50, (3, 7)).astype(np.int64)
    idx[0, 0], idx[0, 1] = 0, 49  # first and last rows
    assert_bit_exact(qg, idx, kernels)
    model = _native.Model.from_bytes(build_efm(qg))
    for bad in (50, -1):
        idx[1, 3] = bad
        with pytest.raises(_native.NativeError, match="embedding index out of range"):
            model.run([idx])
    del run_native


@pytest.mark.parametrize("op", ["linear", "conv2d", "depthwise"])
@pytest.mark.parametrize("scale_up", [0, 3, 12])
def test_every_requantization_path(op, scale_up, kernels):
    """Multipliers below 1 take the short vector sequence, larger ones (shift < 31) the general one;
    here shifts are lowered after quantization (the reference uses the same numbers)."""
    rng = np.random.default_rng(21)
    if op == "linear":
        shape = (40,)
        nodes = [("linear", ["x"], "y", {"act": "none"}, {"weight": weights(rng, 24, 40), "bias": weights(rng, 24)})]
    else:
        c, g = (4, 1) if op == "conv2d" else (8, 8)
        shape = (c, 9, 11)
        attrs = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": g, "act": "none"}
        nodes = [("conv2d", ["x"], "y", attrs, {"weight": weights(rng, 8, c // g, 3, 3), "bias": weights(rng, 8)})]
    g_ = build(shape, nodes, "y")
    qg = quantized(g_, rng, shape)
    node = qg.nodes[0]
    node.params["shift"] = np.maximum(node.params["shift"] - scale_up, 1)
    ref, _ = assert_bit_exact(qg, edge_batch(rng, shape, n=3), kernels)
    if scale_up == 12:
        assert (ref == 127).any() and (ref == -128).any()  # saturates both ways


@pytest.mark.parametrize("pads,value", [((0, 0, 0, 0, 0, 1, 0, 1), 0.0),     # TF "same": after only
                                        ((0, 0, 1, 2, 3, 0, 1, 1), 0.75),    # every axis, non-zero value
                                        ((0, 0, 0, 0, 2, 2, 0, 0), -1e4)])   # saturating value
def test_pad(pads, value, kernels):
    check([("pad", ["x"], "y", {"pads": pads, "value": value}, {})], (3, 5, 7), kernels, seed=3)


def test_pad_of_a_sequence(kernels):
    check([("pad", ["x"], "y", {"pads": (0, 0, 2, 1, 0, 3), "value": 0.0}, {})], (6, 10), kernels, seed=8)


@pytest.mark.parametrize("axis,start,stop,step", [(1, 0, 2, 1), (1, 1, 4, 2), (2, 1, 5, 1), (3, 0, 7, 3), (3, 6, 7, 1)])
def test_slice(axis, start, stop, step, kernels):
    attrs = {"axis": axis, "start": start, "stop": stop, "step": step}
    check([("slice", ["x"], "y", attrs, {})], (4, 5, 7), kernels, seed=axis + start)


@pytest.mark.parametrize("op,attrs", [("clamp", {"min": -0.5, "max": 1.25}), ("clamp", {"min": -1.0, "max": float("inf")}),
                                      ("hardsigmoid", {})])
def test_new_lookup_activations(op, attrs, kernels):
    check([(op, ["x"], "y", attrs, {})], (3, 11), kernels, seed=12)


def test_squeeze_excitation_gate(kernels):
    """global pool -> 1x1 convs -> hardsigmoid -> broadcast multiply, as MobileNetV3 and EfficientNet."""
    def nodes(rng):
        conv = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
        return [("mean", ["x"], "s", {"axes": (2, 3), "keepdim": True}, {}),
                ("conv2d", ["s"], "r", {**conv, "act": "relu"}, {"weight": weights(rng, 2, 6, 1, 1), "bias": weights(rng, 2)}),
                ("conv2d", ["r"], "e", {**conv, "act": "none"}, {"weight": weights(rng, 6, 2, 1, 1), "bias": weights(rng, 6)}),
                ("hardsigmoid", ["e"], "g", {}, {}), ("mul", ["x", "g"], "y", {}, {})]
    check(nodes, (6, 5, 5), kernels, seed=14)


@pytest.mark.parametrize("shape,axes,keepdim", [((5, 7, 9), (2, 3), False), ((6, 10), (1,), True), ((4, 6, 8), (1,), False)])
def test_sum_requantizes(shape, axes, keepdim, kernels):
    check([("sum", ["x"], "y", {"axes": axes, "keepdim": keepdim}, {})], shape, kernels, seed=20 + len(shape))


@pytest.mark.parametrize("form", ["same", "broadcast"])
def test_div(form, kernels):
    """x / (1 + relu(...)): float32 between dequantize and quantize, the same operations as run_int."""
    def nodes(rng):
        den = [("mean", ["x"], "m", {"axes": (2,), "keepdim": True}, {})] if form == "broadcast" else []
        src = "m" if den else "x"
        return den + [("relu", [src], "r", {}, {}), ("add", ["r"], "d", {}, {"const": np.float32(0.5)}),
                      ("div", ["x", "d"], "y", {}, {})]
    check(nodes, (6, 9), kernels, seed=30)


def test_div_by_zero_saturates_and_zero_over_zero_is_the_zero_point(kernels):
    rng = np.random.default_rng(31)
    g = build((8,), [("relu", ["x"], "r", {}, {}), ("div", ["x", "r"], "y", {}, {})], "y")
    qg = quantized(g, rng, (8,))
    x = edge_batch(rng, (8,))
    x[0, :3] = (-2.0, 0.0, 3.0)  # relu gives 0: -2/0, 0/0, and a positive
    ref, _ = assert_bit_exact(qg, x, kernels)
    assert ref[0, 0] == -128 and ref[0, 1] == qg.qparams["y"].scalar_zero_point


def test_cast_of_an_int64_mask(kernels):
    rng = np.random.default_rng(32)
    calib = rng.integers(0, 2, (4, 9))
    g = build((9,), [("cast", ["x"], "c", {}, {}), ("add", ["c"], "y", {}, {"const": np.float32(-0.5)})], "y",
              in_dtype="int64", calib=calib)
    from edgefleet.compress.ir import quantize_graph
    qg = quantize_graph(g, [calib.astype(np.int64)])
    mask = rng.integers(0, 2, (3, 9)).astype(np.int64)
    assert_bit_exact(qg, mask, kernels)
