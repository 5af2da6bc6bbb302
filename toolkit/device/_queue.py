"""A bounded on-disk queue of closed telemetry windows (pure Python, crash-safe).

One JSON file per window, written to a temporary name and renamed into place, so a crash leaves
either the whole window or none of it. Files are named by a sequence number: delivery is oldest first.

**Compaction policy** (what keeps the queue inside its byte budget while offline): when the files
exceed ``budget_bytes``, the two oldest adjacent windows with the same model version and artifact are
merged into one (counts add bin by bin, the time span covers both, ``merged`` counts the originals),
repeatedly, until the queue fits. Windows are never dropped: only time resolution is lost. Windows
handed out for delivery and not yet acknowledged are never merged (their ids may already be stored).
A merged window lists the ids it absorbed; on start-up any file whose id was absorbed is deleted, so
a crash between writing the merge and deleting its inputs cannot count anything twice. Each
(model version, artifact) pair needs at least one window, so the budget can be exceeded only when the
queue holds more distinct pairs than fit (``over_budget`` reports it).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from edgefleet.telemetry import merge

__all__ = ["DiskQueue"]


class DiskQueue:
    def __init__(self, directory: str | os.PathLike, budget_bytes: int = 256 * 1024, *, fsync: bool = True):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.budget_bytes = budget_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        self.compactions = 0
        self._recover()
        # name -> size, oldest first (names are zero-padded sequence numbers, so insertion order is age)
        self._files = {n: (self.dir / n).stat().st_size for n in self._scan()}
        names = list(self._files)
        self._next = int(names[-1].split(".")[0]) + 1 if names else 0

    # -- files ---------------------------------------------------------------------------------
    def _scan(self) -> list[str]:
        return sorted(n for n in os.listdir(self.dir) if n.endswith(".json") and not n.startswith("."))

    def _read(self, name: str) -> dict:
        with open(self.dir / name, "rb") as f:
            return json.loads(f.read())

    def _write(self, name: str, window: dict) -> None:
        tmp = self.dir / f".{name}.tmp"
        data = json.dumps(window, separators=(",", ":")).encode()
        with open(tmp, "wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.dir / name)
        if hasattr(self, "_files"):
            self._files[name] = len(data)

    def _recover(self) -> None:
        for n in os.listdir(self.dir):
            if n.endswith(".tmp"):
                os.unlink(self.dir / n)
        windows = {n: self._read(n) for n in self._scan()}
        absorbed = {rid for w in windows.values() for rid in w.get("absorbed", ())}
        for name, w in windows.items():
            if w["report_id"] in absorbed:
                os.unlink(self.dir / name)

    # -- public --------------------------------------------------------------------------------
    def put(self, window: dict) -> None:
        """Append a closed window durably, then compact if over budget."""
        with self._lock:
            name = f"{self._next:016d}.json"
            self._next += 1
            self._write(name, window)
            self._compact()

    def take(self, n: int) -> list[tuple[str, dict]]:
        """The ``n`` oldest windows not already handed out; they stay queued until :meth:`ack`."""
        with self._lock:
            out = []
            for name in self._files:
                if name in self._inflight:
                    continue
                out.append((name, self._read(name)))
                self._inflight.add(name)
                if len(out) >= n:
                    break
            return out

    def ack(self, names: list[str]) -> None:
        """Delivered: delete them."""
        with self._lock:
            for name in names:
                self._inflight.discard(name)
                self._files.pop(name, None)
                try:
                    os.unlink(self.dir / name)
                except FileNotFoundError:
                    pass

    def release(self, names: list[str]) -> None:
        """Not delivered (offline): keep them for the next attempt."""
        with self._lock:
            self._inflight.difference_update(names)

    def __len__(self) -> int:
        return len(self._files)

    def bytes(self) -> int:
        return sum(self._files.values())

    @property
    def over_budget(self) -> bool:
        return self.bytes() > self.budget_bytes

    def windows(self) -> list[dict]:
        return [self._read(n) for n in self._files]

    # -- compaction ----------------------------------------------------------------------------
    def _compact(self) -> None:
        while self.bytes() > self.budget_bytes:
            names = [n for n in self._files if n not in self._inflight]
            pair = None
            loaded = {}
            for a, b in zip(names, names[1:]):
                wa = loaded.get(a) or self._read(a)
                wb = self._read(b)
                loaded[b] = wb
                if (wa["model_version"], wa["artifact"]) == (wb["model_version"], wb["artifact"]):
                    pair = (a, wa, b, wb)
                    break
            if pair is None:
                return  # nothing mergeable: over budget (never drop)
            a, wa, b, wb = pair
            merged = merge(wa, wb)
            merged["absorbed"] = [wa["report_id"], wb["report_id"]]
            self._write(a, merged)          # atomic: either the pair or the merge plus b ...
            os.unlink(self.dir / b)         # ... and recovery deletes b if we die before this
            del self._files[b]
            self.compactions += 1
