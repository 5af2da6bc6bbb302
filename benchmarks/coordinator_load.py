"""Load benchmark of the coordinator (not a test): durable ingest, acknowledgement latency, exactly-once.

For each batch size (first: 1 window per Report, what a device reporting every window sends: the
headline), store (SQLite, PostgreSQL when installed) and fleet size:

0. **echo**: a raw grpcio asyncio unary echo server (600-byte messages, ``--concurrency`` in flight,
   same client): the transport's own ceiling on this machine, measured in the same run;
1. **max**: closed loop, ``--concurrency`` Report calls in flight against a real ``edgefleet serve``
   process, each from one random device: reports/s (and windows/s), ack latency p50/p99;
2. **half**: open loop at half the max rate: the rate actually achieved and its latency;
3. **exactly once**: every acknowledged window is stored once; anything else stored was in flight
   when a call failed; no duplicates.

A last row runs ``--replicas`` coordinator processes on one PostgreSQL database, the client spreading
calls over them (per-replica counts printed).

    python benchmarks/coordinator_load.py                                  # 1k devices, batch 1 and 50
    python benchmarks/coordinator_load.py --stores sqlite --batches 1 --seconds 5

Devices are registered straight into the store (one transaction) instead of Enroll calls: the
benchmark is about ingest. Requests are serialised before the clock starts. Prints a table and writes
JSON (``--out``).
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
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "coordinator"))
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import write_json_to  # noqa: E402

ADMIN = "bench-admin-token-0123456789abcdef"


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
        cur.executemany("INSERT INTO devices (device_id, token_hash, cohort, hardware, created_ms) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (device_id) DO NOTHING", rows)
    store.close()
    return tokens


def start_server(store_url, workers, trusted_key, extra=(), launcher=(sys.executable, "-m", "edgefleet")):
    """``edgefleet serve`` in its own process; ``launcher`` is the command that runs the CLI."""
    port = free_port()
    proc = subprocess.Popen([*launcher, "serve", "--store", store_url, "--port", str(port),
                             "--http-port", "-1", "--admin-token", ADMIN, "--evaluate-interval", "0", "--init",
                             "--trusted-key", trusted_key, "--log-level", "warning", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
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
ECHO_SERVER = """
import asyncio, sys, grpc
async def main():
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    echo = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()
async def _echo(req, context):
    return req
asyncio.run(main())
"""


def start_echo():
    """A raw grpcio asyncio unary echo server in its own process: the transport's own ceiling."""
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    return proc, f"127.0.0.1:{int(proc.stdout.readline())}"


def run_closed(targets, method, requests, concurrency, seconds):
    """Closed loop on an asyncio client: ``concurrency`` calls in flight for ``seconds``, requests
    spread round-robin over ``targets``. Returns (latencies, acked indices, failed indices, elapsed,
    calls per target)."""
    import asyncio

    import grpc

    async def go():
        channels = [grpc.aio.insecure_channel(t, options=[("grpc.max_send_message_length", 64 << 20)])
                    for t in targets]
        calls = [c.unary_unary(method) for c in channels]
        lat, acked, failed, per_target = [], [], [], [0] * len(targets)
        it = iter(range(len(requests)))
        stop = time.perf_counter() + seconds

        async def worker():
            while time.perf_counter() < stop:
                i = next(it, None)
                if i is None:
                    return
                token, body = requests[i]
                k = i % len(targets)
                t0 = time.perf_counter()
                try:
                    await calls[k](body, metadata=(("authorization", f"Bearer {token}"),) if token else None,
                                   timeout=30)
                    lat.append(time.perf_counter() - t0)
                    acked.append(i)
                    per_target[k] += 1
                except grpc.RpcError:
                    failed.append(i)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        for c in channels:
            await c.close()
        return lat, acked, failed, elapsed, per_target
    return asyncio.run(go())


def run_open(targets, method, requests, rate_rps, seconds, timeout_s=30.0):
    """Open loop: send at a fixed rate without waiting for replies; latency at that load and the rate
    actually achieved (completed calls / wall time). Returns (latencies, acked indices, failed
    indices, elapsed, {status code name: failed calls})."""
    import collections
    import asyncio

    import grpc

    async def go():
        channels = [grpc.aio.insecure_channel(t) for t in targets]
        calls = [c.unary_unary(method) for c in channels]
        lat, acked, failed, codes = [], [], [], collections.Counter()
        n = min(len(requests), int(rate_rps * seconds))

        async def one(i):
            token, body = requests[i]
            t0 = time.perf_counter()
            try:
                await calls[i % len(targets)](body, metadata=(("authorization", f"Bearer {token}"),),
                                              timeout=timeout_s)
                lat.append(time.perf_counter() - t0)
                acked.append(i)
            except grpc.RpcError as e:
                failed.append(i)
                codes[e.code().name] += 1
        start, tasks = time.perf_counter(), []
        for i in range(n):
            delay = start + i / rate_rps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        for c in channels:
            await c.close()
        return lat, acked, failed, elapsed, dict(codes)
    return asyncio.run(go())


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def echo_ceiling(seconds, concurrency=64, size=600):
    proc, target = start_echo()
    try:
        payload = os.urandom(size)
        reqs = [("", payload)] * 400_000
        run_closed([target], "/bench.Echo/Echo", reqs[:2000], concurrency, 1.0)   # warm-up
        lat, acked, _, elapsed, _ = run_closed([target], "/bench.Echo/Echo", reqs, concurrency, seconds)
        return len(acked) / elapsed
    finally:
        proc.kill()
        proc.wait(30)


def request_ids(requests):
    from edgefleet.proto import fleet_pb2 as pb
    return [[w.report_id for w in pb.ReportRequest.FromString(body).windows] for _, body in requests]


def bench_one(store_name, store_url, bundle_dir, archive, devices, args, rng, replicas=1):
    """Echo ceiling, then the coordinator at full load (closed loop) and half of the achieved rate
    (open loop), then the exactly-once check against the store."""
    echo = echo_ceiling(args.seconds, args.concurrency)
    tokens = register_devices(store_url, devices)
    procs = [start_server(store_url, args.workers, args.trusted_key, args.serve_args.split()) for _ in range(replicas)]
    targets = [t for _, t in procs]
    try:
        from edgefleet.coordinator import AdminClient
        admin = AdminClient(targets[0], ADMIN)
        admin.publish_bundle(archive)
        admin.set_baseline("bench", "1.0")
        admin.close()
        cap = int(args.max_rps * args.seconds)
        reqs = make_requests(bundle_dir, tokens, cap + args.concurrency * 4, args.batch, rng)
        warm = reqs[:args.concurrency * 4]
        _, warm_acked, warm_failed, _, _ = run_closed(targets, "/edgefleet.v1.Fleet/Report", warm, args.concurrency, 3)
        main_reqs = reqs[len(warm):]
        lat, acked, failed, elapsed, per_target = run_closed(targets, "/edgefleet.v1.Fleet/Report", main_reqs,
                                                             args.concurrency, args.seconds)
        if len(acked) + len(failed) >= len(main_reqs):
            print(f"warning: the {len(main_reqs)} prepared requests ran out; raise --max-rps", file=sys.stderr)
        rps = len(acked) / elapsed
        half_target = max(rps / 2, 1.0)
        reqs2 = make_requests(bundle_dir, tokens, int(half_target * args.seconds) + 1, args.batch, rng)
        lat2, acked2, failed2, elapsed2, _ = run_open(targets, "/edgefleet.v1.Fleet/Report", reqs2, half_target,
                                                   args.seconds)
        # exactly once: every acknowledged window stored once; anything else stored was in flight
        from edgefleet.coordinator.store import open_store
        store = open_store(store_url)
        stored = store.window_ids()
        store.close()
        stored_ids = [rid for _, rid in stored]
        ids = {"acked": set(), "failed": set()}
        for group, source, idx in (("acked", warm, warm_acked), ("failed", warm, warm_failed),
                                   ("acked", main_reqs, acked), ("failed", main_reqs, failed),
                                   ("acked", reqs2, acked2), ("failed", reqs2, failed2)):
            for rid_list in request_ids([source[i] for i in idx]):
                ids[group].update(rid_list)
        duplicates = len(stored_ids) - len(set(stored_ids))
        missing = ids["acked"] - set(stored_ids)
        unexpected = set(stored_ids) - ids["acked"] - ids["failed"]
        exactly_once = not duplicates and not missing and not unexpected
        if not exactly_once:
            raise SystemExit(f"{store_name}: exactly-once broken: {len(missing)} acknowledged but not stored, "
                             f"{duplicates} duplicates, {len(unexpected)} stored that were never sent")
        return {"store": store_name, "replicas": replicas, "devices": devices, "batch": args.batch,
                "concurrency": args.concurrency, "echo_calls_per_s": round(echo, 1),
                "reports_per_s": round(rps, 1), "windows_per_s": round(rps * args.batch, 1),
                "of_echo": round(rps / echo, 3), "max_p50_ms": round(pct(lat, 0.5), 2),
                "max_p99_ms": round(pct(lat, 0.99), 2), "half_target_rps": round(half_target, 1),
                "half_achieved_rps": round(len(acked2) / elapsed2, 1), "half_p50_ms": round(pct(lat2, 0.5), 2),
                "half_p99_ms": round(pct(lat2, 0.99), 2), "errors": len(failed) + len(failed2),
                "acknowledged_windows": len(ids["acked"]), "stored_windows": len(stored_ids),
                "in_flight_stored": len(set(stored_ids) - ids["acked"]), "duplicates": duplicates,
                "exactly_once": exactly_once, "per_replica_reports": per_target,
                "request_bytes": round(sum(len(b) for _, b in main_reqs[:100]) / min(100, len(main_reqs)))}
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait(30)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, nargs="*", default=[1000], help="fleet sizes")
    p.add_argument("--stores", nargs="*", default=["sqlite", "postgres"])
    p.add_argument("--seconds", type=float, default=10.0, help="per phase")
    p.add_argument("--batches", type=int, nargs="*", default=[1, 50],
                   help="windows per Report call; the first is the headline (1: a device reporting each window)")
    p.add_argument("--concurrency", type=int, default=64, help="Report calls in flight (max phase)")
    p.add_argument("--replicas", type=int, default=2, help="coordinator replicas on one PostgreSQL (extra row)")
    p.add_argument("--max-rps", type=float, default=4000, help="requests prepared per second of the max phase")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--serve-args", default="", help="extra `edgefleet serve` flags, e.g. '--device-rate 100'")
    p.add_argument("--out", default=str(REPO / "bench-results" / "coordinator_load.json"))
    args = p.parse_args(argv)
    from bundle_factory import make_bundle
    from edgefleet._signing import generate_key, public_key
    from edgefleet.bundle import pack
    rng = random.Random(0)
    root = Path(tempfile.mkdtemp(prefix="edgefleet-bench-"))
    results = []
    pg_proc = None
    try:
        key = generate_key()
        (root / "bench.pub").write_bytes(public_key(key))
        args.trusted_key = str(root / "bench.pub")
        bundle_dir = make_bundle(root / "bundle", version="1.0", signing_key=key)
        archive = pack(bundle_dir, root / "b.tgz").read_bytes()
        pg_url = None
        if "postgres" in args.stores:
            pg_proc, pg_url = start_postgres(root)
            if pg_url is None:
                print("PostgreSQL binaries not found: skipping the PostgreSQL rows", file=sys.stderr)
        runs = [(s, 1) for s in args.stores] + ([("postgres", args.replicas)] if pg_url and args.replicas > 1 else [])
        for batch in args.batches:
            args.batch = batch
            for devices in args.devices:
                for store, replicas in runs:
                    name = f"fleet_{devices}_{batch}_{replicas}"
                    if store == "sqlite":
                        url = f"sqlite:///{root / f'{name}.db'}"
                    elif pg_url:
                        url = fresh_pg_db(pg_url, name)
                    else:
                        continue
                    r = bench_one(store, url, bundle_dir, archive, devices, args, rng, replicas=replicas)
                    results.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        if pg_proc is not None:
            pg_proc.terminate()
            pg_proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)
    import platform
    print(f"coordinator ingest, {args.concurrency} calls in flight, {args.seconds:g} s per phase; "
          f"{os.cpu_count()} CPUs ({platform.machine()}, {platform.processor() or 'cpu'}), kernel {platform.release()}; "
          "client, coordinator(s), database and echo server on this machine")
    print(f"{'store':<9}{'repl':>5}{'batch':>6}{'devices':>8}{'echo/s':>8}{'reports/s':>10}{'of echo':>8}"
          f"{'windows/s':>10}{'p50':>7}{'p99':>7}   {'half: achieved/s':>16}{'p50':>7}{'p99':>7}{'errors':>7}"
          f"{'  exactly-once'}")
    for r in results:
        print(f"{r['store']:<9}{r['replicas']:>5}{r['batch']:>6}{r['devices']:>8}{r['echo_calls_per_s']:>8.0f}"
              f"{r['reports_per_s']:>10.0f}{r['of_echo']:>8.0%}{r['windows_per_s']:>10.0f}{r['max_p50_ms']:>7.1f}"
              f"{r['max_p99_ms']:>7.1f}   {r['half_achieved_rps']:>16.0f}{r['half_p50_ms']:>7.1f}{r['half_p99_ms']:>7.1f}"
              f"{r['errors']:>7}  {'yes' if r['exactly_once'] else 'NO'} ({r['stored_windows']} stored, "
              f"{r['in_flight_stored']} in flight){'  per replica ' + str(r['per_replica_reports']) if r['replicas'] > 1 else ''}")
    write_json_to(args.out, {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
