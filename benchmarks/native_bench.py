"""Benchmark of the native int8 runtime against onnxruntime (int8 QDQ and fp32) and torch fp32.

One run: for each zoo model (digits CNN, MLP 784-1024-1024-10, MobileNetV2 stack at 96x96, 2-layer
BERT-like encoder at seq 128 / hidden 384) and batch 1 and 32, the median latency over repeats of
the *same* quantized model on each runtime, single-threaded everywhere (the native runtime is
single-threaded; ``--threads`` changes the peers). Also records each int8 runtime's agreement with the
integer reference and, per model, the native per-op profile (where the time goes).

    .venv/bin/python benchmarks/native_bench.py            # prints a table, writes bench-results/native.json

Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("digits_cnn", "mlp", "mobilenet_v2_stack", "bert_encoder")
BATCHES = (1, 32)
#: the issue's goal: native at batch 1 no slower than onnxruntime int8 (encoder: within 1.5x)
GOAL = {"digits_cnn": 1.0, "mlp": 1.0, "mobilenet_v2_stack": 1.0, "bert_encoder": 1.5}


def median_ms(fn, min_time=0.5, min_reps=10, max_reps=500) -> float:
    fn()  # warm up (allocations, lazy initialisation)
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def build(name: str, workdir: Path):
    """Float graph, quantized graph, torch module and the three artifacts of one zoo model."""
    import torch

    from edgefleet.compress import zoo
    from edgefleet.compress.capture import capture
    from edgefleet.compress.ir import quantize_graph
    from edgefleet.runtimes import exporters

    torch.manual_seed(0)
    module = getattr(zoo, name)().eval()
    shape = zoo.INPUT_SHAPES[name]
    graph = capture(module, shape)
    calib = np.random.default_rng(0).standard_normal((16, *shape)).astype(np.float32)
    qgraph = quantize_graph(graph, [calib])
    paths = {"efm": workdir / f"{name}.int8.efm"}
    exporters.get("efm-int8")().export(qgraph, paths["efm"])
    for target, key, g in (("onnx-int8", "onnx_int8", qgraph), ("onnx-fp32", "onnx_fp32", graph)):
        try:
            paths[key] = workdir / f"{name}.{target}.onnx"
            exporters.get(target)().export(g, paths[key])
        except Exception as e:  # an exporter not landed yet (or refusing): that column is skipped
            print(f"  {name}: no {target} artifact ({type(e).__name__}: {e})", file=sys.stderr)
            paths.pop(key)
    return graph, qgraph, module, shape, paths


def ort_session(path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def lsb_diff(out: np.ndarray, ref: np.ndarray, lsb: float) -> float:
    return float(np.abs(out - ref).max() / lsb)


def bench_model(name: str, threads: int, workdir: Path, kernels: str = "best") -> dict:
    import torch

    from edgefleet import _native
    from edgefleet.compress.ir import run_int

    graph, qgraph, module, shape, paths = build(name, workdir)
    native = _native.Model(str(paths["efm"]), kernels=kernels)
    runners = {"native int8": lambda x: native.run([x])[0]}
    if "onnx_int8" in paths:
        runners["onnxruntime int8"] = ort_session(paths["onnx_int8"], threads)
    if "onnx_fp32" in paths:
        runners["onnxruntime fp32"] = ort_session(paths["onnx_fp32"], threads)
    torch.set_num_threads(threads)

    def torch_run(x):
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()
    runners["torch fp32"] = torch_run

    rng = np.random.default_rng(1)
    result = {"model": name, "input_shape": list(shape), "latency_ms": {}, "parity_lsb": {}}
    x1 = rng.standard_normal((1, *shape)).astype(np.float32)
    ref = run_int(qgraph, x1)[qgraph.outputs[0]]
    lsb = qgraph.qparams[qgraph.outputs[0]].scalar_scale
    for rt in ("native int8", "onnxruntime int8"):
        if rt in runners:
            result["parity_lsb"][rt] = lsb_diff(runners[rt](x1), ref, lsb)
    for batch in BATCHES:
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        result["latency_ms"][str(batch)] = {rt: median_ms(lambda: fn(x)) for rt, fn in runners.items()}
    prof = _native.profile(native, [x1], repeats=20)
    by_op: dict[str, float] = {}
    for _, op, us in prof:
        by_op[op] = by_op.get(op, 0.0) + us
    result["native_profile_us"] = {
        "total": sum(by_op.values()),
        "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
        "top_nodes": [{"node": qgraph.nodes[i].name, "op": op, "us": us}
                      for i, op, us in sorted(prof, key=lambda p: -p[2])[:5]],
    }
    return result


def table(results: list[dict]) -> str:
    cols = ["native int8", "onnxruntime int8", "onnxruntime fp32", "torch fp32"]
    lines = ["| model | batch | " + " | ".join(f"{c} (ms)" for c in cols) + " | native / ort int8 | goal |",
             "|---" * (len(cols) + 4) + "|"]
    for r in results:
        for batch, lat in r["latency_ms"].items():
            cells = [f"{lat[c]:.3f}" if c in lat else "—" for c in cols]
            ratio = lat["native int8"] / lat["onnxruntime int8"] if "onnxruntime int8" in lat else None
            goal = GOAL[r["model"]]
            verdict = "" if ratio is None or batch != "1" else ("met" if ratio <= goal else f"missed (goal <= {goal}x)")
            lines.append(f"| {r['model']} | {batch} | " + " | ".join(cells) +
                         f" | {'—' if ratio is None else f'{ratio:.2f}x'} | {verdict} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    ap.add_argument("--threads", type=int, default=1, help="threads for onnxruntime and torch (native uses one)")
    ap.add_argument("--kernels", default="best", help="native kernel table: best, portable, avx2, avxvnni, avx512vnni")
    ap.add_argument("--out", default="bench-results/native.json")
    args = ap.parse_args(argv)

    from edgefleet import _native

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            print(f"benchmarking {name} ...", file=sys.stderr)
            results.append(bench_model(name, args.threads, Path(tmp), args.kernels))
    report = {
        "machine": {"python": platform.python_version(), "machine": platform.machine(),
                    "native_kernels": _native.kernel_path() if args.kernels == "best" else args.kernels,
                    "kernel_tables": _native.kernel_tables(),
                    "peer_threads": args.threads},
        "method": "median wall time of repeated single calls (>= 10 repeats and >= 0.5 s per cell), after one warm-up",
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(table(results))
    print("\nint8 parity at batch 1 (max |diff| vs run_int, in output LSB): " +
          "; ".join(f"{r['model']}: " + ", ".join(f"{k} {v:g}" for k, v in r["parity_lsb"].items()) for r in results))
    for r in results:
        lat = r["latency_ms"]["1"]
        if "onnxruntime int8" in lat and lat["native int8"] / lat["onnxruntime int8"] > GOAL[r["model"]]:
            p = r["native_profile_us"]
            print(f"\n{r['model']}: native misses the batch-1 goal; profile ({p['total']:.1f} us): " +
                  ", ".join(f"{op} {us:.1f} us" for op, us in p["by_op"].items()))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
