"""When a device swaps its token for a new one: one rule, whatever the transport (gRPC, Connect,
``fetch`` in a browser), applied by :class:`~edgefleet.device.Device` on each sync.

A token is rotated once half its life has passed (the coordinator states its expiry at enrollment and
at each rotation), and at the latest ``rotate_after_s`` after it was issued. A device that syncs at
least once per half token lifetime therefore never holds an expired token.

>>> rotation_due({"token_issued_ms": 0, "token_expires_ms": 10_000}, now_ms=4_999, rotate_after_s=3600)
False
>>> rotation_due({"token_issued_ms": 0, "token_expires_ms": 10_000}, now_ms=5_000, rotate_after_s=3600)
True
>>> rotation_due({"token_issued_ms": 0}, now_ms=3_600_000, rotate_after_s=3600)   # expiry unknown
True
"""

from __future__ import annotations

__all__ = ["rotation_due"]


def rotation_due(identity: dict, now_ms: int, rotate_after_s: float) -> bool:
    issued = identity.get("token_issued_ms", now_ms)
    due = issued + rotate_after_s * 1000
    expires = identity.get("token_expires_ms") or 0
    if expires > issued:
        due = min(due, issued + (expires - issued) / 2)
    return now_ms >= due
