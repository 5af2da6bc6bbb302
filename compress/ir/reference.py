"""Reference interpreters of the IR: float32 (``run_float``) and integer (``run_int``), each op
computed by its definition in :mod:`~edgefleet.compress.ir.ops`.

``run_int`` *defines* edgefleet's int8 arithmetic: every int8 runtime (onnxruntime QDQ, LiteRT,
native C, wasm) is judged against it by the parity gate. It is written for clarity and exactness,
not speed: integer sums are formed in float64 (exact below 2**53) or int64.

>>> out = run_float(graph, {"input": x})            # doctest: +SKIP
>>> out_q = run_int(qgraph, {"input": x}, raw=True) # int8 outputs, doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping

import numpy as np

from edgefleet._errors import DataError, ModelError

from .graph import Graph
from .ops import OPS


def _feeds(graph: Graph, inputs: Mapping[str, Any] | np.ndarray) -> dict[str, np.ndarray]:
    if not isinstance(inputs, Mapping):
        if len(graph.inputs) != 1:
            raise DataError(f"model has {len(graph.inputs)} inputs; pass a dict")
        inputs = {graph.inputs[0].name: inputs}
    feeds = {}
    for v in graph.inputs:
        if v.name not in inputs:
            raise DataError(f"missing input {v.name!r}")
        arr = np.asarray(inputs[v.name])
        if len(arr.shape) != len(v.shape) or any(d is not None and d != s for d, s in zip(v.shape, arr.shape)):
            raise DataError(f"input {v.name!r}: expected shape {list(v.shape)}, got {list(arr.shape)}")
        if v.dtype == "int64":
            if arr.dtype.kind not in "iub":
                raise DataError(f"input {v.name!r} takes integer ids (int64), got {arr.dtype}; pass token ids or "
                                f"masks as integers, not {arr.dtype.name}")
            feeds[v.name] = arr.astype(np.int64)
        else:
            feeds[v.name] = arr.astype(np.float32)
    return feeds


def run_float(graph: Graph, inputs, *, observe: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Run the float32 IR. ``observe(name, array)`` sees every tensor (used by calibration)."""
    env = _feeds(graph, inputs)
    if observe:
        for name, arr in env.items():
            observe(name, arr)
    for node in graph.nodes:
        y = OPS[node.op].float(node, [env[i] for i in node.inputs])
        if y.dtype == np.float64:
            y = y.astype(np.float32)
        env[node.outputs[0]] = y
        if observe:
            observe(node.outputs[0], y)
    return {name: env[name] for name in graph.outputs}


def island_weight(node) -> np.ndarray:
    """The weight an island's ``linear`` computes with: its int8 weight dequantized (per output channel),
    so an island keeps the int8 artifact's bytes and only the activations are float32."""
    scale = np.asarray(node.params["weight_scale"], np.float32)
    return (node.params["weight_q"].astype(np.float32) * scale.reshape((-1,) + (1,) * (node.params["weight_q"].ndim - 1)))


def _run_island(graph: Graph, node, xs, qin, float_out: bool) -> np.ndarray:
    """A precision island: int8 inputs dequantized, the op's float32 definition (weights: the int8 ones
    dequantized), the output quantized with its qparams -- or kept float32 when it has none (every
    reader is an island node)."""
    xs = [qp.dequantize(x) if qp is not None and x.dtype == np.int8 else x for x, qp in zip(xs, qin)]
    if "weight_q" in node.params and "weight_scale" in node.params:
        node = copy.copy(node)
        node.params = {**node.params, "weight": island_weight(node)}
    y = OPS[node.op].float(node, xs).astype(np.float32)
    return y if float_out else graph.qparams[node.outputs[0]].quantize(y)


def run_int(graph: Graph, inputs, *, raw: bool = False) -> dict[str, np.ndarray]:
    """Run the quantized IR with integer arithmetic. Float inputs are quantized with the input's
    qparams; outputs are dequantized to float32 unless ``raw`` (then int8). Nodes in a precision
    island (``graph.islands``) run their float32 definition between dequantize and quantize; an
    output an island writes is float32 (also with ``raw``)."""
    if not graph.quantized:
        raise ModelError("run_int needs a quantized graph (run the quantize pass first)")
    env = {}
    for name, arr in _feeds(graph, inputs).items():
        env[name] = graph.qparams[name].quantize(arr) if arr.dtype == np.float32 else arr
    floats = graph.float_tensors()
    for node in graph.nodes:
        qin = [None if i in floats else graph.qparams.get(i) for i in node.inputs]
        xs = [env[i] for i in node.inputs]
        if node.name in graph.islands:
            env[node.outputs[0]] = _run_island(graph, node, xs, qin, node.outputs[0] in floats)
        else:
            env[node.outputs[0]] = OPS[node.op].int(node, xs, qin, graph.qparams[node.outputs[0]])
    if raw:
        return {name: env[name] for name in graph.outputs}
    return {name: env[name] if name in floats else graph.qparams[name].dequantize(env[name]) for name in graph.outputs}
