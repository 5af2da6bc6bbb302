"""Cloud fallback: a heavier model answering the inputs a device is unsure about.

The model is the published bundle's ``teacher-fp32`` artifact when it has one (the uncompressed
teacher, exported as its own artifact), else its ``onnx-fp32`` artifact; it runs on the
coordinator's runtimes (``edgefleet.runtimes``), one intra-op thread per call: concurrent calls
already run on the server's worker threads, and a thread pool per call would fight them for the
cores. Calls are admitted per device by a token bucket (:class:`~.throttle.RateLimit`:
``per_minute``, a burst of one second's worth, at least one call), so one device cannot starve the
others.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from .throttle import RateLimit

__all__ = ["CloudModels", "CLOUD_TARGETS", "MAX_ROWS"]

#: artifact targets that may answer Predict, best first
CLOUD_TARGETS = ("teacher-fp32", "onnx-fp32")
MAX_ROWS = 256


class CloudModels:
    """Loaded cloud models by version (a version's bundle never changes) and per-device buckets."""

    def __init__(self, store):
        self.store = store
        self._models: dict[str, tuple] = {}
        self._limits: dict[float, RateLimit] = {}   # per_minute -> that rate's bucket per device
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="edgefleet-cloud-")

    def admit(self, device_id: str, per_minute: float) -> bool:
        """Take one Predict call from the device's bucket at its cohort's ``per_minute``."""
        with self._lock:
            limit = self._limits.get(per_minute)
            if limit is None:
                if len(self._limits) > 64:   # rates an admin no longer uses
                    self._limits.clear()
                limit = self._limits[per_minute] = RateLimit(per_minute / 60.0, per_minute / 60.0)
        return limit.allow(device_id)

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
        runtime = runtimes.load(name, bundle.artifact_path(target), threads=1)
        output = runtime.output_names[0]
        return (lambda x: runtime.run(x)[output], f"{version}/{target}", tuple(manifest["inputs"][0]["shape"][1:]))

    def close(self) -> None:
        self._dir.cleanup()
