"""Build a bundle's monitoring reference from the validation data (``docs/telemetry.md``).

Telemetry schema 2: besides class counts and the calibrated top-1 confidence, the reference holds one
histogram per class of ``ln softmax(logits / T)[c]`` (the softmax vector: BBSD's strongest signal) and
``k`` projections of the model's *logits* (PCA of the validation logits: ``k x classes`` numbers,
whatever the input size), and the label-free accuracy estimator's threshold (ATC, an edge of the
confidence bins so a device's counts give the estimate exactly). Binning here uses numpy and must
equal the device's :func:`edgefleet.telemetry.bin_index` (``tests/telemetry`` checks it).
"""

from __future__ import annotations

import numpy as np

PROJECTIONS = 4
BINS = 10
CLASS_BINS = 20  # the per-class histograms carry most of the power at small n: finer bins
TELEMETRY_VERSION = 2


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the validation NLL (grid search, deterministic)."""
    best_t, best_nll = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.05), np.log(20.0), 241)):
        p = _softmax(logits / t)
        nll = -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean()
        if nll < best_nll - 1e-12:
            best_t, best_nll = float(t), nll
    return best_t


def _edges(values: np.ndarray, lo: float | None = None, hi: float | None = None, bins: int = BINS) -> list[float]:
    inner = np.unique(np.round(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]), 6))
    first = float(values.min()) if lo is None else lo
    last = float(values.max()) if hi is None else hi
    edges = [round(first, 6)] + [float(v) for v in inner if first < v < last] + [round(last, 6)]
    if len(edges) < 2 or edges[-1] <= edges[0]:
        edges = [edges[0], edges[0] + 1.0]
    return edges


def _histogram(values: np.ndarray, edges: list[float]) -> list[int]:
    idx = np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(idx, minlength=len(edges) - 1).astype(int).tolist()


def atc_threshold(conf: np.ndarray, correct: np.ndarray) -> float:
    """Average Thresholded Confidence: the threshold ``t`` for which the share of validation predictions
    with confidence >= ``t`` equals the validation accuracy (Garg et al., 2022)."""
    acc = float(correct.mean())
    ordered = np.sort(conf)[::-1]
    k = int(round(acc * len(conf)))
    if k <= 0:
        return 1.0
    return float(np.round(ordered[min(k, len(conf)) - 1], 6))


def _pca(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    mean = values.mean(axis=0)
    _, _, vt = np.linalg.svd(values - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    comps = vt[:k]
    # a deterministic sign: the largest-magnitude entry of each component is positive
    comps = comps * np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])[:, None]
    return np.round(mean, 6), np.round(comps, 6)


def build_reference(x_val: np.ndarray, logits_val: np.ndarray, y_val: np.ndarray, num_classes: int) -> dict:
    """The ``monitoring`` section of a classifier's manifest (telemetry schema 2). ``x_val`` is not
    stored: the projections are of the logits, so the reference stays small for any input size."""
    logits_val = np.asarray(logits_val, np.float64)
    temperature = fit_temperature(logits_val, y_val)
    pred = logits_val.argmax(axis=1)
    z = logits_val / temperature
    logp = z - z.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    conf = np.exp(logp.max(axis=1))
    threshold = atc_threshold(conf, pred == y_val)
    conf_edges = sorted(set(_edges(conf, 0.0, 1.0)) | {threshold})
    mean, comps = _pca(logits_val, PROJECTIONS)
    proj = (logits_val - mean) @ comps.T
    hists = []
    for j in range(len(comps)):
        edges = _edges(proj[:, j])
        hists.append({"edges": edges, "counts": _histogram(proj[:, j], edges)})
    class_conf = []
    for c in range(num_classes):
        edges = _edges(logp[:, c], bins=CLASS_BINS)
        class_conf.append({"edges": edges, "counts": _histogram(logp[:, c], edges)})
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (pred, y_val.astype(np.int64)), 1)
    return {
        "telemetry_version": TELEMETRY_VERSION,
        "class_counts": np.bincount(pred, minlength=num_classes).astype(int).tolist(),
        "confusion": confusion.tolist(),  # [predicted][true] on the validation split: label-shift correction
        "confidence": {"edges": conf_edges, "counts": _histogram(conf, conf_edges)},
        "class_confidence": class_conf,
        "projection": {"space": "logits", "mean": mean.tolist(), "components": comps.tolist(), "histograms": hists},
        "temperature": round(temperature, 6),
        "reference_size": int(len(logits_val)),
        "expected_accuracy": round(float(conf.mean() * 100), 3),
        "accuracy": {"atc_threshold": threshold, "validation_accuracy": round(float((pred == y_val).mean()), 6)},
    }
