"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL`` (a commit is on disk
before the call returns). One connection serialised by a lock: SQLite has one writer anyway, and a
batched report is a single transaction, so throughput comes from batching, not from parallel writers.

The file's identity (device and inode) is checked around every transaction: a database removed or
replaced while the coordinator runs (``rm fleet.db*``) would otherwise keep taking commits into an
unlinked inode, acknowledged and then lost. Once noticed, every call fails with StoreError (nothing
more is acknowledged) until the coordinator is restarted."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from ._sql import SqlStore, create_or_migrate
from .errors import StoreError

__all__ = ["SqliteStore"]


class SqliteStore(SqlStore):
    def __init__(self, path: str | Path, *, synchronous: str = "FULL", create: bool = True):
        self.path = Path(path)
        self._lost: str | None = None
        if not create and not self.path.exists():
            raise StoreError(f"sqlite store {self.path}: the database does not exist; if this is a new coordinator "
                             "pass --init to create an empty one (a restart must find its state)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as e:
            raise StoreError(f"sqlite store {self.path}: cannot open ({e})") from e
        self._lock = threading.Lock()
        self._identity = self._file_identity()
        with self._tx() as cur:
            create_or_migrate(cur, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", self._columns, f"sqlite store {self.path}")

    @staticmethod
    def _columns(cur, table):
        cur.execute(f"PRAGMA table_info({table})")
        return {row[1] for row in cur.fetchall()}

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _check_file(self) -> None:
        if self._lost is None and self._file_identity() != self._identity:
            self._lost = (f"sqlite store {self.path}: the database file was removed or replaced while the "
                          "coordinator was running; nothing more is acknowledged. Restore the file and restart")
        if self._lost is not None:
            raise StoreError(self._lost)

    @contextlib.contextmanager
    def _tx(self):
        with self._lock:
            self._check_file()
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
                self._check_file()   # committed into a file that is gone: do not acknowledge
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
