"""Show a bundle: model, task, tensors, artifacts with their metrics, fallback chain, signature; or,
with --audit, what raw data left a coordinator's devices (when, which device, how many bytes, why)."""

from __future__ import annotations

import os

from edgefleet.cli import add_json_argument, emit_json, human_out


def add_arguments(p) -> None:
    p.add_argument("bundle", nargs="?", help="bundle directory")
    add_json_argument(p)
    p.add_argument("--trusted-key", help="public key to check the signer against (default: the project key)")
    p.add_argument("--audit", metavar="HOST:PORT", help="show the audit log of the coordinator at HOST:PORT "
                                                         "(admin token from EDGEFLEET_ADMIN_TOKEN)")
    p.add_argument("--cohort", default="", help="with --audit: only this cohort")


def _audit(args) -> int:
    from edgefleet._errors import ConfigError
    from edgefleet.coordinator import AdminClient

    token = os.environ.get("EDGEFLEET_ADMIN_TOKEN", "")
    if not token:
        raise ConfigError("inspect --audit: set EDGEFLEET_ADMIN_TOKEN to the coordinator's admin token")
    admin = AdminClient(args.audit, token)
    try:
        entries = admin.list_audit(args.cohort)
    finally:
        admin.close()
    emit_json(args, entries)
    if args.json == "-":
        return 0
    print(f"{len(entries)} transfers of raw data off devices, {sum(e['bytes'] for e in entries)} bytes in all")
    for e in entries:
        print(f"{e['created_ms']}  {e['cohort']:<16} {e['device_id']:<22} {e['kind']:<18} {e['bytes']:>9} B  {e['reason']}")
    return 0


def run(args) -> int:
    import sys

    from edgefleet import Bundle
    from edgefleet.keys import load_public, project_public_key, status
    from edgefleet._errors import ConfigError

    if args.audit:
        return _audit(args)
    if not args.bundle:
        raise ConfigError("inspect: give a bundle directory, or --audit HOST:PORT")
    bundle = Bundle.open(args.bundle)
    trusted = load_public(args.trusted_key) if args.trusted_key else project_public_key()
    signature = status(bundle, trusted)
    m = bundle.manifest
    emit_json(args, m)  # the manifest; the signature verdict below still warns and refuses
    out = human_out(args)
    print(f"{m['model']['name']} v{m['model']['version']}  (schema {m['schema_version']}, digest {bundle.digest[:16]}...)", file=out)
    task = m["task"]
    labels = task.get("labels", [])
    print(f"task: {task['kind']}" + (f", {len(labels)} labels: {', '.join(labels[:10])}{' ...' if len(labels) > 10 else ''}" if labels else ""), file=out)
    for section in ("inputs", "outputs"):
        for spec in m[section]:
            shape = "[" + ", ".join("N" if d is None else str(d) for d in spec["shape"]) + "]"
            print(f"{section[:-1]}: {spec['name']} {spec['dtype']} {shape}", file=out)
    print("artifacts (size and sha256 verified):", file=out)
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
        print(f"  {a['target']:<12} {a['file']:<20} {a['bytes']:>10,} bytes  {a['runtime']:<12} {'  '.join(extra)}", file=out)
    print(f"fallback chain: {' > '.join(m['fallback_chain'])}", file=out)
    signer = f" (ed25519 {m['signature']['public_key'][:12]}...)" if m.get("signature") else ""
    if signature == "signed by the trusted key":
        print(f"signature: {signature}{signer}", file=out)
        return 0
    print(f"signature: {signature.upper()}{signer}", file=out)
    print(f"edgefleet inspect: WARNING: {bundle.path} is {signature.upper()}: nobody vouches for this manifest "
          "or its artifacts", file=sys.stderr)
    if signature == "signature invalid":
        from edgefleet._errors import BundleError
        raise BundleError(f"{bundle.path}: signature invalid: the manifest was changed after signing")
    return 0
