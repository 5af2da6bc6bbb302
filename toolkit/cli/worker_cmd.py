"""Run adaptation jobs from the coordinator's store (fine-tune the teacher on a cohort's
opted-in labelled examples, export, publish, canary). Start as many workers, on as many machines, as
the store serves: PostgreSQL hands each job to one worker (SKIP LOCKED); a killed worker's job runs again."""

from __future__ import annotations

from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("--store", required=True, help="the coordinator's store URL (sqlite:///path or postgresql://...)")
    p.add_argument("--weights", required=True, help="the teacher's state dict (the model factory comes from the bundle)")
    p.add_argument("--model", help="override the bundle's model factory (module:function)")
    p.add_argument("--sign-key", help="raw 32-byte ed25519 private key file that signs adapted bundles "
                                          "(default: the project key made by `edgefleet keys init`)")
    p.add_argument("--lease-s", type=float, default=600.0, help="a job whose worker is silent this long runs again")
    p.add_argument("--epochs", type=int, default=15, help="fine-tuning epochs over the original data plus the examples")
    p.add_argument("--layers", choices=("all", "head"), default="all",
                   help="train every layer of the teacher (a covariate shift needs new features) or only its head")
    p.add_argument("--augment", type=int, default=5, help="jittered copies of each image example (0: none)")
    p.add_argument("--once", action="store_true", help="exit when no job is left (default: keep polling)")


def run(args) -> int:
    from edgefleet._errors import ConfigError
    from edgefleet.coordinator.adapt import WorkerConfig, run_worker

    from edgefleet.keys import signing_key

    key, _ = signing_key(args.sign_key, "worker")
    if not Path(args.weights).is_file():
        raise ConfigError(f"--weights {args.weights}: no such file")
    run_worker(WorkerConfig(store=args.store, weights=args.weights, model=args.model, signing_key=key,
                            lease_s=args.lease_s, epochs=args.epochs,
                            layers=args.layers, augment=args.augment), once=args.once, log=lambda m: print(m, flush=True))
    return 0
