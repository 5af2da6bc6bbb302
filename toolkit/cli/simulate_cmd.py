"""Simulate a fleet on localhost: a coordinator, N devices and a shifted cohort.

The devices run a bundle on real data, one cohort sees shifted inputs; prints what the coordinator
detected and decided."""

from __future__ import annotations

import argparse
import tempfile

from edgefleet.cli import add_json_argument, emit_json, human_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", nargs="?", default="out/digits",
                   help="bundle directory, a digits classifier (written by `edgefleet demo`)")
    p.add_argument("--devices", type=int, default=20, help="simulated devices")
    p.add_argument("--cohorts", type=int, default=4, help="device cohorts; the last one sees shifted inputs")
    p.add_argument("--rounds", type=int, default=6, help="telemetry rounds per device")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated traffic")
    p.add_argument("--workdir", help="where device state and the store go (default: a temporary directory)")
    add_json_argument(p)
    p.add_argument("--trusted-key", help="public key the bundle must be signed with (default: the project key)")
    p.add_argument("--allow-unsigned", action="store_true", help="run an unsigned or untrusted bundle anyway")


def run(args) -> int:
    from edgefleet._errors import ConfigError
    from edgefleet.coordinator.simulate import format_summary, run_fleet_demo
    from pathlib import Path
    if args.devices < 1 or args.cohorts < 1 or args.rounds < 1:
        raise ConfigError("simulate: --devices, --cohorts and --rounds must be positive")
    if not (Path(args.bundle) / "manifest.json").is_file():
        raise ConfigError(f"simulate: no bundle at {args.bundle}; run `edgefleet demo` first or pass a bundle directory")
    from edgefleet.keys import load_public, project_public_key
    trusted = load_public(args.trusted_key) if args.trusted_key else project_public_key()
    with tempfile.TemporaryDirectory(prefix="edgefleet-sim-") as tmp:
        summary = run_fleet_demo(args.bundle, args.workdir or tmp, devices=args.devices, seed=args.seed,
                                 trusted_key=trusted, allow_unsigned=args.allow_unsigned,
                                 cohorts=args.cohorts, rounds=args.rounds,
                                 log=lambda msg: print(msg, file=human_out(args)))
    print(format_summary(summary), file=human_out(args))
    emit_json(args, summary)
    return 0
