"""Precision islands: nodes of a quantized graph that run in float32, chosen by measured sensitivity.

A pure int8 graph loses fidelity where a tensor's values do not fit one per-tensor int8 grid (a
transformer's residual stream with a few outlier channels, attention scores feeding softmax). An
*island* is a node marked in ``Graph.islands`` (node name -> why): the integer reference
(:func:`~edgefleet.compress.ir.reference.run_int`) dequantizes its int8 inputs, runs the op's float32
definition and quantizes the output with the output's qparams; a tensor written by an island node
and read only by island nodes, or a graph output written by one, stays float32
(:meth:`Graph.float_tensors`). Every
exporter lowers an island the same way (ONNX: DequantizeLinear -> float op -> QuantizeLinear;
TFLite: DEQUANTIZE -> float op -> QUANTIZE).

:func:`choose_islands` picks them: it measures, per *group* of nodes (all nodes of one op kind, or
one node), the fidelity gained when that group runs in float, and adds groups greedily by gain until
the fidelity target is met — none when pure int8 already meets it. The choice and the gain each
group bought are recorded in ``Graph.islands`` (and from there in the bundle's manifest).

>>> score = scorer(batches, reference)                          # (mean, p1) cosine   # doctest: +SKIP
>>> qg = choose_islands(qgraph, score, lambda s: s[0] >= 0.99)  # doctest: +SKIP
>>> summary(qg)[0]["group"], summary(qg)[0]["gain"]             # doctest: +SKIP
('add', 0.0033)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np

from edgefleet._errors import ConfigError

from .graph import Graph
from .ops import OPS
from .reference import run_int

#: ops that may run in an island (every op with a float definition every exporter can lower)
ISLAND_OPS = ("linear", "matmul", "add", "mul", "div", "softmax", "layer_norm", "gelu", "tanh", "sigmoid", "silu",
              "reshape", "transpose", "slice", "concat", "mean", "sum")
#: a group must raise the objective by more than this to be worth an island
MIN_GAIN = 1e-5
#: shape ops join an island when they sit between two island nodes, so the tensor stays float
_MOVERS = ("reshape", "transpose", "slice")


def mark(qgraph: Graph, marks: dict[str, dict]) -> Graph:
    """A copy of ``qgraph`` with ``marks`` (node name -> why) as its islands; tensors that become
    float32 lose their qparams."""
    g = qgraph.copy()
    names = {n.name for n in g.nodes}
    for name in marks:
        if name not in names:
            raise ConfigError(f"quantize.keep_float: no node named {name!r}")
        op = g.node(name).op
        if op not in ISLAND_OPS:
            raise ConfigError(f"quantize.keep_float: op {op!r} ({g.node(name).where()}) cannot run in a float "
                              f"island; islands take {', '.join(ISLAND_OPS)}")
    g.islands = {**{k: dict(v) for k, v in qgraph.islands.items()}, **{k: dict(v) for k, v in marks.items()}}
    _absorb_movers(g)
    for name in g.float_tensors() - set(g.outputs):  # an output keeps its qparams: the parity unit
        g.qparams.pop(name, None)
    return g


def _absorb_movers(g: Graph) -> None:
    """A reshape/transpose/slice whose input comes from an island node and whose readers are all island
    nodes joins the island (otherwise it would force a quantize/dequantize round trip between them)."""
    changed = True
    while changed:
        changed = False
        for node in g.nodes:
            if node.op not in _MOVERS or node.name in g.islands:
                continue
            src = g.producer(node.inputs[0])
            readers = g.consumers(node.outputs[0])
            if (src is not None and src.name in g.islands and readers and node.outputs[0] not in g.outputs
                    and all(r.name in g.islands for r in readers)):
                g.islands[node.name] = {"group": node.op, "reason": "joins its neighbours' island", "gain": 0.0}
                changed = True


def groups_by_op(qgraph: Graph, ops: Sequence[str] = ISLAND_OPS) -> dict[str, list[str]]:
    """Candidate groups: every node of one op kind (shape ops excluded: they only move values)."""
    out: dict[str, list[str]] = {}
    for node in qgraph.nodes:
        if node.op in ops and node.op not in _MOVERS:
            out.setdefault(node.op, []).append(node.name)
    return out


def fidelity(outputs: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Mean and 1st-percentile cosine of each sample's output to the float reference."""
    a = outputs.reshape(len(outputs), -1).astype(np.float64)
    b = reference.reshape(len(reference), -1).astype(np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return float(cos.mean()), float(np.percentile(cos, 1))


def scorer(batches: Sequence, reference: np.ndarray,
           runner: Callable[[Graph, object], np.ndarray] | None = None) -> Callable[[Graph], tuple[float, float]]:
    """``score(qgraph) -> (mean, p1)`` cosine of the quantized graph's outputs on ``batches`` to
    ``reference`` (the float outputs of the same batches, concatenated)."""
    def run(g, batch):
        return next(iter(run_int(g, batch).values()))

    runner = runner or run

    def score(g: Graph) -> tuple[float, float]:
        return fidelity(np.concatenate([runner(g, b) for b in batches]), reference)
    return score


def sensitivity(qgraph: Graph, score: Callable[[Graph], tuple[float, ...]],
                groups: dict[str, list[str]]) -> list[dict]:
    """Per group, the score (``score(graph)``: a tuple, the first element the objective, higher better;
    e.g. mean and 1st-percentile cosine) when only that group runs in float, and the gain over pure
    int8; best first."""
    base = score(qgraph)
    rows = []
    for group, nodes in groups.items():
        got = score(mark(qgraph, {n: {"group": group} for n in nodes}))
        rows.append({"group": group, "nodes": len(nodes), "score": list(got),
                     "gain": [a - b for a, b in zip(got, base)]})
    return sorted(rows, key=lambda r: -r["gain"][0])


def choose_islands(qgraph: Graph, score: Callable[[Graph], tuple[float, ...]], met: Callable[[tuple], bool], *,
                   keep_float="auto", max_groups: int = 6, allowed: Sequence[str] = ISLAND_OPS) -> Graph:
    """The quantized graph with the fewest island groups whose score ``met``: greedy, each round adding the
    group whose float run raises the objective (``score(graph)[0]``, higher better) most, then dropping
    any chosen group the target no longer needs. Pure int8 when it already meets the target (then
    ``score`` runs once).

    ``keep_float``: ``"auto"`` (measure and choose), ``"none"`` (pure int8), or a list of op kinds or
    node names forced into islands (then nothing else is added). ``allowed``: the op kinds ``auto`` may
    choose from (the kinds every target of the export can lower; forced kinds are not checked here, the
    exporter that cannot lower one refuses it by name).
    """
    groups = groups_by_op(qgraph)
    if keep_float == "none" or not keep_float:
        return qgraph
    if keep_float != "auto":
        marks = {}
        for item in keep_float:
            nodes = groups.get(item) or ([item] if item in {n.name for n in qgraph.nodes} else None)
            if nodes is None:
                raise ConfigError(f"quantize.keep_float: {item!r} is neither an op kind in this model "
                                  f"({', '.join(groups) or 'none'}) nor a node name")
            marks.update({n: {"group": item, "reason": "forced by quantize.keep_float"} for n in nodes})
        return mark(qgraph, marks)

    groups = {g: nodes for g, nodes in groups.items() if g in allowed}
    current, got = qgraph, score(qgraph)
    chosen: list[str] = []
    while not met(got) and len(chosen) < max_groups:
        left = [g for g in groups if g not in chosen]
        best = _best_trial(current, score, groups, [(g,) for g in left])
        if best is None or best[2][0] <= got[0] + MIN_GAIN:
            # a tensor stays float only between two island nodes: some kinds help only in pairs
            # (a residual add and the layer norm reading it)
            best = _best_trial(current, score, groups, list(combinations(left, 2)))
        if best is None or best[2][0] <= got[0] + MIN_GAIN:
            break  # nothing left helps
        picked, trial, trial_got = best
        for group in picked:
            for n in groups[group]:
                pair = f" (chosen with {', '.join(x for x in picked if x != group)}: the gain is the pair's)" \
                    if len(picked) > 1 else ""
                trial.islands[n] = {"group": group, "reason": f"auto: pure int8 missed the budget{pair}",
                                    "gain": round(trial_got[0] - got[0], 6),
                                    "score_after": round(trial_got[0], 6)}
        chosen += picked
        current, got = trial, trial_got
    return _drop_unneeded(qgraph, current, score, met, chosen) if met(got) else current


def _drop_unneeded(qgraph: Graph, current: Graph, score, met, chosen: list[str]) -> Graph:
    """Greedy order can pick a kind early that later picks make redundant: drop each chosen kind (the
    earliest first) whose removal still meets the target."""
    for group in list(chosen):
        keep = {n: why for n, why in current.islands.items() if why.get("group") in chosen and why.get("group") != group}
        trial = mark(qgraph, keep)
        trial_got = score(trial)
        if met(trial_got):
            chosen.remove(group)
            current = trial
    return current


def _best_trial(g: Graph, score, groups: dict[str, list[str]], candidates: list[tuple[str, ...]]):
    best = None
    for picked in candidates:
        trial = mark(g, {n: {"group": grp} for grp in picked for n in groups[grp]})
        got = score(trial)
        if best is None or got[0] > best[2][0]:
            best = (picked, trial, got)
    return best


def summary(qgraph: Graph) -> list[dict]:
    """One row per island group, for the manifest and the report: op kind, nodes, the reason and the
    gain in the budget's objective it bought (measured when it was chosen)."""
    rows: dict[str, dict] = {}
    for name, why in qgraph.islands.items():
        group = why.get("group") or OPS[qgraph.node(name).op].name
        row = rows.setdefault(group, {"group": group, "nodes": [], "reason": why.get("reason", ""),
                                      "gain": why.get("gain"), "score_after": why.get("score_after")})
        row["nodes"].append(name)
    return list(rows.values())
