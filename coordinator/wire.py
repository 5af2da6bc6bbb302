"""Conversions between protobuf messages and the plain dicts the service functions take. The window's
mapping is :mod:`edgefleet.telemetry`'s (defined once there)."""

from __future__ import annotations

import json

from edgefleet.proto import fleet_pb2 as pb
from edgefleet.proto import policy_from_pb
from edgefleet.telemetry import from_message, to_message

__all__ = ["window_to_dict", "window_from_dict", "policy_to_pb", "policy_from_pb", "decision_to_pb"]


def window_to_dict(w: "pb.Window") -> dict:
    return from_message(w)


def window_from_dict(d: dict) -> "pb.Window":
    return to_message(d, pb.Window)


def _target(d: dict | None) -> "pb.Target":
    d = d or {}
    return pb.Target(version=d.get("version", ""), digest=d.get("digest", ""))


def _remedy(p: dict) -> "pb.Remedy":
    r = p.get("remedy") or {}
    return pb.Remedy(logit_bias=r.get("logit_bias", []), cloud=bool(r.get("cloud")),
                     cloud_confidence_below=r.get("cloud_confidence_below", 0.0),
                     cloud_latency_ms=r.get("cloud_latency_ms", 0.0), cloud_per_minute=r.get("cloud_per_minute", 0.0),
                     raw_inputs_allowed=bool((p.get("privacy") or {}).get("raw_inputs_allowed")),
                     examples_allowed=bool((p.get("privacy") or {}).get("examples_allowed")),
                     max_examples=int((p.get("privacy") or {}).get("max_examples") or 0))


def policy_to_pb(p: dict) -> "pb.Policy":
    return pb.Policy(revision=p.get("revision", 0), cohort=p.get("cohort", ""), baseline=_target(p.get("baseline")),
                     canary=_target(p.get("canary")), canary_share=p.get("canary_share") or 0.0,
                     fallback=_target(p.get("fallback")), fallback_artifact=p.get("fallback_artifact") or "",
                     shadow=_target(p.get("shadow")), reason=p.get("reason", ""), remedy=_remedy(p))


def decision_to_pb(d: dict) -> "pb.Decision":
    return pb.Decision(id=d["id"], cohort=d["cohort"], kind=d["kind"], model_version=d["model_version"],
                       evidence_json=json.dumps(d["evidence"], sort_keys=True), created_ms=d.get("created_ms", 0))
