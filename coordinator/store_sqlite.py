"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL`` (a commit is on disk
before the call returns). One connection serialised by a lock: SQLite has one writer anyway, and a
batched report is a single transaction, so throughput comes from batching, not from parallel writers."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

from ._sql import SqlStore, schema
from .errors import StoreError

__all__ = ["SqliteStore"]


class SqliteStore(SqlStore):
    def __init__(self, path: str | Path, *, synchronous: str = "FULL"):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as e:
            raise StoreError(f"sqlite store {self.path}: cannot open ({e})") from e
        self._lock = threading.Lock()
        with self._tx() as cur:
            for stmt in schema("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"):
                cur.execute(stmt)

    @contextlib.contextmanager
    def _tx(self):
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback(cur)
                raise StoreError(f"sqlite store {self.path}: {e}") from e
            except BaseException:
                self._rollback(cur)
                raise
            finally:
                cur.close()

    @staticmethod
    def _rollback(cur) -> None:
        try:
            cur.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction open: BEGIN itself failed

    def _insert_windows(self, cur, rows):
        before = self._conn.total_changes
        cur.executemany("INSERT INTO windows (device_id, report_id, cohort, model_version, artifact, n, received_ms,"
                        " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, report_id) DO NOTHING", rows)
        return self._conn.total_changes - before

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"
