"""Regenerate the committed protobuf stubs, or check that they match ``fleet.proto``.

    python -m edgefleet.proto.stubs --check   # exit 1 and name the files that drifted
    python -m edgefleet.proto.stubs --write   # rewrite fleet_pb2.py, fleet_pb2.pyi, fleet_pb2_grpc.py

The proto is compiled as ``edgefleet/proto/fleet.proto`` so that the generated gRPC module
imports ``edgefleet.proto.fleet_pb2`` (the installed name), never a bare top-level module.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["generate", "drifted"]

HERE = Path(__file__).resolve().parent
PROTO = HERE / "fleet.proto"
OUTPUTS = ("fleet_pb2.py", "fleet_pb2.pyi", "fleet_pb2_grpc.py")


def generate() -> dict[str, bytes]:
    """Compile ``fleet.proto`` with grpcio-tools; return {file name: content}."""
    try:
        from grpc_tools import protoc
    except ImportError as e:
        raise SystemExit("regenerating stubs needs grpcio-tools: pip install 'edgefleet[dev]'") from e
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "src", "edgefleet", "proto")
        src.mkdir(parents=True)
        shutil.copyfile(PROTO, src / "fleet.proto")
        out = Path(tmp, "out")
        out.mkdir()
        include = str(Path(protoc.__file__).parent / "_proto")
        rc = protoc.main(["protoc", f"-I{tmp}/src", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
                          f"--grpc_python_out={out}", "edgefleet/proto/fleet.proto"])
        if rc != 0:
            raise SystemExit(f"protoc failed on {PROTO} (exit {rc})")
        return {name: (out / "edgefleet" / "proto" / name).read_bytes() for name in OUTPUTS}


def drifted() -> list[str]:
    """Names of committed stub files that differ from a fresh generation."""
    fresh = generate()
    return [name for name, data in fresh.items()
            if not (HERE / name).is_file() or (HERE / name).read_bytes() != data]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    if args.write:
        for name, data in generate().items():
            (HERE / name).write_bytes(data)
        return 0
    bad = drifted()
    if bad:
        print(f"stubs out of date with {PROTO.name}: {', '.join(bad)}; run python -m edgefleet.proto.stubs --write",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
