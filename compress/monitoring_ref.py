"""Build a bundle's monitoring reference from the validation data (``docs/telemetry.md``), per task.

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
#: reference centroids of the embedding task (spherical k-means on the validation embeddings)
CENTROIDS = 8
#: stored quantiles of a regression's first output (its "confidence" is the rank among them)
QUANTILES = 64


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


def _hist(values: np.ndarray, lo: float | None = None, hi: float | None = None, bins: int = BINS) -> dict:
    edges = _edges(values, lo, hi, bins)
    return {"edges": edges, "counts": _histogram(values, edges)}


def _projection(out: np.ndarray, space: str) -> dict:
    mean, comps = _pca(out, PROJECTIONS)
    proj = (out - mean) @ comps.T
    return {"space": space, "mean": mean.tolist(), "components": comps.tolist(),
            "histograms": [_hist(proj[:, j]) for j in range(len(comps))]}


def _kmeans_centroids(e: np.ndarray, k: int, seed: int = 0, iters: int = 25) -> np.ndarray:
    """Spherical k-means (deterministic): unit centroids of unit embeddings."""
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    k = min(k, len(e))
    rng = np.random.default_rng(seed)
    c = e[np.sort(rng.choice(len(e), k, replace=False))]
    for _ in range(iters):
        assign = (e @ c.T).argmax(axis=1)
        for j in range(k):
            members = e[assign == j]
            if len(members):
                v = members.sum(axis=0)
                c[j] = v / max(np.linalg.norm(v), 1e-12)
    return c


def build_reference(x_val, outputs_val: np.ndarray, y_val: np.ndarray | None, num_classes: int, *,
                    kind: str = "classifier") -> dict:
    """The ``monitoring`` section of a manifest (telemetry schema 2) for a task ``kind``. ``x_val`` is
    not stored: the projections are of the model's output (logits, embedding or values), so the
    reference stays small for any input size and exists for integer and named inputs too."""
    out = np.asarray(outputs_val, np.float64).reshape(len(outputs_val), -1)
    if kind == "classifier":
        return _classifier_reference(out, y_val, num_classes)
    if kind not in ("embedding", "regression"):
        raise ValueError(f"build_reference: unknown task {kind!r}")
    from edgefleet.telemetry import summarize  # the device's own rule, so the counts agree exactly

    ref: dict = {"telemetry_version": TELEMETRY_VERSION, "kind": kind, "temperature": 1.0}
    if kind == "embedding":
        ref["centroids"] = np.round(_kmeans_centroids(out, CENTROIDS), 6).tolist()
        classes = len(ref["centroids"])
    else:  # the first output's quantiles; the "confidence" is its rank (uniform on normal data)
        first = np.sort(out[:, 0])
        picks = np.linspace(0, len(first) - 1, QUANTILES).round().astype(int)
        ref["quantiles"] = np.round(first[picks], 6).tolist()
        classes = len(ref["quantiles"]) + 1
    summaries = [summarize(ref, row) for row in out.tolist()]
    cls = np.array([c for c, _, _ in summaries], dtype=np.int64)
    conf = np.array([s for _, s, _ in summaries], dtype=np.float64)
    scores = np.array([v for _, _, v in summaries], dtype=np.float64)  # (n, centroids); (n, 0) for regression
    ref.update({
        "class_counts": np.bincount(cls, minlength=classes).astype(int).tolist(),
        "confidence": _hist(conf, 0.0, 1.0),
        "class_confidence": [_hist(scores[:, c]) for c in range(scores.shape[1] if scores.ndim == 2 else 0)],
        "projection": _projection(out, "output"),
        "reference_size": int(len(out)),
    })
    return ref


def _classifier_reference(logits_val: np.ndarray, y_val: np.ndarray, num_classes: int) -> dict:
    temperature = fit_temperature(logits_val, y_val)
    pred = logits_val.argmax(axis=1)
    z = logits_val / temperature
    logp = z - z.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    conf = np.exp(logp.max(axis=1))
    threshold = atc_threshold(conf, pred == y_val)
    conf_edges = sorted(set(_edges(conf, 0.0, 1.0)) | {threshold})
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (pred, y_val.astype(np.int64)), 1)
    return {
        "telemetry_version": TELEMETRY_VERSION,
        "kind": "classifier",
        "class_counts": np.bincount(pred, minlength=num_classes).astype(int).tolist(),
        "confusion": confusion.tolist(),  # [predicted][true] on the validation split: label-shift correction
        "confidence": {"edges": conf_edges, "counts": _histogram(conf, conf_edges)},
        "class_confidence": [_hist(logp[:, c], bins=CLASS_BINS) for c in range(num_classes)],
        "projection": _projection(logits_val, "logits"),
        "temperature": round(temperature, 6),
        "reference_size": int(len(logits_val)),
        "expected_accuracy": round(float(conf.mean() * 100), 3),
        "accuracy": {"atc_threshold": threshold, "validation_accuracy": round(float((pred == y_val).mean()), 6)},
    }
