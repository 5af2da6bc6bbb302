"""The shared store for several coordinator replicas: PostgreSQL through psycopg 3.

One connection per thread (psycopg connections are not for concurrent use); each store call is one
transaction, committed before it returns. Cohort updates take a row lock (``SELECT ... FOR UPDATE`` on
an advisory key) so that replicas never interleave a read-modify-write of the same cohort."""

from __future__ import annotations

import contextlib
import threading
import zlib

from ._sql import SqlStore, create_or_migrate
from .errors import StoreError

__all__ = ["PostgresStore"]


def _psycopg():
    try:
        import psycopg
    except ImportError as e:
        raise StoreError("the PostgreSQL store needs psycopg: pip install 'psycopg[binary]'") from e
    return psycopg


class _Cursor:
    """Rewrites ``?`` placeholders to psycopg's ``%s``."""

    def __init__(self, cur):
        self._cur = cur

    def execute(self, sql, params=()):
        return self._cur.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql, rows):
        return self._cur.executemany(sql.replace("?", "%s"), rows)

    def __getattr__(self, name):
        return getattr(self._cur, name)


class PostgresStore(SqlStore):
    _SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        self._local = threading.local()
        self._all: list = []
        self._all_lock = threading.Lock()
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(4242)")  # replicas may start together
            cur.execute("SELECT to_regclass('devices') IS NOT NULL")
            if not create and not cur.fetchone()[0]:
                raise StoreError("postgres store: the database holds no edgefleet tables; if this is a new "
                                 "coordinator pass --init to create them (a restart must find its state)")
            create_or_migrate(cur, "BIGSERIAL PRIMARY KEY", "BYTEA", self._columns, "postgres store")

    @staticmethod
    def _columns(cur, table):
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                    " AND table_name = ?", (table,))
        return {row[0] for row in cur.fetchall()}

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            psycopg = _psycopg()
            try:
                conn = psycopg.connect(self.url, connect_timeout=10)
            except psycopg.Error as e:
                raise StoreError(f"postgres store: cannot connect ({e})") from e
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self):
        psycopg = _psycopg()
        conn = self._conn()
        try:
            with conn.transaction():
                with conn.cursor() as cur:
                    yield _Cursor(cur)
        except psycopg.Error as e:
            if conn.broken:
                self._local.conn = None
            raise StoreError(f"postgres store: {type(e).__name__}: {e}") from e

    @contextlib.contextmanager
    def exclusive(self, name):
        key = zlib.crc32(f"exclusive:{name}".encode())
        with self._tx() as cur:
            cur.execute("SELECT pg_try_advisory_lock(?)", (key,))  # session-level: outlives the transaction
            acquired = bool(cur.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                with self._tx() as cur:
                    cur.execute("SELECT pg_advisory_unlock(?)", (key,))

    def _lock_cohort(self, cur, cohort):
        cur.execute("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(cohort.encode()),))
        # revisions are global: serialise every cohort update, not only this cohort's
        cur.execute("SELECT pg_advisory_xact_lock(4243)")

    def _insert_windows(self, cur, rows):
        # one multi-row statement: one round trip per report, whatever its size
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
        cur.execute("INSERT INTO windows (device_id, report_id, cohort, model_version, artifact, n, received_ms,"
                    f" payload) VALUES {values} ON CONFLICT (device_id, report_id) DO NOTHING",
                    [v for row in rows for v in row])
        return max(cur.rowcount, 0)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    def __repr__(self) -> str:
        return "PostgresStore(...)"
