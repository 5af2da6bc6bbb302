"""Benchmark of the native int8 runtime against onnxruntime (the same quantized model as int8 QDQ, and
the float model as fp32).

For each zoo model (digits CNN, MLP 784-1024-1024-10, MobileNetV2 stack at 96x96, 2-layer BERT-like
encoder at seq 128 / hidden 384), each batch (1, 32) and each thread count (1, and all physical
cores): every runtime is timed **interleaved round by round** (native on each ``--kernels`` table,
onnxruntime int8, onnxruntime fp32, then again, ...), so a burst of
load from elsewhere hits every column alike. Each round times a few calls of one runtime and keeps
the per-call wall time and per-call CPU time (process-wide, so a threaded runtime pays for all its
threads); the table gives the minimum and the median over rounds. With "all cores", onnxruntime runs
with its default thread count and native with its default (the physical cores).

Also recorded: each int8 runtime's agreement with the integer reference, the SDK overhead (the
``native`` backend's ``run`` minus the raw ``Model.run``, timed back to back in pairs) and, where a
goal is missed, the native per-op profile of that model.

    .venv/bin/python benchmarks/native_bench.py --kernels avx2 best   # table + bench-results/native.json

Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("digits_cnn", "mlp", "mobilenet_v2_stack", "bert_encoder")
BATCHES = (1, 32)
#: the issue's goals: (batch, threads) -> the largest native / peer ratio. One thread is judged on the
#: median CPU time (the work done, not moved by waiting for a core on a busy machine); all cores on the
#: minimum wall time (CPU time there counts every thread, spinning included). The table shows both.
GOALS = {("1", "1"): {"onnxruntime int8": 0.8, "onnxruntime fp32": 0.7},
         ("32", "all"): {"onnxruntime int8": 0.8, "onnxruntime fp32": 0.8}}
SDK_GOAL_US = 10.0


def cpu_header() -> dict:
    """The machine's ISA as the benchmark header states it."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "asimd", "asimddp") if f in flags]
    from edgefleet import _native

    return {"cpu": name, "isa": isa, "logical_cpus": os.cpu_count(), "physical_cores": _native.default_threads()}


class Timer:
    """Per-call wall and CPU time of one runtime, one round at a time."""

    def __init__(self, fn, calls: int):
        self.fn, self.calls = fn, calls
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def round(self) -> None:
        fn, n = self.fn, self.calls
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            fn()
        w1, c1 = time.perf_counter(), time.process_time()
        self.wall.append((w1 - w0) / n * 1e3)
        self.cpu.append((c1 - c0) / n * 1e3)

    def stats(self) -> dict:
        return {"wall_min_ms": min(self.wall), "wall_median_ms": statistics.median(self.wall),
                "cpu_min_ms": min(self.cpu), "cpu_median_ms": statistics.median(self.cpu), "rounds": len(self.wall),
                "calls_per_round": self.calls}


def interleaved(runners: dict, seconds: float, min_rounds: int = 7, max_rounds: int = 200) -> dict:
    """Time every runner round by round (A, B, C, A, B, C, ...) until ``seconds`` have passed."""
    timers = {}
    for name, fn in runners.items():
        fn()  # warm up: allocations, lazy initialisation, thread pools
        one = 1.0
        for _ in range(3):
            t = time.perf_counter()
            fn()
            one = min(one, max(time.perf_counter() - t, 1e-6))
        timers[name] = Timer(fn, max(1, min(50, int(0.002 / one))))  # ~2 ms per round and runtime
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (time.perf_counter() - start < seconds and rounds < max_rounds):
        for t in timers.values():
            t.round()
        rounds += 1
    return {name: t.stats() for name, t in timers.items()}


def sdk_overhead(sdk, raw, seconds: float) -> dict:
    """Per-call cost of the SDK path over the raw run: the two timed back to back in each round (process
    CPU time, which waiting for a core on a busy machine does not inflate) and the difference taken per
    round, median and min over rounds."""
    sdk(), raw()
    t = time.perf_counter()
    raw()
    n = max(1, min(200, int(0.002 / max(time.perf_counter() - t, 1e-6))))
    diffs, start = [], time.perf_counter()
    while len(diffs) < 15 or (time.perf_counter() - start < seconds and len(diffs) < 400):
        t0 = time.process_time()
        for _ in range(n):
            raw()
        t1 = time.process_time()
        for _ in range(n):
            sdk()
        t2 = time.process_time()
        diffs.append(((t2 - t1) - (t1 - t0)) / n * 1e6)
    return {"median": statistics.median(diffs), "min": min(diffs), "pairs": len(diffs), "calls_per_round": n}


def build(name: str, workdir: Path):
    """Float graph, quantized graph and the three artifacts of one zoo model."""
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
        except Exception as e:  # an exporter refusing: that column is skipped, and says so
            print(f"  {name}: no {target} artifact ({type(e).__name__}: {e})", file=sys.stderr)
            paths.pop(key)
    return qgraph, shape, paths


def ort_session(path, threads: int | None):
    """threads None: onnxruntime's default intra-op thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def native_model(path, kernels: str, threads: int | None):
    from edgefleet import _native

    return _native.Model(str(path), kernels=kernels, threads=threads)


def bench_model(name: str, workdir: Path, kernels: list[str], thread_counts: dict, seconds: float) -> dict:
    from edgefleet import _native, runtimes
    from edgefleet.compress.ir import run_int

    qgraph, shape, paths = build(name, workdir)
    rng = np.random.default_rng(1)
    result = {"model": name, "input_shape": list(shape), "cells": {}, "parity_lsb": {}, "profiles_us": {}}
    x1 = rng.standard_normal((1, *shape)).astype(np.float32)
    ref = run_int(qgraph, x1)[qgraph.outputs[0]]
    lsb = qgraph.qparams[qgraph.outputs[0]].scalar_scale
    for tname, threads in thread_counts.items():
        models = {k: native_model(paths["efm"], k, 1 if threads == 1 else None) for k in kernels}
        peers = {}
        if "onnx_int8" in paths:
            peers["onnxruntime int8"] = ort_session(paths["onnx_int8"], 1 if threads == 1 else None)
        if "onnx_fp32" in paths:
            peers["onnxruntime fp32"] = ort_session(paths["onnx_fp32"], 1 if threads == 1 else None)
        sdk = runtimes.load("native", paths["efm"], threads=1 if threads == 1 else None)
        if tname == "1":
            for k, m in models.items():
                result["parity_lsb"][f"native {k}"] = float(np.abs(m.run([x1])[0] - ref).max() / lsb)
            if "onnxruntime int8" in peers:
                result["parity_lsb"]["onnxruntime int8"] = float(np.abs(peers["onnxruntime int8"](x1) - ref).max() / lsb)
        for batch in BATCHES:
            x = rng.standard_normal((batch, *shape)).astype(np.float32)
            runners = {f"native {k}": (lambda m=m: m.run([x])) for k, m in models.items()}
            runners.update({p: (lambda fn=fn: fn(x)) for p, fn in peers.items()})
            if batch == 1 and tname == "1":  # the SDK path: the backend's checks on top of the raw run
                result["sdk_overhead_us"] = sdk_overhead(lambda: sdk.run(x), lambda: sdk._model.run([x]), seconds)
            print(f"  {name} batch {batch} threads {tname} ...", file=sys.stderr)
            result["cells"][f"{batch}/{tname}"] = interleaved(runners, seconds)
        if tname == "1":
            for k, m in models.items():
                prof = _native.profile(m, [x1], repeats=20)
                by_op: dict[str, float] = {}
                for _, op, us in prof:
                    by_op[op] = by_op.get(op, 0.0) + us
                result["profiles_us"][k] = {
                    "total": sum(by_op.values()),
                    "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
                    "top_nodes": [{"node": qgraph.nodes[i].name, "op": op, "us": us}
                                  for i, op, us in sorted(prof, key=lambda p: -p[2])[:6]],
                }
    return result


def verdicts(results: list[dict], kernels: list[str]) -> list[str]:
    """One line per missed goal (and the SDK overhead), with the op profile of that model."""
    lines = []
    for r in results:
        for (batch, tname), goals in GOALS.items():
            cell = r["cells"].get(f"{batch}/{tname}")
            if not cell:
                continue
            for k in kernels:
                key = "cpu_median_ms" if tname == "1" else "wall_min_ms"
                nat = cell[f"native {k}"][key]
                for peer, goal in goals.items():
                    if peer in cell:
                        ratio = nat / cell[peer][key]
                        lines.append(f"{'MISSED' if ratio > goal else 'met'} {r['model']} batch {batch} threads {tname} "
                                     f"native {k}: {ratio:.2f}x {peer} on {key} (goal <= {goal}x)")
        if "sdk_overhead_us" in r:
            o = r["sdk_overhead_us"]
            lines.append(f"{'MISSED' if o['median'] > SDK_GOAL_US else 'met'} {r['model']} SDK overhead "
                         f"{o['median']:.1f} us per call (median of {o['pairs']} paired rounds; min {o['min']:.1f} us; "
                         f"goal <= {SDK_GOAL_US:g} us)")
    return lines


def table(results: list[dict], kernels: list[str]) -> str:
    cols = [f"native {k}" for k in kernels] + ["onnxruntime int8", "onnxruntime fp32"]
    head = ["model", "batch", "threads"] + [f"{c} ms (min / med wall; med cpu)" for c in cols]
    head += [f"{k} / ort {p} (min wall; med cpu)" for k in kernels for p in ("int8", "fp32")]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in results:
        for key, cell in r["cells"].items():
            batch, tname = key.split("/")
            cells = [f"{cell[c]['wall_min_ms']:.3f} / {cell[c]['wall_median_ms']:.3f}; {cell[c]['cpu_median_ms']:.3f}"
                     if c in cell else "—" for c in cols]
            for k in kernels:
                for p in ("onnxruntime int8", "onnxruntime fp32"):
                    n = cell[f"native {k}"]
                    cells.append(f"{n['wall_min_ms'] / cell[p]['wall_min_ms']:.2f}x; "
                                 f"{n['cpu_median_ms'] / cell[p]['cpu_median_ms']:.2f}x" if p in cell else "—")
            lines.append(f"| {r['model']} | {batch} | {tname} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    ap.add_argument("--kernels", nargs="+", default=["best"],
                    help="native kernel tables to time side by side: best, portable, avx2, avxvnni, avx512vnni, neon")
    ap.add_argument("--threads", nargs="+", default=["1", "all"], choices=["1", "all"],
                    help="thread settings: 1, and all (native: physical cores; onnxruntime: its default)")
    ap.add_argument("--seconds", type=float, default=1.5, help="time budget per (model, batch, threads) cell")
    ap.add_argument("--out", default="bench-results/native.json")
    args = ap.parse_args(argv)

    import onnxruntime

    from edgefleet import _native

    kernels = [_native.kernel_path() if k == "best" else k for k in args.kernels]
    kernels = list(dict.fromkeys(kernels))
    for k in kernels:
        if k not in _native.kernel_tables():
            ap.error(f"this CPU cannot run the {k} kernel table (it runs: {', '.join(_native.kernel_tables())})")
    machine = {**cpu_header(), "python": platform.python_version(), "machine": platform.machine(),
               "onnxruntime": onnxruntime.__version__, "native_kernels": kernels,
               "kernel_tables": _native.kernel_tables()}
    thread_counts = {t: (1 if t == "1" else None) for t in args.threads}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            print(f"benchmarking {name} ...", file=sys.stderr)
            results.append(bench_model(name, Path(tmp), kernels, thread_counts, args.seconds))
    report = {
        "machine": {**machine, "load_average_after": os.getloadavg()},
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "method": "interleaved round by round; per round a few calls of each runtime (~2 ms); min and median over "
                  "rounds of per-call wall time (perf_counter) and per-call process CPU time (process_time)",
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"machine: {machine['cpu']}; ISA: {' '.join(machine['isa'])}; {machine['physical_cores']} physical cores; "
          f"native kernel tables timed: {', '.join(kernels)} (this CPU runs {', '.join(machine['kernel_tables'])}); "
          f"onnxruntime {machine['onnxruntime']}")
    print(table(results, kernels))
    print("\nint8 parity at batch 1 (max |diff| vs run_int, in output LSB): " +
          "; ".join(f"{r['model']}: " + ", ".join(f"{k} {v:g}" for k, v in r["parity_lsb"].items()) for r in results))
    lines = verdicts(results, kernels)
    print("\n" + "\n".join(lines))
    missed = {line.split()[1] for line in lines if line.startswith("MISSED") and "SDK" not in line}
    print(f"\nmachine load average during the run (1/5/15 min): {os.getloadavg()}")
    for r in results:
        if r["model"] in missed:
            for k, p in r["profiles_us"].items():
                print(f"\n{r['model']} native {k} op profile, batch 1, 1 thread ({p['total']:.1f} us): " +
                      ", ".join(f"{op} {us:.1f}" for op, us in p["by_op"].items()) + "; top nodes: " +
                      ", ".join(f"{n['node']} ({n['op']}) {n['us']:.1f}" for n in p["top_nodes"]))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
