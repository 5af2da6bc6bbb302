"""The ``edgefleet`` command line. One module per command, registered in ``_COMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import sys

from edgefleet._errors import EdgefleetError

# name -> module that defines ``add_arguments(parser)`` and ``run(args) -> int``
_COMMANDS = {
    "export": "edgefleet.cli.export_cmd",
    "inspect": "edgefleet.cli.inspect_cmd",
    "predict": "edgefleet.cli.predict_cmd",
    "bench": "edgefleet.cli.bench_cmd",
    "demo": "edgefleet.cli.demo_cmd",
    "serve": "edgefleet.cli.serve_cmd",
    "simulate": "edgefleet.cli.simulate_cmd",
    "keys": "edgefleet.cli.keys_cmd",
    "devices": "edgefleet.cli.devices_cmd",
    "worker": "edgefleet.cli.worker_cmd",
}


def register(name: str, module: str) -> None:
    _COMMANDS[name] = module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgefleet", description="Compress, export, run and monitor edge models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in _COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.__doc__.strip().splitlines()[0], description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except EdgefleetError as e:
        print(f"edgefleet {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"edgefleet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
