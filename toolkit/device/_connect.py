"""A device transport over HTTP/1.1 with the Connect protocol, standard library only (no grpcio, no
protobuf): JSON requests built by hand from the plain window dicts. The coordinator's HTTP port serves
it from the same handlers as gRPC. A browser build swaps ``urllib`` for ``fetch``.

>>> t = ConnectTransport("https://fleet.example:8080", root_cert="ca.pem")   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request

from edgefleet.telemetry import is_retryable, to_json

from ._transport import Offline, Rejected

__all__ = ["ConnectTransport"]



def _target(t: dict | None) -> dict | None:
    return {"version": t["version"], "digest": t.get("digest", "")} if t and t.get("version") else None


def _remedy(r: dict) -> dict:
    return {"logit_bias": [float(v) for v in r.get("logitBias", [])], "cloud": bool(r.get("cloud", False)),
            "cloud_confidence_below": float(r.get("cloudConfidenceBelow", 0.0)),
            "cloud_latency_ms": float(r.get("cloudLatencyMs", 0.0)),
            "cloud_per_minute": float(r.get("cloudPerMinute", 0.0)),
            "raw_inputs_allowed": bool(r.get("rawInputsAllowed", False)),
            "examples_allowed": bool(r.get("examplesAllowed", False)), "max_examples": int(r.get("maxExamples", 0))}


class ConnectTransport:
    def __init__(self, base_url: str, *, root_cert: str | None = None, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._ssl = ssl.create_default_context(cafile=root_cert) if root_cert else None
        self.token = ""

    def _url(self, method: str) -> str:
        path = method if "/" in method else f"Fleet/{method}"   # "Identity/RotateToken": another service
        return f"{self.base_url}/edgefleet.v1.{path}"

    def _post(self, method: str, body: bytes, ctype: str, timeout_s: float | None = None) -> bytes:
        headers = {"Content-Type": ctype, "Connect-Protocol-Version": "1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self._url(method), data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s or self.timeout_s, context=self._ssl) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read())
            except ValueError:
                err = {"code": "unknown", "message": f"HTTP {e.code}"}
            raise self._error(method, err) from e
        except (urllib.error.URLError, OSError) as e:
            raise Offline(f"{method}: coordinator unreachable ({e})") from e

    @staticmethod
    def _error(method, err: dict):
        code = err.get("code", "unknown")
        if is_retryable(code):
            return Offline(f"{method}: coordinator unavailable ({code}: {err.get('message', '')})")
        return Rejected(code.upper(), f"{method}: {err.get('message', '')}")

    def _call(self, method: str, payload: dict) -> dict:
        return json.loads(self._post(method, json.dumps(payload).encode(), "application/json") or b"{}")

    def enroll(self, enrollment_token: str, hardware: str = "") -> dict:
        r = self._call("Enroll", {"enrollment_token": enrollment_token, "hardware": hardware})
        return {"device_id": r["deviceId"], "device_token": r["deviceToken"], "cohort": r["cohort"],
                "expires_ms": int(r.get("expiresMs", 0))}

    def rotate_token(self) -> dict:
        r = self._call("Identity/RotateToken", {})
        return {"device_token": r["deviceToken"], "expires_ms": int(r.get("expiresMs", 0))}

    def report(self, windows: list[dict]) -> list[str]:
        return list(self._call("Report", {"windows": [to_json(w) for w in windows]}).get("acknowledged", []))

    def feedback(self, labels: list[dict]) -> int:
        return int(self._call("Feedback", {"labels": labels}).get("stored", 0))

    def get_policy(self) -> dict:
        p = self._call("GetPolicy", {})
        return {"revision": int(p.get("revision", 0)), "cohort": p.get("cohort", ""),
                "baseline": _target(p.get("baseline")), "canary": _target(p.get("canary")),
                "canary_share": float(p.get("canaryShare", 0.0)), "fallback": _target(p.get("fallback")),
                "fallback_artifact": p.get("fallbackArtifact", ""), "shadow": _target(p.get("shadow")),
                "reason": p.get("reason", ""), "remedy": _remedy(p.get("remedy") or {})}

    def submit_examples(self, examples: list[dict]) -> int:
        return int(self._call("SubmitExamples", {"examples": [
            {"prediction_id": e["prediction_id"], "values": e["values"], "shape": e["shape"], "dtype": e["dtype"],
             "label": e["label"], "model_version": e["model_version"]} for e in examples]}).get("stored", 0))

    def predict(self, values: list[float], rows: int, model_version: str, timeout_s: float) -> list[float]:
        """Cloud fallback: logits (rows x classes, flat) from the coordinator's heavier model."""
        body = json.dumps({"values": values, "rows": rows, "model_version": model_version}).encode()
        return [float(v) for v in json.loads(self._post("Predict", body, "application/json", timeout_s)).get("logits", [])]

    def fetch_bundle(self, digest: str) -> tuple[bytes, str]:
        body = json.dumps({"digest": digest}).encode()
        raw = self._post("FetchBundle", bytes([0]) + len(body).to_bytes(4, "big") + body, "application/connect+json")
        parts, sha, pos = [], "", 0
        while pos + 5 <= len(raw):
            flags, size = raw[pos], int.from_bytes(raw[pos + 1:pos + 5], "big")
            frame = json.loads(raw[pos + 5:pos + 5 + size] or b"{}")
            pos += 5 + size
            if flags & 2:
                if frame.get("error"):
                    raise self._error("FetchBundle", frame["error"])
                break
            parts.append(base64.b64decode(frame.get("data", "")))
            sha = frame.get("archiveSha256", sha)
        return b"".join(parts), sha

    def event(self, kind: str, detail: str, digest: str = "") -> None:
        self._call("ReportEvent", {"kind": kind, "detail": detail[:4096], "digest": digest})

    def close(self) -> None:
        pass
