"""How a device talks to the coordinator. :class:`GrpcTransport` speaks gRPC (grpcio, imported
lazily); any object with the same methods works (a browser build can speak Connect over fetch).

Errors become two classes: :class:`Offline` (unreachable, timed out, overloaded: retry later, keep
the data) and :class:`Rejected` (the coordinator refused the request: do not resend as is).
"""

from __future__ import annotations

from pathlib import Path

from edgefleet._errors import EdgefleetError
from edgefleet.proto import policy_from_pb
from edgefleet.telemetry import is_retryable, to_message

__all__ = ["Offline", "Rejected", "GrpcTransport", "grpc_channel", "translate_rpc_error"]


class Offline(EdgefleetError):
    """The coordinator could not be reached (or did not answer in time); nothing was acknowledged."""


class Rejected(EdgefleetError):
    """The coordinator refused the request (the message carries its status code and reason)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


def grpc_channel(target: str, root_cert: str | bytes | None = None, *, max_message_bytes: int = 8 * 1024 * 1024):
    """A channel to ``target``; TLS when ``root_cert`` (PEM path or bytes) is given."""
    import grpc

    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", max_message_bytes),
               ("grpc.enable_retries", 0),
               # a device reconnects within seconds of the coordinator coming back
               ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
               ("grpc.max_reconnect_backoff_ms", 5000)]
    if root_cert is None:
        return grpc.insecure_channel(target, options=options)
    pem = root_cert if isinstance(root_cert, bytes) else Path(root_cert).read_bytes()
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=pem), options=options)


def translate_rpc_error(e, what: str) -> EdgefleetError:
    """A grpc.RpcError as Offline or Rejected, naming the call."""
    code = e.code().name if hasattr(e, "code") and e.code() is not None else "UNKNOWN"
    details = e.details() if hasattr(e, "details") else str(e)
    if is_retryable(code):
        return Offline(f"{what}: coordinator unreachable ({code}: {details})")
    return Rejected(code, f"{what}: {details}")


class GrpcTransport:
    def __init__(self, target: str, *, root_cert: str | bytes | None = None, timeout_s: float = 10.0):
        from edgefleet.proto import fleet_pb2, fleet_pb2_grpc

        self._pb = fleet_pb2
        self.target, self.timeout_s = target, timeout_s
        self._channel = grpc_channel(target, root_cert)
        self._stub = fleet_pb2_grpc.FleetStub(self._channel)
        self.token = ""

    def _md(self):
        return (("authorization", f"Bearer {self.token}"),)

    def _call(self, what, fn):
        import grpc
        try:
            return fn()
        except grpc.RpcError as e:
            raise translate_rpc_error(e, what) from e

    def enroll(self, enrollment_token: str, hardware: str = "") -> dict:
        r = self._call("Enroll", lambda: self._stub.Enroll(self._pb.EnrollRequest(
            enrollment_token=enrollment_token, hardware=hardware), timeout=self.timeout_s))
        return {"device_id": r.device_id, "device_token": r.device_token, "cohort": r.cohort,
                "expires_ms": r.expires_ms}

    def rotate_token(self) -> dict:
        from edgefleet.proto import fleet_pb2_grpc
        stub = fleet_pb2_grpc.IdentityStub(self._channel)
        r = self._call("RotateToken", lambda: stub.RotateToken(self._pb.RotateTokenRequest(), metadata=self._md(),
                                                                timeout=self.timeout_s))
        return {"device_token": r.device_token, "expires_ms": r.expires_ms}

    def report(self, windows: list[dict]) -> list[str]:
        req = self._pb.ReportRequest(windows=[to_message(w, self._pb.Window) for w in windows])
        r = self._call("Report", lambda: self._stub.Report(req, metadata=self._md(), timeout=self.timeout_s))
        return list(r.acknowledged)

    def feedback(self, labels: list[dict]) -> int:
        req = self._pb.FeedbackRequest(labels=[self._pb.Label(**lab) for lab in labels])
        return self._call("Feedback", lambda: self._stub.Feedback(req, metadata=self._md(),
                                                                   timeout=self.timeout_s)).stored

    def get_policy(self) -> dict:
        return policy_from_pb(self._call("GetPolicy", lambda: self._stub.GetPolicy(
            self._pb.PolicyRequest(), metadata=self._md(), timeout=self.timeout_s)))

    def watch_policy(self, known_revision: int = 0, timeout_s: float | None = None):
        """Yield the policy now and at each change (a stream); returns when ``timeout_s`` passes."""
        import grpc
        stream = self._stub.WatchPolicy(self._pb.PolicyRequest(known_revision=known_revision),
                                        metadata=self._md(), timeout=timeout_s)
        self._watch = stream
        try:
            for message in stream:
                yield policy_from_pb(message)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                return
            raise translate_rpc_error(e, "WatchPolicy") from e

    def cancel_watch(self) -> None:
        stream = getattr(self, "_watch", None)
        if stream is not None:
            stream.cancel()

    def fetch_bundle(self, digest: str) -> tuple[bytes, str]:
        """(archive bytes, the sha256 the coordinator states for them)."""
        def run():
            parts, sha = [], ""
            for chunk in self._stub.FetchBundle(self._pb.FetchBundleRequest(digest=digest), metadata=self._md(),
                                                timeout=self.timeout_s * 6):
                parts.append(chunk.data)
                sha = chunk.archive_sha256
            return b"".join(parts), sha
        return self._call("FetchBundle", run)

    def submit_examples(self, examples: list[dict]) -> int:
        """Labelled examples for adaptation (the cohort must allow it)."""
        req = self._pb.ExamplesRequest(examples=[self._pb.Example(**e) for e in examples])
        return self._call("SubmitExamples", lambda: self._stub.SubmitExamples(req, metadata=self._md(),
                                                                               timeout=self.timeout_s)).stored

    def predict(self, values: list[float], rows: int, model_version: str, timeout_s: float) -> list[float]:
        """Cloud fallback: logits (rows x classes, flat) from the coordinator's heavier model."""
        req = self._pb.PredictRequest(values=values, rows=rows, model_version=model_version)
        r = self._call("Predict", lambda: self._stub.Predict(req, metadata=self._md(), timeout=timeout_s))
        return list(r.logits)

    def event(self, kind: str, detail: str, digest: str = "") -> None:
        self._call("ReportEvent", lambda: self._stub.ReportEvent(self._pb.EventRequest(
            kind=kind, detail=detail[:4096], digest=digest), metadata=self._md(), timeout=self.timeout_s))

    def close(self) -> None:
        self._channel.close()
