"""Single-op IR graphs for the native kernel tests, quantized by the real quantize pass.

Each case is a float graph around one op under test (plus, for two-operand ops, one cheap op that
derives the second operand, so that calibration sees one input); ``quantized(case)`` calibrates it
on normal data and returns the quantized graph with an adversarial test batch that saturates.
"""

from __future__ import annotations

import numpy as np

from edgefleet.compress.ir import QuantConfig, quantize_graph
from edgefleet.compress.ir.graph import Graph, Node, Value
from edgefleet.compress.ir.reference import run_float


def build(in_shape, nodes, out: str, in_dtype="float32", calib=None) -> Graph:
    """A graph with one input ``x`` (shape without batch) and ``nodes`` given as
    ``(op, inputs, output, attrs, params)``; value shapes are inferred by running it in float."""
    values = {"x": Value("x", (None, *in_shape), in_dtype)}
    g = Graph([values["x"]], [Node(op, f"n{i}", list(ins), [o], dict(attrs), dict(params))
                              for i, (op, ins, o, attrs, params) in enumerate(nodes)], [out], values)
    sample = calib if calib is not None else np.zeros((1, *in_shape), np.float32)
    shapes = {}
    run_float(g, sample, observe=lambda name, arr: shapes.__setitem__(name, arr.shape))
    for node in g.nodes:
        o = node.outputs[0]
        g.values[o] = Value(o, (None, *shapes[o][1:]))
    return g.validate()


def edge_batch(rng, shape, n=5, wild=True):
    """Normal data plus the edge cases: exact zeros, huge values (saturate to -128/127), tiny ones."""
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    if wild:
        flat = x.reshape(-1)
        k = max(1, flat.size // 10)
        idx = rng.choice(flat.size, 3 * k, replace=False)
        flat[idx[:k]] = rng.choice([-1e4, 1e4, -50.0, 50.0], k)
        flat[idx[k:2 * k]] = 0.0
        flat[idx[2 * k:]] *= 1e-3
    return x


def quantized(g: Graph, rng, in_shape, weight_bits=7, n_calib=8):
    calib = rng.standard_normal((n_calib, *in_shape)).astype(np.float32)
    return quantize_graph(g, [calib], QuantConfig(method="minmax", weight_bits=weight_bits))


def weights(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)
