"""A token bucket per key: ``rate`` calls per second, ``burst`` at once, never less than one call (a
limit below one call per second still lets a caller through, once every ``1/rate`` seconds). The one
definition of a rate limit: the coordinator's per-device call cap and cloud Predict limit, and the
device's own cap on its cloud calls.

>>> slow = RateLimit(rate=0.2, burst=0.4)          # the burst is raised to one call
>>> [slow.allow("d", now=t) for t in (0.0, 1.0, 5.0)]
[True, False, True]
"""

from __future__ import annotations

import threading
import time

__all__ = ["RateLimit"]


class RateLimit:
    def __init__(self, rate: float = 20.0, burst: float = 40.0):
        if not rate > 0:
            raise ValueError(f"rate limit: {rate} calls/s must be above 0")
        self.rate, self.burst = float(rate), max(1.0, float(burst))
        self._buckets: dict[str, tuple[float, float]] = {}   # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Take one call from ``key``'s bucket; False (nothing taken) when it is empty."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            if len(self._buckets) > 200_000:
                self._buckets.clear()
            self._buckets[key] = (tokens - 1.0, now)
            return True
