"""Write the telemetry conformance vectors (``docs/telemetry.md`` section 5) from the specification,
computed with numpy and independent of ``edgefleet.telemetry``:

    python tests/telemetry/make_vectors.py        # rewrites tests/telemetry/vectors/*.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "vectors"
LATENCY_EDGES_MS = np.array([round(0.01 * 10 ** (i / 6), 6) for i in range(49)])


def bins(edges, v) -> int:
    return int(np.clip(np.searchsorted(np.asarray(edges, np.float64), v, side="right") - 1, 0, len(edges) - 2))


def window_of(ref, inputs, *, version="1.0", artifact="onnx-fp32", report_id="r-1", start=1000, end=2000):
    k = len(ref["class_counts"])
    cc_ref = ref.get("class_confidence") or []
    w = {"schema_version": 2, "report_id": report_id, "model_version": version, "artifact": artifact,
         "start_ms": start, "end_ms": end, "count": 0, "class_counts": [0] * k,
         "confidence": [0] * (len(ref["confidence"]["edges"]) - 1),
         "class_confidence": [[0] * (len(h["edges"]) - 1) for h in cc_ref],
         "projections": [[0] * (len(h["edges"]) - 1) for h in ref["projection"]["histograms"]],
         "latency": [0] * 48, "errors": {}, "confidence_sum": 0.0, "merged": 1, "shadow_version": "",
         "shadow_count": 0, "shadow_agree": 0}
    for item in inputs:
        logits = np.asarray([float(v) for v in item["logits"]], np.float64)
        if not np.all(np.isfinite(logits)):
            w["errors"]["non_finite"] = w["errors"].get("non_finite", 0) + 1
            continue
        s = logits / ref["temperature"]
        lp = s - (s.max() + np.log(np.exp(s - s.max()).sum()))
        cls = int(np.argmax(logits))           # numpy: the first index on ties
        conf = float(np.exp(lp[cls]))
        w["count"] += 1
        w["class_counts"][cls] += 1
        w["confidence"][bins(ref["confidence"]["edges"], conf)] += 1
        w["confidence_sum"] += conf
        for c, h in enumerate(cc_ref):
            w["class_confidence"][c][bins(h["edges"], lp[c])] += 1
        proj = ref["projection"]
        if proj.get("space", "input") == "logits":
            z = np.asarray(proj["components"], np.float64) @ (logits - np.asarray(proj["mean"], np.float64))
        else:
            z = item["input_projections"]
        for j, h in enumerate(proj["histograms"]):
            w["projections"][j][bins(h["edges"], z[j])] += 1
        w["latency"][bins(LATENCY_EDGES_MS, item["latency_ms"])] += 1
    return w


def reference_v2():
    return {
        "telemetry_version": 2, "class_counts": [5, 3, 2], "temperature": 2.0, "reference_size": 10,
        "confidence": {"edges": [0.0, 0.4, 0.5, 0.7, 0.9, 1.0], "counts": [1, 2, 3, 3, 1]},
        "class_confidence": [{"edges": [-6.0, -2.0, -1.0, -0.5, 0.0], "counts": [2, 3, 3, 2]} for _ in range(3)],
        "projection": {"space": "logits", "mean": [0.5, 0.0, -0.5],
                       "components": [[0.6, -0.8, 0.0], [0.0, 0.6, -0.8]],
                       "histograms": [{"edges": [-2.0, -0.5, 0.0, 0.5, 2.0], "counts": [2, 3, 3, 2]},
                                      {"edges": [-1.0, 0.0, 1.0], "counts": [5, 5]}]},
        "accuracy": {"atc_threshold": 0.5, "validation_accuracy": 0.7},
    }


def reference_v1():
    return {
        "class_counts": [4, 6], "temperature": 1.0, "reference_size": 10,
        "confidence": {"edges": [0.5, 0.75, 0.9, 1.0], "counts": [3, 4, 3]},
        "projection": {"mean": [0.0, 0.0], "components": [[1.0, 0.0]],
                       "histograms": [{"edges": [-1.0, 0.0, 1.0], "counts": [5, 5]}]},
    }


def vectors() -> dict:
    ref2 = reference_v2()
    inputs2 = [
        {"logits": [2.0, 0.0, -2.0], "input_projections": None, "latency_ms": 0.5},
        {"logits": [0.0, 0.0, 0.0], "input_projections": None, "latency_ms": 0.01},       # tie -> class 0, conf 1/3
        {"logits": [-1.0, 3.0, 1.0], "input_projections": None, "latency_ms": 1e6},       # latency above the last edge
        {"logits": [0.5, 0.5, 3.5], "input_projections": None, "latency_ms": 0.001},      # below the first edge
        {"logits": [10.0, -10.0, 0.0], "input_projections": None, "latency_ms": 12.0},
        {"logits": ["NaN", 0.0, 1.0], "input_projections": None, "latency_ms": 1.0},  # not observed
        {"logits": [1.0, 0.0, 1.0], "input_projections": None, "latency_ms": 100000.0},   # exactly the last edge
    ]
    ref1 = reference_v1()
    inputs1 = [
        {"logits": [0.0, 0.0], "input_projections": [0.0], "latency_ms": 1.0},    # conf 0.5: on the first edge
        {"logits": [2.0, 1.0], "input_projections": [1.0], "latency_ms": 2.0},    # z on the last edge
        {"logits": [0.0, 5.0], "input_projections": [-3.0], "latency_ms": 3.0},   # z below the first edge
        {"logits": [-1.0, 0.0986123], "input_projections": [0.5], "latency_ms": 4.0},
    ]
    w_a = window_of(ref1, inputs1, report_id="a", start=10, end=20)
    w_b = window_of(ref1, inputs1[:2], report_id="b", start=5, end=15)
    w_b_v1 = {k: v for k, v in w_b.items() if k not in ("schema_version", "class_confidence")}
    w_b_v1["errors"] = {"runtime_error": 2}
    merged = {k: (v if not isinstance(v, list) else None) for k, v in w_a.items()}
    merged.update({"schema_version": 2, "start_ms": 5, "end_ms": 20, "count": w_a["count"] + w_b["count"],
                   "class_counts": [x + y for x, y in zip(w_a["class_counts"], w_b["class_counts"])],
                   "confidence": [x + y for x, y in zip(w_a["confidence"], w_b["confidence"])],
                   "class_confidence": [],
                   "projections": [[x + y for x, y in zip(p, q)] for p, q in zip(w_a["projections"], w_b["projections"])],
                   "latency": [x + y for x, y in zip(w_a["latency"], w_b["latency"])],
                   "errors": {"runtime_error": 2}, "confidence_sum": w_a["confidence_sum"] + w_b["confidence_sum"],
                   "merged": 2, "shadow_count": 0, "shadow_agree": 0})
    merged.pop("report_id")
    return {
        "observe_schema2_logits_space": {"kind": "observe", "reference": ref2, "model_version": "1.0",
                                         "artifact": "onnx-fp32", "report_id": "r-1", "start_ms": 1000,
                                         "end_ms": 2000, "inputs": inputs2,
                                         "expected": window_of(ref2, inputs2)},
        "observe_schema1_reference_input_space": {"kind": "observe", "reference": ref1, "model_version": "1.0",
                                                  "artifact": "onnx-fp32", "report_id": "a", "start_ms": 10,
                                                  "end_ms": 20, "inputs": inputs1, "expected": w_a},
        "merge_schema1_with_schema2": {"kind": "merge", "windows": [w_a, w_b_v1], "expected": merged},
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, vector in vectors().items():
        (OUT / f"{name}.json").write_text(json.dumps(vector, indent=1, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
