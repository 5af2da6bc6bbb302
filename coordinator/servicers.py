"""gRPC servicers: thin translation between the wire and :class:`~.service.Coordinator`.

Each method reads the caller's token from the ``authorization`` metadata, converts the request to
plain values, calls one service function and converts the result back. Domain errors become status
codes in :func:`call`; anything unexpected becomes INTERNAL (and is logged), never a crash. The same
servicer objects also serve the HTTP/1.1 Connect transport (:mod:`.connect`), through a context with
the same two methods (``invocation_metadata``, ``abort``).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import grpc

from edgefleet.proto import fleet_pb2 as pb
from edgefleet.proto import fleet_pb2_grpc as pb_grpc
from .errors import CoordinatorError, MissingCredentials
from .throttle import client_address
from .wire import decision_to_pb, policy_to_pb, window_to_dict

__all__ = ["FleetServicer", "AdminServicer", "IdentityServicer", "call", "CODES"]

log = logging.getLogger("edgefleet.coordinator")

CODES = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT, "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED, "not_found": grpc.StatusCode.NOT_FOUND,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION, "unavailable": grpc.StatusCode.UNAVAILABLE,
    "internal": grpc.StatusCode.INTERNAL, "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_CHUNK = 64 * 1024


def _token(context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):].strip()
    return ""


def call(context, metrics, method: str, fn, throttle=None):
    """Run ``fn()``; map domain errors to status codes; count and time the call. With ``throttle``
    (an :class:`~.throttle.AuthThrottle`), an address locked out after failed authentications is
    refused before ``fn`` runs, and an authentication failure extends its lockout."""
    start = time.perf_counter()
    code = "OK"
    address = client_address(context.peer()) if throttle is not None else ""
    wait = throttle.locked_for(address) if throttle is not None else 0.0
    if wait > 0:
        metrics.rpc(method, "RESOURCE_EXHAUSTED", time.perf_counter() - start)
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"too many failed authentications from {address}; "
                                                          f"retry in {wait:.1f} s")
    try:
        result = fn()
        if throttle is not None:
            throttle.succeeded(address)
        return result
    except CoordinatorError as e:
        code = CODES.get(e.code, grpc.StatusCode.INTERNAL).name
        if e.code == "unauthenticated":
            metrics.inc("edgefleet_auth_failures_total")
            if throttle is not None and not isinstance(e, MissingCredentials):
                throttle.failed(address)
        if code == "INVALID_ARGUMENT" and method == "Report":
            metrics.inc("edgefleet_reports_rejected_total")
        log.info(json.dumps({"event": "call_refused", "method": method, "code": code, "reason": str(e)[:500]}))
        context.abort(CODES.get(e.code, grpc.StatusCode.INTERNAL), str(e))
    except Exception as e:  # a bug, not the caller's fault: INTERNAL, logged, the server keeps serving
        code = "INTERNAL"
        log.exception("%s failed", method)
        context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error ({type(e).__name__})")
    finally:
        metrics.rpc(method, code, time.perf_counter() - start)


class _Calls:
    def _call(self, context, method, fn):
        return call(context, self.m, method, fn, self.c.auth_throttle)


class FleetServicer(_Calls, pb_grpc.FleetServicer):
    def __init__(self, coordinator, metrics, *, watch_interval_s: float = 1.0, max_watches: int = 4,
                 watch_max_s: float = 300.0, watches_per_device: int = 1):
        self.c, self.m, self.watch_interval_s = coordinator, metrics, watch_interval_s
        self.max_watches, self.watch_max_s = max_watches, watch_max_s
        self.watches_per_device = watches_per_device
        self._watch_slots = threading.BoundedSemaphore(max_watches)
        self._watching: dict[str, int] = {}
        self._watching_lock = threading.Lock()

    def _device(self, context):
        device_id, cohort = self.c.device_for(_token(context))
        self.c.check_rate(device_id)
        return device_id, cohort

    def Enroll(self, request, context):
        def run():
            r = self.c.enroll(request.enrollment_token, request.hardware)
            return pb.EnrollResponse(**r)
        return self._call(context, "Enroll", run)

    def Report(self, request, context):
        def run():
            device_id, cohort = self._device(context)
            self.c.check_device(device_id, request.device_id)
            result = self.c.report(device_id, cohort, [window_to_dict(w) for w in request.windows])
            self.m.inc("edgefleet_windows_ingested_total", result["new"])
            self.m.inc("edgefleet_windows_duplicate_total", result["duplicates"])
            return pb.ReportResponse(acknowledged=result["acknowledged"], duplicates=result["duplicates"])
        return self._call(context, "Report", run)

    def Feedback(self, request, context):
        def run():
            device_id, cohort = self._device(context)
            labels = [{"prediction_id": x.prediction_id, "label": x.label, "predicted": x.predicted,
                       "model_version": x.model_version, "policy_revision": x.policy_revision,
                       "artifact": x.artifact} for x in request.labels]
            return pb.FeedbackResponse(stored=self.c.feedback(device_id, cohort, labels))
        return self._call(context, "Feedback", run)

    def GetPolicy(self, request, context):
        def run():
            device_id, cohort = self._device(context)
            return policy_to_pb(self.c.policy(device_id, cohort))
        return self._call(context, "GetPolicy", run)

    def WatchPolicy(self, request, context):
        """A watch holds one worker thread, so watches are capped (``max_watches``; beyond it
        RESOURCE_EXHAUSTED: poll GetPolicy instead) and each ends after ``watch_max_s`` (watch again)."""
        device_id, cohort = self._call(context, "WatchPolicy", lambda: self._device(context))
        with self._watching_lock:
            mine = self._watching.get(device_id, 0)
            if mine < self.watches_per_device:
                self._watching[device_id] = mine + 1
        if mine >= self.watches_per_device:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"device {device_id} already has {mine} policy "
                                                              "watch(es) open; one is enough")
        if not self._watch_slots.acquire(blocking=False):
            self._unwatch(device_id)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"too many policy watches open (limit {self.max_watches}); poll GetPolicy instead")
        try:
            known = (cohort, request.known_revision) if request.known_revision else None
            deadline = time.monotonic() + self.watch_max_s
            while context.is_active() and time.monotonic() < deadline:
                policy = self._call(context, "WatchPolicy",
                              lambda: self.c.policy(device_id, self.c.device_for(_token(context))[1]))
                if (policy["cohort"], policy["revision"]) != known:
                    known = (policy["cohort"], policy["revision"])
                    yield policy_to_pb(policy)
                with self.c.policy_changed:
                    self.c.policy_changed.wait(self.watch_interval_s)
        finally:
            self._watch_slots.release()
            self._unwatch(device_id)

    def _unwatch(self, device_id: str) -> None:
        with self._watching_lock:
            left = self._watching.get(device_id, 1) - 1
            if left > 0:
                self._watching[device_id] = left
            else:
                self._watching.pop(device_id, None)

    def FetchBundle(self, request, context):
        def run():
            _, cohort = self._device(context)
            return self.c.bundle_archive(request.digest, cohort)
        archive = self._call(context, "FetchBundle", run)
        import hashlib
        sha = hashlib.sha256(archive).hexdigest()
        offset = request.offset
        if not 0 <= offset <= len(archive):
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"offset {offset} outside 0..{len(archive)}")
        while offset < len(archive) and context.is_active():
            data = archive[offset:offset + _CHUNK]
            yield pb.BundleChunk(data=data, offset=offset, total=len(archive), archive_sha256=sha)
            offset += len(data)

    def ReportEvent(self, request, context):
        def run():
            device_id, _ = self._device(context)
            self.c.event(device_id, request.kind, request.detail, request.digest)
            return pb.EventResponse()
        return self._call(context, "ReportEvent", run)

    def Predict(self, request, context):
        def run():
            device_id, cohort = self._device(context)
            r = self.c.predict(device_id, cohort, list(request.values), request.rows, request.model_version)
            self.m.inc("edgefleet_cloud_rows_total", r["rows"])
            return pb.PredictResponse(**r)
        return self._call(context, "Predict", run)

    def SubmitExamples(self, request, context):
        def run():
            device_id, cohort = self._device(context)
            examples = [{"prediction_id": e.prediction_id, "values": list(e.values), "shape": list(e.shape),
                         "dtype": e.dtype, "label": e.label, "model_version": e.model_version}
                        for e in request.examples]
            return pb.ExamplesResponse(stored=self.c.submit_examples(device_id, cohort, examples))
        return self._call(context, "SubmitExamples", run)


class AdminServicer(_Calls, pb_grpc.AdminServicer):
    def __init__(self, coordinator, metrics):
        self.c, self.m = coordinator, metrics

    def _admin(self, context, method, fn):
        def run():
            self.c.check_admin(_token(context))
            return fn()
        return self._call(context, method, run)

    def _state(self, policy: dict) -> "pb.CohortState":
        return pb.CohortState(cohort=policy["cohort"], policy=policy_to_pb(policy))

    def CreateEnrollmentToken(self, request, context):
        return self._admin(context, "CreateEnrollmentToken", lambda: pb.CreateEnrollmentTokenResponse(
            token=self.c.create_enrollment_token(request.cohort, request.uses or 1)))

    def PublishBundle(self, request, context):
        return self._admin(context, "PublishBundle", lambda: pb.PublishBundleResponse(
            **self.c.publish_bundle(request.archive)))

    def AssignCohort(self, request, context):
        return self._admin(context, "AssignCohort", lambda: self._state(
            self.c.assign_cohort(request.device_id, request.cohort)))

    def SetBaseline(self, request, context):
        return self._admin(context, "SetBaseline", lambda: self._state(
            self.c.set_baseline(request.cohort, request.version)))

    def StartCanary(self, request, context):
        return self._admin(context, "StartCanary", lambda: self._state(
            self.c.start_canary(request.cohort, request.version, request.share)))

    def StopCanary(self, request, context):
        return self._admin(context, "StopCanary", lambda: self._state(
            self.c.stop_canary(request.cohort, request.promote)))

    def SetFallback(self, request, context):
        return self._admin(context, "SetFallback", lambda: self._state(
            self.c.set_fallback(request.cohort, request.artifact, request.version, request.reason)))

    def StartShadow(self, request, context):
        return self._admin(context, "StartShadow", lambda: self._state(
            self.c.start_shadow(request.cohort, request.version)))

    def ListDecisions(self, request, context):
        return self._admin(context, "ListDecisions", lambda: pb.ListDecisionsResponse(
            decisions=[decision_to_pb(d) for d in self.c.list_decisions(request.cohort)]))

    def ListEvents(self, request, context):
        return self._admin(context, "ListEvents", lambda: pb.ListEventsResponse(
            events=[pb.Event(**e) for e in self.c.list_events(request.device_id)]))

    def SetPrivacy(self, request, context):
        return self._admin(context, "SetPrivacy", lambda: self._state(
            self.c.set_privacy(request.cohort, request.raw_inputs_allowed, request.cloud_per_minute,
                               request.examples_allowed, request.max_examples)))

    def ListJobs(self, request, context):
        return self._admin(context, "ListJobs", lambda: pb.ListJobsResponse(jobs=[
            pb.Job(id=j["id"], kind=j["kind"], cohort=j["cohort"], status=j["status"], attempts=j["attempts"],
                   result_json=json.dumps(j["result"], sort_keys=True)) for j in self.c.list_jobs(request.cohort)]))

    def ListAudit(self, request, context):
        return self._admin(context, "ListAudit", lambda: pb.ListAuditResponse(
            entries=[pb.AuditEntry(**e) for e in self.c.list_audit(request.cohort)]))

    def ListMeasurements(self, request, context):
        return self._admin(context, "ListMeasurements", lambda: pb.ListMeasurementsResponse(
            measurements=[pb.Measurement(cohort=m["cohort"], decision_id=m["decision_id"], phase=m["phase"],
                                         stats_json=json.dumps(m["stats"], sort_keys=True),
                                         created_ms=m["created_ms"]) for m in self.c.list_measurements(request.cohort)]))

    def Evaluate(self, request, context):
        def run():
            decisions = self.c.evaluate()
            for d in decisions:
                self.m.inc("edgefleet_decisions_total", kind=d["kind"])
            return pb.ListDecisionsResponse(decisions=[decision_to_pb(d) for d in decisions])
        return self._admin(context, "Evaluate", run)


class IdentityServicer(_Calls, pb_grpc.IdentityServicer):
    """Token rotation (device token) and revocation (admin token)."""

    def __init__(self, coordinator, metrics):
        self.c, self.m = coordinator, metrics

    def RotateToken(self, request, context):
        return self._call(context, "RotateToken", lambda: pb.RotateTokenResponse(**self.c.rotate_token(_token(context))))

    def RevokeDevice(self, request, context):
        def run():
            self.c.check_admin(_token(context))
            return pb.RevokeDeviceResponse(revoked=self.c.revoke_device(request.device_id))
        return self._call(context, "RevokeDevice", run)
