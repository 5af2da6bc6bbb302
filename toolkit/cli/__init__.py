"""The ``edgefleet`` command line. One module per command, registered in ``_COMMANDS``.

Conventions every command follows: help shows each option's default; ``--json [FILE]`` writes the
command's result as JSON to FILE, or to stdout when no FILE is given (the human-readable output then
goes to stderr, so stdout holds the JSON document only); progress bars appear only when stderr is a
terminal.
"""

from __future__ import annotations

import argparse
import importlib
import json
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


def add_json_argument(p: argparse.ArgumentParser) -> None:
    """The one ``--json`` option: the command's result as JSON, to FILE or (no FILE) to stdout."""
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the result as JSON to FILE, or to stdout when FILE is omitted")


def human_out(args):
    """Where the human-readable output goes: stderr when ``--json`` took stdout."""
    return sys.stderr if getattr(args, "json", None) == "-" else sys.stdout


def emit_json(args, obj) -> None:
    if not getattr(args, "json", None):
        return
    text = json.dumps(obj, indent=2, default=str)
    if args.json == "-":
        print(text)
    else:
        with open(args.json, "w") as f:
            f.write(text + "\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help of every option that has one; descriptions keep their paragraphs."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help  # no default to show (or a flag, off unless given)
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from edgefleet import __version__

    parser = argparse.ArgumentParser(prog="edgefleet", description="Compress, export, run and monitor edge models.")
    parser.add_argument("--version", action="version", version=f"edgefleet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in _COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.__doc__.strip().splitlines()[0], description=module.__doc__,
                           formatter_class=_HelpFormatter)
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
