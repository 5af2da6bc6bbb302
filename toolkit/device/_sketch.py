"""A telemetry window: mergeable sketches of one stretch of predictions (pure Python).

Everything is a count over fixed bins, so two windows of the same model version and artifact merge
by adding (the device's queue compaction and the coordinator's pooling both rely on this):
predicted-class counts, the calibrated-confidence histogram and ``k`` input-projection histograms on
the bundle's reference bins, a latency histogram on fixed log-spaced bins (a mergeable quantile
sketch: :func:`latency_quantile` reads any quantile back to within one bin), error counts by kind,
the confidence sum (label-free accuracy estimate), and shadow agreement counts.
"""

from __future__ import annotations

import time
import uuid

from edgefleet import monitoring

__all__ = ["Window", "LATENCY_EDGES_MS", "merge", "latency_quantile"]

#: 48 log-spaced latency bins from 10 µs to ~100 s (ratio 10**(1/6.67) per bin; ~41% resolution)
LATENCY_EDGES_MS = [round(0.01 * 10 ** (i / 6), 6) for i in range(49)]


class Window:
    """Accumulates one window. ``monitoring`` is the bundle's ``manifest["monitoring"]``."""

    def __init__(self, monitoring_ref: dict, model_version: str, artifact: str, *, now_ms: int | None = None,
                 shadow_version: str = ""):
        self.ref = monitoring_ref
        n_classes = len(monitoring_ref["class_counts"])
        self.data = {
            "report_id": uuid.uuid4().hex, "model_version": model_version, "artifact": artifact,
            "start_ms": now_ms if now_ms is not None else int(time.time() * 1000), "end_ms": 0, "count": 0,
            "class_counts": [0] * n_classes,
            "confidence": [0] * (len(monitoring_ref["confidence"]["edges"]) - 1),
            "projections": [[0] * (len(h["edges"]) - 1) for h in monitoring_ref["projection"]["histograms"]],
            "latency": [0] * (len(LATENCY_EDGES_MS) - 1), "errors": {}, "confidence_sum": 0.0, "merged": 1,
            "shadow_version": shadow_version, "shadow_count": 0, "shadow_agree": 0,
        }

    @property
    def count(self) -> int:
        return self.data["count"]

    def observe(self, logits, projections, latency_ms: float) -> tuple[int, float]:
        """Count one prediction (one output row); return its (class, confidence) under the task's
        rule (:func:`edgefleet.monitoring.summarize`)."""
        d, ref = self.data, self.ref
        cls, conf = monitoring.summarize(ref, list(logits))
        d["count"] += 1
        d["class_counts"][cls] += 1
        d["confidence"][monitoring.bin_index(ref["confidence"]["edges"], conf)] += 1
        d["confidence_sum"] += conf
        for i, (z, hist) in enumerate(zip(projections, ref["projection"]["histograms"])):
            d["projections"][i][monitoring.bin_index(hist["edges"], z)] += 1
        d["latency"][monitoring.bin_index(LATENCY_EDGES_MS, latency_ms)] += 1
        return cls, conf

    def error(self, kind: str, n: int = 1) -> None:
        self.data["errors"][kind] = self.data["errors"].get(kind, 0) + n

    def shadow(self, agree: bool) -> None:
        self.data["shadow_count"] += 1
        self.data["shadow_agree"] += int(agree)

    def close(self, now_ms: int | None = None) -> dict:
        self.data["end_ms"] = max(now_ms if now_ms is not None else int(time.time() * 1000), self.data["start_ms"])
        return self.data


def merge(a: dict, b: dict) -> dict:
    """Merge two closed windows of the same model version and artifact into a new window (new id)."""
    if (a["model_version"], a["artifact"]) != (b["model_version"], b["artifact"]):
        raise ValueError("only windows of the same model version and artifact merge")
    out = {
        "report_id": uuid.uuid4().hex, "model_version": a["model_version"], "artifact": a["artifact"],
        "start_ms": min(a["start_ms"], b["start_ms"]), "end_ms": max(a["end_ms"], b["end_ms"]),
        "count": a["count"] + b["count"],
        "class_counts": [x + y for x, y in zip(a["class_counts"], b["class_counts"])],
        "confidence": [x + y for x, y in zip(a["confidence"], b["confidence"])],
        "projections": [[x + y for x, y in zip(p, q)] for p, q in zip(a["projections"], b["projections"])],
        "latency": [x + y for x, y in zip(a["latency"], b["latency"])],
        "errors": dict(a["errors"]), "confidence_sum": a["confidence_sum"] + b["confidence_sum"],
        "merged": a.get("merged", 1) + b.get("merged", 1),
        "shadow_version": a["shadow_version"] if a["shadow_version"] == b["shadow_version"] else "",
        "shadow_count": 0, "shadow_agree": 0,
    }
    for kind, n in b["errors"].items():
        out["errors"][kind] = out["errors"].get(kind, 0) + n
    if a["shadow_version"] == b["shadow_version"]:
        out["shadow_count"] = a["shadow_count"] + b["shadow_count"]
        out["shadow_agree"] = a["shadow_agree"] + b["shadow_agree"]
    return out


def latency_quantile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a latency histogram, as its bin's upper edge in ms."""
    total = sum(counts)
    if total == 0:
        return None
    target, seen = q * total, 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= target:
            return LATENCY_EDGES_MS[i + 1]
    return LATENCY_EDGES_MS[-1]
