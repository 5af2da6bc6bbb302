"""Validation of device reports: a whole request is accepted or refused, never stored in part.

Every error names the window index and the field, e.g. ``windows[3].class_counts: expected 10 bins
(one per label of model 1.0), got 9``. The reference bins come from the bundle the window claims.
"""

from __future__ import annotations

import math

from edgefleet import telemetry
from edgefleet.telemetry import TelemetryError

from .errors import InvalidRequest

__all__ = ["validate_windows", "validate_labels", "MAX_WINDOWS_PER_REPORT", "MAX_LABELS_PER_REQUEST"]

MAX_WINDOWS_PER_REPORT = 1000
MAX_LABELS_PER_REQUEST = 10000
_MAX_ID = 128


def _ident(where: str, value: str, *, empty_ok: bool = False) -> None:
    if (not value and not empty_ok) or len(value) > _MAX_ID or not value.isprintable():
        raise InvalidRequest(f"{where}: expected a printable id of 1..{_MAX_ID} characters, got {value[:40]!r}")


def validate_windows(windows: list[dict], reference_for) -> None:
    """Raise InvalidRequest on the first bad window. ``reference_for(version)`` returns the bundle's
    manifest for a published version, or None. The window itself is checked by
    :func:`edgefleet.telemetry.validate` (any accepted schema version)."""
    if not windows:
        raise InvalidRequest("windows: a report needs at least one window")
    if len(windows) > MAX_WINDOWS_PER_REPORT:
        raise InvalidRequest(f"windows: {len(windows)} windows in one report; the limit is {MAX_WINDOWS_PER_REPORT}")
    seen = set()
    for i, w in enumerate(windows):
        at = f"windows[{i}]"
        try:
            _ident(f"{at}.report_id", w["report_id"])
            if w["report_id"] in seen:
                raise InvalidRequest(f"{at}.report_id: {w['report_id']!r} appears twice in this report")
            seen.add(w["report_id"])
            _ident(f"{at}.model_version", w["model_version"])
            manifest = reference_for(w["model_version"])
            if manifest is None:
                raise InvalidRequest(f"{at}.model_version: unknown model version {w['model_version']!r} (not published)")
            targets = [a["target"] for a in manifest["artifacts"]]
            if w["artifact"] not in targets:
                raise InvalidRequest(f"{at}.artifact: {w['artifact']!r} is not an artifact of version "
                                     f"{w['model_version']} ({', '.join(targets)})")
            telemetry.validate(w, manifest["monitoring"], at)
        except TelemetryError as e:
            raise InvalidRequest(str(e)) from None


def validate_labels(labels: list[dict], reference_for) -> None:
    if not labels:
        raise InvalidRequest("labels: a feedback request needs at least one label")
    if len(labels) > MAX_LABELS_PER_REQUEST:
        raise InvalidRequest(f"labels: {len(labels)} labels; the limit is {MAX_LABELS_PER_REQUEST}")
    for i, lab in enumerate(labels):
        at = f"labels[{i}]"
        _ident(f"{at}.prediction_id", lab["prediction_id"])
        manifest = reference_for(lab["model_version"]) if lab["model_version"] else None
        if manifest is None:
            raise InvalidRequest(f"{at}.model_version: unknown model version {lab['model_version']!r}")
        n = len(manifest["task"].get("labels", []))
        for key in ("label", "predicted"):
            if not 0 <= lab[key] < n:
                raise InvalidRequest(f"{at}.{key}: {lab[key]} is not a class index of 0..{n - 1}")
        if lab.get("policy_revision", 0) < 0:
            raise InvalidRequest(f"{at}.policy_revision: {lab['policy_revision']} is negative")
        if lab.get("artifact"):
            _ident(f"{at}.artifact", lab["artifact"])
