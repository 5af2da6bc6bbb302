"""Where one single-window Report's coordinator time goes (not a test): the steps of the ingest path
timed in-process, without the network, interleaved round by round so a busy machine slows all alike.

Steps: decode the protobuf request, convert it to the plain window dict (``wire.window_to_dict``),
validate it (``validate.validate_windows``), and store it (``SqliteStore.ingest_windows``: JSON
payload, insert, commit with ``synchronous=FULL``); plus the token lookup (cached). Prints min and
median µs per step (wall and CPU) and the validation share, and writes JSON.

    python benchmarks/ingest_steps.py [--rounds 7] [--calls 2000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "coordinator"))
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import print_steps, time_steps, write_json_to  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=2000, help="single-window reports per step per round")
    p.add_argument("--out", default=str(REPO / "bench-results" / "ingest_steps.json"))
    args = p.parse_args(argv)
    from bundle_factory import make_bundle
    from edgefleet.bundle import Bundle
    from edgefleet.proto import fleet_pb2 as pb
    from edgefleet.coordinator.store import open_store
    from edgefleet.coordinator.validate import validate_windows
    from edgefleet.coordinator.wire import window_from_dict, window_to_dict
    from edgefleet.device import Window

    tmp = Path(tempfile.mkdtemp(prefix="edgefleet-steps-"))
    manifest = Bundle.open(make_bundle(tmp / "b", version="1.0")).manifest
    mon = manifest["monitoring"]
    w = Window(mon, "1.0", "onnx-int8", now_ms=0)
    for i in range(20):
        w.observe([float(c == i % 10) * 4 for c in range(10)], [0.1 * i] * len(mon["projection"]["histograms"]), 2.0)
    template = window_from_dict(w.close(60_000))
    store = open_store(f"sqlite:///{tmp / 'f.db'}")

    def bodies(n):
        out = []
        for _ in range(n):
            req = pb.ReportRequest()
            win = req.windows.add()
            win.CopyFrom(template)
            win.report_id = uuid.uuid4().hex
            out.append(req.SerializeToString())
        return out

    steps = {
        "decode": lambda b: pb.ReportRequest.FromString(b),
        "to_dict": lambda r: [window_to_dict(x) for x in r.windows],
        "validate": lambda ws: validate_windows(ws, lambda v: manifest),
        "store": lambda ws: store.ingest_windows("dev-1", "eu", ws),
    }

    def make_inputs():
        raw = bodies(args.calls)
        inputs = {"decode": raw}
        inputs["to_dict"] = [steps["decode"](b) for b in raw]
        inputs["validate"] = [steps["to_dict"](r) for r in inputs["to_dict"]]
        inputs["store"] = inputs["validate"]
        return inputs
    rows = time_steps(steps, make_inputs, args.rounds)
    store.close()
    print(f"single-window Report, coordinator steps in-process ({args.rounds} rounds x {args.calls} calls, "
          f"{platform.machine()}, kernel {platform.release()}):")
    print_steps(rows, "µs per report; 'store' wall time includes the fsync (its CPU time does not)")
    write_json_to(args.out, {"args": vars(args), "steps_us": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
