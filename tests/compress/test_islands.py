"""Precision islands: float32 nodes in a quantized graph (compress/ir/islands.py) -- their semantics in
the integer reference, the automatic choice and its refusals. Lowering per runtime: the parity suite."""

import numpy as np
import pytest
import torch
from torch import nn

from edgefleet import ConfigError
from edgefleet.compress.capture import capture
from edgefleet.compress.ir import OPS, islands, quantize_graph, run_float, run_int
from edgefleet.compress.ir.op_norm import layer_norm
from edgefleet.compress.ir.reference import island_weight


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4)).eval()
    rng = np.random.default_rng(0)
    graph = capture(model, (8,))
    x = rng.standard_normal((32, 8)).astype(np.float32)
    return graph, quantize_graph(graph, [rng.standard_normal((64, 8)).astype(np.float32)]), x


def test_island_runs_the_float_op_between_dequantize_and_quantize(case):
    graph, qgraph, x = case
    first, ln, last = qgraph.nodes
    marked = islands.mark(qgraph, {ln.name: {}, last.name: {}})
    # the layer norm's output is read only by an island: it stays float32 and has no qparams; the graph
    # output an island writes is float32 too (its calibrated qparams stay, the parity gate's unit)
    assert marked.float_tensors() == {ln.outputs[0], last.outputs[0]} and ln.outputs[0] not in marked.qparams
    assert last.outputs[0] in marked.qparams
    # by hand: int8 first linear (as the reference), then float layer norm and float linear with the
    # int8 weights dequantized, then quantize with the output's qparams
    sub = islands.mark(qgraph, {})
    sub.nodes, sub.outputs = [first], [first.outputs[0]]
    q_h = run_int(sub, x, raw=True)[first.outputs[0]]
    f = layer_norm(qgraph.qparams[first.outputs[0]].dequantize(q_h), ln.params["gamma"], ln.params["beta"], ln.attrs["eps"])
    y = (f @ island_weight(last).T + last.params["bias"]).astype(np.float32)
    np.testing.assert_allclose(run_int(marked, x, raw=True)[last.outputs[0]], y, rtol=1e-6, atol=1e-6)
    # an island whose output is read by an int8 op quantizes it with the output's qparams
    mid = islands.mark(qgraph, {ln.name: {}})
    q_ln = mid.qparams[ln.outputs[0]].quantize(f.astype(np.float32))
    want = OPS["linear"].int(last, [q_ln], [mid.qparams[ln.outputs[0]]], mid.qparams[last.outputs[0]])
    np.testing.assert_array_equal(run_int(mid, x, raw=True)[last.outputs[0]], want)
    assert np.abs(island_weight(last) - last.params["weight"]).max() <= last.params["weight_scale"].max() / 2 + 1e-7


def test_mark_refuses_unknown_nodes_and_ops_without_a_float_island(case):
    _, qgraph, _ = case
    with pytest.raises(ConfigError, match="no node named 'nope'"):
        islands.mark(qgraph, {"nope": {}})
    with pytest.raises(ConfigError, match="neither an op kind in this model"):
        islands.choose_islands(qgraph, None, None, keep_float=["softmax"])
    emb = capture(nn.Sequential(nn.Embedding(10, 4)).eval(), (3,), input_dtype="int64")
    qemb = quantize_graph(emb, [np.arange(6, dtype=np.int64).reshape(2, 3)])
    with pytest.raises(ConfigError, match="op 'embedding' .* cannot run in a float island"):
        islands.mark(qemb, {qemb.nodes[0].name: {}})


def test_auto_keeps_pure_int8_when_it_meets_the_budget(case):
    graph, qgraph, x = case
    calls = []
    score = islands.scorer([x], run_float(graph, x)[graph.outputs[0]])
    chosen = islands.choose_islands(qgraph, lambda g: calls.append(1) or score(g), lambda s: s[0] >= 0.99)
    assert chosen is qgraph and not chosen.islands and len(calls) == 1
    assert islands.choose_islands(qgraph, score, lambda s: False, keep_float="none") is qgraph


def test_auto_adds_the_groups_that_raise_fidelity_and_records_what_each_bought(case):
    graph, qgraph, x = case
    score = islands.scorer([x], run_float(graph, x)[graph.outputs[0]])
    base = score(qgraph)[0]
    chosen = islands.choose_islands(qgraph, score, lambda s: s[0] >= 1 - (1 - base) * 0.75)
    rows = islands.summary(chosen)
    assert rows and all(r["gain"] > islands.MIN_GAIN / 2 and r["reason"].startswith("auto") for r in rows)
    assert score(chosen)[0] >= 1 - (1 - base) * 0.75 > base
    forced = islands.summary(islands.choose_islands(qgraph, None, None, keep_float=["layer_norm"]))
    assert [(r["group"], len(r["nodes"]), r["reason"]) for r in forced] == [
        ("layer_norm", 1, "forced by quantize.keep_float")]


def test_greedy_tries_pairs_when_no_single_kind_helps_and_drops_kinds_made_redundant():
    """The selection logic on a scripted score: a residual add and its layer norm help only together
    (the tensor between them stays float only when both are islands); linear helps a little alone."""
    from runtimes.parity_suite import zoo_case

    qgraph = zoo_case("bert_encoder")[1]

    def score(g):
        kinds = {why["group"] for why in g.islands.values()}
        return (0.90 + 0.02 * ("linear" in kinds) + 0.09 * ({"add", "layer_norm"} <= kinds),)

    chosen = islands.choose_islands(qgraph, score, lambda s: s[0] >= 0.99 - 1e-9)
    rows = {r["group"]: r for r in islands.summary(chosen)}
    assert set(rows) == {"add", "layer_norm"}  # linear was picked first, then found unneeded
    assert "chosen with layer_norm" in rows["add"]["reason"] and rows["add"]["gain"] > 0.08


def test_auto_chooses_only_kinds_every_target_can_lower(case):
    """``allowed`` limits the automatic choice (the pipeline passes the kinds every int8 target lowers, so
    an island never costs efm-int8 its artifact); the exporters declare their kinds."""
    from edgefleet.runtimes import exporters
    from edgefleet.runtimes.exporters.efm_export import ISLAND_LOWERINGS

    graph, qgraph, x = case
    score = islands.scorer([x], run_float(graph, x)[graph.outputs[0]])
    only_ln = islands.choose_islands(qgraph, score, lambda s: s[0] >= 1.0, allowed=("layer_norm",))
    assert {why["group"] for why in only_ln.islands.values()} <= {"layer_norm"}
    assert islands.choose_islands(qgraph, score, lambda s: s[0] >= 1.0, allowed=()) is qgraph
    assert set(exporters.island_ops("onnx-int8", "tflite-int8", "onnx-fp32")) == set(islands.ISLAND_OPS)
    assert set(exporters.island_ops()) == set(ISLAND_LOWERINGS) < set(islands.ISLAND_OPS)
