"""Channel dependency analysis on the captured IR, and the physical slicing of torch modules.

Structured pruning (``prune``) and width-derived students (``distill width=``) both remove whole
channels. A channel dimension is shared by everything that touches it: the layer(s) producing it,
the depthwise convs and elementwise ops it flows through, the layers consuming it, and — through a
residual ``add`` — every other tensor added to it. :func:`channel_groups` finds these groups on the
captured graph (union-find over tensors); :func:`prune_groups` then slices the torch modules so that
the model is physically smaller.

A group is *blocked* (left alone) when any op it touches does not map channel ``c`` to channel ``c``
in a way we can slice: a graph input or output, layer norm, softmax, matmul, transpose, concat,
non-flatten reshapes, grouped (non-depthwise) convs, constants that vary along channels (an unfolded
batch norm), modules used twice, or a layer that is not a plain ``nn.Conv2d``/``nn.Linear``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..ir.graph import Graph, Node

_ELEMENTWISE = {"relu", "relu6", "hardswish", "sigmoid", "silu", "tanh", "gelu"}
_SPATIAL = {"max_pool2d", "avg_pool2d"}


@dataclass
class Group:
    """One shared channel dimension of ``size`` channels."""

    size: int
    producers: list[Node] = field(default_factory=list)   # conv/linear writing the channels (dim 0)
    depthwise: list[Node] = field(default_factory=list)   # depthwise convs the channels flow through
    consumers: list[tuple[Node, int]] = field(default_factory=list)  # (layer reading them, features per channel)
    blocked: str = ""                                      # why it cannot be pruned ("" when it can)

    def describe(self) -> str:
        return "+".join(n.module for n in self.producers) or "?"


class _Analysis:
    def __init__(self, graph: Graph, model: nn.Module):
        self.graph = graph
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.why: dict[int, str] = {}
        self.dim: dict[str, tuple[int, int]] = {}  # tensor -> (group id, features per channel)
        self.members: dict[int, dict[str, list]] = {}
        self.modules = dict(model.named_modules())
        self.uses: dict[str, int] = {}
        for n in graph.nodes:
            if n.module and n.op in ("conv2d", "linear"):
                self.uses[n.module] = self.uses.get(n.module, 0) + 1

    # union-find -------------------------------------------------------------------------------
    def new(self, size: int, why: str = "") -> int:
        gid = len(self.parent)
        self.parent[gid], self.size[gid], self.why[gid] = gid, size, why
        self.members[gid] = {"producers": [], "depthwise": [], "consumers": []}
        return gid

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        self.parent[b] = a
        if self.size[a] != self.size[b]:
            self.why[a] = self.why[a] or f"channel counts differ ({self.size[a]} vs {self.size[b]})"
        self.why[a] = self.why[a] or self.why[b]
        for key, items in self.members[b].items():
            self.members[a][key] += items
        return a

    def block(self, value: str, why: str) -> None:
        if value in self.dim:
            g = self.find(self.dim[value][0])
            self.why[g] = self.why[g] or why

    # tensors ----------------------------------------------------------------------------------
    def channels(self, value: str) -> int:
        shape = self.graph.values[value].shape if value in self.graph.values else \
            next(v.shape for v in self.graph.inputs if v.name == value)
        return int(shape[1] if len(shape) == 4 else shape[-1])

    def fresh(self, value: str, why: str = "") -> None:
        self.dim[value] = (self.new(self.channels(value), why), 1)

    def same(self, src: str, dst: str) -> None:
        """``dst`` carries ``src``'s channels unchanged."""
        g, f = self.dim[src]
        self.dim[dst] = (g, f)

    def layer_ok(self, node: Node) -> str:
        mod = self.modules.get(node.module)
        want = nn.Conv2d if node.op == "conv2d" else nn.Linear
        if type(mod) is not want or node.param_names.get("weight") != f"{node.module}.weight":
            return f"{node.where()} is not a plain {want.__name__} module"
        if self.uses.get(node.module, 0) != 1:
            return f"module {node.module!r} is used more than once"
        return ""

    # ops --------------------------------------------------------------------------------------
    def visit(self, node: Node) -> None:
        op, ins, out = node.op, node.inputs, node.outputs[0]
        if op in ("conv2d", "linear"):
            self.layer(node)
        elif op in _ELEMENTWISE or op in _SPATIAL:
            self.same(ins[0], out)
        elif op == "mean":
            rank = len(self.graph.values[ins[0]].shape)
            if rank == 4 and 1 not in node.attrs["axes"] and self.dim[ins[0]][1] == 1:
                self.same(ins[0], out)
            else:
                self.block(ins[0], f"{node.where()}: mean over the channel axis")
                self.fresh(out, "mean over the channel axis")
        elif op in ("add", "mul"):
            self.binary(node)
        elif op == "reshape":
            self.reshape(node)
        else:
            for i in ins:
                self.block(i, f"{node.where()}: {op} mixes channels")
            self.fresh(out, f"produced by {op}")

    def layer(self, node: Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        bad = self.layer_ok(node)
        groups = int(node.attrs.get("groups", 1))
        cin = self.channels(x)
        if bad:
            self.block(x, bad)
            self.fresh(out, bad)
        elif node.op == "conv2d" and groups > 1:
            if groups == cin == self.channels(out):  # depthwise: channel c in, channel c out
                self.same(x, out)
                self.members[self.find(self.dim[x][0])]["depthwise"].append(node)
            else:
                self.block(x, f"{node.where()}: grouped convolution")
                self.fresh(out, "grouped convolution")
        else:
            g, f = self.dim[x]
            self.members[self.find(g)]["consumers"].append((node, f))
            self.fresh(out)
            self.members[self.dim[out][0]]["producers"].append(node)

    def binary(self, node: Node) -> None:
        out = node.outputs[0]
        if len(node.inputs) == 2:
            a, b = node.inputs
            if self.graph.values[a].shape[1:] != self.graph.values[b].shape[1:] or self.dim[a][1] != self.dim[b][1]:
                self.block(a, f"{node.where()}: broadcasting {node.op}")
                self.block(b, f"{node.where()}: broadcasting {node.op}")
                self.fresh(out, f"broadcasting {node.op}")
                return
            self.union(self.dim[a][0], self.dim[b][0])
            self.same(a, out)
            return
        const = np.asarray(node.params.get("const", 0.0))
        x = node.inputs[0]
        rank = len(self.graph.values[x].shape)
        axis = 1 if rank == 4 else rank - 1
        per_channel = const.ndim >= rank - axis and const.shape[const.ndim - (rank - axis)] > 1
        if per_channel:
            self.block(x, f"{node.where()}: {node.op} by a per-channel constant")
        self.same(x, out)

    def reshape(self, node: Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        src, dst = self.graph.values[x].shape, self.graph.values[out].shape
        if len(src) == 4 and len(dst) == 2 and dst[1] == src[1] * src[2] * src[3]:
            g, f = self.dim[x]
            self.dim[out] = (g, f * src[2] * src[3])  # flatten: channel c -> features c*HW .. (c+1)*HW-1
        elif tuple(src[1:]) == tuple(dst[1:]):
            self.same(x, out)
        else:
            self.block(x, f"{node.where()}: reshape that is not a flatten")
            self.fresh(out, "reshape")


def channel_groups(graph: Graph, model: nn.Module) -> list[Group]:
    """The channel groups of ``model`` (captured as ``graph``); blocked ones carry ``blocked``."""
    a = _Analysis(graph, model)
    for v in graph.inputs:
        a.fresh(v.name, "the model input")
    for node in graph.nodes:
        a.visit(node)
    for name in graph.outputs:
        a.block(name, "a graph output")
    out = []
    for gid in {a.find(g) for g in a.parent}:
        m = a.members[gid]
        why = a.why[gid] or ("" if m["producers"] else "no layer produces it")
        out.append(Group(a.size[gid], m["producers"], m["depthwise"], m["consumers"], why))
    return sorted(out, key=lambda g: min((graph.nodes.index(n) for n in g.producers), default=1 << 30))


def channel_scores(group: Group, criterion: str) -> np.ndarray:
    """Importance of each channel: the norm of its output weights (BN folded in, as deployed),
    normalised per producer so that no layer of a residual group dominates by its scale alone."""
    total = np.zeros(group.size, np.float64)
    for node in group.producers + group.depthwise:
        w = node.params["weight"].reshape(group.size, -1).astype(np.float64)
        s = np.abs(w).sum(1) if criterion == "l1" else np.sqrt((w ** 2).sum(1))
        total += s / (s.mean() + 1e-12)
    return total


def keep_indices(scores: np.ndarray, n_keep: int) -> np.ndarray:
    # stable sort: ties keep the lower index, so the result is deterministic
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:n_keep])


# physical slicing ------------------------------------------------------------------------------
def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    old = getattr(module, name)
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(value.contiguous(), requires_grad=old.requires_grad))
    else:
        setattr(module, name, value.contiguous())


def _slice(module: nn.Module, name: str, dim: int, idx: torch.Tensor) -> None:
    t = getattr(module, name, None)
    if t is not None:
        _set(module, name, t.detach().index_select(dim, idx))
    mask = getattr(module, "_edgefleet_mask", None)
    if name == "weight" and mask is not None:  # keep an unstructured sparsity mask in step
        module._edgefleet_mask = mask.index_select(dim, idx).contiguous()


def _slice_bn(bn: nn.Module, idx: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        _slice(bn, name, 0, idx)
    bn.num_features = len(idx)


@torch.no_grad()
def prune_groups(model: nn.Module, plan: list[tuple[Group, np.ndarray]]) -> None:
    """Slice ``model`` in place so that each group keeps only the channels in its keep-set."""
    modules = dict(model.named_modules())
    for group, keep in plan:
        idx = torch.as_tensor(keep, dtype=torch.long)
        for node in group.producers + group.depthwise:
            mod = modules[node.module]
            _slice(mod, "weight", 0, idx)
            _slice(mod, "bias", 0, idx)
            if isinstance(mod, nn.Linear):
                mod.out_features = len(idx)
            else:
                mod.out_channels = len(idx)
            if node in group.depthwise:
                mod.in_channels = mod.groups = len(idx)
            if node.attrs.get("folded_bn"):
                _slice_bn(modules[node.attrs["folded_bn"]], idx)
        for node, per in group.consumers:
            mod = modules[node.module]
            cols = (idx[:, None] * per + torch.arange(per)[None, :]).reshape(-1)
            _slice(mod, "weight", 1, cols)
            if isinstance(mod, nn.Linear):
                mod.in_features = len(cols)
            else:
                mod.in_channels = len(cols)
