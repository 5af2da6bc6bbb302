"""Our int8 ONNX vs onnxruntime's own quantizers, same model and data, one run.

    .venv/bin/python benchmarks/quant_bench.py [--epochs 30]

Compares on the digits CNN (trained here, seeded) and an MLP trained on the same digits:
edgefleet's QDQ model (our calibration, 7-bit per-channel weights, and the 8-bit variant), onnxruntime ``quantize_static``
with its defaults (QDQ, per-tensor, MinMax) calibrated on the same samples, ``quantize_dynamic`` with
its defaults, and the fp32 model. Accuracy on the held-out test split, agreement with and max |diff|
from the fp32 logits, bytes, and single-threaded latency (median of 5 rounds) at batch 1 and 32.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import batch_of, print_table, time_call, write_json  # noqa: E402


def _models():
    from torch import nn

    from edgefleet.compress import zoo

    class DigitsMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

        def forward(self, x):
            return self.net(x)

    return {"digits_cnn": zoo.digits_cnn, "digits_mlp": DigitsMLP}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--calibration-samples", type=int, default=512)
    args = ap.parse_args()

    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, quantize_dynamic, quantize_static

    from edgefleet.compress.capture import capture
    from edgefleet.compress.data import load_dataset
    from edgefleet.compress.ir import QuantConfig, quantize_graph
    from edgefleet.compress.train import accuracy, fit, seed_everything
    from edgefleet.compress.verify import machine_info
    from edgefleet.runtimes import exporters

    data = load_dataset("digits")
    calib = data.x_train[np.sort(np.random.default_rng(0).choice(len(data.x_train), args.calibration_samples, replace=False))]
    tmp = Path(tempfile.mkdtemp())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    results, rows = [], []

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i:i + 64]} for i in range(0, len(calib), 64)])

        def get_next(self):
            return next(self.it, None)

    for model_name, factory in _models().items():
        seed_everything(0)
        model = fit(factory(), data.x_train, data.y_train, epochs=args.epochs, seed=0)
        graph = capture(model, data.input_shape)
        batches = [calib[i:i + 128] for i in range(0, len(calib), 128)]
        qgraph = quantize_graph(graph, batches, QuantConfig())
        qgraph8 = quantize_graph(graph, batches, QuantConfig(weight_bits=8))
        paths = {"fp32": tmp / f"{model_name}.onnx", "edgefleet int8": tmp / f"{model_name}.ef.onnx",
                 "edgefleet int8 (8-bit w)": tmp / f"{model_name}.ef8.onnx",
                 "ort quantize_static": tmp / f"{model_name}.static.onnx", "ort quantize_dynamic": tmp / f"{model_name}.dyn.onnx"}
        exporters.get("onnx-fp32")().export(graph, paths["fp32"])
        exporters.get("onnx-int8")().export(qgraph, paths["edgefleet int8"])
        exporters.get("onnx-int8")().export(qgraph8, paths["edgefleet int8 (8-bit w)"])
        quantize_static(str(paths["fp32"]), str(paths["ort quantize_static"]), Reader())
        quantize_dynamic(str(paths["fp32"]), str(paths["ort quantize_dynamic"]))
        sessions = {k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for k, p in paths.items()}
        ref = sessions["fp32"].run(None, {"input": data.x_test})[0]
        for variant, sess in sessions.items():
            out = sess.run(None, {"input": data.x_test})[0]
            row = {"model": model_name, "variant": variant, "bytes": paths[variant].stat().st_size,
                   "test_accuracy": accuracy(out, data.y_test),
                   "agreement_vs_fp32": float((out.argmax(1) == ref.argmax(1)).mean() * 100),
                   "max_abs_diff_vs_fp32": float(np.abs(out - ref).max())}
            for b in (1, 32):
                xb = batch_of(data.x_test, b)
                row[f"batch{b}"] = time_call(lambda: sess.run(None, {"input": xb}))
            results.append(row)
            rows.append([model_name, variant, f"{row['bytes']:,}", f"{row['test_accuracy']:.2f}", f"{row['agreement_vs_fp32']:.1f}",
                         f"{row['max_abs_diff_vs_fp32']:.3f}", f"{row['batch1']['median_ms']:.4f}", f"{row['batch32']['median_ms']:.4f}"])
    print_table(["model", "variant", "bytes", "test acc", "agree %", "max|d| vs fp32", "b1 ms", "b32 ms"], rows)
    write_json("quant", {"machine": machine_info(), "onnxruntime": ort.__version__, "threads": 1, "results": results})


if __name__ == "__main__":
    main()
