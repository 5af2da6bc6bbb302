"""The device SDK: load a bundle, predict, summarise, deliver, follow the coordinator's policy.

>>> from edgefleet import Device                                            # doctest: +SKIP
>>> from edgefleet.device import GrpcTransport                              # doctest: +SKIP
>>> dev = Device("out/digits", "state/", transport=GrpcTransport("127.0.0.1:50051"),
...              enrollment_token=token, trusted_key=public_key)            # doctest: +SKIP
>>> preds = dev.predict(x)          # keeps serving offline; telemetry waits in the on-disk queue
>>> dev.sync()                      # deliver queued windows, send feedback, apply the policy
>>> dev.feedback(preds[0].prediction_id, label=7)
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from edgefleet import monitoring
from edgefleet._errors import BundleError, ConfigError, DataError, EdgefleetError
from edgefleet.bundle import Bundle, unpack

from ._engine import Engine
from ._identity import rotation_due
from ._policy import choose
from ._queue import DiskQueue
from ._remedy import CloudFallback, biased_top
from edgefleet.telemetry import Window, projection_space, summarize
from ._transport import Offline, Rejected

__all__ = ["Device", "Prediction"]

_BATCH = 100                 # windows per Report call
_RECENT_PREDICTIONS = 10000  # prediction ids kept for feedback
_FEEDBACK_CAP = 10000        # labels waiting for delivery; beyond it the oldest are dropped and counted


@dataclass(frozen=True)
class Prediction:
    prediction_id: str
    label: int
    confidence: float
    model_version: str
    artifact: str
    #: the model's output row (logits, embedding or values), as a list of floats
    output: list | None = None


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


class Device:
    """A device's model server and telemetry agent. Thread-safe; pure Python apart from the runtime.

    - ``bundle``: the bundle directory to serve until the coordinator says otherwise;
    - ``state_dir``: identity, queue, fetched bundles and the current-bundle pointer (survives restarts);
    - ``transport``: :class:`GrpcTransport`, :class:`ConnectTransport`, or None (standalone);
    - ``enrollment_token``: used once, on the first :meth:`sync`;
    - ``trusted_key``: the ed25519 public key (raw or base64) every bundle must be signed with; required
      unless ``allow_unsigned=True`` (then no signature is checked);
    - ``window_size`` / ``window_seconds``: a telemetry window closes after this many predictions or
      this long, whichever first (checked when predicting and on :meth:`sync`);
    - ``latency_budget_ms``: per :meth:`predict` call; a miss moves the next call down the chain;
    - ``queue_bytes``: the on-disk queue's budget (see ``edgefleet.device._queue`` for the policy);
    - ``runner_factory(target, path) -> run(rows) -> logits rows``: a runtime other than
      ``edgefleet.runtimes`` (e.g. wasm under Pyodide);
    - ``threads``: intra-op threads of the runtimes it loads (default: each runtime's own; the native
      runtime's is the physical cores; outputs do not depend on it);
    - ``rotate_after_s``: the device token is swapped for a new one once half its life has passed, and
      at the latest this long after it was issued (:func:`~edgefleet.device._identity.rotation_due`);
    - ``clock``: seconds since the epoch (tests pass a fake one).
    """

    def __init__(self, bundle: str | os.PathLike, state_dir: str | os.PathLike, *, transport=None,
                 enrollment_token: str = "", trusted_key: bytes | str | None = None, window_size: int = 100,
                 window_seconds: float = 60.0, latency_budget_ms: float | None = None,
                 queue_bytes: int = 256 * 1024, runner_factory=None, clock=time.time, hardware: str = "",
                 threads: int | None = None, allow_unsigned: bool = False, rotate_after_s: float = 7 * 86400):
        if trusted_key is None and not allow_unsigned:
            raise ConfigError("Device: trusted_key is required (the public key every bundle must be signed with); "
                              "pass allow_unsigned=True to run bundles nobody vouches for")
        self.state = Path(state_dir)
        (self.state / "bundles").mkdir(parents=True, exist_ok=True)
        self.transport = transport
        self.enrollment_token = enrollment_token
        self.trusted_key = trusted_key
        self.allow_unsigned = allow_unsigned
        self.rotate_after_s = rotate_after_s
        self.window_size, self.window_seconds = window_size, window_seconds
        self.latency_budget_ms = latency_budget_ms
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise DataError(f"threads must be a positive integer, got {threads!r}")
        self.threads = threads
        self.runner_factory = runner_factory
        self.clock = clock
        self.hardware = hardware
        self.queue = DiskQueue(self.state / "queue", queue_bytes)
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._recent: collections.OrderedDict[str, tuple] = collections.OrderedDict()
        self.cloud = CloudFallback()
        self.stats = collections.Counter()
        self.identity = self._load_json("identity.json") or {}
        if self.transport is not None and self.identity.get("device_token"):
            self.transport.token = self.identity["device_token"]
        self.policy: dict = self._load_json("policy.json") or {}
        self._artifact_override = self.policy.get("fallback_artifact", "")
        current = self._load_json("current.json")
        self._initial = Bundle.open(bundle)
        self.bundle = self._initial
        if current and current.get("digest") != self._initial.digest:
            try:
                self.bundle = self._open_verified(Path(current["path"]), current["digest"])
            except EdgefleetError:
                self.stats["current_pointer_invalid"] += 1  # serve the bundle we were given instead
        if self.bundle is self._initial:
            self._verify_signature(self._initial)
        self.engine = self._engine(self.bundle, self._artifact_override)
        self.engine.warm()
        self.shadow_engine: Engine | None = None
        self._window: Window | None = None
        self._pending_events: list[dict] = self._load_json("events.json") or []
        self._feedback: list[dict] = self._load_json("feedback.json") or []
        self._examples: list[dict] = []  # labelled examples waiting for delivery (opt-in; memory only)

    # -- state files ---------------------------------------------------------------------------
    def _load_json(self, name):
        try:
            return json.loads((self.state / name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @property
    def device_id(self) -> str:
        return self.identity.get("device_id", "")

    @property
    def model_version(self) -> str:
        return self.bundle.version

    @property
    def artifact(self) -> str:
        return self.engine.artifact

    # -- inference -----------------------------------------------------------------------------
    def _engine(self, bundle, prefer=""):
        return Engine(bundle, prefer=prefer, runner_factory=self.runner_factory,
                      latency_budget_ms=self.latency_budget_ms, threads=self.threads)

    def _prepare(self, x):
        """(model-input rows, flattened rows for the projections), applying the manifest's preprocessing.
        Integer or named inputs (``{"input_ids": ..., "attention_mask": ...}``) pass through unchanged,
        in the manifest's dtypes; their projections are of the outputs (``None`` here)."""
        specs = self.bundle.manifest["inputs"]
        pre = specs[0].get("preprocessing", {})
        try:
            import numpy as np
        except ImportError:
            np = None
        if isinstance(x, dict) or len(specs) > 1 or specs[0]["dtype"] != "float32":
            return self._prepare_named(x if isinstance(x, dict) else {specs[0]["name"]: x}, specs, np), None
        if np is not None and not isinstance(x, list):
            arr = np.asarray(x, dtype=np.float32)
            if arr.ndim == 1:
                arr = arr[None, :]
            arr = arr * np.float32(pre.get("scale", 1.0))
            arr = (arr - np.asarray(pre.get("mean", 0.0), np.float32)) / np.asarray(pre.get("std", 1.0), np.float32)
            return arr, arr.reshape(len(arr), -1)
        rows = [x] if x and not isinstance(x[0], (list, tuple)) else x
        scale, mean, std = pre.get("scale", 1.0), pre.get("mean", 0.0), pre.get("std", 1.0)
        out = []
        for row in rows:
            means = mean if isinstance(mean, list) else [mean] * len(row)
            stds = std if isinstance(std, list) else [std] * len(row)
            out.append([(v * scale - m) / s for v, m, s in zip(row, means, stds)])
        return out, out

    @staticmethod
    def _prepare_named(feeds: dict, specs: list, np) -> dict:
        missing = [s["name"] for s in specs if s["name"] not in feeds]
        unknown = sorted(set(feeds) - {s["name"] for s in specs})
        if missing or unknown:
            raise DataError(f"predict: the model takes inputs {[s['name'] for s in specs]}; missing {missing}, "
                            f"unknown {unknown}")
        out = {}
        for s in specs:
            value = feeds[s["name"]]
            if np is not None:
                arr = np.asarray(value)
                if arr.dtype.kind not in "iub" and s["dtype"].startswith("int"):
                    raise DataError(f"predict: input {s['name']!r} expects {s['dtype']} values, got {arr.dtype}")
                arr = arr.astype(s["dtype"])
                value = arr[None] if arr.ndim == len(s["shape"]) - 1 else arr
            out[s["name"]] = value
        return out

    def _projections(self, flat, n: int) -> list[list[float]] | list[None]:
        """Input projections of ``n`` rows, for a reference whose projection space is ``"input"`` (the
        window projects the model's output itself otherwise; named and integer inputs have no flat
        rows and their references always project the output)."""
        proj = self.bundle.manifest["monitoring"]["projection"]
        if projection_space(self.bundle.manifest["monitoring"]) != "input" or flat is None:
            return [None] * n
        proj = self.bundle.manifest["monitoring"]["projection"]
        if projection_space(self.bundle.manifest["monitoring"]) != "input":
            return [None] * len(flat)
        try:
            import numpy as np
            if isinstance(flat, np.ndarray):
                z = (flat - np.asarray(proj["mean"], np.float32)) @ np.asarray(proj["components"], np.float32).T
                return z.tolist()
        except ImportError:
            pass
        return [monitoring.project(row, proj["mean"], proj["components"]) for row in flat]

    def predict(self, x) -> list[Prediction]:
        """Predict a batch (rows of raw inputs; one row is accepted too). Never waits on the network,
        except for the cloud fallback of a cohort that opted in (bounded by its deadline)."""
        with self._lock:
            rows, flat = self._prepare(x)
            if len(next(iter(rows.values())) if isinstance(rows, dict) else rows) == 0:
                raise DataError("predict: empty batch")
            logits, artifact, latency_ms, errors = self.engine.run(rows)
            shadow_rows = None
            if self.shadow_engine is not None:
                try:
                    shadow_rows = self.shadow_engine.run(rows)[0]
                except EdgefleetError:
                    self.stats["shadow_failed"] += 1
            if hasattr(logits, "reshape"):
                logits = logits.reshape(len(logits), -1)
            if hasattr(shadow_rows, "reshape"):
                shadow_rows = shadow_rows.reshape(len(shadow_rows), -1)
            n = len(logits)
            zs = self._projections(flat, n)
            window = self._current_window(artifact)
            for kind in errors:
                window.error(kind)
                self.stats[kind] += 1
            per_row = latency_ms / n
            logits = logits.tolist() if hasattr(logits, "tolist") else logits
            remedy = self.policy.get("remedy") or {}
            bias = remedy.get("logit_bias") or []
            temperature = self.bundle.manifest["monitoring"]["temperature"]
            served = []
            for i, (row, z) in enumerate(zip(logits, zs)):
                cls, conf = window.observe(row, z, per_row)  # the window sees the model's own answer
                if shadow_rows is not None:
                    window.shadow(summarize(window.ref, list(shadow_rows[i]))[0] == cls)
                if len(bias) == len(row):
                    cls, conf = biased_top(row, bias, temperature)
                served.append((cls, conf, artifact, list(row)))
            cloud = self.cloud.answer(self.transport, remedy, rows, [c for _, c, _, _ in served], self.bundle.version)
            for i, row in cloud.items():
                served[i] = (*biased_top(row, [0.0] * len(row), temperature), "cloud", list(row))
            out = []
            revision = self.policy.get("revision", 0)
            for cls, conf, source, output in served:
                pid = uuid.uuid4().hex
                self._recent[pid] = (cls, self.bundle.version, revision, source)
                out.append(Prediction(pid, cls, conf, self.bundle.version, source, output))
            while len(self._recent) > _RECENT_PREDICTIONS:
                self._recent.popitem(last=False)
            self.stats["predictions"] += len(out)
            if window.count >= self.window_size or self.clock() * 1000 - window.data["start_ms"] >= self.window_seconds * 1000:
                self._close_window()
            return out

    def _current_window(self, artifact: str) -> Window:
        w = self._window
        shadow = self.shadow_engine.bundle.version if self.shadow_engine else ""
        if w is not None and (w.data["model_version"], w.data["artifact"], w.data["shadow_version"]) != (
                self.bundle.version, artifact, shadow):
            self._close_window()
            w = None
        if w is None:
            w = self._window = Window(self.bundle.manifest["monitoring"], self.bundle.version, artifact,
                                      now_ms=int(self.clock() * 1000), shadow_version=shadow)
        return w

    def _close_window(self) -> None:
        if self._window is not None and self._window.count:
            self.queue.put(self._window.close(int(self.clock() * 1000)))
            self.stats["windows"] += 1
        self._window = None

    def flush_window(self) -> None:
        """Close the open window now (it joins the delivery queue)."""
        with self._lock:
            self._close_window()

    # -- feedback ------------------------------------------------------------------------------
    def feedback(self, prediction_id: str, label: int, *, example=None) -> None:
        """A delayed label for an earlier prediction; delivered on the next :meth:`sync`. ``example``
        (the prediction's input) is kept for adaptation only when the cohort's policy allows labelled
        examples to leave the device, and only up to its cap; otherwise it is not kept at all."""
        with self._lock:
            found = self._recent.get(prediction_id)
            if found is None:
                raise DataError(f"feedback: unknown or expired prediction id {prediction_id!r}")
            remedy = self.policy.get("remedy") or {}
            if example is not None and remedy.get("examples_allowed") and \
                    len(self._examples) + self.stats["examples_sent"] < remedy.get("max_examples", 0):
                rows, _ = self._prepare(example)
                row = rows[0]
                spec = self.bundle.manifest["inputs"][0]
                values = row.reshape(-1).tolist() if hasattr(row, "reshape") else list(row)
                self._examples.append({"prediction_id": prediction_id, "values": values,
                                       "shape": [int(d) for d in spec["shape"][1:]], "dtype": spec["dtype"],
                                       "label": int(label), "model_version": found[1]})
            self._feedback.append({"prediction_id": prediction_id, "label": int(label), "predicted": found[0],
                                   "model_version": found[1], "policy_revision": found[2], "artifact": found[3]})
            if len(self._feedback) > _FEEDBACK_CAP:
                self.stats["feedback_dropped"] += len(self._feedback) - _FEEDBACK_CAP
                del self._feedback[:-_FEEDBACK_CAP]
            _write_json(self.state / "feedback.json", self._feedback)

    # -- coordinator ---------------------------------------------------------------------------
    def _event(self, kind: str, detail: str, digest: str = "") -> None:
        self._pending_events.append({"kind": kind, "detail": detail, "digest": digest})
        _write_json(self.state / "events.json", self._pending_events[-1000:])

    def sync(self, *, close_window: bool = False) -> dict:
        """Enrol if needed, deliver events, windows and labels, then fetch and apply the policy.
        Offline is not an error: the data stays queued and the result says ``online: False``."""
        if self.transport is None:
            return {"online": False, "reason": "no transport"}
        with self._lock:
            w = self._window
            if w is not None and (close_window or self.clock() * 1000 - w.data["start_ms"] >= self.window_seconds * 1000):
                self._close_window()
        with self._sync_lock:
            result = {"online": True, "delivered": 0, "rejected": 0, "policy_applied": False}
            try:
                self._enroll()
                self._send_events()
                result["delivered"], result["rejected"] = self._deliver()
                self._send_feedback()
                result["policy_applied"] = self.apply_policy(self.transport.get_policy())
            except Offline as e:
                result.update(online=False, reason=str(e))
            return result

    def follow_policy(self, stop: threading.Event, *, timeout_s: float = 60.0) -> int:
        """Apply each policy the coordinator streams (WatchPolicy) until ``stop`` is set or the watch
        ends after ``timeout_s``; returns how many policies were applied. For a device thread; the
        transport must offer ``watch_policy`` (gRPC). Offline ends the watch (call again later)."""
        applied = 0
        with self._sync_lock:
            self._enroll()
        for policy in self.transport.watch_policy(self.policy.get("revision", 0), timeout_s):
            with self._sync_lock:
                if self.apply_policy(policy):
                    applied += 1
            if stop.is_set():
                break
        return applied

    def _enroll(self) -> None:
        if self.identity.get("device_token"):
            self._rotate_if_due()
            return
        if not self.enrollment_token:
            raise Rejected("UNAUTHENTICATED", "device is not enrolled and has no enrollment token")
        enrolled = dict(self.transport.enroll(self.enrollment_token, self.hardware))
        expires_ms = enrolled.pop("expires_ms", 0)
        self.identity = {**enrolled, "token_issued_ms": int(self.clock() * 1000), "token_expires_ms": expires_ms}
        _write_json(self.state / "identity.json", self.identity)
        self.transport.token = self.identity["device_token"]

    def _rotate_if_due(self) -> None:
        """Swap the device token for a new one when :func:`rotation_due` says so (tokens expire on the
        coordinator). The new token is on disk before it is used; the old one stops working at once."""
        now = int(self.clock() * 1000)
        self.identity.setdefault("token_issued_ms", now)
        if not rotation_due(self.identity, now, self.rotate_after_s) or not hasattr(self.transport, "rotate_token"):
            return
        fresh = self.transport.rotate_token()
        self.identity = {**self.identity, "device_token": fresh["device_token"], "token_issued_ms": now,
                         "token_expires_ms": fresh["expires_ms"]}
        _write_json(self.state / "identity.json", self.identity)
        self.transport.token = fresh["device_token"]
        self.stats["token_rotations"] += 1

    def _send_events(self) -> None:
        while self._pending_events:
            e = self._pending_events[0]
            self.transport.event(e["kind"], e["detail"], e["digest"])
            self._pending_events.pop(0)
            _write_json(self.state / "events.json", self._pending_events)

    def _deliver(self) -> tuple[int, int]:
        delivered = rejected = 0
        for _ in range(100000):  # bounded: each round removes windows or stops
            batch = self.queue.take(_BATCH)
            if not batch:
                break
            names = [n for n, _ in batch]
            try:
                acked = set(self.transport.report([w for _, w in batch]))
            except Offline:
                self.queue.release(names)
                raise
            except Rejected as e:
                # refused as a whole: keep the windows aside (never silently dropped) and say so
                dead = self.state / "rejected"
                dead.mkdir(exist_ok=True)
                for name, w in batch:
                    _write_json(dead / name, {"error": str(e), "window": w})
                self.queue.ack(names)
                rejected += len(batch)
                self.stats["windows_rejected"] += len(batch)
                continue
            done = [n for n, w in batch if w["report_id"] in acked]
            self.queue.ack(done)
            self.queue.release([n for n in names if n not in done])
            delivered += len(done)
            if len(done) < len(names):
                break
        self.stats["windows_delivered"] += delivered
        return delivered, rejected

    def _send_examples(self) -> None:
        with self._lock:
            examples, self._examples = self._examples, []
        if not examples or not hasattr(self.transport, "submit_examples"):
            return
        try:
            self.stats["examples_sent"] += self.transport.submit_examples(examples)
            self.stats["raw_bytes_sent"] += sum(4 * len(e["values"]) for e in examples)
        except Rejected as e:  # not allowed (any more), or over the cap: the examples are dropped here
            self.stats["examples_rejected"] += len(examples)
            self._event("examples_rejected", str(e))
        except Offline:
            with self._lock:
                self._examples = examples + self._examples
            raise

    def _send_feedback(self) -> None:
        self._send_examples()
        with self._lock:
            labels = list(self._feedback)
        if not labels:
            return
        try:
            self.transport.feedback(labels)
        except Rejected as e:
            self.stats["feedback_rejected"] += len(labels)
            self._event("feedback_rejected", str(e))
        with self._lock:
            del self._feedback[:len(labels)]
            _write_json(self.state / "feedback.json", self._feedback)

    # -- policy --------------------------------------------------------------------------------
    def apply_policy(self, policy: dict) -> bool:
        """Switch version or artifact as the policy says; True when something changed."""
        target, artifact = choose(policy, self.device_id)
        changed = False
        if target is not None and target["digest"] != self.bundle.digest:
            changed |= self._switch_bundle(target)
        if artifact != self._artifact_override:
            if artifact and artifact not in self.bundle.targets:
                self._event("policy_unusable", f"artifact {artifact} is not in bundle {self.bundle.version}")
            else:
                with self._lock:
                    self._close_window()
                    self._artifact_override = artifact
                    engine = self._engine(self.bundle, artifact)
                    engine.warm()
                    self.engine = engine
                changed = True
        shadow = policy.get("shadow") or {}
        current_shadow = self.shadow_engine.bundle.digest if self.shadow_engine else ""
        if shadow.get("digest", "") != current_shadow:
            changed |= self._switch_shadow(shadow)
        self.policy = policy
        _write_json(self.state / "policy.json", policy)
        return changed

    def _verify_signature(self, bundle: Bundle) -> None:
        if self.trusted_key is not None:
            bundle.verify_signature(self.trusted_key)
        # else allow_unsigned: no signature check (e.g. a browser build without the crypto library)

    def _open_verified(self, path: Path, digest: str) -> Bundle:
        bundle = Bundle.open(path)
        if bundle.digest != digest:
            raise BundleError(f"{path}: digest {bundle.digest[:16]} is not the expected {digest[:16]}")
        self._verify_signature(bundle)
        return bundle

    def _obtain(self, target: dict) -> Bundle:
        """The bundle for ``target``, from the local cache or fetched, verified before use."""
        if target["digest"] == self._initial.digest:
            return self._initial  # e.g. a rollback to the bundle this device started with
        final = self.state / "bundles" / target["digest"]
        if final.is_dir():
            return self._open_verified(final, target["digest"])
        archive, stated = self.transport.fetch_bundle(target["digest"])
        if hashlib.sha256(archive).hexdigest() != stated:
            raise BundleError(f"bundle {target['version']}: archive sha256 does not match the coordinator's")
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.state / "bundles"))
        try:
            (staging / "archive").write_bytes(archive)
            bundle = unpack(staging / "archive", staging / "b")
            if bundle.digest != target["digest"] or bundle.version != target["version"]:
                raise BundleError(f"bundle {target['version']}: got digest {bundle.digest[:16]} version "
                                  f"{bundle.version}, policy names {target['digest'][:16]} {target['version']}")
            self._verify_signature(bundle)
            os.replace(staging / "b", final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self._open_verified(final, target["digest"])

    def _switch_bundle(self, target: dict) -> bool:
        try:
            bundle = self._obtain(target)
            engine = self._engine(bundle, self._artifact_override if self._artifact_override in bundle.targets else "")
            engine.warm()
        except (BundleError, EdgefleetError) as e:
            if isinstance(e, Offline):
                raise
            self.stats["bundles_refused"] += 1
            self._event("bundle_refused", f"version {target['version']}: {e}", target["digest"])
            try:
                self._send_events()
            except Offline:
                pass
            return False
        with self._lock:
            self._close_window()
            _write_json(self.state / "current.json", {"digest": bundle.digest, "path": str(bundle.path)})
            previous = self.bundle
            self.bundle, self.engine = bundle, engine
        self.stats["bundle_swaps"] += 1
        self._prune_bundles(keep={bundle.digest, previous.digest})
        return True

    def _prune_bundles(self, keep: set[str]) -> None:
        """Fetched bundles other than the serving one, the one before it (a quick rollback) and the
        shadow are deleted, so the state directory does not grow with every rollout."""
        if self.shadow_engine is not None:
            keep = keep | {self.shadow_engine.bundle.digest}
        for path in (self.state / "bundles").iterdir():
            if path.is_dir() and not path.name.startswith(".") and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def _switch_shadow(self, shadow: dict) -> bool:
        if not shadow.get("digest"):
            with self._lock:
                self._close_window()
                self.shadow_engine = None
            return True
        try:
            engine = self._engine(self._obtain(shadow))
            engine.warm()
        except (BundleError, EdgefleetError) as e:
            if isinstance(e, Offline):
                raise
            self._event("bundle_refused", f"shadow {shadow.get('version')}: {e}", shadow.get("digest", ""))
            return False
        with self._lock:
            self._close_window()
            self.shadow_engine = engine
        return True

    def close(self) -> None:
        """Close the open window into the queue (nothing is lost) and the transport."""
        self.flush_window()
        if self.transport is not None and hasattr(self.transport, "close"):
            self.transport.close()
