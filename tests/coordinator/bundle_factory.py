"""A small real bundle for coordinator and device tests: a linear softmax classifier on sklearn's
digits (trained here, exported as ONNX with onnx.helper), with a monitoring reference computed from
held-out digits. ``make_bundle`` stands in until the export pipeline's ``digits_bundle`` lands; the
tests only rely on what any exported classifier bundle has."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgefleet.bundle import BundleWriter

N_PROJ = 4
ADMIN = "test-admin-token-0123456789abcdef"  # the admin token of the test coordinators
_DATA = None


def digits():
    """(x_train, y_train, x_ref, y_ref) as float32 model inputs (pixels / 16, like the export pipeline)."""
    global _DATA
    if _DATA is None:
        from sklearn.datasets import load_digits
        d = load_digits()
        x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
        rng = np.random.default_rng(0)
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
        _DATA = (x[:1000], y[:1000], x[1000:], y[1000:])
    return _DATA


_WEIGHTS = {}


def _train(x, y, quality):
    if "good" not in _WEIGHTS:
        # ridge regression on one-hot targets, scaled into logits: closed form, fast and deterministic
        xb = np.hstack([x, np.ones((len(x), 1), np.float32)]).astype(np.float64)
        onehot = np.eye(10)[y] * 8.0 - 4.0
        coef = np.linalg.solve(xb.T @ xb + 1.0 * np.eye(xb.shape[1]), xb.T @ onehot)
        _WEIGHTS["good"] = coef[:-1].astype(np.float32), coef[-1].astype(np.float32)
    w, b = _WEIGHTS["good"]
    if quality == "bad":  # a broken candidate: classes permuted for half the labels
        perm = np.array([1, 0, 3, 2, 5, 4, 6, 7, 8, 9])
        w, b = w[:, perm], b[perm]
    return w, b


def _onnx(w, b, clip: tuple[float, float] | None = None) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    nodes = [helper.make_node("MatMul", ["input", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["logits"])]
    if clip is not None:  # an int8 activation range calibrated on the reference data saturates outside it
        nodes = [nodes[0], helper.make_node("Clip", ["xw", "lo", "hi"], ["xw_q"]),
                 helper.make_node("Add", ["xw_q", "B"], ["logits"])]
        inits += [numpy_helper.from_array(np.float32(clip[0]), "lo"), numpy_helper.from_array(np.float32(clip[1]), "hi")]
    graph = helper.make_graph(nodes, "digits_linear", [x], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _hist(values, edges):
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(idx, minlength=len(edges) - 1).tolist()


def monitoring_reference(w, b, x_ref, y_ref=None):
    xs = x_ref
    logits = xs @ w + b
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    conf, cls = p.max(axis=1), p.argmax(axis=1)
    mean = xs.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov((xs - mean).T.astype(np.float64)))
    comps = evecs[:, ::-1][:, :N_PROJ].T  # the top principal directions
    proj = (xs - mean) @ comps.T
    conf_edges = [0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0]
    hists = []
    for k in range(N_PROJ):
        edges = np.unique(np.quantile(proj[:, k], np.linspace(0, 1, 11))).tolist()
        hists.append({"edges": edges, "counts": _hist(proj[:, k], np.array(edges))})
    extra = {}
    if y_ref is not None:
        confusion = np.zeros((10, 10), dtype=np.int64)
        np.add.at(confusion, (cls, y_ref), 1)
        extra = {"confusion": confusion.tolist(), "expected_accuracy": round(float(conf.mean() * 100), 3)}
    return {**extra, "class_counts": np.bincount(cls, minlength=10).tolist(),
            "confidence": {"edges": conf_edges, "counts": _hist(conf, np.array(conf_edges))},
            "projection": {"mean": mean.tolist(), "components": comps.tolist(), "histograms": hists},
            "temperature": 1.0, "reference_size": int(len(x_ref))}


def _teacher(x, y):
    """A heavier twin for cloud fallback: the same linear form trained on clean and corrupted inputs
    (the simulator's covariate shift), so it is robust where the device's model is not."""
    from edgefleet.coordinator.simulate import shift_inputs
    rng = np.random.default_rng(1)
    xs = np.concatenate([x, shift_inputs(x, rng), shift_inputs(x, rng)])
    ys = np.concatenate([y, y, y])
    xb = np.hstack([xs, np.ones((len(xs), 1), np.float32)]).astype(np.float64)
    coef = np.linalg.solve(xb.T @ xb + 1.0 * np.eye(xb.shape[1]), xb.T @ (np.eye(10)[ys] * 8.0 - 4.0))
    return coef[:-1].astype(np.float32), coef[-1].astype(np.float32)


def make_bundle(dest, *, version="1.0", signing_key=None, quality="good", teacher=False) -> Path:
    """Artifacts: ``onnx-fp32``; ``onnx-int8``, weights rounded to an int8 grid and the accumulator
    clipped to the range seen on the reference data (so inputs beyond that range saturate it, like an
    int8 activation calibrated on normal data); ``teacher-fp32`` with ``teacher=True``."""
    x_tr, y_tr, x_ref, y_ref = digits()
    # "robust": the teacher's weights (trained on clean and corrupted inputs) as the bundle's model
    w, b = _teacher(x_tr, y_tr) if quality == "robust" else _train(x_tr, y_tr, quality)
    writer = BundleWriter(dest)
    model = _onnx(w, b)
    writer.add_artifact("onnx-fp32", model, runtime="onnxruntime", precision="fp32")
    scale = np.abs(w).max() / 127
    wq = (np.round(w / scale) * scale).astype(np.float32)
    xw = x_ref @ wq  # percentile calibration of the accumulator's range
    writer.add_artifact("onnx-int8", _onnx(wq, b, clip=(float(np.percentile(xw, 0.5)), float(np.percentile(xw, 99.5)))),
                        runtime="onnxruntime", precision="int8")
    if teacher:
        writer.add_artifact("teacher-fp32", _onnx(*_teacher(x_tr, y_tr)), runtime="onnxruntime", precision="fp32")
    fields = {
        "model": {"name": "digits-linear", "version": version},
        "task": {"kind": "classifier", "labels": [str(i) for i in range(10)]},
        "inputs": [{"name": "input", "dtype": "float32", "shape": [None, 64],
                    "preprocessing": {"layout": "NC", "scale": 1.0, "mean": 0.0, "std": 1.0}}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [None, 10]}],
        "fallback_chain": ["onnx-int8", "onnx-fp32"],
        "monitoring": monitoring_reference(w, b, x_ref, y_ref),
        "provenance": {"recipe": "tests", "seed": 0},
    }
    writer.finish(fields, signing_key=signing_key)
    return Path(dest)
