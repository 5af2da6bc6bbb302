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


#: reference centroids of the embedding task (k-means on the validation embeddings)
CENTROIDS = 8
#: stored quantiles of a regression's first output (its calibrated "confidence" is the rank among them)
QUANTILES = 64


def _pca_projection(flat: np.ndarray) -> dict:
    flat = flat.astype(np.float64)
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
    return {"mean": np.round(mean, 6).tolist(), "components": np.round(comps, 6).tolist(), "histograms": hists}


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


def build_reference(kind: str, x_val, outputs_val: np.ndarray, y_val: np.ndarray | None, num_classes: int) -> dict:
    """The ``monitoring`` section of a manifest for a task ``kind`` (see ``edgefleet.monitoring``).

    The projections are of the (single, float) input; for a model with integer or several inputs,
    of its output instead (``projection.of``)."""
    from edgefleet import monitoring
    from . import batch as B

    out = np.asarray(outputs_val, np.float64).reshape(len(outputs_val), -1)
    flat = B.float_part(x_val)
    ref: dict = {"kind": kind}
    if kind == "classifier":
        temperature = fit_temperature(outputs_val, y_val)
        pred = out.argmax(axis=1)
        conf = _softmax(out / temperature).max(axis=1)
        classes = np.bincount(pred, minlength=num_classes)
        ref["temperature"] = round(temperature, 6)
    elif kind == "embedding":
        flat = None  # token ids carry no geometry; the embedding does
        centroids = _kmeans_centroids(out, CENTROIDS)
        ref["centroids"] = np.round(centroids, 6).tolist()
        ref["temperature"] = 1.0
        scores = [monitoring.summarize(ref, row) for row in out.tolist()]
        classes = np.bincount([c for c, _ in scores], minlength=len(centroids))
        conf = np.array([s for _, s in scores])
    else:  # regression: the first output's quantiles; the "confidence" is its rank (uniform on normal data)
        first = np.sort(out[:, 0])
        ref["quantiles"] = np.round(first[np.linspace(0, len(first) - 1, QUANTILES).round().astype(int)], 6).tolist()
        ref["temperature"] = 1.0
        scores = [monitoring.summarize(ref, row) for row in out.tolist()]
        classes = np.bincount([c for c, _ in scores], minlength=len(ref["quantiles"]) + 1)
        conf = np.array([s for _, s in scores])
    conf_edges = _edges(conf, 0.0, 1.0)
    projection = _pca_projection(flat if flat is not None else out)
    projection["of"] = "input" if flat is not None else "output"
    ref.update({
        "class_counts": classes.astype(int).tolist(),
        "confidence": {"edges": conf_edges, "counts": _histogram(conf, conf_edges)},
        "projection": projection,
        "reference_size": int(len(out)),
    })
    if kind == "classifier":
        ref["expected_accuracy"] = round(float(conf.mean() * 100), 3)
    return ref
