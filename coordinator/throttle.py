"""Per-client limits that keep one caller from wearing the coordinator down.

- :class:`AuthThrottle`: failed authentications per client address. The first ``free`` failures cost
  nothing; each further one doubles a lockout (``base_s`` · 2^k, capped at ``max_s``) during which
  every call from that address is refused before any token is looked up. A success clears it.
- :class:`RateLimit` (:mod:`edgefleet._ratelimit`): a token bucket per device (``rate`` calls/s,
  ``burst`` at once, never less than one call).

>>> t = AuthThrottle(free=1, base_s=1.0); t.failed("10.0.0.1", now=0.0); t.failed("10.0.0.1", now=0.0)
>>> t.locked_for("10.0.0.1", now=0.5)
0.5
"""

from __future__ import annotations

import threading
import time

from edgefleet._ratelimit import RateLimit

__all__ = ["AuthThrottle", "RateLimit", "client_address"]


def client_address(peer: str) -> str:
    """The address part of a gRPC peer string (``ipv4:1.2.3.4:5678``, ``ipv6:[::1]:5678``)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:rest.index("]")] if "]" in rest else rest
    if kind in ("ipv4", "ipv6"):
        return rest.rsplit(":", 1)[0]
    return peer


class AuthThrottle:
    def __init__(self, *, free: int = 10, base_s: float = 0.25, max_s: float = 300.0, max_tracked: int = 100_000):
        self.free, self.base_s, self.max_s, self.max_tracked = free, base_s, max_s, max_tracked
        self._state: dict[str, tuple[int, float]] = {}   # address -> (failures, locked until)
        self._lock = threading.Lock()

    def locked_for(self, address: str, now: float | None = None) -> float:
        """Seconds this address must still wait (0: go ahead)."""
        state = self._state.get(address)
        if state is None:
            return 0.0
        return max(0.0, state[1] - (time.monotonic() if now is None else now))

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._state) >= self.max_tracked:
                self._state = {a: s for a, s in self._state.items() if s[1] > now}
            failures = self._state.get(address, (0, 0.0))[0] + 1
            extra = failures - self.free
            until = now + min(self.max_s, self.base_s * 2 ** (extra - 1)) if extra > 0 else 0.0
            self._state[address] = (failures, until)

    def succeeded(self, address: str) -> None:
        if address in self._state:
            with self._lock:
                self._state.pop(address, None)
