"""Small valid .efm files for the loader tests (built once, numpy only)."""

from __future__ import annotations

import functools

import numpy as np

from edgefleet.compress.ir import islands

from edgefleet.runtimes.exporters.efm_export import build_efm

from .opgraphs import build, edge_batch, quantized, weights


@functools.lru_cache(maxsize=None)
def small_cnn() -> tuple[bytes, object]:
    """conv -> depthwise conv -> add -> pool -> reshape -> linear -> softmax: most op kinds, 1 KB-ish."""
    rng = np.random.default_rng(0)
    conv = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "act": "relu6"}
    nodes = [
        ("conv2d", ["x"], "c1", {**conv, "groups": 1}, {"weight": weights(rng, 4, 2, 3, 3), "bias": weights(rng, 4)}),
        ("conv2d", ["c1"], "c2", {**conv, "groups": 4}, {"weight": weights(rng, 4, 1, 3, 3), "bias": weights(rng, 4)}),
        ("add", ["c1", "c2"], "s", {}, {}),
        ("avg_pool2d", ["s"], "p", {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0), "count_include_pad": True}, {}),
        ("reshape", ["p"], "f", {"shape": (-1, 16)}, {}),
        ("linear", ["f"], "l", {"act": "none"}, {"weight": weights(rng, 5, 16), "bias": weights(rng, 5)}),
        ("softmax", ["l"], "y", {"axis": -1}, {}),
    ]
    g = build((2, 4, 4), nodes, "y")
    qg = quantized(g, rng, (2, 4, 4))
    return build_efm(qg), qg


@functools.lru_cache(maxsize=None)
def small_encoder() -> tuple[bytes, object]:
    """embedding -> layer norm -> linear -> reshape/transpose -> matmul -> mul -> softmax -> matmul ->
    concat -> gelu -> mean: the transformer-side ops, with an int64 index input."""
    from edgefleet.compress.ir import quantize_graph

    rng = np.random.default_rng(1)
    d = 8
    nodes = [
        ("embedding", ["x"], "e", {}, {"weight": weights(rng, 20, d)}),
        ("layer_norm", ["e"], "n", {"eps": 1e-5}, {"gamma": 1 + weights(rng, d, scale=0.1), "beta": weights(rng, d, scale=0.1)}),
        ("linear", ["n"], "q", {"act": "none"}, {"weight": weights(rng, d, d), "bias": weights(rng, d)}),
        ("reshape", ["q"], "qh", {"shape": (-1, 6, 2, 4)}, {}),
        ("transpose", ["qh"], "qt", {"perm": (0, 2, 1, 3)}, {}),
        ("transpose", ["qt"], "kt", {"perm": (0, 1, 3, 2)}, {}),
        ("matmul", ["qt", "kt"], "s", {}, {}),
        ("mul", ["s"], "ss", {}, {"const": np.float32(0.5)}),
        ("softmax", ["ss"], "p", {"axis": -1}, {}),
        ("matmul", ["p", "qt"], "ctx", {}, {}),
        ("concat", ["ctx", "qt"], "cc", {"axis": 3}, {}),
        ("gelu", ["cc"], "g", {}, {}),
        ("mean", ["g"], "y", {"axes": (2,), "keepdim": False}, {}),
    ]
    calib = rng.integers(0, 20, (4, 6))
    g = build((6,), nodes, "y", in_dtype="int64", calib=calib)
    qg = quantize_graph(g, [calib.astype(np.int64)])
    return build_efm(qg), qg


def island_graph(seq, d, hidden, n_out, seed, act="relu6"):
    """x -> linear -> (+ x) -> layer_norm -> int8 linear (relu) -> linear(act): the first three and the
    last in islands, so a, r and the output y stay float32; n is quantized from float."""
    rng = np.random.default_rng(seed)
    nodes = [
        ("linear", ["x"], "a", {"act": "none"}, {"weight": weights(rng, d, d), "bias": weights(rng, d)}),
        ("add", ["a", "x"], "r", {}, {}),
        ("layer_norm", ["r"], "n", {"eps": 1e-5}, {"gamma": 1 + weights(rng, d, scale=0.2), "beta": weights(rng, d, scale=0.2)}),
        ("linear", ["n"], "h", {"act": "relu"}, {"weight": weights(rng, hidden, d), "bias": weights(rng, hidden)}),
        ("linear", ["h"], "y", {"act": act}, {"weight": weights(rng, n_out, hidden), "bias": weights(rng, n_out)}),
    ]
    shape = (seq, d)
    qg = quantized(build(shape, nodes, "y"), rng, shape)
    marked = islands.mark(qg, {name: {"group": "test"} for name in ("n0", "n1", "n2", "n4")})
    assert marked.float_tensors() == {"a", "r", "y"}
    return marked, edge_batch(rng, shape), qg


@functools.lru_cache(maxsize=None)
def small_islands() -> tuple[bytes, object]:
    """island_graph: float32 activations (format version 2) between dequantize and quantize."""
    qg = island_graph(3, 8, 12, 5, seed=2)[0]
    return build_efm(qg), qg
