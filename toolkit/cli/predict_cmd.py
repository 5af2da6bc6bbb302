"""Run a bundle on inputs from a .npy file (one input) or an .npz file (named inputs) and print the results.

A classifier prints the label and calibrated confidence per row; an embedding or regression model
prints the first values of its output. Integer inputs (token ids) keep their dtype and are checked
against the range the manifest records.
"""

from __future__ import annotations

from edgefleet.cli import add_json_argument, emit_json, human_out


def add_arguments(p) -> None:
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("input", help=".npy file with a batch of inputs (or one sample without the batch axis), "
                                 "or .npz with one array per named input")
    p.add_argument("--runtime", help="backend to use (default: the first available along the fallback chain)")
    p.add_argument("--target", help="artifact target to run (default: the fallback chain's first runnable)")
    p.add_argument("--output", help="write the raw outputs to this .npy file")
    p.add_argument("--trusted-key", help="public key the bundle must be signed with (default: the project key)")
    p.add_argument("--allow-unsigned", action="store_true", help="run an unsigned or untrusted bundle anyway")
    add_json_argument(p)


def _load_inputs(path: str, specs: list[dict]):
    import numpy as np

    from edgefleet import DataError

    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npy/.npz file ({e})") from e
    if isinstance(loaded, np.ndarray):
        if len(specs) != 1:
            raise DataError(f"{path}: the model takes {len(specs)} inputs ({', '.join(s['name'] for s in specs)}); "
                            f"pass an .npz with one array per input")
        arrays = {specs[0]["name"]: loaded}
    else:
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
    feeds = {}
    for s in specs:
        if s["name"] not in arrays:
            raise DataError(f"{path}: no array named {s['name']!r} (the model's inputs: "
                            f"{', '.join(x['name'] for x in specs)}; found {', '.join(arrays) or 'none'})")
        x = arrays[s["name"]]
        feeds[s["name"]] = x[None] if x.ndim == len(s["shape"]) - 1 else x
    return feeds


def run(args) -> int:
    import sys

    import numpy as np

    from edgefleet import Bundle
    from edgefleet.keys import load_public, project_public_key, require_trusted
    from edgefleet.monitoring import summarize
    from edgefleet.runtimes import open_artifact

    bundle = Bundle.open(args.bundle)
    trusted = load_public(args.trusted_key) if args.trusted_key else project_public_key()
    found = require_trusted(bundle, trusted, allow_unsigned=args.allow_unsigned, what="predict")
    if found != "signed by the trusted key":
        print(f"edgefleet predict: WARNING: bundle is {found.upper()}; running it because of --allow-unsigned",
              file=sys.stderr)
    m = bundle.manifest
    feeds = _load_inputs(args.input, m["inputs"])
    target, rt = open_artifact(bundle, target=args.target, runtime=args.runtime)
    out = rt.run(feeds)[rt.output_names[0]]
    if args.output:
        np.save(args.output, out)
    labels = m["task"].get("labels")
    ref = m.get("monitoring")
    n = len(next(iter(feeds.values())))
    stream = human_out(args)
    print(f"# {target} on {rt.name}, {n} input(s), {rt.last_latency_s * 1e3:.3f} ms", file=stream)
    rows = []
    for i, row in enumerate(out.reshape(len(out), -1)):
        entry = {"index": i, "output": row.tolist()}
        if labels and ref:
            k, conf, _ = summarize(ref, row.tolist())
            entry.update(label=labels[k], confidence=conf)
            print(f"{i}\t{labels[k]}\t{conf:.4f}", file=stream)
        else:
            print(f"{i}\t" + " ".join(f"{v:.5g}" for v in row[:16]), file=stream)
        rows.append(entry)
    emit_json(args, {"target": target, "runtime": rt.name, "task": m["task"]["kind"], "predictions": rows})
    return 0
