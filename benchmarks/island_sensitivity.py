"""Where does int8 lose MiniLM's fidelity? Per op kind (and per node of the best kinds), the cosine to
the float IR when only that group runs in a float32 precision island; then the greedy choice.

    EDGEFLEET_WEKA_EXAMPLES=... OMP_NUM_THREADS=1 .venv/bin/python benchmarks/island_sensitivity.py \\
        --calibration 32 --eval 16 [--per-node softmax,layer_norm]

Prints a table and writes ``bench-results/island_sensitivity.json``. The integer reference
(``run_int``, numpy) runs every trial, so keep ``--eval`` small.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import print_table, write_json  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--calibration", type=int, default=32, help="Reuters texts used for calibration")
    ap.add_argument("--eval", type=int, default=16, help="Reuters test texts scored in every trial")
    ap.add_argument("--seq", type=int, default=128, help="sequence length")
    ap.add_argument("--per-node", default="", help="op kinds whose nodes are also measured one by one")
    ap.add_argument("--target", type=float, default=0.99, help="mean-cosine target of the greedy choice")
    args = ap.parse_args(argv)

    from edgefleet.compress.batch import InputSpec
    from edgefleet.compress.data import load_reuters
    from edgefleet.compress.ir import islands
    from edgefleet.compress.ir.quantize import quantize_graph
    from edgefleet.compress.ir.reference import run_float
    from edgefleet.compress.state import capture_model
    from edgefleet.compress.zoo import minilm

    model, tok = minilm.all_minilm_l6_v2(), minilm.tokenizer()
    tr_text, _, te_text, _ = load_reuters("Grain")
    ids, mask = tok.encode(tr_text[:args.calibration], args.seq)
    eids, emask = tok.encode(te_text[:args.eval], args.seq)
    graph = capture_model(model, [InputSpec("input_ids", "int64", (args.seq,)),
                                  InputSpec("attention_mask", "int64", (args.seq,))])
    t0 = time.perf_counter()
    qgraph = quantize_graph(graph, [{"input_ids": ids[i:i + 16], "attention_mask": mask[i:i + 16]}
                                    for i in range(0, len(ids), 16)])
    print(f"# quantized in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    batches = [{"input_ids": eids[i:i + 8], "attention_mask": emask[i:i + 8]} for i in range(0, len(eids), 8)]
    reference = np.concatenate([next(iter(run_float(graph, b).values())) for b in batches])
    score = islands.scorer(batches, reference)
    t0 = time.perf_counter()
    base = score(qgraph)
    print(f"# pure int8: mean {base[0]:.4f} p1 {base[1]:.4f} ({time.perf_counter() - t0:.1f} s per trial)",
          file=sys.stderr)
    groups = islands.groups_by_op(qgraph)
    rows = islands.sensitivity(qgraph, score, groups)
    for op in [o for o in args.per_node.split(",") if o]:
        rows += [{**r, "group": f"{op}: {r['group']}"}
                 for r in islands.sensitivity(qgraph, score, {n: [n] for n in groups.get(op, [])})]
    chosen = islands.choose_islands(qgraph, score, lambda s: s[0] >= args.target)
    final = score(chosen)
    table = [[r["group"], r["nodes"], f"{r['score'][0]:.4f}", f"{r['score'][1]:.4f}", f"{r['gain'][0]:+.4f}",
              f"{r['gain'][1]:+.4f}"] for r in rows]
    print(f"pure int8: mean {base[0]:.4f} / p1 {base[1]:.4f}")
    print_table(["only this group in float", "nodes", "mean cos", "p1 cos", "gain mean", "gain p1"], table)
    picked = islands.summary(chosen)
    print(f"greedy choice (target {args.target}): " + ", ".join(f"{p['group']} ({len(p['nodes'])} nodes, "
                                                                 f"+{p['gain']:.4f})" for p in picked if p["gain"])
          + f" -> mean {final[0]:.4f} / p1 {final[1]:.4f}")
    write_json("island_sensitivity", {"args": vars(args), "pure_int8": {"mean": base[0], "p1": base[1]},
                                      "groups": rows, "chosen": picked, "final": {"mean": final[0], "p1": final[1]}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
