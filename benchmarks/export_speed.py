"""Export speed and peak memory: ``edgefleet export`` of real-size CNNs under ``/usr/bin/time -v``.

    .venv/bin/python benchmarks/export_speed.py                          # every case
    .venv/bin/python benchmarks/export_speed.py --cases efficientnet_b0  # one case
    .venv/bin/python benchmarks/export_speed.py --smoke                  # small samples counts, quick

Cases (Fashion-MNIST images, see ``real_models.fashion_images`` for the 224 x 224 RGB form):

- ``efficientnet_b0`` / ``mobilenet_v2``: the zoo family at full width (10 classes), 224 x 224 RGB,
  the ``default`` recipe (post-training int8; QAT only if the budget is missed);
- ``mnist_cnn``: a ~420k-parameter CNN on 28 x 28 Fashion-MNIST, trained here for ``--mnist-epochs``,
  through the ``small`` recipe (prune, low-rank, distill, int8).

Per case: wall time, peak RSS (``Maximum resident set size``), the export's own per-step timings
(from its ``--json`` report), the load average before and after, written to
``bench-results/export_speed.json``. The machine is shared: read the load average beside each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json, write_json_to  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = ("efficientnet_b0", "mobilenet_v2", "mnist_cnn")


def efficientnet_b0():
    from edgefleet.compress import zoo
    return zoo.efficientnet_b0(num_classes=10)


def mobilenet_v2():
    from edgefleet.compress import zoo
    return zoo.mobilenet_v2(num_classes=10)


def mnist_cnn():
    """conv-bn-relu-pool x 2 and two linear layers for 28 x 28 grey images (~420k parameters)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def _data(case: str, args, workdir: Path) -> Path:
    from real_models import fashion_images

    from edgefleet.compress.data import load_fashion_mnist

    path = workdir / f"{case}.npz"
    if case == "mnist_cnn":
        d = load_fashion_mnist(0)
        n_tr, n_va = args.mnist_train, args.mnist_val
        np.savez(path, x_train=d.x_train[:n_tr], y_train=d.y_train[:n_tr], x_val=d.x_val[:n_va], y_val=d.y_val[:n_va],
                 x_test=d.x_test[:n_va], y_test=d.y_test[:n_va])
        return path
    n_tr, n_va = args.train, args.val
    x_tr, y_tr, x_te, y_te = fashion_images(224, n_tr + n_va, n_va)
    np.savez(path, x_train=x_tr[:n_tr], y_train=y_tr[:n_tr], x_val=x_tr[n_tr:], y_val=y_tr[n_tr:], x_test=x_te,
             y_test=y_te)
    return path


def _signing_key(workdir: Path) -> Path:
    """A throwaway raw ed25519 private key (32 random bytes) for the bundles of this run."""
    path = workdir / "bench.key"
    if not path.exists():
        path.write_bytes(os.urandom(32))
    return path


def _loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_case(case: str, args, workdir: Path) -> dict:
    data = _data(case, args, workdir)
    report = workdir / f"{case}.json"
    cmd = [args.edgefleet, "export", "--model", f"export_speed:{case}", "--data", str(data),
           "--recipe", "small" if case == "mnist_cnn" else "default", "--out", str(workdir / case),
           "--json", str(report), "--sign-key", str(_signing_key(workdir))]
    if case == "mnist_cnn":
        cmd += ["--train-epochs", str(args.mnist_epochs)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    load_before = _loadavg()
    start = time.perf_counter()
    # time(1) waits for timeout(1), whose peak RSS figure covers the export it waited for, killed or not
    proc = subprocess.run(["/usr/bin/time", "-v", "timeout", str(args.timeout), *cmd], env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = [re.search(rf"{k} time \(seconds\): ([\d.]+)", proc.stderr) for k in ("User", "System")]
    row = {"case": case, "command": " ".join(cmd), "exit": proc.returncode, "wall_s": round(wall, 1),
           "cpu_s": round(sum(float(m.group(1)) for m in cpu if m), 1),
           "peak_rss_mb": round(int(rss.group(1)) / 1024) if rss else None,
           "load_before": load_before, "load_after": _loadavg()}
    if proc.returncode == 124:
        row["error"] = [f"killed after --timeout {args.timeout} s"]
        return row
    if proc.returncode != 0:
        row["error"] = proc.stderr.strip().splitlines()[-25:]
        return row
    result = json.loads(report.read_text())
    row["timings"] = result.get("timings", {})
    row["step_peak_rss_mb"] = result.get("peak_rss_mb", {})
    row["params"] = result.get("teacher", {}).get("params")
    row["attempts"] = len(result.get("attempts", []))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    ap.add_argument("--train", type=int, default=600, help="224 x 224 training images (calibration draws 512)")
    ap.add_argument("--val", type=int, default=200, help="224 x 224 validation and test images each")
    ap.add_argument("--mnist-train", type=int, default=6000, help="28 x 28 training images of the mnist_cnn case")
    ap.add_argument("--mnist-val", type=int, default=1000, help="28 x 28 validation and test images each")
    ap.add_argument("--mnist-epochs", type=int, default=3, help="teacher epochs of the mnist_cnn case")
    ap.add_argument("--edgefleet", default=str(ROOT / ".venv/bin/edgefleet"),
                    help="the edgefleet command to time (another revision's, to compare before/after)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds after which an export is killed (and reported)")
    ap.add_argument("--smoke", action="store_true", help="tiny sample counts (a quick check of the script)")
    ap.add_argument("--out", help="JSON file (default bench-results/export_speed[_smoke].json)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.train, args.val, args.mnist_train, args.mnist_val, args.mnist_epochs = 16, 8, 512, 128, 1
    from edgefleet.compress.verify import machine_info

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            print(f"== {case}", file=sys.stderr, flush=True)
            rows.append(run_case(case, args, Path(tmp)))
            if "error" in rows[-1]:
                print("\n".join(rows[-1]["error"]), file=sys.stderr)
    print_table(["case", "params", "exit", "wall s", "cpu s", "peak RSS MB", "attempts", "load before/after"],
                [[r["case"], f"{r.get('params') or 0:,}", r["exit"], r["wall_s"], r["cpu_s"], r["peak_rss_mb"],
                  r.get("attempts", "-"), f"{r['load_before'][0]}/{r['load_after'][0]}"] for r in rows])
    for r in rows:
        if r.get("timings"):
            print(f"\n{r['case']} per step (s):")
            rss = r.get("step_peak_rss_mb", {})
            print_table(["step", "seconds", "peak RSS MB so far"],
                        [[k, f"{v:.1f}", f"{rss[k]:.0f}" if k in rss else ""] for k, v in r["timings"].items()])
    payload = {"machine": machine_info(), "args": vars(args), "results": rows}
    if args.out:
        write_json_to(args.out, payload)
    else:
        write_json("export_speed" + ("_smoke" if args.smoke else ""), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
