"""Conversions between protobuf messages and the plain dicts the service functions take."""

from __future__ import annotations

import json

from . import fleet_pb2 as pb

__all__ = ["window_to_dict", "window_from_dict", "policy_to_pb", "policy_from_pb", "decision_to_pb"]


def window_to_dict(w: "pb.Window") -> dict:
    return {
        "report_id": w.report_id, "model_version": w.model_version, "artifact": w.artifact,
        "start_ms": w.start_ms, "end_ms": w.end_ms, "count": w.count, "class_counts": list(w.class_counts),
        "confidence": list(w.confidence.counts), "projections": [list(p.counts) for p in w.projections],
        "latency": list(w.latency.counts), "errors": dict(w.errors), "confidence_sum": w.confidence_sum,
        "merged": w.merged, "shadow_version": w.shadow_version, "shadow_count": w.shadow_count,
        "shadow_agree": w.shadow_agree,
    }


def window_from_dict(d: dict) -> "pb.Window":
    return pb.Window(
        report_id=d["report_id"], model_version=d["model_version"], artifact=d["artifact"], start_ms=d["start_ms"],
        end_ms=d["end_ms"], count=d["count"], class_counts=d["class_counts"],
        confidence=pb.Histogram(counts=d["confidence"]),
        projections=[pb.Histogram(counts=p) for p in d["projections"]], latency=pb.Histogram(counts=d["latency"]),
        errors=d["errors"], confidence_sum=d["confidence_sum"], merged=d.get("merged", 1),
        shadow_version=d.get("shadow_version", ""), shadow_count=d.get("shadow_count", 0),
        shadow_agree=d.get("shadow_agree", 0))


def _target(d: dict | None) -> "pb.Target":
    d = d or {}
    return pb.Target(version=d.get("version", ""), digest=d.get("digest", ""))


def _remedy(p: dict) -> "pb.Remedy":
    r = p.get("remedy") or {}
    return pb.Remedy(logit_bias=r.get("logit_bias", []), cloud=bool(r.get("cloud")),
                     cloud_confidence_below=r.get("cloud_confidence_below", 0.0),
                     cloud_latency_ms=r.get("cloud_latency_ms", 0.0), cloud_per_minute=r.get("cloud_per_minute", 0.0),
                     raw_inputs_allowed=bool((p.get("privacy") or {}).get("raw_inputs_allowed")))


def policy_to_pb(p: dict) -> "pb.Policy":
    return pb.Policy(revision=p.get("revision", 0), cohort=p.get("cohort", ""), baseline=_target(p.get("baseline")),
                     canary=_target(p.get("canary")), canary_share=p.get("canary_share") or 0.0,
                     fallback=_target(p.get("fallback")), fallback_artifact=p.get("fallback_artifact") or "",
                     shadow=_target(p.get("shadow")), reason=p.get("reason", ""), remedy=_remedy(p))


def policy_from_pb(p: "pb.Policy") -> dict:
    def target(t):
        return {"version": t.version, "digest": t.digest} if t.version else None
    r = p.remedy
    remedy = {"logit_bias": list(r.logit_bias), "cloud": r.cloud, "cloud_confidence_below": r.cloud_confidence_below,
              "cloud_latency_ms": r.cloud_latency_ms, "cloud_per_minute": r.cloud_per_minute,
              "raw_inputs_allowed": r.raw_inputs_allowed}
    return {"revision": p.revision, "cohort": p.cohort, "baseline": target(p.baseline), "canary": target(p.canary),
            "canary_share": p.canary_share, "fallback": target(p.fallback), "fallback_artifact": p.fallback_artifact,
            "shadow": target(p.shadow), "reason": p.reason, "remedy": remedy}


def decision_to_pb(d: dict) -> "pb.Decision":
    return pb.Decision(id=d["id"], cohort=d["cohort"], kind=d["kind"], model_version=d["model_version"],
                       evidence_json=json.dumps(d["evidence"], sort_keys=True), created_ms=d.get("created_ms", 0))
