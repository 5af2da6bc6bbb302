"""Show a bundle: model, task, tensors, artifacts with their metrics, fallback chain, signature."""

from __future__ import annotations

from edgefleet.cli import add_json_argument, emit_json


def add_arguments(p) -> None:
    p.add_argument("bundle", help="bundle directory")
    add_json_argument(p)


def run(args) -> int:
    from edgefleet import Bundle

    bundle = Bundle.open(args.bundle)
    m = bundle.manifest
    if args.json:
        emit_json(args, m)
        if args.json == "-":
            return 0
    print(f"{m['model']['name']} v{m['model']['version']}  (schema {m['schema_version']}, digest {bundle.digest[:16]}...)")
    task = m["task"]
    labels = task.get("labels", [])
    print(f"task: {task['kind']}" + (f", {len(labels)} labels: {', '.join(labels[:10])}{' ...' if len(labels) > 10 else ''}" if labels else ""))
    for section in ("inputs", "outputs"):
        for spec in m[section]:
            shape = "[" + ", ".join("N" if d is None else str(d) for d in spec["shape"]) + "]"
            print(f"{section[:-1]}: {spec['name']} {spec['dtype']} {shape}")
    print("artifacts (all verified: size and sha256):")
    for a in m["artifacts"]:
        mt = a["metrics"]
        lat = mt.get("latency", {}).get("batch1", {}).get("p50_ms")
        extra = []
        metric = task.get("metric", "accuracy")
        if f"test_{metric}" in mt:
            value = mt[f"test_{metric}"]
            extra.append(f"test acc {value:.2f}%" if metric == "accuracy" else f"test {metric} {value:.4f}")
        if lat is not None:
            extra.append(f"p50 b1 {lat:.3f} ms")
        print(f"  {a['target']:<12} {a['file']:<20} {a['bytes']:>10,} bytes  {a['runtime']:<12} {'  '.join(extra)}")
    print(f"fallback chain: {' > '.join(m['fallback_chain'])}")
    print(f"signature: {'ed25519 ' + m['signature']['public_key'][:12] + '...' if m.get('signature') else 'unsigned'}")
    return 0
