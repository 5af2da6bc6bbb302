"""The main job on embedded defaults: train a digits CNN, compress it two ways, export verified bundles.

1. train the teacher CNN on scikit-learn's digits (seeded; about 10 s on 2 cores);
2. export it with the default recipe (int8) to OUT/digits;
3. export it with the 'small' recipe (prune + lowrank + distill + int8) to OUT/digits-small;
4. print both report tables;
5. start a coordinator on 127.0.0.1, run a simulated fleet of devices on the digits bundle with one
   cohort fed shifted inputs, and print what the coordinator detected and decided.

``--browser`` instead serves the digits bundle to browsers: a coordinator on 127.0.0.1 with the page
under ``/app/`` (the wasm runtime and the SDK in Pyodide); it prints the URL and runs until Ctrl-C.
"""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("--out", default="out", help="directory for the bundles")
    p.add_argument("--seed", type=int, default=0, help="seed of training, export and the simulated fleet")
    p.add_argument("--train-epochs", type=int, default=30, help="epochs to train the digits CNN teacher")
    p.add_argument("--devices", type=int, default=20, help="simulated devices in the fleet step")
    p.add_argument("--browser", action="store_true",
                   help="serve the digits bundle to browsers (page under /app/) instead of simulating a fleet")
    p.add_argument("--http-port", type=int, default=8080, help="with --browser: the coordinator's HTTP port")


def run(args) -> int:
    from pathlib import Path

    from edgefleet.compress.demo import export_digits, train_digits_teacher

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = sys.stderr.isatty()
    if args.browser:
        return _browser(args, out, progress)
    print(f"== training the digits CNN teacher ({args.train_epochs} epochs)", flush=True)
    weights = train_digits_teacher(out, seed=args.seed, epochs=args.train_epochs, progress=progress)
    export_digits(out, weights, seed=args.seed, progress=progress, say=lambda s: print(f"\n== {s}" if s.startswith("export") else s, flush=True))

    from edgefleet.coordinator.simulate import format_summary, run_fleet_demo

    print(f"\n== fleet: coordinator on 127.0.0.1, {args.devices} devices, one cohort with shifted inputs", flush=True)
    from edgefleet.compress.demo import demo_key
    from edgefleet._signing import public_key
    summary = run_fleet_demo(out / "digits", out / "fleet", devices=args.devices, seed=args.seed,
                             trusted_key=public_key(demo_key(out)[0]),
                             log=lambda msg: print(f"   {msg}", flush=True))
    print(format_summary(summary))
    return 0


def _browser(args, out, progress) -> int:
    from edgefleet._webapp import serve_browser_demo
    from edgefleet.bundle import Bundle
    from edgefleet.compress.demo import export_digits, train_digits_teacher

    bundle = out / "digits"
    if not (bundle / "manifest.json").is_file() or "efm-int8" not in Bundle.open(bundle).targets:
        print(f"== training and exporting the digits CNN ({args.train_epochs} epochs) to {bundle}", flush=True)
        weights = train_digits_teacher(out, seed=args.seed, epochs=args.train_epochs, progress=progress)
        export_digits(out, weights, seed=args.seed, progress=progress, say=lambda s: print(s, flush=True))
    server, url = serve_browser_demo(bundle, out / "browser", http_port=args.http_port)
    print(f"== the browser device: open {url}  (Ctrl-C stops the coordinator)", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(1.0)
    return 0
