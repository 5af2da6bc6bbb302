"""What a device serves under a policy (pure Python; the coordinator uses the same functions).

Precedence: a fallback version, else the canary (for devices in the canary share), else the baseline;
a fallback artifact overrides the bundle's own fallback chain head. Canary membership is sticky: it
depends only on the device id and the canary version, so a device stays in (or out of) a canary
across restarts and policy revisions, and raising the share only adds devices.

>>> in_canary("device-1", "2.0", 0.0), in_canary("device-1", "2.0", 1.0)
(False, True)
"""

from __future__ import annotations

import hashlib

__all__ = ["in_canary", "choose"]


def in_canary(device_id: str, canary_version: str, share: float) -> bool:
    digest = hashlib.sha256(f"{canary_version}\x00{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < share


def choose(policy: dict, device_id: str) -> tuple[dict | None, str]:
    """(target {version, digest} or None to keep the current bundle, artifact override or "")."""
    fallback = policy.get("fallback") or {}
    canary = policy.get("canary") or {}
    if fallback.get("version"):
        target = fallback
    elif canary.get("version") and in_canary(device_id, canary["version"], policy.get("canary_share", 0.0)):
        target = canary
    else:
        target = policy.get("baseline") or None
    if target is not None and not target.get("version"):
        target = None
    return target, policy.get("fallback_artifact", "")
