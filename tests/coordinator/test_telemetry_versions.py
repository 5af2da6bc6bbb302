"""Old devices keep reporting: a schema-1 window, as the previous SDK sent it over Connect (JSON
without ``schema_version`` or ``class_confidence``), is accepted beside a schema-2 window, stored,
and pooled by the drift engine."""

from __future__ import annotations

from test_connect import post
from test_grpc import make_window

from edgefleet import telemetry


def _old_sdk_json(d: dict) -> dict:
    """The body the schema-1 SDK built by hand (``_connect._window_json`` before schema 2)."""
    return {**{k: d[k] for k in ("report_id", "model_version", "artifact", "start_ms", "end_ms", "count",
                                 "class_counts", "errors", "confidence_sum")},
            "confidence": {"counts": d["confidence"]}, "projections": [{"counts": p} for p in d["projections"]],
            "latency": {"counts": d["latency"]}, "merged": 1, "shadow_version": "", "shadow_count": 0,
            "shadow_agree": 0}


def test_an_old_version_window_is_accepted_and_pooled(server, admin, archives, bundles):
    admin.publish_bundle(archives["1.0"])
    admin.set_baseline("web", "1.0")
    token = admin.create_enrollment_token("web")
    status, device = post(server.http_url, "/edgefleet.v1.Fleet/Enroll", {"enrollmentToken": token})
    assert status == 200, device
    old, new = make_window(bundles["1.0"], n=20), make_window(bundles["1.0"], n=30)
    body = {"windows": [_old_sdk_json(old), telemetry.to_json(new)]}
    status, reply = post(server.http_url, "/edgefleet.v1.Fleet/Report", body, device["deviceToken"])
    assert status == 200 and sorted(reply["acknowledged"]) == sorted([old["report_id"], new["report_id"]])
    stored = server.store.recent_windows("web", "1.0", 10)
    assert sorted(w["schema_version"] for w in stored) == [1, 2]
    admin.evaluate()
    stats = server.store.list_scores("web")[-1]["stats"]
    assert stats["samples"] == 50 and stats["verdict"]["state"] in ("ok", "drift")
