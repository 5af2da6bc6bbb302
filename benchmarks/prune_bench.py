"""Structured pruning: does it make the exported model physically smaller and faster?

    .venv/bin/python benchmarks/prune_bench.py [--amounts 0.25,0.5,0.75]

Trains the digits CNN teacher (seeded), prunes it structurally by each amount, recovers with
distillation, and exports fp32 and int8 ONNX of each. Prints parameters, bytes, test accuracy and
single-threaded onnxruntime latency (median of 5 rounds) at batch 1 and 32, side by side with the
unpruned teacher; also 50% *unstructured* pruning, to show it changes neither bytes nor latency.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import batch_of, print_table, time_call, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--amounts", default="0.25,0.5,0.75")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--distill-epochs", type=int, default=20)
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from edgefleet.compress import zoo
    from edgefleet.compress.data import load_dataset
    from edgefleet.compress.passes import get_pass
    from edgefleet.compress.state import State, count_nonzero, count_parameters
    from edgefleet.compress.train import accuracy, fit, seed_everything
    from edgefleet.compress.verify import machine_info
    from edgefleet.runtimes import exporters

    torch.set_num_threads(1)
    data = load_dataset("digits")
    seed_everything(0)
    teacher = fit(zoo.digits_cnn(), data.x_train, data.y_train, epochs=args.epochs, seed=0)
    tmp = Path(tempfile.mkdtemp())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3

    variants = [("teacher", None)] + [(f"structured {float(a):.0%}", {"amount": float(a)}) for a in args.amounts.split(",")]
    variants.append(("unstructured 50%", {"amount": 0.5, "structured": False}))
    results, rows = [], []
    for label, prune_args in variants:
        state = State.start(teacher, data, seed=0)
        if prune_args:
            get_pass("prune")(**prune_args).run(state)
            get_pass("distill")(epochs=args.distill_epochs).run(state)
        get_pass("quantize")().run(state)
        row = {"variant": label, "params": count_parameters(state.model), "nonzero": count_nonzero(state.model)}
        for target, graph in (("onnx-fp32", state.graph), ("onnx-int8", state.qgraph)):
            path = exporters.get(target)().export(graph, tmp / f"{label.replace(' ', '_')}.{target}.onnx")
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            out = sess.run(None, {"input": data.x_test})[0]
            entry = {"bytes": path.stat().st_size, "test_accuracy": accuracy(out, data.y_test)}
            for b in (1, 32):
                xb = batch_of(data.x_test, b)
                entry[f"batch{b}"] = time_call(lambda: sess.run(None, {"input": xb}))
            row[target] = entry
        results.append(row)
        f, q = row["onnx-fp32"], row["onnx-int8"]
        rows.append([label, f"{row['params']:,}", f"{row['nonzero']:,}", f"{f['bytes']:,}", f"{f['test_accuracy']:.2f}",
                     f"{f['batch1']['median_ms']:.4f}", f"{f['batch32']['median_ms']:.4f}", f"{q['bytes']:,}",
                     f"{q['test_accuracy']:.2f}", f"{q['batch1']['median_ms']:.4f}", f"{q['batch32']['median_ms']:.4f}"])
    print_table(["variant", "params", "nonzero", "fp32 bytes", "fp32 acc", "fp32 b1 ms", "fp32 b32 ms",
                 "int8 bytes", "int8 acc", "int8 b1 ms", "int8 b32 ms"], rows)
    write_json("prune", {"machine": machine_info(), "onnxruntime": ort.__version__, "threads": 1, "results": results})


if __name__ == "__main__":
    main()
