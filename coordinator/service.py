"""The coordinator's plain functions over a store: what every transport (gRPC, Connect) calls.

Tokens are random 32-byte URL-safe strings; only their sha256 is stored. A device is identified by
its token on every call, so it can report, fetch and read policy only as itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import tempfile
import threading
import time
import uuid
from pathlib import Path

from edgefleet._errors import BundleError
from edgefleet.bundle import unpack

from . import policy as policy_engine
from .cloud import MAX_ROWS, CloudModels
from .errors import (Conflict, InvalidRequest, MissingCredentials, NotFound, PermissionDenied, RateLimited,
                     ResourceExhausted, Unauthenticated)
from .rules import Rules, load_rules
from .throttle import AuthThrottle, RateLimit
from .validate import validate_labels, validate_windows

__all__ = ["Coordinator"]

log = logging.getLogger("edgefleet.coordinator")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Coordinator:
    """Plain functions for every call. ``admin_token`` guards the admin calls; ``trusted_key``
    (raw ed25519 public key) makes publishing require a bundle signed by it."""

    def __init__(self, store, *, admin_token: str, rules: Rules | None = None, trusted_key: bytes | None = None,
                 read_token: str = "", allow_unsigned: bool = False, token_ttl_s: float = 30 * 86400,
                 enrollment_ttl_s: float = 7 * 86400, device_rate: RateLimit | None = None):
        if not admin_token:
            raise InvalidRequest("the coordinator needs a non-empty admin token")
        self.store = store
        self.rules = rules or load_rules(None)
        self.trusted_key = trusted_key
        self.allow_unsigned = allow_unsigned
        self.token_ttl_s, self.enrollment_ttl_s = token_ttl_s, enrollment_ttl_s
        self.device_rate = device_rate or RateLimit()
        self.auth_throttle = AuthThrottle()
        self._served: set[str] = set()   # sha256 of archives verified since start (FetchBundle)
        self._admin_hash = _hash(admin_token)
        self._read_hash = _hash(read_token) if read_token else None
        self._manifests: dict[str, dict | None] = {}
        # token hash -> (device_id, cohort, expiry): saves a store round trip per call; a cohort change
        # made on another replica is seen within TOKEN_CACHE_S
        self._tokens: dict[str, tuple[str, str, float]] = {}
        self._cohorts: dict[str, tuple[dict, float]] = {}   # cohort -> (state, expiry): see cohort_state
        self._cohorts_gen = 0   # +1 at each local policy change: a read that raced one is not cached
        self._lock = threading.Lock()
        self.policy_changed = threading.Condition()
        self.cloud = CloudModels(store)

    # -- authentication ------------------------------------------------------------------------
    TOKEN_CACHE_S = 2.0

    def device_for(self, token: str) -> tuple[str, str]:
        """(device_id, cohort) of a device token; Unauthenticated when unknown, expired or revoked
        (a revocation made on another replica is seen within TOKEN_CACHE_S)."""
        if not token:
            raise MissingCredentials("missing device token")
        key = _hash(token)
        cached = self._tokens.get(key)
        now = time.monotonic()
        if cached is None or cached[2] <= now:
            found = self.store.device_auth(key)
            if found is None:
                raise Unauthenticated("unknown device token")
            if len(self._tokens) > 200_000:
                self._tokens.clear()
            cached = (found[0], found[1], now + self.TOKEN_CACHE_S, found[2], found[3])
            self._tokens[key] = cached
        device_id, cohort, _, expires_ms, revoked_ms = cached
        if revoked_ms:
            raise Unauthenticated(f"device {device_id} is revoked")
        if expires_ms and expires_ms <= time.time() * 1000:
            raise Unauthenticated(f"device token of {device_id} expired; enrol again")
        return device_id, cohort

    def rotate_token(self, token: str) -> dict:
        """A new token for the calling device; the old one stops working at once."""
        device_id, _ = self.device_for(token)
        new, expires_ms = secrets.token_urlsafe(32), int((time.time() + self.token_ttl_s) * 1000)
        if not self.store.rotate_device_token(device_id, _hash(token), _hash(new), expires_ms):
            raise Unauthenticated(f"device {device_id}: token already rotated or revoked")
        self._tokens.pop(_hash(token), None)
        return {"device_token": new, "expires_ms": expires_ms}

    def revoke_device(self, device_id: str) -> bool:
        """Revoke a device's identity; True when it was active. NotFound for an unknown device."""
        changed, exists = self.store.revoke_device(device_id)
        if not exists:
            raise NotFound(f"no device {device_id!r}")
        self._tokens.clear()
        self._notify()   # open watches re-check their token and end
        return changed

    def check_rate(self, device_id: str) -> None:
        if not self.device_rate.allow(device_id):
            raise ResourceExhausted(f"device {device_id}: more than {self.device_rate.rate:g} calls/s "
                                    f"(burst {self.device_rate.burst:g}); slow down")

    def check_admin(self, token: str) -> None:
        if not token:
            raise MissingCredentials("admin call without the admin token")
        if not hmac.compare_digest(_hash(token), self._admin_hash):
            raise Unauthenticated("admin call without the admin token")

    def may_read(self, token: str) -> bool:
        """The admin or the read token: what ``/metrics`` and ``/dashboard`` ask for."""
        if not token:
            return False
        h = _hash(token)
        return hmac.compare_digest(h, self._admin_hash) or (
            self._read_hash is not None and hmac.compare_digest(h, self._read_hash))

    # -- device calls --------------------------------------------------------------------------
    def enroll(self, enrollment_token: str, hardware: str = "") -> dict:
        if len(hardware) > 256:
            raise InvalidRequest("hardware: at most 256 characters")
        if not enrollment_token:
            raise MissingCredentials("missing enrollment token")
        cohort = self.store.consume_enrollment_token(_hash(enrollment_token))
        if cohort is None:
            raise Unauthenticated("enrollment token unknown, used up or expired")
        device_id, token = f"dev-{uuid.uuid4().hex[:16]}", secrets.token_urlsafe(32)
        expires_ms = int((time.time() + self.token_ttl_s) * 1000)
        self.store.add_device(device_id, _hash(token), cohort, hardware, token_expires_ms=expires_ms)
        return {"device_id": device_id, "device_token": token, "cohort": cohort, "expires_ms": expires_ms}

    def manifest_for(self, version: str) -> dict | None:
        """The manifest of a published version (cached: a version's bundle never changes)."""
        with self._lock:
            if version in self._manifests and self._manifests[version] is not None:
                return self._manifests[version]
        found = self.store.bundle_by_version(version)
        manifest = found[1] if found else None
        if manifest is not None:
            with self._lock:
                self._manifests[version] = manifest
        return manifest

    def report(self, device_id: str, cohort: str, windows: list[dict]) -> dict:
        """Validate every window, store them durably in one transaction, then acknowledge all."""
        validate_windows(windows, self.manifest_for)
        new = self.store.ingest_windows(device_id, cohort, windows)
        return {"acknowledged": [w["report_id"] for w in windows], "duplicates": len(windows) - new, "new": new}

    def feedback(self, device_id: str, cohort: str, labels: list[dict]) -> int:
        validate_labels(labels, self.manifest_for)
        return self.store.add_labels(device_id, cohort, labels)

    def policy(self, device_id: str, cohort: str) -> dict:
        state, revision = self.store.get_cohort(cohort)
        return {**state, "revision": revision, "cohort": cohort}

    #: how long Predict trusts a cohort's state it read (privacy opt-in, baseline): a change made on this
    #: replica applies at once, one made on another replica within this many seconds
    COHORT_CACHE_S = 2.0

    def cohort_state(self, cohort: str) -> dict:
        """The cohort's state for per-call checks, without a store round trip on every call (which
        would also wait behind the commit in progress)."""
        now = time.monotonic()
        cached = self._cohorts.get(cohort)
        if cached is not None and cached[1] > now:
            return cached[0]
        generation = self._cohorts_gen
        state = self.store.get_cohort(cohort)[0]
        with self._lock:
            if generation == self._cohorts_gen:   # no change was made while the store was read
                if len(self._cohorts) > 100_000:
                    self._cohorts.clear()
                self._cohorts[cohort] = (state, now + self.COHORT_CACHE_S)
        return state

    #: Predict calls per device per minute when the cohort's privacy settings do not say
    DEFAULT_CLOUD_PER_MINUTE = 600.0

    def predict(self, device_id: str, cohort: str, values: list[float], rows: int, model_version: str) -> dict:
        """Cloud fallback: run the heavier model on ``rows`` inputs the device sent. Refused unless the
        cohort's privacy settings allow raw inputs to leave its devices; rate-limited per device;
        every admitted call is in the audit log (bytes that left the device, and why)."""
        import math

        import numpy as np

        state = self.cohort_state(cohort)
        privacy = state.get("privacy") or {}
        if not privacy.get("raw_inputs_allowed"):
            raise PermissionDenied(f"cohort {cohort!r} does not allow raw inputs to leave its devices; "
                                   "an admin enables it with SetPrivacy")
        if not 1 <= rows <= MAX_ROWS:
            raise InvalidRequest(f"rows: {rows} is outside 1..{MAX_ROWS}")
        run, name, shape = self.cloud.model(model_version or (state.get("baseline") or {}).get("version", ""))
        width = math.prod(shape)
        if len(values) != rows * width:
            raise InvalidRequest(f"values: {len(values)} numbers for {rows} rows of shape {list(shape)} "
                                 f"(expected {rows * width})")
        x = np.asarray(values, dtype=np.float32).reshape((rows, *shape))
        if not np.isfinite(x).all():
            raise InvalidRequest("values: NaN or infinity in the inputs")
        per_minute = privacy.get("cloud_per_minute") or self.DEFAULT_CLOUD_PER_MINUTE
        if not self.cloud.admit(device_id, per_minute):
            raise RateLimited(f"device {device_id}: more than {per_minute:g} Predict calls per minute")
        self.store.add_audit(device_id, cohort, "predict_inputs", 4 * len(values),
                             f"cloud fallback: {rows} low-confidence input(s) sent to {name}")
        logits = np.asarray(run(x), dtype=np.float32)
        return {"logits": logits.reshape(-1).tolist(), "rows": rows, "model": name}

    def bundle_archive(self, digest: str, cohort: str | None = None) -> bytes:
        """The archive of a published bundle, verified again (artifacts, digest, signature) the first
        time this process serves it: a consistent rewrite of the store's rows cannot forge a signature.
        With ``cohort`` only a bundle that cohort's policy names (baseline, canary, fallback, shadow)."""
        if cohort is not None and digest not in self._policy_digests(cohort):
            raise PermissionDenied(f"bundle {digest[:16]!r} is not named by the policy of cohort {cohort!r}")
        found = self.store.get_bundle(digest) if digest else None
        if found is None:
            raise NotFound(f"no published bundle with digest {digest[:16]!r}")
        archive = found[1]
        sha = hashlib.sha256(archive).hexdigest()
        if sha not in self._served:
            bundle = self._verified(archive)
            if bundle.digest != digest:
                log.error(json.dumps({"event": "store_tampered", "digest": digest, "found": bundle.digest}))
                raise PermissionDenied(f"bundle {digest[:16]}: the stored archive is not the published bundle "
                                       "(store altered?); refusing to serve it")
            with self._lock:
                self._served.add(sha)
        return archive

    def _policy_digests(self, cohort: str) -> set[str]:
        state, _ = self.store.get_cohort(cohort)
        return {t["digest"] for t in (state.get(k) for k in ("baseline", "canary", "fallback", "shadow"))
                if isinstance(t, dict) and t.get("digest")}

    def _verified(self, archive: bytes):
        """Unpack and verify an archive: artifact digests always; the signature against the trusted key
        unless unsigned bundles are allowed. InvalidRequest when it does not hold."""
        from edgefleet.keys import require_trusted
        with tempfile.TemporaryDirectory(prefix="edgefleet-verify-") as tmp:
            path = Path(tmp, "archive.tar.gz")
            path.write_bytes(archive)
            try:
                bundle = unpack(path, Path(tmp, "bundle"))
                if bundle.manifest.get("signature") is not None or not self.allow_unsigned:
                    require_trusted(bundle, self.trusted_key, allow_unsigned=self.allow_unsigned, what="coordinator",
                                    label=f"{bundle.name} {bundle.version}")
                    if bundle.manifest.get("signature") is not None and self.trusted_key is None:
                        bundle.verify_signature(None)
            except BundleError as e:
                raise InvalidRequest(f"bundle refused: {e}") from e
        return bundle

    def event(self, device_id: str, kind: str, detail: str, digest: str) -> None:
        if not kind or len(kind) > 64 or len(detail) > 4096 or len(digest) > 128:
            raise InvalidRequest("event: kind 1..64 characters, detail up to 4096, digest up to 128")
        self.store.add_event(device_id, kind, detail, digest)

    # -- admin calls ---------------------------------------------------------------------------
    def create_enrollment_token(self, cohort: str, uses: int = 1) -> str:
        if not cohort or len(cohort) > 64 or not cohort.isprintable():
            raise InvalidRequest("cohort: expected a printable name of 1..64 characters")
        if not 1 <= uses <= 1_000_000:
            raise InvalidRequest(f"uses: {uses} is outside 1..1000000")
        token = secrets.token_urlsafe(24)
        self.store.create_enrollment_token(_hash(token), cohort, uses,
                                           expires_ms=int((time.time() + self.enrollment_ttl_s) * 1000))
        return token

    def publish_bundle(self, archive: bytes) -> dict:
        """Unpack, verify (digests; the signature against the trusted key unless unsigned bundles are
        allowed) and store."""
        bundle = self._verified(archive)
        signed = bundle.manifest.get("signature") is not None
        existing = self.store.bundle_by_version(bundle.version)
        if existing is not None:
            if existing[0] != bundle.digest:
                raise Conflict(f"version {bundle.version} is already published with another digest "
                               f"({existing[0][:16]}...); publish a new version")
            return {"digest": bundle.digest, "version": bundle.version, "signed": signed}
        self.store.put_bundle(bundle.digest, bundle.version, bundle.manifest, archive)
        return {"digest": bundle.digest, "version": bundle.version, "signed": signed}

    def _target(self, version: str) -> dict:
        found = self.store.bundle_by_version(version) if version else None
        if found is None:
            raise NotFound(f"version {version!r} is not published")
        return {"version": version, "digest": found[0]}

    def _update(self, cohort: str, changes: dict, kind: str, why: str) -> dict:
        if not cohort:
            raise InvalidRequest("cohort: must not be empty")
        state, revision = self.store.update_cohort(cohort, {**changes, "reason": f"{kind}: {why}"})
        self.store.add_decision(cohort, "manual", (state.get("baseline") or {}).get("version", ""),
                                {"why": why, "action": kind, "changes": changes, "policy_revision": revision})
        self._notify()
        return {**state, "revision": revision, "cohort": cohort}

    def assign_cohort(self, device_id: str, cohort: str) -> dict:
        if not cohort or len(cohort) > 64:
            raise InvalidRequest("cohort: expected 1..64 characters")
        if not self.store.set_device_cohort(device_id, cohort):
            raise NotFound(f"no device {device_id!r}")
        self._tokens.clear()
        self._notify()
        return self.policy(device_id, cohort)

    def set_baseline(self, cohort: str, version: str) -> dict:
        target = self._target(version)
        state, _ = self.store.get_cohort(cohort)
        changes = {"baseline": target}
        old = state.get("baseline")
        if old and old.get("version") != version:
            changes["previous"] = old  # the known-good version the ladder's previous_version rung returns to
        return self._update(cohort, changes, "set_baseline", f"baseline {version}")

    def set_privacy(self, cohort: str, raw_inputs_allowed: bool, cloud_per_minute: float = 0.0,
                    examples_allowed: bool = False, max_examples: int = 0) -> dict:
        if not 0 <= cloud_per_minute <= 1_000_000:
            raise InvalidRequest(f"cloud_per_minute: {cloud_per_minute} is outside 0..1000000")
        if not 0 <= max_examples <= self.MAX_EXAMPLES_PER_DEVICE:
            raise InvalidRequest(f"max_examples: {max_examples} is outside 0..{self.MAX_EXAMPLES_PER_DEVICE}")
        privacy = {"raw_inputs_allowed": bool(raw_inputs_allowed), "examples_allowed": bool(examples_allowed),
                   "max_examples": int(max_examples or self.DEFAULT_MAX_EXAMPLES)}
        if cloud_per_minute:
            privacy["cloud_per_minute"] = float(cloud_per_minute)
        allowed = [what for what, on in (("raw inputs (cloud fallback)", raw_inputs_allowed),
                                         (f"up to {privacy['max_examples']} labelled examples per device",
                                          examples_allowed)) if on]
        why = f"may leave devices: {', '.join(allowed)}" if allowed else "no raw input leaves devices"
        return self._update(cohort, {"privacy": privacy}, "set_privacy", why)

    #: labelled examples a device may hold on the coordinator (default, and the most a cohort can allow)
    DEFAULT_MAX_EXAMPLES = 50
    MAX_EXAMPLES_PER_DEVICE = 1000

    def submit_examples(self, device_id: str, cohort: str, examples: list[dict]) -> int:
        """Store labelled examples for adaptation: refused unless the cohort allows it; each must have
        the model's input shape and dtype, finite values and a valid label; all or none are stored,
        within the per-device cap; the upload is audited."""
        import math
        import struct

        state, _ = self.store.get_cohort(cohort)
        privacy = state.get("privacy") or {}
        if not privacy.get("examples_allowed"):
            raise PermissionDenied(f"cohort {cohort!r} does not allow labelled examples to leave its devices; "
                                   "an admin enables it with SetPrivacy")
        if not examples:
            raise InvalidRequest("examples: at least one")
        cap = privacy.get("max_examples") or self.DEFAULT_MAX_EXAMPLES
        rows = []
        for i, e in enumerate(examples):
            at = f"examples[{i}]"
            manifest = self.manifest_for(e["model_version"]) if e["model_version"] else None
            if manifest is None:
                raise InvalidRequest(f"{at}.model_version: unknown model version {e['model_version']!r}")
            spec = manifest["inputs"][0]
            want = [int(d) for d in spec["shape"][1:]]
            if list(e["shape"]) != want:
                raise InvalidRequest(f"{at}.shape: {list(e['shape'])} is not the model input's {want}")
            if e["dtype"] != spec["dtype"]:
                raise InvalidRequest(f"{at}.dtype: {e['dtype']!r} is not the model input's {spec['dtype']!r}")
            if len(e["values"]) != math.prod(want):
                raise InvalidRequest(f"{at}.values: {len(e['values'])} numbers for shape {want}")
            if not all(math.isfinite(v) for v in e["values"]):
                raise InvalidRequest(f"{at}.values: NaN or infinity")
            n = len(manifest["task"].get("labels", []))
            if not 0 <= e["label"] < n:
                raise InvalidRequest(f"{at}.label: {e['label']} is not a class index of 0..{n - 1}")
            rows.append({"model_version": e["model_version"], "label": e["label"], "shape": want,
                         "data": struct.pack(f"<{len(e['values'])}f", *e["values"])})
        stored = self.store.add_examples(device_id, cohort, rows, cap)
        if not stored:
            raise Conflict(f"device {device_id}: more than {cap} labelled examples would be held, the cohort's cap "
                           "(they are deleted once an adaptation job used them)")
        self.store.add_audit(device_id, cohort, "labelled_examples", sum(len(r["data"]) for r in rows),
                             f"adaptation: {stored} labelled example(s) (cohort opted in)")
        return stored

    def list_jobs(self, cohort: str = "") -> list[dict]:
        return self.store.list_jobs(cohort)

    def list_audit(self, cohort: str = "") -> list[dict]:
        return self.store.list_audit(cohort)

    def list_measurements(self, cohort: str = "") -> list[dict]:
        return self.store.list_measurements(cohort)

    def start_canary(self, cohort: str, version: str, share: float) -> dict:
        if not 0.0 < share <= 1.0:
            raise InvalidRequest(f"share: {share} is outside (0, 1]")
        state, revision = self.store.get_cohort(cohort)
        # compared with the baseline on labels from the canary's start on (the next revision)
        target = {**self._target(version), "since_revision": revision + 1}
        return self._update(cohort, {"canary": target, "canary_share": share}, "start_canary",
                            f"canary {version} on {share:.0%}")

    def stop_canary(self, cohort: str, promote: bool) -> dict:
        state, _ = self.store.get_cohort(cohort)
        canary = state.get("canary")
        if not canary:
            raise NotFound(f"cohort {cohort!r} has no canary")
        changes = {"canary": None, "canary_share": None}
        if promote:
            changes["baseline"] = canary
        return self._update(cohort, changes, "stop_canary", f"{'promote' if promote else 'stop'} {canary['version']}")

    def set_fallback(self, cohort: str, artifact: str, version: str, reason: str) -> dict:
        if len(artifact) > 64 or len(reason) > 1024:
            raise InvalidRequest("artifact up to 64 characters, reason up to 1024")
        changes = {"fallback_artifact": artifact or None, "fallback": self._target(version) if version else None}
        why = reason or (f"fallback to {artifact or ''} {version or ''}".strip() if artifact or version
                         else "fallback cleared")
        return self._update(cohort, changes, "set_fallback", why)

    def start_shadow(self, cohort: str, version: str) -> dict:
        target = self._target(version) if version else None
        return self._update(cohort, {"shadow": target}, "start_shadow",
                            f"shadow {version}" if version else "shadow stopped")

    def list_decisions(self, cohort: str = "") -> list[dict]:
        return self.store.list_decisions(cohort)

    def list_events(self, device_id: str = "") -> list[dict]:
        return self.store.list_events(device_id)

    def evaluate(self) -> list[dict]:
        """One policy-engine pass; skipped (empty) while another replica runs one."""
        with self.store.exclusive("evaluate") as mine:
            if not mine:
                return []
            decisions = policy_engine.evaluate(self.store, self.rules, self.manifest_monitoring, self.manifest_for)
        for d in decisions:
            log.info(json.dumps({"event": "decision", "id": d["id"], "cohort": d["cohort"], "kind": d["kind"],
                                 "model_version": d["model_version"], "why": d["evidence"].get("why", "")}))
        if decisions:
            self._notify()
        return decisions

    def manifest_monitoring(self, version: str) -> dict:
        manifest = self.manifest_for(version)
        if manifest is None:
            raise NotFound(f"version {version!r} is not published")
        return manifest["monitoring"]

    def _notify(self) -> None:
        with self._lock:   # a policy changed here: the next Predict reads it again
            self._cohorts_gen += 1
            self._cohorts.clear()
        with self.policy_changed:
            self.policy_changed.notify_all()

    def check_device(self, device_id: str, claimed: str) -> None:
        """A device acts only as itself."""
        if claimed and claimed != device_id:
            raise PermissionDenied(f"device {device_id} cannot act for {claimed}")
