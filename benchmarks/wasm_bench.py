"""Benchmark of the wasm runtime in headless Chromium against onnxruntime-web, and against our native.

One run: for each zoo model of the native benchmark (digits CNN, MLP 784-1024-1024-10, MobileNetV2
stack at 96x96, 2-layer BERT-like encoder) and batch 1 and 32, in one Chromium page: our wasm
(SIMD128 table, and the portable table at batch 1) and onnxruntime-web's wasm backend (int8 QDQ and fp32 ONNX of the same
quantized / float graph, one thread, like ours), interleaved round by round; min and median of the
per-call wall time (a page has no CPU-time clock). Then our native runtime on the same ``.efm`` in this
process (not interleaved with the browser: separate processes), for the wasm/native ratio.

    .venv/bin/python benchmarks/wasm_bench.py     # table; bench-results/wasm.json

Needs Debian's chromium and npm (installs onnxruntime-web, pinned in benchmarks/wasm/package-lock.json,
with npm ci on first use; 150 MB). Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _common import RESULTS, print_table, time_call, write_json_to  # noqa: E402
from native_bench import BATCHES, MODELS, build  # noqa: E402

#: the issue's goals: wasm <= 0.5x onnxruntime-web (int8 and fp32); wasm / native <= 2x
GOAL_VS_ORT, GOAL_VS_NATIVE = 0.5, 2.0


def ensure_ort_web() -> Path:
    dist = HERE / "wasm" / "node_modules" / "onnxruntime-web" / "dist"
    if not dist.is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE / "wasm", check=True)
    return dist


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                          ".wasm": "application/wasm"}

        def log_message(self, *args):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def browser_run(url: str, timeout_ms: int) -> dict:
    proc = subprocess.Popen(["node", str(REPO / "wasm" / "node" / "browser.mjs")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)

    def call(op, **kw):
        proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())
        if not reply["ok"]:
            raise RuntimeError(reply["error"])
        return reply["value"]
    try:
        call("goto", url=url)
        call("wait", js="window.benchResult || window.benchError", timeout_ms=timeout_ms)
        err = call("eval", js="return window.benchError || ''")
        if err:
            raise RuntimeError(err)
        return call("eval", js="return window.benchResult")
    finally:
        proc.stdin.write(json.dumps({"op": "close"}) + "\n")
        proc.stdin.flush()
        proc.wait(60)


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        return " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f" {f}" in flags)
    except (OSError, StopIteration):
        return platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block-ms", type=float, default=20.0)
    ap.add_argument("--out", default=str(RESULTS / "wasm.json"))
    args = ap.parse_args()

    from edgefleet import _native

    dist = ensure_ort_web()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bench").mkdir()
        os.symlink(REPO / "wasm" / "web", root / "web")
        os.symlink(dist, root / "ort")
        (root / "bench" / "index.html").write_text('<!doctype html><script type="module" src="bench.mjs"></script>')
        (root / "bench" / "bench.mjs").write_text((HERE / "wasm" / "bench.mjs").read_text())
        models, native = [], {}
        for name in args.models:
            print(f"building {name}", flush=True)
            _, shape, paths = build(name, root / "bench")
            entry = {"name": name, "shape": list(shape), "efm": f"/bench/{paths['efm'].name}"}
            for key in ("onnx_int8", "onnx_fp32"):
                if key in paths:
                    entry[key] = f"/bench/{paths[key].name}"
            models.append(entry)
            native[name] = paths["efm"]
        (root / "bench" / "config.json").write_text(json.dumps(
            {"models": models, "batches": list(BATCHES), "rounds": args.rounds, "block_ms": args.block_ms}))
        srv, base = serve(root)
        try:
            print("running in Chromium (interleaved rounds)", flush=True)
            result = browser_run(f"{base}/bench/index.html", timeout_ms=1800000)
        finally:
            srv.shutdown()
        import numpy as np
        rng = np.random.default_rng(7)
        for entry in result["models"]:
            model = _native.Model(str(native[entry["model"]]))
            shape = next(m["shape"] for m in models if m["name"] == entry["model"])
            for batch in BATCHES:
                x = rng.standard_normal((batch, *shape)).astype(np.float32)
                entry["batches"][str(batch)]["native " + model.kernel_path] = time_call(lambda: model.run([x]))

    rows = []
    for entry in result["models"]:
        for batch in BATCHES:
            s = entry["batches"][str(batch)]
            ours = s["ours wasm-simd128"]["median_ms"]
            nat = next(v["median_ms"] for k, v in s.items() if k.startswith("native"))
            i8 = s.get("onnxruntime-web int8", {}).get("median_ms")
            f32 = s.get("onnxruntime-web fp32", {}).get("median_ms")
            fmt = lambda v: f"{v:.3f}" if v is not None else "-"  # noqa: E731
            ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"  # noqa: E731
            rows.append([entry["model"], batch, fmt(ours), f"{s['ours wasm-simd128']['min_ms']:.3f}",
                         fmt(s.get("ours portable", {}).get("median_ms")), fmt(i8), fmt(f32), fmt(nat),
                         ratio(ours, i8), ratio(ours, f32), ratio(ours, nat)])
    print(f"\nmachine: {platform.machine()} ({cpu_flags()}), wasm build {result['variant']}, "
          f"kernel table {result['models'][0]['kernel_table']}; {result['userAgent']}")
    print("median ms per call (wall, interleaved rounds in one page); native measured after, in CPython\n")
    print_table(["model", "batch", "wasm simd128", "min", "wasm portable", "ort-web int8", "ort-web fp32", "native",
                 "vs int8 (goal<=0.5)", "vs fp32 (goal<=0.5)", "vs native (goal<=2)"], rows)
    print()
    write_json_to(args.out, {"machine": platform.machine(), "cpu_flags": cpu_flags(), "args": vars(args),
                             "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
