"""Measure latency of every artifact of a bundle on every available runtime that runs it."""

from __future__ import annotations

import json


def add_arguments(p) -> None:
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per runtime")
    p.add_argument("--seconds", type=float, default=1.0, help="time budget per measurement")
    p.add_argument("--json", help="write the results to this JSON file")


def run(args) -> int:
    import numpy as np

    from edgefleet import Bundle, runtimes
    from edgefleet.compress.verify import latency, machine_info

    bundle = Bundle.open(args.bundle)
    spec = bundle.manifest["inputs"][0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((max(int(b) for b in args.batches.split(",")), *spec["shape"][1:])).astype(np.float32)
    rows = []
    for target in bundle.targets:
        for name in runtimes.for_target(target):
            if not runtimes.get(name).is_available():
                continue
            rt = runtimes.load(name, bundle.artifact_path(target), threads=args.threads)
            for b in (int(v) for v in args.batches.split(",")):
                lat = latency(rt, x, b, budget_s=args.seconds)
                rows.append({"target": target, "runtime": name, "batch": b, **lat})
    print(f"{'target':<12} {'runtime':<12} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'runs':>6}")
    for r in rows:
        print(f"{r['target']:<12} {r['runtime']:<12} {r['batch']:>5} {r['p50_ms']:>9.3f} {r['p99_ms']:>9.3f} {r['runs']:>6}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_info(), "threads": args.threads, "results": rows}, f, indent=2)
    return 0
