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
    p.add_argument("--teacher-weights", help="scenario mode: the teacher's state dict; the covariate and rotation cohorts "
                                             "then opt in to labelled examples and adaptation jobs run after each round")
    p.add_argument("--sign-key", help="scenario mode, with --teacher-weights: the raw ed25519 private key that signs "
                                      "adapted bundles (default: the project key; devices and the coordinator "
                                      "trust --trusted-key)")
    p.add_argument("--data", help="scenario mode: a .npz data set (the export's) whose validation and test splits "
                                  "are the devices' inputs (default: the digits splits)")
    p.add_argument("--rules", help="scenario mode: policy rules TOML (default: the benchmark's rules, "
                                   "edgefleet.coordinator.scenarios.SCENARIO_RULES)")
    p.add_argument("--scenario", help="run the fallback-ladder benchmark instead: comma-separated scenarios "
                                      "(quantization, label, covariate, rotation, ends; 'all' for every one), each in its own "
                                      "cohort beside untouched control cohorts (--cohorts minus the scenarios, at least 2); "
                                      "--devices is shared out evenly; --rounds defaults to 40 there")


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
    if args.scenario:
        return _scenarios(args, trusted)
    with tempfile.TemporaryDirectory(prefix="edgefleet-sim-") as tmp:
        summary = run_fleet_demo(args.bundle, args.workdir or tmp, devices=args.devices, seed=args.seed,
                                 trusted_key=trusted, allow_unsigned=args.allow_unsigned,
                                 cohorts=args.cohorts, rounds=args.rounds,
                                 log=lambda msg: print(msg, file=human_out(args)))
    print(format_summary(summary), file=human_out(args))
    emit_json(args, summary)
    return 0


def _scenarios(args, trusted: bytes | None) -> int:
    from pathlib import Path

    from edgefleet.coordinator.scenarios import SCENARIOS, format_table, run_scenarios
    names = list(SCENARIOS) if args.scenario == "all" else [s.strip() for s in args.scenario.split(",") if s.strip()]
    rounds = args.rounds if args.rounds != 6 else 40  # 6 is the plain simulation's default
    with tempfile.TemporaryDirectory(prefix="edgefleet-scenarios-") as tmp:
        controls = max(args.cohorts - len(names), 2)
        worker = None
        if args.teacher_weights:
            from edgefleet.coordinator.adapt import WorkerConfig
            from edgefleet.keys import signing_key
            key, _ = signing_key(args.sign_key, "simulate")
            worker = WorkerConfig(store="", weights=args.teacher_weights, signing_key=key, data=args.data)
        inputs = None
        if args.data:
            import numpy as np

            from edgefleet.compress.data import load_dataset
            ds = load_dataset(args.data, seed=args.seed)
            inputs = (np.concatenate([ds.x_val, ds.x_test]), np.concatenate([ds.y_val, ds.y_test]))
        result = run_scenarios(args.bundle, args.workdir or tmp, names, controls=controls,
                               devices_per_cohort=max(args.devices // (len(names) + controls), 1), rounds=rounds,
                               seed=args.seed, worker=worker, inputs=inputs, log=print, trusted_key=trusted,
                               allow_unsigned=args.allow_unsigned,
                               **({"rules_text": Path(args.rules).read_text()} if args.rules else {}))
    print(format_table(result), file=human_out(args))
    if args.json:
        keys = ("acc_before", "acc_shifted", "acc_recovered", "rung", "windows_to_detect", "windows_to_recover",
                "raw_bytes_off_device", "decisions_in_controls")
        doc = {"bundle": str(args.bundle), "command": "edgefleet simulate " + " ".join(_argv(args)),
               **{k: v for k, v in result.items() if k != "scenarios"},
               "scenarios": {name: {**{k: m[k] for k in keys}, **{k: v for k, v in m.items() if k not in keys}}
                             for name, m in result["scenarios"].items()}}
        emit_json(args, doc)
    return 0


def _argv(args) -> list[str]:
    return [str(args.bundle), "--scenario", args.scenario, "--devices", str(args.devices), "--cohorts",
            str(args.cohorts), "--rounds", str(args.rounds), "--seed", str(args.seed)] + (
        ["--teacher-weights", args.teacher_weights] if args.teacher_weights else []) + (
        ["--sign-key", args.sign_key] if args.sign_key else []) + (["--data", args.data] if args.data else []) + (
        ["--rules", args.rules] if args.rules else [])
