"""Verification of exported artifacts: task metric, fidelity to the teacher, bytes, latency, parity.

The *parity gate* compares an int8 artifact with the integer reference interpreter of the quantized
IR (``run_int``) on the validation inputs, in units of the output's quantization step (LSB); an fp32
artifact is compared with the float reference (``run_float``) in absolute terms. An artifact over its
tolerance is not shipped.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefleet._errors import EdgefleetError

from . import batch as B
from .ir import OPS, run_float, run_int
from .tasks import get_task

#: default parity tolerances
INT8_MAX_LSB = 2.0
INT8_MEAN_LSB = 0.25
FP32_MAX_ABS = 1e-4
#: ops that runtimes compute with their own tables or in float between dequantize and quantize
#: (onnxruntime, LiteRT): the integer reference and they differ by a few LSB after attention
FLOAT_DOMAIN_OPS = tuple(op for op, spec in OPS.items() if spec.float_domain)
FLOAT_DOMAIN_EXTRA_LSB = 4.0
#: samples on which the native runtime is cross-checked against ``run_int`` when it produced the
#: int8 reference itself
CROSS_CHECK_SAMPLES = 64


def int8_tolerance(qgraph, max_lsb: float = INT8_MAX_LSB) -> float:
    """The stated int8 tolerance of a graph: ``max_lsb``, plus 4 LSB when it has softmax, layer norm
    or activation matmul (attention), whose runtime implementations legitimately differ."""
    if any(n.op in FLOAT_DOMAIN_OPS for n in qgraph.nodes):
        return max_lsb + FLOAT_DOMAIN_EXTRA_LSB
    return max_lsb


@dataclass
class Verdict:
    target: str
    shipped: bool
    reason: str = ""
    metrics: dict = field(default_factory=dict)


def machine_info() -> dict:
    flags = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = [x for x in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "neon") if x in have]
                    break
    except OSError:
        pass
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu": model, "machine": platform.machine(), "cpu_count": os.cpu_count(), "cpu_flags": flags,
            "python": platform.python_version()}


def latency(rt, x: B.Batch, batch: int, *, budget_s: float = 0.6, max_runs: int = 200, min_runs: int = 10) -> dict:
    """p50/p99 of ``rt.run`` at a batch size, time-bounded: at least ``min_runs`` timed runs after
    three warm-up runs; a call slower than a tenth of the budget (a 224 x 224 CNN at batch 32) gets
    one warm-up run and three timed runs, so verification does not spend minutes timing it."""
    xb = B.resize(x, batch)
    t0 = time.perf_counter()
    rt.run(xb)
    slow = time.perf_counter() - t0 > budget_s / 10
    for _ in range(0 if slow else 2):
        rt.run(xb)
    min_runs = min(min_runs, 3) if slow else min_runs
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (time.perf_counter() - start < budget_s or len(times) < min_runs):
        t0 = time.perf_counter()
        rt.run(xb)
        times.append(time.perf_counter() - t0)
    arr = np.array(times) * 1e3
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)), "runs": len(times)}


def run_batched(rt, x: B.Batch, batch: int = 256) -> np.ndarray:
    """``rt``'s first output on ``x``, ``batch`` samples a call or fewer for large inputs (a runtime
    holds a call's activations: 256 images of 224 x 224 would take gigabytes)."""
    batch = B.chunk_size(x, batch)
    outs = [rt.run(B.take(x, slice(i, i + batch)))[rt.output_names[0]] for i in range(0, B.size(x), batch)]
    return np.concatenate(outs)


def input_ranges(graph) -> dict[str, tuple[int, int]]:
    """The valid value range of each integer input that indexes an embedding table: ``(0, rows - 1)``."""
    ranges = {}
    int_inputs = {v.name for v in graph.inputs if v.dtype.startswith("int")}
    for node in graph.nodes:
        if node.op == "embedding" and node.inputs and node.inputs[0] in int_inputs:
            table = node.params.get("weight_q", node.params.get("weight"))
            lo, hi = ranges.get(node.inputs[0], (0, table.shape[0] - 1))
            ranges[node.inputs[0]] = (lo, min(hi, table.shape[0] - 1))
    return ranges


def int8_outputs(qgraph, x: B.Batch) -> tuple[np.ndarray, str]:
    """The int8 model's outputs on ``x``: from the native runtime, which is bit-exact with the integer
    reference and runs the whole graph in C, when it is built and can express the graph; else from
    ``run_int`` (numpy, op by op; also for a graph with float32 precision islands: the native runtime
    runs those within 1 LSB of the reference, not bit-exactly, so it cannot stand in for it).
    Returns ``(outputs, "native" | "reference")``."""
    from edgefleet import runtimes
    from edgefleet.runtimes import exporters

    if runtimes.get("native").is_available() and not qgraph.islands:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = exporters.get("efm-int8")().export(qgraph, Path(tmp) / "reference.efm")
                rt = runtimes.load("native", path, threads=1)
                return run_batched(rt, x), "native"
            except EdgefleetError:
                pass  # an op the native format lacks: the numpy reference covers every op
    return B.map_chunks(lambda xb: run_int(qgraph, xb)[qgraph.outputs[0]], x), "reference"


def cross_check_samples(x: B.Batch) -> int:
    """Samples on which a fast reference is held to the numpy interpreter: ``CROSS_CHECK_SAMPLES``,
    fewer for large inputs (two of the numpy interpreter's memory-bounded chunks, at least 8)."""
    return min(CROSS_CHECK_SAMPLES, max(8, 2 * B.chunk_size(x)), B.size(x))


def float_outputs(graph, x: B.Batch) -> tuple[np.ndarray, str]:
    """The float model's outputs on ``x``: from onnxruntime running our fp32 ONNX of ``graph`` when it
    reproduces ``run_float`` on the first :func:`cross_check_samples` within ``FP32_MAX_ABS``, else
    from ``run_float`` (numpy, op by op). Returns ``(outputs, "onnxruntime" | "reference")``."""
    from .ir.ort_float import float_runner

    reference = lambda xb: run_float(graph, xb)[graph.outputs[0]]  # noqa: E731
    run = float_runner(graph, threads=1)
    if run is not None:
        out = B.map_chunks(lambda xb: run(graph, xb)[graph.outputs[0]], x)
        few = B.take(x, slice(0, cross_check_samples(x)))
        if float(np.abs(out[:B.size(few)] - B.map_chunks(reference, few)).max()) <= FP32_MAX_ABS:
            return out, "onnxruntime"
    return B.map_chunks(reference, x), "reference"


def parity(target_precision: str, outputs: np.ndarray, graph, qgraph, x: B.Batch, ref: np.ndarray | None = None) -> dict:
    """Distance of an artifact's outputs on ``x`` from the reference interpreter's (``ref`` when
    already computed): in output LSB for int8, absolute for fp32."""
    if target_precision == "int8":
        ref = B.map_chunks(lambda xb: run_int(qgraph, xb)[qgraph.outputs[0]], x) if ref is None else ref
        lsb = qgraph.qparams[qgraph.outputs[0]].scalar_scale
        diff = np.abs(outputs - ref) / lsb
        return {"max_lsb": float(diff.max()), "mean_lsb": float(diff.mean()), "lsb": float(lsb)}
    ref = B.map_chunks(lambda xb: run_float(graph, xb)[graph.outputs[0]], x) if ref is None else ref
    return {"max_abs": float(np.abs(outputs - ref).max())}


def parity_ok(precision: str, p: dict, int8_max_lsb: float = INT8_MAX_LSB) -> tuple[bool, str]:
    if precision == "int8":
        if p["max_lsb"] > int8_max_lsb or p["mean_lsb"] > INT8_MEAN_LSB:
            return False, (f"parity gate failed: max {p['max_lsb']:.2f} LSB (tolerance {int8_max_lsb}), "
                           f"mean {p['mean_lsb']:.3f} LSB (tolerance {INT8_MEAN_LSB}) vs the integer reference")
        return True, ""
    if p["max_abs"] > FP32_MAX_ABS:
        return False, f"parity gate failed: max |diff| {p['max_abs']:.2e} vs the float reference (tolerance {FP32_MAX_ABS})"
    return True, ""


def verify_artifact(target: str, runtime_name: str, precision: str, path, *, graph, qgraph, data,
                    teacher_outputs: dict, teacher_test_score: float, int8_max_lsb: float = INT8_MAX_LSB,
                    measure_latency: bool = True, threads: int | None = 1, reference: np.ndarray | None = None) -> Verdict:
    """Run the artifact on the validation and test splits: parity against the reference
    interpreter (``reference``: its outputs on the validation split, when already computed), the
    task's metric and its fidelity to the fp32 teacher (``teacher_outputs``: ``{"val": ..., "test": ...}``)."""
    from edgefleet import runtimes

    task = get_task(data.task)
    metrics: dict = {"bytes": os.path.getsize(path)}
    try:
        rt = runtimes.load(runtime_name, path, threads=threads)
    except EdgefleetError as e:
        return Verdict(target, False, f"cannot load with {runtime_name}: {e}", metrics)
    out_val = run_batched(rt, data.x_val)
    out_test = run_batched(rt, data.x_test)
    p = parity(precision, out_val, graph, qgraph, data.x_val, reference)
    if precision == "int8" and runtime_name == "native" and reference is not None:
        # the reference may have come from this very runtime: hold it to the numpy interpreter too
        few = B.take(data.x_val, slice(0, cross_check_samples(data.x_val)))
        own = parity(precision, out_val[:B.size(few)], graph, qgraph, few)
        p = {k: max(p[k], own[k]) if k != "lsb" else p[k] for k in p}
    metrics["parity"] = p
    if not np.isfinite(out_test).all():
        return Verdict(target, False, "outputs hold NaN or infinite values", metrics)
    m = task.metric
    metrics[f"val_{m}"] = task.score(out_val, data.y_val, teacher_outputs["val"])
    metrics[f"test_{m}"] = task.score(out_test, data.y_test, teacher_outputs["test"])
    metrics[f"{m}_drop"] = task.drop(teacher_test_score, metrics[f"test_{m}"])
    metrics.update(task.fidelity(out_test, teacher_outputs["test"]))
    if measure_latency:
        metrics["latency"] = {f"batch{b}": latency(rt, data.x_test, b) for b in (1, 32)}
        metrics["threads"] = threads
    ok, reason = parity_ok(precision, p, int8_tolerance(qgraph, int8_max_lsb))
    return Verdict(target, ok, reason, metrics)
