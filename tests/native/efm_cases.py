"""Small valid .efm files for the loader tests (built once, numpy only)."""

from __future__ import annotations

import functools

import numpy as np

from edgefleet.runtimes.exporters.efm_export import build_efm

from .opgraphs import build, quantized, weights


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
