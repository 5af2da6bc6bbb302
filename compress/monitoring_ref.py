"""Build a bundle's monitoring reference from the validation data (see ``edgefleet.monitoring``)."""

from __future__ import annotations

import numpy as np

PROJECTIONS = 4
BINS = 10


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


def _edges(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> list[float]:
    inner = np.unique(np.round(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]), 6))
    first = float(values.min()) if lo is None else lo
    last = float(values.max()) if hi is None else hi
    edges = [round(first, 6)] + [float(v) for v in inner if first < v < last] + [round(last, 6)]
    if len(edges) < 2 or edges[-1] <= edges[0]:
        edges = [edges[0], edges[0] + 1.0]
    return edges


def _histogram(values: np.ndarray, edges: list[float]) -> list[int]:
    idx = np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(idx, minlength=len(edges) - 1).astype(int).tolist()


def build_reference(x_val: np.ndarray, logits_val: np.ndarray, y_val: np.ndarray, num_classes: int) -> dict:
    """The ``monitoring`` section of a classifier's manifest."""
    temperature = fit_temperature(logits_val, y_val)
    pred = logits_val.argmax(axis=1)
    conf = _softmax(logits_val / temperature).max(axis=1)
    conf_edges = _edges(conf, 0.0, 1.0)
    flat = x_val.reshape(len(x_val), -1).astype(np.float64)
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    k = min(PROJECTIONS, vt.shape[0])
    comps = vt[:k]
    # a deterministic sign: the largest-magnitude entry of each component is positive
    comps = comps * np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])[:, None]
    z = (flat - mean) @ comps.T
    hists = []
    for j in range(k):
        edges = _edges(z[:, j])
        hists.append({"edges": edges, "counts": _histogram(z[:, j], edges)})
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (pred, y_val.astype(np.int64)), 1)
    return {
        "class_counts": np.bincount(pred, minlength=num_classes).astype(int).tolist(),
        "confusion": confusion.tolist(),  # [predicted][true] on the validation split: label-shift correction
        "confidence": {"edges": conf_edges, "counts": _histogram(conf, conf_edges)},
        "projection": {"mean": np.round(mean, 6).tolist(), "components": np.round(comps, 6).tolist(), "histograms": hists},
        "temperature": round(temperature, 6),
        "reference_size": int(len(x_val)),
        "expected_accuracy": round(float(conf.mean() * 100), 3),
    }
