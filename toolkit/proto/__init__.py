"""The wire: ``fleet.proto`` (package ``edgefleet.v1``) and its generated, committed stubs, shared by the
coordinator and the device SDK's gRPC transport (imported only there; they need protobuf/grpcio).
``python -m edgefleet.proto.stubs --check`` fails when the stubs drift from the ``.proto`` file."""

__all__ = ["policy_from_pb"]


def policy_from_pb(p) -> dict:
    """A ``Policy`` message as the plain dict the device and the admin client read."""
    def target(t):
        return {"version": t.version, "digest": t.digest} if t.version else None
    r = p.remedy
    remedy = {"logit_bias": list(r.logit_bias), "cloud": r.cloud, "cloud_confidence_below": r.cloud_confidence_below,
              "cloud_latency_ms": r.cloud_latency_ms, "cloud_per_minute": r.cloud_per_minute,
              "raw_inputs_allowed": r.raw_inputs_allowed, "examples_allowed": r.examples_allowed,
              "max_examples": r.max_examples}
    return {"revision": p.revision, "cohort": p.cohort, "baseline": target(p.baseline), "canary": target(p.canary),
            "canary_share": p.canary_share, "fallback": target(p.fallback), "fallback_artifact": p.fallback_artifact,
            "shadow": target(p.shadow), "reason": p.reason, "remedy": remedy}
