"""Load benchmark of cloud fallback (``Fleet.Predict``; not a test): added latency under an offered load.

Starts a real coordinator (``edgefleet serve``, SQLite store, its own process), publishes the bundle
(signed again with a benchmark key), opts one cohort in (raw inputs, a Predict limit that refuses
nothing), enrols ``--devices`` devices and sends one-row Predict calls open loop at each of ``--rates``
requests/s for ``--seconds`` (send times fixed in advance, so a slow answer does not slow the offered
load; grpc asyncio client, requests encoded beforehand). Per rate: the answered rate, the latency
percentiles (what a device adds to a low-confidence prediction), refused and timed-out calls, the CPU
time the coordinator process and the load generator spent per answered call (both share this
machine's cores: where the time goes), and the load average before the run.

``--against REV`` starts a second coordinator running git revision ``REV`` of this repository (its
files from ``git archive``) and measures both interleaved, round by round (``--rounds``): each figure
is given as the minimum and the median over rounds. Every admitted call writes its audit row before it
is answered (``synchronous=FULL``); the audit log is checked to hold one row per answered call.

    python benchmarks/cloud_load.py out/digits --rates 250,500,1000 --seconds 5 --rounds 3 --against main
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import print_table, write_json  # noqa: E402
from coordinator_load import ADMIN, pct, run_open, start_server  # noqa: E402

PREDICT = "/edgefleet.v1.Fleet/Predict"
#: runs ``edgefleet`` from the source tree given as the first argument (its packages, not the installed ones)
_LAUNCH = ("import importlib.util, sys; root = sys.argv.pop(1); "
           "spec = importlib.util.spec_from_file_location('edgefleet', root + '/toolkit/__init__.py', "
           "submodule_search_locations=[root + '/toolkit', root]); "
           "m = importlib.util.module_from_spec(spec); sys.modules['edgefleet'] = m; spec.loader.exec_module(m); "
           "from edgefleet.cli import main; sys.exit(main())")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Coordinator:
    """One ``edgefleet serve`` process with the bundle published and ``devices`` enrolled."""

    def __init__(self, label: str, tree: Path, root: Path, trusted_key: Path, archive: bytes, devices: int):
        from edgefleet.coordinator import AdminClient
        from edgefleet.proto import fleet_pb2 as pb
        from edgefleet.proto.fleet_pb2_grpc import FleetStub
        import grpc

        self.label = label
        self.proc, self.target = start_server(f"sqlite:///{root / label}.db", 16, str(trusted_key),
                                              launcher=(sys.executable, "-c", _LAUNCH, str(tree)))
        admin = AdminClient(self.target, ADMIN)
        self.version = admin.publish_bundle(archive)["version"]
        admin.set_baseline("cloud", self.version)
        admin.set_privacy("cloud", True, cloud_per_minute=1_000_000)
        token = admin.create_enrollment_token("cloud", uses=devices)
        channel = grpc.insecure_channel(self.target)
        stub = FleetStub(channel)
        self.tokens = [stub.Enroll(pb.EnrollRequest(enrollment_token=token, hardware="bench")).device_token
                       for _ in range(devices)]
        channel.close()
        self.admin = admin

    def measure(self, body: bytes, rate: float, seconds: float, timeout_s: float) -> dict:
        n = int(rate * seconds)
        requests = [(self.tokens[i % len(self.tokens)], body) for i in range(n)]
        load = os.getloadavg()[0]
        server0, client0 = _cpu_s(self.proc.pid), time.process_time()
        lat, acked, failed, elapsed, codes = run_open([self.target] * len(self.tokens), PREDICT, requests, rate,
                                                     seconds, timeout_s)
        server_cpu, client_cpu = _cpu_s(self.proc.pid) - server0, time.process_time() - client0
        timed_out = codes.pop("DEADLINE_EXCEEDED", 0) + codes.pop("UNAVAILABLE", 0)
        return {"offered_rps": rate, "sent": n, "answered_rps": round(len(acked) / elapsed, 1), "ok": len(acked),
                "refused": sum(codes.values()), "refused_codes": codes, "timed_out": timed_out,
                "p50_ms": round(pct(lat, 0.5), 2), "p99_ms": round(pct(lat, 0.99), 2),
                "max_ms": round(max(lat) * 1000, 2) if lat else None,
                "server_cpu_ms_per_call": round(server_cpu / max(len(acked), 1) * 1000, 3),
                "client_cpu_ms_per_call": round(client_cpu / max(len(acked), 1) * 1000, 3), "load_avg_1m": round(load, 2)}

    def close(self) -> int:
        """Stop; return the number of audit rows (one per answered call)."""
        audited = len(self.admin.list_audit("cloud"))
        self.admin.close()
        self.proc.terminate()
        self.proc.wait(30)
        return audited


def _summary(runs: list[dict]) -> dict:
    out = {"offered_rps": runs[0]["offered_rps"], "rounds": len(runs)}
    for key in ("answered_rps", "p50_ms", "p99_ms", "max_ms", "server_cpu_ms_per_call", "client_cpu_ms_per_call",
                "load_avg_1m"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = {"min": min(values), "median": round(statistics.median(values), 3)} if values else None
    for key in ("sent", "ok", "refused", "timed_out"):
        out[key] = sum(r[key] for r in runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="a bundle directory with teacher-fp32 or onnx-fp32")
    parser.add_argument("--rates", default="250,500,1000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--devices", type=int, default=100, help="each sends rate/devices calls per second")
    parser.add_argument("--timeout-ms", type=float, default=1000.0, help="a device's latency budget")
    parser.add_argument("--against", metavar="REV", help="also measure the coordinator of this git revision")
    args = parser.parse_args()

    from native_bench import cpu_header

    from edgefleet import _signing
    from edgefleet._webapp import sign_bundle
    from edgefleet.bundle import Bundle, pack
    from edgefleet.coordinator.simulate import load_inputs
    from edgefleet.proto import fleet_pb2 as pb

    root = Path(tempfile.mkdtemp(prefix="edgefleet-cloud-load-"))
    servers: list[Coordinator] = []
    audited = {}
    try:
        key = _signing.generate_key()
        (root / "bench.pub").write_bytes(_signing.public_key(key))
        shutil.copytree(args.bundle, root / "bundle")
        sign_bundle(root / "bundle", key)
        bundle = Bundle.open(root / "bundle")
        archive = pack(bundle.path, root / "b.tar.gz").read_bytes()
        x, _ = load_inputs(bundle)
        trees = {"this tree": REPO}
        if args.against:
            tree = root / "against"
            tree.mkdir()
            tar = subprocess.run(["git", "-C", str(REPO), "archive", args.against], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=tar, check=True)
            trees = {args.against: tree, **trees}
        for label, tree in trees.items():
            servers.append(Coordinator(label, tree, root, root / "bench.pub", archive, args.devices))
        body = pb.PredictRequest(values=x[0].reshape(-1).astype(float).tolist(), rows=1,
                                 model_version=servers[0].version).SerializeToString()
        for s in servers:
            s.measure(body, 50, 1.0, args.timeout_ms / 1000)   # warm: the cloud model loads on the first call
        runs = {s.label: {} for s in servers}
        for _ in range(args.rounds):   # interleaved: every server at every rate once per round
            for rate in (float(r) for r in args.rates.split(",")):
                for s in servers:
                    runs[s.label].setdefault(rate, []).append(s.measure(body, rate, args.seconds, args.timeout_ms / 1000))
        answered = {label: 50 + sum(r["ok"] for rs in by_rate.values() for r in rs) for label, by_rate in runs.items()}
    finally:
        for s in servers:
            audited[s.label] = s.close()
        shutil.rmtree(root, ignore_errors=True)
    cpu = cpu_header()
    print(f"cloud fallback load: {cpu['cpu']} ({', '.join(cpu['isa'])}), {cpu['logical_cpus']} logical CPUs, kernel "
          f"{os.uname().release}; bundle {bundle.name} {bundle.version} ({servers[0].version}); 1 row per call, "
          f"{args.devices} devices, {args.seconds:g} s per rate, {args.rounds} round(s), budget {args.timeout_ms:g} ms; "
          "client and coordinator share this machine")
    summary = {label: [_summary(rs) for rs in by_rate.values()] for label, by_rate in runs.items()}
    mm = lambda v: "-" if v is None else f"{v['min']:g} / {v['median']:g}"   # noqa: E731
    print_table(["coordinator", "offered/s", "answered/s", "p50 ms", "p99 ms", "max ms", "ok", "refused", "timed out",
                 "server CPU ms/answer", "client CPU ms/answer", "load avg"],
                [[label, r["offered_rps"], mm(r["answered_rps"]), mm(r["p50_ms"]), mm(r["p99_ms"]), mm(r["max_ms"]),
                  r["ok"], r["refused"], r["timed_out"], mm(r["server_cpu_ms_per_call"]),
                  mm(r["client_cpu_ms_per_call"]), mm(r["load_avg_1m"])]
                 for label, rows in summary.items() for r in rows])
    print("figures: min / median over rounds; percentiles over answered calls; timed out = past the budget")
    for label in runs:
        print(f"audit rows ({label}): {audited[label]} for {answered[label]} answered calls")
    write_json("cloud_load", {"bundle": str(args.bundle), "args": vars(args), "cpu": cpu,
                              "kernel": os.uname().release, "summary": summary, "runs": {
                                  label: {str(rate): rs for rate, rs in by_rate.items()} for label, by_rate in runs.items()},
                              "audit_rows": audited, "answered_calls": answered})


if __name__ == "__main__":
    main()
