"""A small Python client for the Admin service (the simulator, the tests and scripts use it).

>>> admin = AdminClient("127.0.0.1:50051", "admin-token")        # doctest: +SKIP
>>> token = admin.create_enrollment_token("eu", uses=100)        # doctest: +SKIP
"""

from __future__ import annotations

import json

from edgefleet.device import grpc_channel, translate_rpc_error

from edgefleet.proto import fleet_pb2 as pb
from edgefleet.proto import fleet_pb2_grpc as pb_grpc
from .wire import policy_from_pb

__all__ = ["AdminClient"]


class AdminClient:
    def __init__(self, target: str, admin_token: str, *, root_cert=None, timeout_s: float = 30.0):
        self._channel = grpc_channel(target, root_cert)
        self._stub = pb_grpc.AdminStub(self._channel)
        self._md = (("authorization", f"Bearer {admin_token}"),)
        self.timeout_s = timeout_s

    def _call(self, name, request):
        import grpc
        try:
            return getattr(self._stub, name)(request, metadata=self._md, timeout=self.timeout_s)
        except grpc.RpcError as e:
            raise translate_rpc_error(e, name) from e

    def create_enrollment_token(self, cohort: str, uses: int = 1) -> str:
        return self._call("CreateEnrollmentToken", pb.CreateEnrollmentTokenRequest(cohort=cohort, uses=uses)).token

    def publish_bundle(self, archive: bytes) -> dict:
        r = self._call("PublishBundle", pb.PublishBundleRequest(archive=archive))
        return {"digest": r.digest, "version": r.version, "signed": r.signed}

    def _state(self, r) -> dict:
        return policy_from_pb(r.policy)

    def assign_cohort(self, device_id: str, cohort: str) -> dict:
        return self._state(self._call("AssignCohort", pb.AssignCohortRequest(device_id=device_id, cohort=cohort)))

    def set_baseline(self, cohort: str, version: str) -> dict:
        return self._state(self._call("SetBaseline", pb.SetBaselineRequest(cohort=cohort, version=version)))

    def start_canary(self, cohort: str, version: str, share: float) -> dict:
        return self._state(self._call("StartCanary", pb.StartCanaryRequest(cohort=cohort, version=version, share=share)))

    def stop_canary(self, cohort: str, promote: bool = False) -> dict:
        return self._state(self._call("StopCanary", pb.StopCanaryRequest(cohort=cohort, promote=promote)))

    def set_fallback(self, cohort: str, artifact: str = "", version: str = "", reason: str = "") -> dict:
        return self._state(self._call("SetFallback", pb.SetFallbackRequest(cohort=cohort, artifact=artifact,
                                                                           version=version, reason=reason)))

    def start_shadow(self, cohort: str, version: str) -> dict:
        return self._state(self._call("StartShadow", pb.StartShadowRequest(cohort=cohort, version=version)))

    @staticmethod
    def _decisions(r) -> list[dict]:
        return [{"id": d.id, "cohort": d.cohort, "kind": d.kind, "model_version": d.model_version,
                 "evidence": json.loads(d.evidence_json), "created_ms": d.created_ms} for d in r.decisions]

    def list_decisions(self, cohort: str = "") -> list[dict]:
        return self._decisions(self._call("ListDecisions", pb.ListDecisionsRequest(cohort=cohort)))

    def list_events(self, device_id: str = "") -> list[dict]:
        r = self._call("ListEvents", pb.ListEventsRequest(device_id=device_id))
        return [{"device_id": e.device_id, "kind": e.kind, "detail": e.detail, "digest": e.digest} for e in r.events]

    def revoke_device(self, device_id: str) -> bool:
        """Revoke a device's identity; True when it was active."""
        import grpc
        stub = pb_grpc.IdentityStub(self._channel)
        try:
            return stub.RevokeDevice(pb.RevokeDeviceRequest(device_id=device_id), metadata=self._md,
                                     timeout=self.timeout_s).revoked
        except grpc.RpcError as e:
            raise translate_rpc_error(e, "RevokeDevice") from e
    def set_privacy(self, cohort: str, raw_inputs_allowed: bool, cloud_per_minute: float = 0.0, *,
                    examples_allowed: bool = False, max_examples: int = 0) -> dict:
        return self._state(self._call("SetPrivacy", pb.SetPrivacyRequest(
            cohort=cohort, raw_inputs_allowed=raw_inputs_allowed, cloud_per_minute=cloud_per_minute,
            examples_allowed=examples_allowed, max_examples=max_examples)))

    def list_jobs(self, cohort: str = "") -> list[dict]:
        r = self._call("ListJobs", pb.ListJobsRequest(cohort=cohort))
        return [{"id": j.id, "kind": j.kind, "cohort": j.cohort, "status": j.status, "attempts": j.attempts,
                 "result": json.loads(j.result_json or "{}")} for j in r.jobs]

    def list_audit(self, cohort: str = "") -> list[dict]:
        r = self._call("ListAudit", pb.ListAuditRequest(cohort=cohort))
        return [{"device_id": e.device_id, "cohort": e.cohort, "kind": e.kind, "bytes": e.bytes, "reason": e.reason,
                 "created_ms": e.created_ms} for e in r.entries]

    def list_measurements(self, cohort: str = "") -> list[dict]:
        r = self._call("ListMeasurements", pb.ListMeasurementsRequest(cohort=cohort))
        return [{"cohort": m.cohort, "decision_id": m.decision_id, "phase": m.phase, "stats": json.loads(m.stats_json),
                 "created_ms": m.created_ms} for m in r.measurements]

    def evaluate(self) -> list[dict]:
        return self._decisions(self._call("Evaluate", pb.EvaluateRequest()))

    def close(self) -> None:
        self._channel.close()
