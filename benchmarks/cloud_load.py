"""Load benchmark of cloud fallback (``Fleet.Predict``; not a test): added latency under an offered load.

Starts a real coordinator (``edgefleet serve``, SQLite, its own process), publishes the bundle, opts
one cohort in (raw inputs, a rate limit high enough not to refuse), enrols ``--devices`` devices and
then, open loop, sends one-row Predict calls at ``--rates`` requests/s for ``--seconds`` each (the
send times are fixed in advance: a slow answer does not slow the offered load). Reports per rate the
answered rate and the latency percentiles (what a device adds to a low-confidence prediction), the
refused and timed-out calls, and writes JSON under ``bench-results/``.

    python benchmarks/cloud_load.py out/digits --rates 250,500,1000 --seconds 10

Each admitted call is one audited store transaction (SQLite, ``synchronous=FULL``): that commit is
part of the latency measured.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import print_table, write_json  # noqa: E402
from coordinator_load import ADMIN, free_port  # noqa: E402


def _wait_ready(target: str, timeout_s: float = 60) -> None:
    import grpc
    deadline = time.monotonic() + timeout_s
    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        channel.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_rate(transports, row: list[float], version: str, rate: float, seconds: float, timeout_s: float) -> dict:
    n = int(rate * seconds)
    start = time.perf_counter() + 0.2
    latencies, outcome, lock = [], {"ok": 0, "refused": 0, "offline": 0}, threading.Lock()

    from edgefleet.device import Offline, Rejected

    def one(i: int) -> None:
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        try:
            transports[i % len(transports)].predict(row, 1, version, timeout_s)
            kind = "ok"
        except Rejected:
            kind = "refused"
        except Offline:
            kind = "offline"
        ms = (time.perf_counter() - t0) * 1000
        with lock:
            outcome[kind] += 1
            if kind == "ok":
                latencies.append(ms)
    wall = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - wall
    return {"offered_rps": rate, "answered_rps": round(outcome["ok"] / max(wall - 0.2, 1e-9), 1), **outcome,
            "p50_ms": round(_percentile(latencies, 0.5), 2), "p99_ms": round(_percentile(latencies, 0.99), 2),
            "max_ms": round(max(latencies), 2) if latencies else None,
            "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="a bundle directory with teacher-fp32 or onnx-fp32")
    parser.add_argument("--rates", default="250,500,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--timeout-ms", type=float, default=1000.0)
    args = parser.parse_args()

    from edgefleet.bundle import Bundle, pack
    from edgefleet.coordinator import AdminClient
    from edgefleet.coordinator.simulate import load_inputs
    from edgefleet.device import GrpcTransport

    bundle = Bundle.open(args.bundle)
    x, _ = load_inputs(bundle)
    row = x[0].reshape(-1).astype(float).tolist()
    with tempfile.TemporaryDirectory(prefix="edgefleet-cloud-load-") as tmp:
        port = free_port()
        env = {**os.environ, "EDGEFLEET_ADMIN_TOKEN": ADMIN, "OMP_NUM_THREADS": "1"}
        server = subprocess.Popen([sys.executable, "-m", "edgefleet", "serve", "--store", f"sqlite:///{tmp}/f.db",
                                   "--port", str(port), "--http-port", "-1", "--evaluate-interval", "3600"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        target = f"127.0.0.1:{port}"
        try:
            _wait_ready(target)
            admin = AdminClient(target, ADMIN)
            version = admin.publish_bundle(pack(bundle.path, Path(tmp, "b.tar.gz")).read_bytes())["version"]
            admin.set_baseline("cloud", version)
            admin.set_privacy("cloud", True, cloud_per_minute=1_000_000)
            token = admin.create_enrollment_token("cloud", uses=args.devices)
            transports = []
            for _ in range(args.devices):
                t = GrpcTransport(target)
                t.token = t.enroll(token, "bench")["device_token"]
                transports.append(t)
            run_rate(transports, row, version, 50, 1.0, args.timeout_ms / 1000)  # warm the cloud model
            rows = [run_rate(transports, row, version, float(r), args.seconds, args.timeout_ms / 1000)
                    for r in args.rates.split(",")]
            audited = len(admin.list_audit("cloud"))
            admin.close()
            for t in transports:
                t.close()
        finally:
            server.terminate()
            server.wait(30)
    print(f"cloud fallback load: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
          f"1 row per call, {args.devices} devices, {args.seconds:g} s per rate, bundle {bundle.version}")
    print_table(["offered/s", "answered/s", "ok", "refused", "offline", "p50 ms", "p99 ms", "max ms"],
                [[r["offered_rps"], r["answered_rps"], r["ok"], r["refused"], r["offline"], r["p50_ms"], r["p99_ms"],
                  r["max_ms"]] for r in rows])
    print(f"audit entries: {audited}")
    write_json("cloud_load", {"bundle": str(args.bundle), "seconds": args.seconds, "devices": args.devices,
                              "machine": platform.platform(), "rows": rows, "audit_entries": audited})


if __name__ == "__main__":
    main()
