"""Run a bundle on inputs from a .npy file and print the predictions."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("input", help=".npy file with a batch of inputs (or one sample without the batch axis)")
    p.add_argument("--runtime", help="backend to use (default: the first available along the fallback chain)")
    p.add_argument("--target", help="artifact target to run (default: the fallback chain's first runnable)")
    p.add_argument("--output", help="write the raw outputs to this .npy file")
    p.add_argument("--trusted-key", help="public key the bundle must be signed with (default: the project key)")
    p.add_argument("--allow-unsigned", action="store_true", help="run an unsigned or untrusted bundle anyway")


def run(args) -> int:
    import numpy as np

    from edgefleet import Bundle, DataError
    from edgefleet.monitoring import confidence
    from edgefleet.runtimes import open_artifact

    import sys

    from edgefleet.keys import load_public, project_public_key, require_trusted
    bundle = Bundle.open(args.bundle)
    trusted = load_public(args.trusted_key) if args.trusted_key else project_public_key()
    found = require_trusted(bundle, trusted, allow_unsigned=args.allow_unsigned, what="predict")
    if found != "signed by the trusted key":
        print(f"edgefleet predict: WARNING: bundle is {found.upper()}; running it because of --allow-unsigned",
              file=sys.stderr)
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{args.input}: not a readable .npy file ({e})") from e
    spec = bundle.manifest["inputs"][0]
    if x.ndim == len(spec["shape"]) - 1:
        x = x[None]
    target, rt = open_artifact(bundle, target=args.target, runtime=args.runtime)
    out = rt.run(x)[rt.output_names[0]]
    if args.output:
        np.save(args.output, out)
    labels = bundle.manifest["task"].get("labels")
    temperature = bundle.manifest.get("monitoring", {}).get("temperature", 1.0)
    print(f"# {target} on {rt.name}, {len(x)} input(s), {rt.last_latency_s * 1e3:.3f} ms")
    for i, row in enumerate(out):
        if labels:
            k = int(row.argmax())
            print(f"{i}\t{labels[k]}\t{confidence(row.tolist(), temperature):.4f}")
        else:
            print(f"{i}\t" + " ".join(f"{v:.5g}" for v in row.ravel()[:16]))
    return 0
