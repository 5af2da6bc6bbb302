"""Our .tflite vs litert-torch's conversion of the same PyTorch model, side by side, one run.

    .venv/bin/python benchmarks/tflite_bench.py [--models digits_cnn,mlp,mobilenet_v2_stack,bert_encoder]

litert-torch (~2 GB: jax, transformers, torchao, ...) is never an edgefleet dependency: this script
makes its own venv, ``bench-venv/litert-torch`` (``torch==2.13.0`` pinned beside it), and runs the
conversion there through ``benchmarks/_litert_torch_convert.py``. Both sides get the same weights and
the same calibration samples. Ours is the quantize pass's defaults (MSE-calibrated activations, 7-bit
per-channel weights) written as full-integer int8; litert-torch quantizes with its PT2E static int8
recipe (8-bit per-channel symmetric weights) and leaves softmax, layer norm and residual adds in
float. Every file then runs in *this* venv's ai-edge-litert Interpreter (default XNNPACK
delegate, one thread), so the runtime is identical.

Per model and file: bytes, operator count, batch-1 latency (all files of a model timed in alternation,
median over rounds, ``invoke`` only; litert-torch's int8 CNN/MLP files take and return int8, so their
(de)quantization happens outside the timed call while ours runs QUANTIZE/DEQUANTIZE inside it), and fidelity against the PyTorch fp32 output
(max |diff|; for the trained digits CNN also test accuracy and top-1 agreement). Writes
``bench-results/tflite.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "bench-venv" / "litert-torch"
PINS = ["torch==2.13.0", "litert-torch==0.10.0"]  # an unpinned torch pulls a multi-GB CUDA build here


def ensure_venv() -> tuple[Path | None, str]:
    """The litert-torch venv's python, creating it on first use; (None, reason) when that fails."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import litert_torch, torch, torchao"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python, "reused"
    steps = [[sys.executable, "-m", "venv", str(VENV)], [str(python), "-m", "pip", "install", "-q", *PINS, "numpy"]]
    for cmd in steps:
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            return None, f"{' '.join(cmd[:4])}... failed: {(out.stderr or out.stdout)[-1500:]}"
    return python, "created"


def _ops(path: Path) -> collections.Counter:
    import tflite
    from tflite.utils import opcode2name

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    counts: collections.Counter = collections.Counter()
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        counts.update(opcode2name(codes[sg.Operators(i).OpcodeIndex()]) for i in range(sg.OperatorsLength()))
    return counts


class _Runner:
    """A batch-1 Interpreter that takes and returns float32 whatever the file's I/O dtype."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=1)
        self.it.allocate_tensors()
        self.inp, self.out = self.it.get_input_details()[0], self.it.get_output_details()[0]

    def feed(self, x: np.ndarray) -> None:
        d = self.inp
        if d["dtype"] != np.float32:  # int8 I/O: quantize with the file's own input parameters
            scale, zp = d["quantization"]
            x = np.clip(np.round(x / scale) + zp, -128, 127).astype(d["dtype"])
        self.it.set_tensor(d["index"], x.reshape(d["shape"]))

    def result(self) -> np.ndarray:
        y = self.it.get_tensor(self.out["index"])
        if self.out["dtype"] != np.float32:
            scale, zp = self.out["quantization"]
            y = (y.astype(np.float32) - zp) * scale
        return y.reshape(y.shape[0], -1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.feed(x)
        self.it.invoke()
        return self.result()


def interleaved_latency(runners: dict, x1: np.ndarray, rounds: int, budget_s: float = 0.05) -> dict:
    """Batch-1 ``invoke`` latency of several files, measured in alternation (A B C A B C ...) so that
    load from other processes on the machine falls on all of them alike, rotating the order: per file the median over
    rounds of the per-round median (ms)."""
    per_round: dict = {label: [] for label in runners}
    for r in runners.values():
        r.feed(x1)
        for _ in range(3):
            r.it.invoke()
    labels = list(runners)
    for i in range(rounds):
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:  # rotate: no file always first
            r = runners[label]
            times, start = [], time.perf_counter()
            while time.perf_counter() - start < budget_s or len(times) < 3:
                t0 = time.perf_counter()
                r.it.invoke()
                times.append(time.perf_counter() - t0)
            per_round[label].append(float(np.median(times)) * 1e3)
    return {label: {"median_ms": float(np.median(v)), "min_round_ms": min(v), "max_round_ms": max(v), "rounds": rounds}
            for label, v in per_round.items()}


def _data(name: str, epochs: int):
    """(torch model, calibration, test inputs, test labels or None) with seeded weights; digits is trained."""
    import torch

    from edgefleet.compress import zoo

    torch.manual_seed(0)
    model = getattr(zoo, name)()
    rng = np.random.default_rng(0)
    shape = zoo.INPUT_SHAPES[name]
    if name == "digits_cnn":
        from edgefleet.compress.data import load_dataset
        from edgefleet.compress.train import fit

        data = load_dataset("digits", seed=0)
        model = fit(model, data.x_train, data.y_train, epochs=epochs, seed=0)
        calib = data.x_train[rng.choice(len(data.x_train), 64, replace=False)]
        return model.eval(), calib.astype(np.float32), data.x_test.astype(np.float32), data.y_test
    n_cal, n_test = (8, 8) if name == "bert_encoder" else (64, 64)
    calib = rng.standard_normal((n_cal, *shape)).astype(np.float32)
    return model.eval(), calib, rng.standard_normal((n_test, *shape)).astype(np.float32), None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits_cnn,mlp,mobilenet_v2_stack,bert_encoder")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=15, help="alternating latency rounds per model")
    args = ap.parse_args()

    import torch

    from edgefleet.compress.capture import capture
    from edgefleet.compress.ir import quantize_graph, run_int
    from edgefleet.compress.verify import machine_info
    from edgefleet.runtimes import exporters

    work = Path(tempfile.mkdtemp(prefix="tflite-bench-"))
    python, venv_status = ensure_venv()
    print(f"litert-torch venv: {venv_status if python else 'UNAVAILABLE: ' + venv_status}")

    cases, spec = {}, {"models": []}
    for name in args.models.split(","):
        model, calib, x_test, y_test = _data(name, args.epochs)
        with torch.no_grad():
            ref = torch.cat([model(torch.from_numpy(x_test[i:i + 1])) for i in range(len(x_test))]).numpy()
        graph = capture(model, calib.shape[1:])
        qgraph = quantize_graph(graph, [calib])
        files = {"ours fp32": exporters.get("tflite-fp32")().export(graph, work / f"{name}.tflite"),
                 "ours int8": exporters.get("tflite-int8")().export(qgraph, work / f"{name}.int8.tflite")}
        cases[name] = dict(model=model, x=x_test, y=y_test, ref=ref.reshape(len(ref), -1), files=files, qgraph=qgraph)
        torch.save(model.state_dict(), work / f"{name}.pt")
        np.save(work / f"{name}.sample.npy", x_test[:1])
        np.save(work / f"{name}.calib.npy", calib)
        spec["models"].append({"name": name, "state_dict": str(work / f"{name}.pt"),
                               "sample": str(work / f"{name}.sample.npy"), "calibration": str(work / f"{name}.calib.npy")})

    peer: dict = {"status": venv_status}
    if python:
        (work / "spec.json").write_text(json.dumps(spec))
        t0 = time.perf_counter()
        proc = subprocess.run([str(python), str(REPO / "benchmarks" / "_litert_torch_convert.py"), str(work)],
                              capture_output=True, text=True)
        peer["wall_s"] = time.perf_counter() - t0
        if (work / "litert_torch.json").exists():
            peer.update(json.loads((work / "litert_torch.json").read_text()))
        else:
            peer["error"] = (proc.stderr or proc.stdout)[-2000:]
            print("litert-torch worker failed:", peer["error"])
        for name, item in peer.get("models", {}).items():
            for precision, res in item.items():
                if "file" in res:
                    cases[name]["files"][f"litert-torch {precision}"] = Path(res["file"])

    rows, results = [], {}
    for name, c in cases.items():
        results[name] = {}
        runners = {label: _Runner(path) for label, path in c["files"].items()}
        latencies = interleaved_latency(runners, c["x"][:1], args.rounds)
        for label, path in c["files"].items():
            runner = runners[label]
            out = np.concatenate([runner(c["x"][i:i + 1]) for i in range(len(c["x"]))])
            lat = latencies[label]
            ops = _ops(path)
            entry = {"bytes": path.stat().st_size, "ops": sum(ops.values()), "op_histogram": dict(ops),
                     "latency_batch1_ms": lat, "max_abs_vs_torch": float(np.abs(out - c["ref"]).max()),
                     "mean_abs_vs_torch": float(np.abs(out - c["ref"]).mean()),
                     "io_dtype": runner.inp["dtype"].__name__}
            if c["y"] is not None:
                entry["test_accuracy"] = float((out.argmax(1) == c["y"]).mean() * 100)
                entry["top1_agreement_vs_torch"] = float((out.argmax(1) == c["ref"].argmax(1)).mean() * 100)
            if label == "ours int8":
                ri = run_int(c["qgraph"], c["x"])[c["qgraph"].outputs[0]].reshape(len(out), -1)
                entry["max_lsb_vs_run_int"] = float(np.abs(out - ri).max() / c["qgraph"].qparams[c["qgraph"].outputs[0]].scalar_scale)
            results[name][label] = entry
            acc = f"{entry['test_accuracy']:.2f}%" if "test_accuracy" in entry else "-"
            rows.append([name, label, f"{entry['bytes']:,}", entry["ops"], f"{lat['median_ms']:.3f}",
                         f"{entry['max_abs_vs_torch']:.2e}", f"{entry['mean_abs_vs_torch']:.2e}", acc, entry["io_dtype"]])
        for precision in ("fp32", "int8"):
            err = peer.get("models", {}).get(name, {}).get(precision, {}).get("error")
            if err:
                rows.append([name, f"litert-torch {precision}", "FAILED", "-", "-", "-", "-", "-", err[:60]])
                results[name][f"litert-torch {precision}"] = {"error": err}

    print()
    print_table(["model", "file", "bytes", "ops", "p50 ms (b=1)", "max|d| vs torch", "mean|d|", "test acc", "I/O"], rows)
    write_json("tflite", {"machine": machine_info(), "litert_torch": {k: v for k, v in peer.items() if k != "models"},
                          "results": results, "command": " ".join(sys.argv)})


if __name__ == "__main__":
    main()
