"""Cloud fallback: a heavier model answering the inputs a device is unsure about.

The model is the published bundle's ``teacher-fp32`` artifact when it has one (the uncompressed
teacher, exported as its own artifact), else its ``onnx-fp32`` artifact; it runs on the
coordinator's runtimes (``edgefleet.runtimes``). Calls are admitted per device by a token bucket
(``per_minute``, burst of one second's worth, at least 1), so one device cannot starve the others.

>>> bucket = TokenBucket(per_minute=60, clock=lambda: 0.0)
>>> bucket.take(1), bucket.take(1)
(True, False)
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

__all__ = ["CloudModels", "TokenBucket", "CLOUD_TARGETS", "MAX_ROWS"]

#: artifact targets that may answer Predict, best first
CLOUD_TARGETS = ("teacher-fp32", "onnx-fp32")
MAX_ROWS = 256


class TokenBucket:
    def __init__(self, per_minute: float, *, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.clock = clock
        self.at = clock()

    def take(self, n: int) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class CloudModels:
    """Loaded cloud models by version (a version's bundle never changes) and per-device buckets."""

    def __init__(self, store):
        self.store = store
        self._models: dict[str, tuple] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="edgefleet-cloud-")

    def admit(self, device_id: str, per_minute: float, rows: int) -> bool:
        with self._lock:
            bucket = self._buckets.get(device_id)
            if bucket is None or bucket.rate != per_minute / 60.0:
                bucket = self._buckets[device_id] = TokenBucket(per_minute)
            return bucket.take(1) if rows else True

    def model(self, version: str):
        """(run(array) -> logits array, "<version>/<target>", input shape without batch) for ``version``."""
        with self._lock:
            if version in self._models:
                return self._models[version]
        with self._loading:  # one loader at a time: concurrent first calls must not see a half-unpacked bundle
            with self._lock:
                if version in self._models:
                    return self._models[version]
            entry = self._load(version)
            with self._lock:
                self._models[version] = entry
            return entry

    def _load(self, version: str):
        from edgefleet import runtimes
        from edgefleet.bundle import unpack

        from .errors import NotFound
        found = self.store.bundle_by_version(version)
        if found is None:
            raise NotFound(f"version {version!r} is not published")
        digest, manifest = found
        targets = {a["target"] for a in manifest["artifacts"]}
        target = next((t for t in CLOUD_TARGETS if t in targets), None)
        if target is None:
            raise NotFound(f"bundle {version} has no cloud artifact (one of {', '.join(CLOUD_TARGETS)})")
        archive = Path(self._dir.name, f"{digest}.tar.gz")
        archive.write_bytes(self.store.get_bundle(digest)[1])
        bundle = unpack(archive, Path(self._dir.name, digest))
        name = next(n for n in runtimes.for_target(target) if runtimes.get(n).is_available())
        runtime = runtimes.load(name, bundle.artifact_path(target))
        output = runtime.output_names[0]
        return (lambda x: runtime.run(x)[output], f"{version}/{target}", tuple(manifest["inputs"][0]["shape"][1:]))

    def close(self) -> None:
        self._dir.cleanup()
