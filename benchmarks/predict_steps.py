"""Where one single-row cloud ``Predict`` call's coordinator time goes (not a test): the steps of the
call timed in-process, without the network, interleaved round by round so a busy machine slows all
alike. The companion of ``cloud_load.py``, which measures the whole call under load.

Steps: decode the protobuf request; authenticate (token cache, per-device call cap); the cohort's
privacy state (cached); the inputs as an array (shape, NaN check); the per-device Predict limit; the
audit row, committed alone (one synced SQLite transaction, ``synchronous=FULL``) and shared by 16
concurrent calls (group commit: per row); the model (``teacher-fp32``, one intra-op thread); the
encoded answer; and the whole ``Coordinator.predict`` (one caller: its audit commit is not shared).
Prints min and median µs per step (wall and CPU); then, for ``--probe-seconds``, commits one audit
row after another and prints the distribution of a commit's wall time (its tail is what every call
waiting on that commit waits too). Writes JSON.

    python benchmarks/predict_steps.py out/digits [--rounds 7] [--calls 300] [--probe-seconds 5]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import print_steps, time_steps, write_json_to  # noqa: E402

SHARED = 16   # concurrent audit rows per group-commit step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", help="a bundle directory with teacher-fp32 or onnx-fp32")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=300, help="calls per step per round")
    p.add_argument("--probe-seconds", type=float, default=5.0, help="commit one audit row after another this long")
    p.add_argument("--out", default=str(REPO / "bench-results" / "predict_steps.json"))
    args = p.parse_args(argv)
    import numpy as np

    from edgefleet.bundle import Bundle, pack
    from edgefleet.coordinator.service import Coordinator
    from edgefleet.coordinator.simulate import load_inputs
    from edgefleet.coordinator.store import open_store
    from edgefleet.proto import fleet_pb2 as pb

    tmp = Path(tempfile.mkdtemp(prefix="edgefleet-predict-steps-"))
    store = open_store(f"sqlite:///{tmp / 'f.db'}")
    c = Coordinator(store, admin_token="bench-admin-token-0123456789abcdef", allow_unsigned=True)
    bundle = Bundle.open(args.bundle)
    c.publish_bundle(pack(bundle.path, tmp / "b.tar.gz").read_bytes())
    c.set_baseline("cloud", bundle.version)
    c.set_privacy("cloud", True, cloud_per_minute=1_000_000)
    token = c.enroll(c.create_enrollment_token("cloud"))["device_token"]
    device_id, _ = c.device_for(token)
    c.device_rate.rate = c.device_rate.burst = 1e9   # the cap itself is timed, never hit
    x, _ = load_inputs(bundle)
    row = x[0].reshape(-1).astype(float).tolist()
    raw = pb.PredictRequest(values=row, rows=1, model_version=bundle.version).SerializeToString()
    run, name, shape = c.cloud.model(bundle.version)
    array = np.asarray(row, np.float32).reshape(1, *shape)
    logits = np.asarray(run(array), np.float32)
    pool = ThreadPoolExecutor(SHARED)

    def audit(_):
        store.add_audit(device_id, "cloud", "predict_inputs", 4 * len(row), f"cloud fallback: 1 input to {name}")

    def to_array(values):
        a = np.asarray(values, dtype=np.float32).reshape((1, *shape))
        return bool(np.isfinite(a).all())

    steps = {
        "decode": lambda b: list(pb.PredictRequest.FromString(b).values),
        "auth": lambda t: c.check_rate(c.device_for(t)[0]),
        "cohort": lambda _: c.cohort_state("cloud"),
        "to_array": to_array,
        "admit": lambda _: c.cloud.admit(device_id, 1_000_000),
        "audit_alone": audit,
        f"audit_shared_{SHARED}": lambda _: list(pool.map(audit, range(SHARED))),
        "model": run,
        "encode": lambda _: pb.PredictResponse(logits=logits.reshape(-1).tolist(), rows=1, model=name).SerializeToString(),
        "predict": lambda _: c.predict(device_id, "cloud", row, 1, bundle.version),
    }
    inputs = {"decode": [raw] * args.calls, "auth": [token] * args.calls, "to_array": [row] * args.calls,
              "model": [array] * args.calls, f"audit_shared_{SHARED}": [None] * (args.calls // SHARED or 1)}
    rows = time_steps(steps, lambda: {k: inputs.get(k, [None] * args.calls) for k in steps}, args.rounds)
    shared = rows[f"audit_shared_{SHARED}"]
    for metric in shared.values():   # per row, not per burst of SHARED
        for k in metric:
            metric[k] = round(metric[k] / SHARED, 2)
    commits, end = [], time.perf_counter() + args.probe_seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        audit(None)
        commits.append((time.perf_counter() - t0) * 1000)
    commits.sort()
    probe = {"commits": len(commits), **{f"p{q}_ms": round(commits[min(len(commits) - 1, int(q / 100 * len(commits)))], 2)
                                          for q in (50, 90, 99)}, "max_ms": round(commits[-1], 2) if commits else None}
    pool.shutdown()
    store.close()
    c.cloud.close()
    print(f"single-row Predict, coordinator steps in-process ({args.rounds} rounds x {args.calls} calls, model "
          f"{name}, {platform.machine()}, kernel {platform.release()}):")
    print_steps(rows, f"µs per call (audit_shared_{SHARED}: per row); audit wall time includes the fsync; 'predict' "
                      "is the whole call with an unshared commit; shares: one call with a shared commit",
                apart=("audit_alone", "predict"))
    print(f"one audit commit after another for {args.probe_seconds:g} s: {probe['commits']} commits, wall ms p50 "
          f"{probe['p50_ms']}, p90 {probe['p90_ms']}, p99 {probe['p99_ms']}, max {probe['max_ms']}")
    write_json_to(args.out, {"args": vars(args), "model": name, "steps_us": rows, "commit_probe": probe})
    return 0


if __name__ == "__main__":
    sys.exit(main())
