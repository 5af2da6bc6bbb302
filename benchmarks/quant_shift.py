"""Which input shifts are quantization sensitive: a bundle's fp32 and int8 artifacts on shifted inputs.

    python benchmarks/quant_shift.py out/digits
    python benchmarks/quant_shift.py out/fashion/bundle --data out/fashion/fashion.npz

Accuracy of ``onnx-fp32`` and ``efm-int8`` (and ``onnx-int8``) on the inputs the scenario benchmark
serves (the validation and test splits: the digits splits, or ``--data``'s) under gains, DC offsets,
other units, and the scenario's own :func:`~edgefleet.coordinator.scenarios.quantization_shift`. The
quantization scenario needs a shift where fp32 keeps most of its accuracy and int8 loses a lot: only
then can the fp32 rung win. Writes ``bench-results/quant_shift_<name>.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np

from _common import print_table, write_json

TARGETS = ("onnx-fp32", "efm-int8", "onnx-int8")


def shifts() -> dict:
    from edgefleet.coordinator.scenarios import quantization_shift
    out = {"none": lambda x: x}
    for k in (2, 4, 6, 8, 255):
        out[f"gain x{k}"] = (lambda k: lambda x: x * k)(k)
    for c in (0.1, 0.25, 0.5):
        out[f"offset +{c}"] = (lambda c: lambda x: x + c)(c)
    out["gain x4 + 0.5"] = lambda x: x * 4 + 0.5
    out["8-bit levels 0-255, black 16"] = lambda x: x * 255 + 16
    out["scenario: video range 16 + 219x"] = quantization_shift
    return out


def accuracy(runtime, x, y, batch: int = 256) -> float:
    name = runtime.output_names[0]
    correct = sum(int((runtime.run(np.ascontiguousarray(x[i:i + batch], dtype=np.float32))[name].argmax(axis=1)
                       == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", help="the export's .npz data set (default: the digits splits)")
    args = parser.parse_args()
    from edgefleet import runtimes
    from edgefleet.bundle import Bundle
    from edgefleet.coordinator.simulate import load_inputs
    bundle = Bundle.open(args.bundle)
    if args.data:
        from edgefleet.compress.data import load_dataset
        ds = load_dataset(args.data, seed=0)
        x, y = np.concatenate([ds.x_val, ds.x_test]), np.concatenate([ds.y_val, ds.y_test])
    else:
        x, y = load_inputs(bundle)
    loaded = {t: runtimes.load(runtimes.for_target(t)[0], bundle.artifact_path(t)) for t in TARGETS}
    rows, table = {}, []
    for name, shift in shifts().items():
        xs = shift(x).astype(np.float32)
        rows[name] = {t: round(accuracy(r, xs, y), 4) for t, r in loaded.items()}
        table.append([name, *(f"{rows[name][t]:.3f}" for t in TARGETS),
                      f"{rows[name]['onnx-fp32'] / max(rows['none']['onnx-fp32'], 1e-9):.0%}"])
    print(f"{args.bundle}: {len(y)} inputs; load average {os.getloadavg()[0]:.2f}")
    print_table(["shift", *TARGETS, "fp32 kept"], table)
    tag = Path(args.bundle).resolve().name if Path(args.bundle).name != "bundle" else Path(args.bundle).resolve().parent.name
    write_json(f"quant_shift_{tag}", {"bundle": str(args.bundle), "inputs": len(y), "accuracy": rows,
                                      "machine": platform.machine(), "load_average": os.getloadavg()})


if __name__ == "__main__":
    main()
