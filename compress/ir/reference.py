"""Reference interpreters of the IR: float32 (``run_float``) and integer (``run_int``).

``run_int`` *defines* edgefleet's int8 arithmetic: every int8 runtime (onnxruntime QDQ, LiteRT,
native C, wasm) is judged against it by the parity gate. It is written for clarity and exactness,
not speed: integer sums are formed in float64 (exact below 2**53) or int64.

>>> out = run_float(graph, {"input": x})            # doctest: +SKIP
>>> out_q = run_int(qgraph, {"input": x}, raw=True) # int8 outputs, doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from edgefleet._errors import DataError, ModelError

from . import kernels as K
from .graph import Graph, Node, QParams


# --------------------------------------------------------------------------------------------
# float32
# --------------------------------------------------------------------------------------------
def _act(x: np.ndarray, act: str) -> np.ndarray:
    if act == "relu":
        return np.maximum(x, 0)
    if act == "relu6":
        return np.clip(x, 0, 6)
    return x


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gelu(x, approximate="none"):
    x64 = np.asarray(x, np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        erf = np.vectorize(math.erf, otypes=[np.float64])
        y = 0.5 * x64 * (1 + erf(x64 / math.sqrt(2)))
    return y.astype(x.dtype) if isinstance(x, np.ndarray) else y


UNARY_FLOAT: dict[str, Callable] = {
    "relu": lambda x, n: np.maximum(x, 0),
    "relu6": lambda x, n: np.clip(x, 0, 6),
    "hardswish": lambda x, n: x * np.clip(x + 3, 0, 6) / 6,
    "sigmoid": lambda x, n: _sigmoid(x),
    "silu": lambda x, n: x * _sigmoid(x),
    "tanh": lambda x, n: np.tanh(x),
    "gelu": lambda x, n: _gelu(x, n.attrs.get("approximate", "none")),
}


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(eps)) * gamma + beta


def _reshape_shape(x: np.ndarray, shape) -> tuple[int, ...]:
    return (x.shape[0], *shape[1:])


def _float_op(node: Node, xs: list[np.ndarray]) -> np.ndarray:
    op, a, p = node.op, node.attrs, node.params
    x = xs[0]
    if op == "linear":
        y = x @ p["weight"].T
        if "bias" in p:
            y = y + p["bias"]
        return _act(y, a["act"])
    if op == "conv2d":
        y = K.conv2d(x, p["weight"], a["stride"], a["padding"], a["dilation"], a["groups"])
        if "bias" in p:
            y = y + p["bias"].reshape(1, -1, 1, 1)
        return _act(y.astype(np.float32), a["act"])
    if op == "max_pool2d":
        return K.windows(x, a["kernel"], a["stride"], a["padding"], pad_value=-np.inf).max(axis=(-1, -2))
    if op == "avg_pool2d":
        s = K.windows(x, a["kernel"], a["stride"], a["padding"]).sum(axis=(-1, -2))
        if a["count_include_pad"]:
            return s / (a["kernel"][0] * a["kernel"][1])
        return s / K.pool_windows_count(x.shape[2:], a["kernel"], a["stride"], a["padding"])
    if op == "mean":
        return x.mean(axis=tuple(a["axes"]), keepdims=a["keepdim"])
    if op in ("add", "mul"):
        other = xs[1] if len(xs) > 1 else p["const"]
        return x + other if op == "add" else x * other
    if op in UNARY_FLOAT:
        return UNARY_FLOAT[op](x, node)
    if op == "softmax":
        return _softmax(x, a["axis"])
    if op == "layer_norm":
        return _layer_norm(x, p["gamma"], p["beta"], a["eps"])
    if op == "matmul":
        return xs[0] @ xs[1]
    if op == "reshape":
        return x.reshape(_reshape_shape(x, a["shape"]))
    if op == "transpose":
        return x.transpose(a["perm"])
    if op == "concat":
        return np.concatenate(xs, axis=a["axis"])
    if op == "embedding":
        return p["weight"][x]
    raise ModelError(f"{node.where()}: no float implementation for op {op!r}")


# --------------------------------------------------------------------------------------------
# int8
# --------------------------------------------------------------------------------------------
def _centered(q: np.ndarray, qp: QParams) -> np.ndarray:
    return q.astype(np.int64) - qp.scalar_zero_point


def _finish(acc: np.ndarray, node: Node, out: QParams) -> np.ndarray:
    lo, hi = node.attrs.get("clamp", (out.qmin, out.qmax))
    return np.clip(acc + out.scalar_zero_point, lo, hi).astype(np.int8)


def _int_op(node: Node, xs: list[np.ndarray], qin: list[QParams | None], out: QParams) -> np.ndarray:
    op, a, p = node.op, node.attrs, node.params
    x = xs[0]
    if op in ("linear", "conv2d"):
        xc = _centered(x, qin[0]).astype(np.float64)
        w = p["weight_q"].astype(np.float64)
        if op == "linear":
            acc = np.rint(xc @ w.T).astype(np.int64)
            cshape = [-1]
        else:
            acc = np.rint(K.conv2d(xc, w, a["stride"], a["padding"], a["dilation"], a["groups"])).astype(np.int64)
            cshape = [1, -1, 1, 1]
        if "bias_q" in p:
            acc = acc + p["bias_q"].astype(np.int64).reshape(cshape)
        y = K.requantize(acc, p["multiplier"].reshape(cshape), p["shift"].reshape(cshape))
        return _finish(y, node, out)
    if op == "max_pool2d":
        return K.windows(x, a["kernel"], a["stride"], a["padding"], pad_value=-128).max(axis=(-1, -2)).astype(np.int8)
    if op in ("avg_pool2d", "mean"):
        if op == "mean":
            s = x.astype(np.int64).sum(axis=tuple(a["axes"]), keepdims=a["keepdim"])
            count = int(np.prod([x.shape[i] for i in a["axes"]]))
        else:
            zp = qin[0].scalar_zero_point
            s = K.windows(x.astype(np.int64), a["kernel"], a["stride"], a["padding"], pad_value=zp).sum(axis=(-1, -2))
            count = a["kernel"][0] * a["kernel"][1]
            if not a["count_include_pad"]:
                # padded cells hold the zero point; remove them and divide by the real count
                real = K.pool_windows_count(x.shape[2:], a["kernel"], a["stride"], a["padding"]).astype(np.int64)
                s = s - (count - real) * zp
                count = real
        return np.clip(K.rounded_div(s, count), -128, 127).astype(np.int8)
    if op in ("add", "mul"):
        if len(xs) > 1:
            b, qb = xs[1], qin[1]
        else:
            b, qb = p["const_q"], QParams.per_tensor(float(p["const_scale"]), int(p["const_zero_point"]))
        ac, bc = _centered(x, qin[0]), _centered(b, qb)
        if op == "add":
            y = (ac * p["mult_a"] + bc * p["mult_b"] + (1 << (K.ADD_SHIFT - 1))) >> K.ADD_SHIFT
        else:
            y = K.requantize(ac * bc, p["multiplier"], p["shift"])
        return _finish(y, node, out)
    if "table" in p:  # unary lookup-table ops
        return p["table"][x.astype(np.int64) + 128]
    if op == "softmax":
        xi = x.astype(np.int64)
        d = xi.max(axis=a["axis"], keepdims=True) - xi
        e = p["exp_table"].astype(np.int64)[d]
        total = e.sum(axis=a["axis"], keepdims=True)
        y = (e * 512 + total) // (2 * total) - 128
        return np.clip(y, -128, 127).astype(np.int8)
    if op == "layer_norm":
        xf = qin[0].dequantize(x)
        return out.quantize(_layer_norm(xf, p["gamma"], p["beta"], a["eps"]).astype(np.float32))
    if op == "matmul":
        acc = np.rint(_centered(xs[0], qin[0]).astype(np.float64) @ _centered(xs[1], qin[1]).astype(np.float64))
        return _finish(K.requantize(acc.astype(np.int64), p["multiplier"], p["shift"]), node, out)
    if op == "reshape":
        return x.reshape(_reshape_shape(x, a["shape"]))
    if op == "transpose":
        return x.transpose(a["perm"])
    if op == "concat":
        parts = []
        for xi, qi, mult in zip(xs, qin, p["mults"]):
            if qi.same_as(out):
                parts.append(xi.astype(np.int64))
            else:
                r = (_centered(xi, qi) * int(mult) + (1 << (K.ADD_SHIFT - 1))) >> K.ADD_SHIFT
                parts.append(np.clip(r + out.scalar_zero_point, -128, 127))
        return np.concatenate(parts, axis=a["axis"]).astype(np.int8)
    if op == "embedding":
        return p["weight_q"][x]
    raise ModelError(f"{node.where()}: no int8 implementation for op {op!r}")


# --------------------------------------------------------------------------------------------
# interpreters
# --------------------------------------------------------------------------------------------
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
        feeds[v.name] = arr.astype(np.int64) if v.dtype == "int64" else arr.astype(np.float32)
    return feeds


def run_float(graph: Graph, inputs, *, observe: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Run the float32 IR. ``observe(name, array)`` sees every tensor (used by calibration)."""
    env = _feeds(graph, inputs)
    if observe:
        for name, arr in env.items():
            observe(name, arr)
    for node in graph.nodes:
        y = _float_op(node, [env[i] for i in node.inputs])
        if y.dtype == np.float64:
            y = y.astype(np.float32)
        env[node.outputs[0]] = y
        if observe:
            observe(node.outputs[0], y)
    return {name: env[name] for name in graph.outputs}


def run_int(graph: Graph, inputs, *, raw: bool = False) -> dict[str, np.ndarray]:
    """Run the quantized IR with integer arithmetic. Float inputs are quantized with the input's
    qparams; outputs are dequantized to float32 unless ``raw`` (then int8)."""
    if not graph.quantized:
        raise ModelError("run_int needs a quantized graph (run the quantize pass first)")
    env = {}
    for name, arr in _feeds(graph, inputs).items():
        env[name] = graph.qparams[name].quantize(arr) if arr.dtype == np.float32 else arr
    for node in graph.nodes:
        qin = [graph.qparams.get(i) for i in node.inputs]
        env[node.outputs[0]] = _int_op(node, [env[i] for i in node.inputs], qin, graph.qparams[node.outputs[0]])
    if raw:
        return {name: env[name] for name in graph.outputs}
    return {name: graph.qparams[name].dequantize(env[name]) for name in graph.outputs}
