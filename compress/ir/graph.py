"""edgefleet's graph IR: a topologically ordered list of nodes over named tensors.

The IR is the one model every exporter serializes and every int8 runtime is judged against. It is
deliberately small: a closed op set (see :mod:`edgefleet.compress.ir.ops`), NCHW layout as in
PyTorch, float32 activations with an optional dynamic batch axis 0, constants held by the node that
uses them (``node.params``), and — once quantized — one :class:`QParams` per tensor.

It needs numpy only: no torch, no onnx. :func:`edgefleet.compress.capture.capture` builds it from a
PyTorch module; :mod:`~edgefleet.compress.ir.reference` runs it (float and integer).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from edgefleet._errors import ModelError, UnsupportedOpError


@dataclass
class Value:
    """A tensor flowing between nodes. ``shape[0] is None`` marks the dynamic batch axis."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class QParams:
    """Affine int8 quantization: ``real = scale * (q - zero_point)``.

    Per-tensor (``axis is None``, scalar arrays) for activations; per-channel along ``axis`` for
    weights (symmetric: zero points are 0). ``qmin``/``qmax`` bound the integer range.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None
    qmin: int = -128
    qmax: int = 127

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> "QParams":
        return cls(np.float32(scale).reshape(()), np.int32(zero_point).reshape(()), None, qmin, qmax)

    @property
    def scalar_scale(self) -> float:
        return float(self.scale)

    @property
    def scalar_zero_point(self) -> int:
        return int(self.zero_point)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float -> int, round half to even, saturating (the rule every runtime follows)."""
        scale, zp = self._broadcast(x.ndim)
        q = np.round(np.asarray(x, np.float32) / scale) + zp
        return np.clip(q, self.qmin, self.qmax).astype(np.int8 if self.qmax <= 127 else np.int32)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        scale, zp = self._broadcast(q.ndim)
        return ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)

    def _broadcast(self, ndim: int):
        if self.axis is None:
            return self.scale.astype(np.float32), self.zero_point.astype(np.int32)
        shape = [1] * ndim
        shape[self.axis] = -1
        return self.scale.astype(np.float32).reshape(shape), self.zero_point.astype(np.int32).reshape(shape)

    def same_as(self, other: "QParams | None") -> bool:
        return (other is not None and self.axis == other.axis and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def to_json(self) -> dict:
        return {"scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(), "axis": self.axis,
                "qmin": self.qmin, "qmax": self.qmax}


@dataclass
class Node:
    """One op application. ``inputs``/``outputs`` name Values; ``params`` hold the node's constants
    (weights, biases, lookup tables); ``attrs`` its plain-typed attributes. ``source`` is the
    user's source location (file:line) and ``module`` the PyTorch module path it came from."""

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    module: str = ""
    #: state_dict key of each param (e.g. ``{"weight": "features.0.weight"}``), for passes that edit modules
    param_names: dict[str, str] = field(default_factory=dict)

    def where(self) -> str:
        loc = f" at {self.source}" if self.source else ""
        mod = f" (module {self.module!r})" if self.module else ""
        return f"node {self.name!r}{mod}{loc}"


@dataclass
class Graph:
    """A model: inputs, nodes in topological order, outputs.

    After quantization ``qparams`` maps every activation tensor name to its :class:`QParams`, and
    weight-bearing nodes carry ``weight_q``/``weight_qparams``/``bias_q`` params (see ``quantize``).

    ``islands`` marks the nodes of a quantized graph that run in float32 (*precision islands*, see
    :mod:`~edgefleet.compress.ir.islands`): node name -> why (``{"reason": ..., "gain": ...}``). An
    island node dequantizes its int8 inputs, computes its float definition and quantizes its output
    with the output's qparams -- unless every reader of that output is an island node too, or it is
    a graph output: such a tensor stays float32 (:meth:`float_tensors`; it has no qparams, except a
    graph output, whose calibrated qparams remain the parity gate's unit).
    """

    inputs: list[Value]
    nodes: list[Node]
    outputs: list[str]
    values: dict[str, Value]
    qparams: dict[str, QParams] = field(default_factory=dict)
    name: str = "model"
    islands: dict[str, dict] = field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return bool(self.qparams)

    def in_island(self, node: Node) -> bool:
        return node.name in self.islands

    def float_tensors(self) -> set[str]:
        """Tensors that stay float32 in the quantized graph: written by an island node and read only
        by island nodes, or a graph output written by an island node."""
        if not self.islands:
            return set()
        readers: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                readers.setdefault(name, []).append(node)
        return {node.outputs[0] for node in self.nodes if node.name in self.islands and (
            node.outputs[0] in self.outputs
            or (readers.get(node.outputs[0]) and all(r.name in self.islands for r in readers[node.outputs[0]])))}

    def producer(self, value: str) -> Node | None:
        for node in self.nodes:
            if value in node.outputs:
                return node
        return None

    def consumers(self, value: str) -> list[Node]:
        return [n for n in self.nodes if value in n.inputs]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def iter_params(self) -> Iterator[tuple[Node, str, np.ndarray]]:
        for node in self.nodes:
            for key, arr in node.params.items():
                yield node, key, arr

    def num_parameters(self) -> int:
        """Float parameter count (weights and biases; lookup tables excluded)."""
        return int(sum(arr.size for _, key, arr in self.iter_params() if key in ("weight", "bias", "gamma", "beta", "const")))

    def copy(self) -> "Graph":
        return copy.deepcopy(self)

    def validate(self) -> "Graph":
        """Check structure: known ops, defined-before-use tensors, unique names. Raises ModelError."""
        from .ops import OPS

        defined = {v.name for v in self.inputs}
        seen_nodes = set()
        for node in self.nodes:
            if node.op not in OPS:
                raise UnsupportedOpError(f"op {node.op!r} is not in edgefleet's op set ({node.where()})")
            if node.name in seen_nodes:
                raise ModelError(f"duplicate node name {node.name!r}")
            seen_nodes.add(node.name)
            for name in node.inputs:
                if name not in defined:
                    raise ModelError(f"{node.where()}: input {name!r} is used before it is defined")
            for name in node.outputs:
                if name in defined:
                    raise ModelError(f"{node.where()}: output {name!r} is defined twice")
                if name not in self.values:
                    raise ModelError(f"{node.where()}: output {name!r} has no Value entry")
                defined.add(name)
            OPS[node.op].check(node)
        for name in self.outputs:
            if name not in defined:
                raise ModelError(f"graph output {name!r} is never produced")
        return self

    def summary(self) -> str:
        lines = [f"graph {self.name}: {len(self.nodes)} nodes, {self.num_parameters():,} parameters"]
        for node in self.nodes:
            shape = self.values[node.outputs[0]].shape
            lines.append(f"  {node.name:<24} {node.op:<14} -> {list(shape)}")
        return "\n".join(lines)
