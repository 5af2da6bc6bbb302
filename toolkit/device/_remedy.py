"""Remedies a cohort's policy asks its devices to apply on top of the model (pure Python):

- a **logit bias** (label-shift correction computed by the coordinator from sketches): added to the
  logits before the argmax; the telemetry window still sees the model's own logits, so drift
  statistics describe the data, not the correction;
- **cloud fallback**: inputs whose calibrated confidence is under the policy's threshold go to the
  coordinator's ``Predict`` — only when the cohort's privacy setting allows raw inputs to leave,
  within a deadline and a per-device rate limit; offline, refused, late or over the limit, the
  device answers locally. Every input sent is counted (``raw_bytes_sent``).

>>> biased_top([2.0, 1.0], [0.0, 2.0], 1.0)[0]
1
"""

from __future__ import annotations

import time

from edgefleet import monitoring
from edgefleet._errors import EdgefleetError
from edgefleet._ratelimit import RateLimit

__all__ = ["biased_top", "CloudFallback"]


def biased_top(logits, bias, temperature: float) -> tuple[int, float]:
    """(class, calibrated confidence) of ``logits + bias``."""
    probs = monitoring.softmax([v + b for v, b in zip(logits, bias)], temperature)
    cls = monitoring.argmax(probs)
    return cls, probs[cls]


class CloudFallback:
    """Sends low-confidence rows to ``transport.predict``; never raises, never waits past the deadline."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._limit: RateLimit | None = None   # at the policy's cloud_per_minute
        self.stats = {"cloud_rows": 0, "cloud_local": 0, "raw_bytes_sent": 0}

    def _admit(self, per_minute: float) -> bool:
        rate = per_minute / 60.0
        if self._limit is None or self._limit.rate != rate:
            self._limit = RateLimit(rate, rate)
        return self._limit.allow("cloud", now=self.clock())

    def answer(self, transport, remedy: dict, rows, confidences, model_version: str) -> dict[int, list[float]]:
        """{row index: cloud logits} for the rows under the threshold; {} when not allowed or failed."""
        if not (remedy.get("cloud") and remedy.get("raw_inputs_allowed")) or transport is None \
                or not hasattr(transport, "predict"):
            return {}
        picked = [i for i, c in enumerate(confidences) if c < remedy.get("cloud_confidence_below", 0.0)]
        if not picked:
            return {}
        if not self._admit(remedy.get("cloud_per_minute") or 600.0):
            self.stats["cloud_local"] += len(picked)
            return {}
        values = [float(v) for i in picked for v in _flat(rows[i])]
        deadline_s = (remedy.get("cloud_latency_ms") or 50.0) / 1000.0
        start = self.clock()
        try:
            logits = transport.predict(values, len(picked), model_version, deadline_s)
        except EdgefleetError:  # offline, refused, rate-limited, past the deadline: answer locally
            self.stats["cloud_local"] += len(picked)
            return {}
        finally:
            self.stats["raw_bytes_sent"] += 4 * len(values)  # whatever was sent has left the device
        if self.clock() - start > deadline_s * 2 or len(logits) % len(picked):
            self.stats["cloud_local"] += len(picked)
            return {}
        width = len(logits) // len(picked)
        self.stats["cloud_rows"] += len(picked)
        return {i: logits[k * width:(k + 1) * width] for k, i in enumerate(picked)}


def _flat(row):
    if hasattr(row, "reshape"):
        return row.reshape(-1).tolist()
    out = []
    for v in row:
        out.extend(_flat(v) if isinstance(v, (list, tuple)) else [v])
    return out
