"""Load benchmark of the coordinator (not a test): sustained durable ingest and acknowledgement latency.

For each store (SQLite; PostgreSQL when its binaries are installed) and fleet size, it starts a real
coordinator process (``edgefleet serve``), registers the fleet's devices, then

1. **max**: closed loop, ``--concurrency`` Report calls in flight, each carrying ``--batch`` windows
   of one random device, for ``--seconds``: durably ingested windows/s and ack latency;
2. **half**: open loop at half that window rate: ack latency p50/p99.

    python benchmarks/coordinator_load.py            # short: 1k and 10k devices, SQLite + PostgreSQL
    python benchmarks/coordinator_load.py --full     # 1k, 10k, 50k devices, longer runs

Devices are registered straight into the store (one transaction) instead of 50k Enroll calls: the
benchmark is about ingest. Requests are serialised before the clock starts so the client measures the
server, not its own protobuf encoding. Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "coordinator"))
ADMIN = "bench-admin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- PostgreSQL ----------------------------------------------------------------------------------
def start_postgres(root: Path):
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    if not initdb:
        return None, None
    postgres = str(Path(initdb).with_name("postgres"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    os.chmod(root, 0o777)
    port = free_port()
    subprocess.run(as_user + [str(initdb), "-D", str(root / "pg"), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True, timeout=120)
    proc = subprocess.Popen(as_user + [postgres, "-D", str(root / "pg"), "-p", str(port), "-k", str(root),
                                       "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
                                       "-c", "synchronous_commit=on", "-c", "fsync=on"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import psycopg
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    for _ in range(300):
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return proc, url
        except psycopg.OperationalError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("PostgreSQL did not start")


def fresh_pg_db(url, name):
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


# -- fleet setup -----------------------------------------------------------------------------------
def register_devices(store_url, n):
    """n devices with known tokens, straight into the store (one transaction)."""
    from edgefleet.coordinator.store import open_store
    store = open_store(store_url)
    tokens = [uuid.uuid4().hex for _ in range(n)]
    rows = [(f"dev-{i:06d}", hashlib.sha256(t.encode()).hexdigest(), "bench", "bench", 0) for i, t in enumerate(tokens)]
    with store._tx() as cur:
        cur.executemany("INSERT INTO devices VALUES (?, ?, ?, ?, ?)", rows)
    store.close()
    return tokens


def start_server(store_url, workers):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgefleet", "serve", "--store", store_url, "--port", str(port),
                             "--http-port", "-1", "--admin-token", ADMIN, "--evaluate-interval", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    if not re.search(r"gRPC 127\.0\.0\.1:\d+", line):
        raise SystemExit(f"server did not start: {line}")
    return proc, f"127.0.0.1:{port}"


def make_requests(bundle_dir, tokens, count, batch, rng):
    """``count`` serialised ReportRequests of ``batch`` windows, each from one random device."""
    from edgefleet.bundle import Bundle
    from edgefleet.proto import fleet_pb2 as pb
    from edgefleet.coordinator.wire import window_from_dict
    from edgefleet.device import Window
    mon = Bundle.open(bundle_dir).manifest["monitoring"]
    k = len(mon["projection"]["histograms"])
    w = Window(mon, "1.0", "onnx-int8", now_ms=0)
    for i in range(20):
        w.observe([float(c == i % 10) * 4 for c in range(10)], [0.1 * i] * k, 2.0)
    template = window_from_dict(w.close(60_000))
    out = []
    for _ in range(count):
        req = pb.ReportRequest()
        for _ in range(batch):
            win = req.windows.add()
            win.CopyFrom(template)
            win.report_id = uuid.uuid4().hex
        out.append((rng.choice(tokens), req.SerializeToString()))
    return out


# -- load ------------------------------------------------------------------------------------------
def run_closed(target, requests, concurrency, seconds):
    import grpc
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
    call = channel.unary_unary("/edgefleet.v1.Fleet/Report")
    lat, errors, lock = [], [0], threading.Lock()
    it = iter(requests)
    stop = time.perf_counter() + seconds

    def worker():
        while time.perf_counter() < stop:
            with lock:
                item = next(it, None)
            if item is None:
                return
            token, body = item
            t0 = time.perf_counter()
            try:
                call(body, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
                with lock:
                    lat.append(time.perf_counter() - t0)
            except grpc.RpcError:
                with lock:
                    errors[0] += 1
    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    channel.close()
    return lat, errors[0], elapsed


def run_open(target, requests, rate_rps, seconds):
    """Send at a fixed request rate (futures, no waiting for replies): latency under that load."""
    import grpc
    channel = grpc.insecure_channel(target)
    call = channel.unary_unary("/edgefleet.v1.Fleet/Report")
    lat, errors, lock, futures = [], [0], threading.Lock(), []
    n = min(len(requests), int(rate_rps * seconds))
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate_rps
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        token, body = requests[i]
        t0 = time.perf_counter()
        fut = call.future(body, metadata=(("authorization", f"Bearer {token}"),), timeout=30)

        def done(f, t0=t0):
            with lock:
                if f.code() == grpc.StatusCode.OK:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors[0] += 1
        fut.add_done_callback(done)
        futures.append(fut)
    for f in futures:
        try:
            f.result(timeout=60)
        except grpc.RpcError:
            pass
    elapsed = time.perf_counter() - start
    channel.close()
    return lat, errors[0], elapsed


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def bench_one(store_name, store_url, bundle_dir, archive, devices, args, rng):
    tokens = register_devices(store_url, devices)
    proc, target = start_server(store_url, args.workers)
    try:
        from edgefleet.coordinator import AdminClient
        admin = AdminClient(target, ADMIN)
        admin.publish_bundle(archive)
        admin.set_baseline("bench", "1.0")
        admin.close()
        per_s = 800  # requests/s upper bound we prepare for (each request is used once: no replays)
        reqs = make_requests(bundle_dir, tokens, int(per_s * args.seconds) + args.concurrency, args.batch, rng)
        run_closed(target, reqs[:args.concurrency * 2], args.concurrency, 5)  # warm-up
        lat, err, elapsed = run_closed(target, reqs[args.concurrency * 2:], args.concurrency, args.seconds)
        wps = len(lat) * args.batch / elapsed
        half_rate = max(wps / 2 / args.batch, 1.0)
        reqs2 = make_requests(bundle_dir, tokens, int(half_rate * args.seconds) + 1, args.batch, rng)
        lat2, err2, _ = run_open(target, reqs2, half_rate, args.seconds)
        from edgefleet.coordinator.store import open_store
        store = open_store(store_url)
        stored = store.count_windows()
        store.close()
        acked = (len(lat) + len(lat2) + args.concurrency * 2) * args.batch
        if stored < acked:
            raise SystemExit(f"{store_name}: {acked} windows acknowledged but only {stored} stored")
        return {"store": store_name, "devices": devices, "batch": args.batch, "concurrency": args.concurrency,
                "windows_per_s": round(wps, 1), "max_p50_ms": round(pct(lat, 0.5), 2),
                "max_p99_ms": round(pct(lat, 0.99), 2), "half_load_windows_per_s": round(half_rate * args.batch, 1),
                "half_p50_ms": round(pct(lat2, 0.5), 2), "half_p99_ms": round(pct(lat2, 0.99), 2),
                "errors": err + err2, "requests": len(lat) + len(lat2), "windows_stored": stored}
    finally:
        proc.kill()
        proc.wait(30)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="1k, 10k and 50k devices, 15 s per phase")
    p.add_argument("--devices", type=int, nargs="*", help="fleet sizes (default: 1000 10000; --full adds 50000)")
    p.add_argument("--stores", nargs="*", default=["sqlite", "postgres"])
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--batch", type=int, default=50, help="windows per Report call")
    p.add_argument("--concurrency", type=int, default=16, help="Report calls in flight (max phase)")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--out", default=str(REPO / "bench-results" / "coordinator_load.json"))
    args = p.parse_args(argv)
    sizes = args.devices or ([1000, 10000, 50000] if args.full else [1000, 10000])
    args.seconds = args.seconds or (15.0 if args.full else 4.0)
    from bundle_factory import make_bundle
    from edgefleet.bundle import pack
    rng = random.Random(0)
    root = Path(tempfile.mkdtemp(prefix="edgefleet-bench-"))
    results = []
    pg_proc = None
    try:
        bundle_dir = make_bundle(root / "bundle", version="1.0")
        archive = pack(bundle_dir, root / "b.tgz").read_bytes()
        pg_url = None
        if "postgres" in args.stores:
            pg_proc, pg_url = start_postgres(root)
            if pg_url is None:
                print("PostgreSQL binaries not found: skipping the PostgreSQL rows", file=sys.stderr)
        for devices in sizes:
            for store in args.stores:
                if store == "sqlite":
                    url = f"sqlite:///{root / f'fleet-{devices}.db'}"
                elif pg_url:
                    url = fresh_pg_db(pg_url, f"bench_{devices}")
                else:
                    continue
                r = bench_one(store, url, bundle_dir, archive, devices, args, rng)
                results.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        if pg_proc is not None:
            pg_proc.terminate()
            pg_proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)
    head = (f"{'store':<9}{'devices':>8}{'windows/s':>11}{'p50 ms':>8}{'p99 ms':>8}   {'half load w/s':>13}"
            f"{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}")
    print(f"coordinator ingest: {args.batch} windows per Report, {args.concurrency} in flight, {args.seconds:g} s per phase, "
          f"{os.cpu_count()} CPUs")
    print(head)
    for r in results:
        print(f"{r['store']:<9}{r['devices']:>8}{r['windows_per_s']:>11.0f}{r['max_p50_ms']:>8.1f}{r['max_p99_ms']:>8.1f}   "
              f"{r['half_load_windows_per_s']:>13.0f}{r['half_p50_ms']:>8.1f}{r['half_p99_ms']:>8.1f}{r['errors']:>7}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
