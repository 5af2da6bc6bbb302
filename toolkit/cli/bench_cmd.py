"""Measure latency of every artifact of a bundle on every available runtime that runs it."""

from __future__ import annotations

from edgefleet.cli import add_json_argument, emit_json, human_out


def add_arguments(p) -> None:
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per runtime")
    p.add_argument("--seconds", type=float, default=1.0, help="time budget per measurement")
    add_json_argument(p)


def run(args) -> int:
    from edgefleet import Bundle, runtimes
    from edgefleet.compress.verify import latency, machine_info

    bundle = Bundle.open(args.bundle)
    x = sample_inputs(bundle.manifest["inputs"], max(int(b) for b in args.batches.split(",")))
    rows = []
    for target in bundle.targets:
        for name in runtimes.for_target(target):
            if not runtimes.get(name).is_available():
                continue
            _, rt = runtimes.open_artifact(bundle, target=target, runtime=name, threads=args.threads)
            for b in (int(v) for v in args.batches.split(",")):
                lat = latency(rt, x, b, budget_s=args.seconds)
                rows.append({"target": target, "runtime": name, "batch": b, **lat})
    out = human_out(args)
    print(f"{'target':<12} {'runtime':<12} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'runs':>6}", file=out)
    for r in rows:
        print(f"{r['target']:<12} {r['runtime']:<12} {r['batch']:>5} {r['p50_ms']:>9.3f} {r['p99_ms']:>9.3f} {r['runs']:>6}",
              file=out)
    emit_json(args, {"machine": machine_info(), "threads": args.threads, "results": rows})
    return 0


def sample_inputs(specs: list[dict], n: int):
    """Random inputs matching the manifest: normal floats; integers inside the input's range
    (token ids below the vocabulary size; 0/1 where no range is given, as for a mask)."""
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {}
    for s in specs:
        shape = (n, *s["shape"][1:])
        if s["dtype"].startswith("int"):
            lo, hi = s.get("range", [0, 1])
            feeds[s["name"]] = rng.integers(lo, hi + 1, shape).astype(s["dtype"])
        else:
            feeds[s["name"]] = rng.standard_normal(shape).astype(np.float32)
    return feeds if len(feeds) > 1 else next(iter(feeds.values()))
