"""SQL shared by the SQLite and PostgreSQL stores. Statements use ``?`` placeholders; the
PostgreSQL backend rewrites them to ``%s``. A backend provides ``_tx()`` (a context manager yielding a
cursor inside one committed transaction), ``_columns()`` and the DDL differences (``auto``, ``blob``).

The schema has a version (table ``schema_version``). Opening a store made by an older coordinator
migrates it in place, in the same transaction that creates missing tables: each column added since
(:data:`ADDED_COLUMNS`) is added when absent, so running it twice changes nothing. A store written by
a newer coordinator is refused, naming both versions."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time

from .errors import StoreError

log = logging.getLogger("edgefleet.coordinator")

#: the schema this code reads and writes; version 1 is the first release's (no ``schema_version`` table)
SCHEMA_VERSION = 2

#: (table, column, declaration) added to tables that existed in schema 1; tables that are new since
#: then are created whole by :func:`schema`
ADDED_COLUMNS = (
    ("enrollment_tokens", "expires_ms", "BIGINT NOT NULL DEFAULT 0"),
    ("devices", "token_expires_ms", "BIGINT NOT NULL DEFAULT 0"),
    ("devices", "revoked_ms", "BIGINT NOT NULL DEFAULT 0"),
    ("labels", "policy_revision", "BIGINT NOT NULL DEFAULT 0"),
    ("labels", "artifact", "TEXT NOT NULL DEFAULT ''"),
)

_STATE_KEYS = ("baseline", "canary", "canary_share", "fallback", "fallback_artifact", "shadow", "reason",
               "previous", "ladder", "remedy", "privacy")


def now_ms() -> int:
    return int(time.time() * 1000)


def schema(auto: str, blob: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS enrollment_tokens (token_hash TEXT PRIMARY KEY, cohort TEXT NOT NULL,"
        " uses_left INTEGER NOT NULL, created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL DEFAULT 0)",
        # token_expires_ms / revoked_ms: 0 = never expires / not revoked
        "CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL,"
        " cohort TEXT NOT NULL, hardware TEXT NOT NULL, created_ms BIGINT NOT NULL,"
        " token_expires_ms BIGINT NOT NULL DEFAULT 0, revoked_ms BIGINT NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS windows (seq {auto}, device_id TEXT NOT NULL, report_id TEXT NOT NULL,"
        " cohort TEXT NOT NULL, model_version TEXT NOT NULL, artifact TEXT NOT NULL, n BIGINT NOT NULL,"
        " received_ms BIGINT NOT NULL, payload TEXT NOT NULL, UNIQUE (device_id, report_id))",
        "CREATE INDEX IF NOT EXISTS windows_by_cohort ON windows (cohort, model_version, seq)",
        f"CREATE TABLE IF NOT EXISTS bundles (digest TEXT PRIMARY KEY, version TEXT UNIQUE NOT NULL,"
        f" manifest TEXT NOT NULL, archive {blob} NOT NULL, created_ms BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS cohorts (cohort TEXT PRIMARY KEY, state TEXT NOT NULL, revision BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS decisions (id {auto}, cohort TEXT NOT NULL, kind TEXT NOT NULL,"
        " model_version TEXT NOT NULL, evidence TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS events (id {auto}, device_id TEXT NOT NULL, kind TEXT NOT NULL,"
        " detail TEXT NOT NULL, digest TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS labels (device_id TEXT NOT NULL, prediction_id TEXT NOT NULL,"
        " cohort TEXT NOT NULL, model_version TEXT NOT NULL, label INTEGER NOT NULL, predicted INTEGER NOT NULL,"
        " created_ms BIGINT NOT NULL, policy_revision BIGINT NOT NULL DEFAULT 0, artifact TEXT NOT NULL DEFAULT '',"
        " PRIMARY KEY (device_id, prediction_id))",
        f"CREATE TABLE IF NOT EXISTS scores (id {auto}, cohort TEXT NOT NULL, model_version TEXT NOT NULL,"
        " stats TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS scores_by_version ON scores (cohort, model_version, id)",
        f"CREATE TABLE IF NOT EXISTS measurements (id {auto}, cohort TEXT NOT NULL, decision_id BIGINT NOT NULL,"
        " phase TEXT NOT NULL, stats TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS audit (id {auto}, device_id TEXT NOT NULL, cohort TEXT NOT NULL,"
        " kind TEXT NOT NULL, bytes BIGINT NOT NULL, reason TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS examples (id {auto}, device_id TEXT NOT NULL, cohort TEXT NOT NULL,"
        f" model_version TEXT NOT NULL, label INTEGER NOT NULL, shape TEXT NOT NULL, data {blob} NOT NULL,"
        " created_ms BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS jobs (id {auto}, kind TEXT NOT NULL, cohort TEXT NOT NULL, payload TEXT NOT NULL,"
        " status TEXT NOT NULL, attempts INTEGER NOT NULL, worker TEXT NOT NULL, lease_until_ms BIGINT NOT NULL,"
        " result TEXT NOT NULL, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    ]


#: indexes on columns a schema-1 table gains only by migration: created after it
_INDEXES = ("CREATE INDEX IF NOT EXISTS labels_by_revision ON labels (cohort, policy_revision)",)


def create_or_migrate(cur, auto: str, blob: str, columns, where: str) -> None:
    """Bring the store ``cur`` is in to :data:`SCHEMA_VERSION` inside the caller's transaction.
    ``columns(cur, table)`` gives a table's column names; ``where`` names the store in messages."""
    fresh = not columns(cur, "devices")
    for stmt in schema(auto, blob):
        cur.execute(stmt)
    cur.execute("SELECT MAX(version) FROM schema_version")
    found = cur.fetchone()[0]
    version = SCHEMA_VERSION if fresh else (found or 1)
    if version > SCHEMA_VERSION:
        raise StoreError(f"{where}: the store has schema version {version}, newer than this coordinator's "
                         f"{SCHEMA_VERSION}; run the edgefleet release that wrote it (or a newer one)")
    added = []
    for table, column, declaration in ADDED_COLUMNS:
        if column not in columns(cur, table):
            cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            added.append(f"{table}.{column}")
    for stmt in _INDEXES:
        cur.execute(stmt)
    if found != SCHEMA_VERSION:
        cur.execute("DELETE FROM schema_version")
        cur.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    if not fresh and version < SCHEMA_VERSION:
        log.warning(json.dumps({"event": "store_migrated", "store": where, "from": version, "to": SCHEMA_VERSION,
                                "added_columns": added}))


class _Pending:
    __slots__ = ("work", "done", "value", "error", "wake")

    def __init__(self, work):
        self.work, self.done, self.value, self.error = work, False, None, None
        self.wake = threading.Event()   # set when its round committed, or when it is to lead the next round

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


class GroupCommit:
    """Concurrent small writes share one transaction (and one fsync): reports (``ingest_windows``)
    and audit rows (``add_audit``, one per admitted Predict call) alike.

    A caller submits ``work(cursor) -> value``. No thread of its own: the first caller that finds no
    commit running becomes the leader, takes every request queued so far, runs them in one
    transaction and wakes their callers with their own values; callers that arrive meanwhile queue
    for the next round, whose leader is the first of them (woken alone: the others sleep on). Each
    caller still returns only after the transaction holding its rows committed (the durability
    contract is unchanged). If a shared transaction fails, each request is retried alone, so one bad
    request fails only itself.
    """

    def __init__(self, store):
        self._store = store
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._busy = False
        self.rounds = 0   # transactions committed (a measure of the sharing)

    def submit(self, work):
        item = _Pending(work)
        with self._lock:
            self._pending.append(item)
            lead, self._busy = not self._busy, True
        if not lead:
            item.wake.wait()
            if item.done:
                return item.result()
        with self._lock:   # leading this round: everything queued so far, this caller's request included
            batch, self._pending = self._pending, []
        try:
            self._commit(batch)
        finally:
            for it in batch:   # interrupted mid-commit: nobody may take silence for an acknowledgement
                if not it.done:
                    it.error, it.done = StoreError("the shared commit was interrupted; retry"), True
            with self._lock:
                leader = self._pending[0] if self._pending else None
                self._busy = leader is not None
            for it in batch:
                it.wake.set()
            if leader is not None:
                leader.wake.set()
        return item.result()

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self._store._tx() as cur:
                values = [it.work(cur) for it in batch]
            self.rounds += 1
        except Exception as e:
            if len(batch) > 1:
                for it in batch:
                    self._commit([it])
                return
            batch[0].error, batch[0].done = e, True
            return
        for it, value in zip(batch, values):
            it.value, it.done = value, True


class SqlStore:
    """The statements; subclasses own connections and transactions."""

    #: appended to the job-claim SELECT: PostgreSQL's "FOR UPDATE SKIP LOCKED" lets workers on many
    #: machines take different jobs at once; SQLite's write transaction already serialises them
    _SKIP_LOCKED = ""

    def _tx(self):  # pragma: no cover - provided by the backend
        raise NotImplementedError

    @staticmethod
    def _columns(cur, table: str) -> set[str]:  # pragma: no cover - provided by the backend
        """The column names of ``table`` (empty when it does not exist)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def exclusive(self, name: str):
        """Yield True when this caller may run ``name`` (e.g. the policy evaluation) alone across
        replicas; False when another replica holds it. One process per SQLite file needs no lock."""
        yield True

    def _lock_cohort(self, cur, cohort: str) -> None:
        """Serialise read-modify-write of one cohort's state across replicas (no-op where the
        transaction already holds the write lock)."""

    # -- enrollment and devices ----------------------------------------------------------------
    def create_enrollment_token(self, token_hash, cohort, uses, expires_ms=0):
        with self._tx() as cur:
            cur.execute("INSERT INTO enrollment_tokens (token_hash, cohort, uses_left, created_ms, expires_ms)"
                        " VALUES (?, ?, ?, ?, ?)", (token_hash, cohort, uses, now_ms(), expires_ms))

    def consume_enrollment_token(self, token_hash):
        """The token's cohort, using one of its uses; None when unknown, used up or expired."""
        with self._tx() as cur:
            cur.execute("UPDATE enrollment_tokens SET uses_left = uses_left - 1 WHERE token_hash = ? AND uses_left > 0"
                        " AND (expires_ms = 0 OR expires_ms > ?)", (token_hash, now_ms()))
            if cur.rowcount != 1:
                return None
            cur.execute("SELECT cohort FROM enrollment_tokens WHERE token_hash = ?", (token_hash,))
            return cur.fetchone()[0]

    def add_device(self, device_id, token_hash, cohort, hardware, token_expires_ms=0):
        with self._tx() as cur:
            cur.execute("INSERT INTO devices (device_id, token_hash, cohort, hardware, created_ms, token_expires_ms)"
                        " VALUES (?, ?, ?, ?, ?, ?)", (device_id, token_hash, cohort, hardware, now_ms(), token_expires_ms))

    def device_auth(self, token_hash):
        """(device_id, cohort, token_expires_ms, revoked_ms) of a token, or None."""
        with self._tx() as cur:
            cur.execute("SELECT device_id, cohort, token_expires_ms, revoked_ms FROM devices WHERE token_hash = ?",
                        (token_hash,))
            row = cur.fetchone()
        return tuple(row) if row else None

    def rotate_device_token(self, device_id, old_hash, new_hash, token_expires_ms):
        """Replace a device's token (only while ``old_hash`` is current and the device not revoked)."""
        with self._tx() as cur:
            cur.execute("UPDATE devices SET token_hash = ?, token_expires_ms = ? WHERE device_id = ? AND token_hash = ?"
                        " AND revoked_ms = 0", (new_hash, token_expires_ms, device_id, old_hash))
            return cur.rowcount == 1

    def revoke_device(self, device_id):
        with self._tx() as cur:
            cur.execute("UPDATE devices SET revoked_ms = ? WHERE device_id = ? AND revoked_ms = 0", (now_ms(), device_id))
            changed = cur.rowcount == 1
            cur.execute("SELECT COUNT(*) FROM devices WHERE device_id = ?", (device_id,))
            return changed, cur.fetchone()[0] == 1

    def device_by_token(self, token_hash):
        with self._tx() as cur:
            cur.execute("SELECT device_id, cohort FROM devices WHERE token_hash = ?", (token_hash,))
            row = cur.fetchone()
        return (row[0], row[1]) if row else None

    def set_device_cohort(self, device_id, cohort):
        with self._tx() as cur:
            cur.execute("UPDATE devices SET cohort = ? WHERE device_id = ?", (cohort, device_id))
            return cur.rowcount == 1

    def list_devices(self):
        with self._tx() as cur:
            cur.execute("SELECT device_id, cohort, hardware, created_ms FROM devices ORDER BY created_ms, device_id")
            return [dict(zip(("device_id", "cohort", "hardware", "created_ms"), r)) for r in cur.fetchall()]

    def count_devices(self):
        with self._tx() as cur:
            cur.execute("SELECT COUNT(*) FROM devices")
            return cur.fetchone()[0]

    # -- telemetry -----------------------------------------------------------------------------
    def ingest_windows(self, device_id, cohort, windows):
        """Store the windows in one transaction; return how many were new (the rest are replays)."""
        received = now_ms()
        rows = [(device_id, w["report_id"], cohort, w["model_version"], w["artifact"], w["count"], received,
                 json.dumps(w, separators=(",", ":"))) for w in windows]
        return self._group_commit().submit(lambda cur: self._insert_windows(cur, rows))

    def _group_commit(self) -> GroupCommit:
        committer = getattr(self, "_committer", None)
        if committer is None:
            committer = self.__dict__.setdefault("_committer", GroupCommit(self))
        return committer

    def _insert_windows(self, cur, rows) -> int:
        new = 0
        for row in rows:
            cur.execute("INSERT INTO windows (device_id, report_id, cohort, model_version, artifact, n, received_ms,"
                        " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, report_id) DO NOTHING", row)
            new += cur.rowcount
        return new

    def count_windows(self):
        with self._tx() as cur:
            cur.execute("SELECT COUNT(*) FROM windows")
            return cur.fetchone()[0]

    def window_ids(self):
        with self._tx() as cur:
            cur.execute("SELECT device_id, report_id FROM windows ORDER BY seq")
            return [(r[0], r[1]) for r in cur.fetchall()]

    def recent_windows(self, cohort, model_version, limit):
        with self._tx() as cur:
            cur.execute("SELECT device_id, payload, received_ms FROM windows WHERE cohort = ? AND model_version = ?"
                        " ORDER BY seq DESC LIMIT ?", (cohort, model_version, limit))
            rows = cur.fetchall()
        out = []
        for device_id, payload, received in reversed(rows):
            w = json.loads(payload)
            w["device_id"], w["received_ms"] = device_id, received
            out.append(w)
        return out

    def add_labels(self, device_id, cohort, labels):
        created = now_ms()
        with self._tx() as cur:
            new = 0
            for lab in labels:
                cur.execute("INSERT INTO labels (device_id, prediction_id, cohort, model_version, label, predicted,"
                            " created_ms, policy_revision, artifact) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                            " ON CONFLICT (device_id, prediction_id) DO NOTHING", (device_id, lab["prediction_id"], cohort,
                                                           lab["model_version"], lab["label"], lab["predicted"],
                                                           created, lab.get("policy_revision", 0),
                                                           lab.get("artifact", "")))
                new += cur.rowcount
            return new

    def label_stats(self, cohort, model_version):
        with self._tx() as cur:
            cur.execute("SELECT COUNT(*), COALESCE(SUM(CASE WHEN label = predicted THEN 1 ELSE 0 END), 0) FROM labels"
                        " WHERE cohort = ? AND model_version = ?", (cohort, model_version))
            n, correct = cur.fetchone()
        return int(n), int(correct)

    def label_stats_between(self, cohort, from_revision, to_revision=None, last=None, model_version=""):
        """(labels, correct) of predictions served under policy revisions in [from, to) (to: open), by
        ``model_version`` when given; only the ``last`` most recently received of them when given."""
        to = -1 if to_revision is None else to_revision
        with self._tx() as cur:
            cur.execute("SELECT COUNT(*), COALESCE(SUM(ok), 0) FROM (SELECT CASE WHEN label = predicted THEN 1 ELSE 0"
                        " END AS ok FROM labels WHERE cohort = ? AND policy_revision >= ? AND (? < 0 OR"
                        " policy_revision < ?) AND (? = '' OR model_version = ?) ORDER BY created_ms DESC,"
                        " policy_revision DESC LIMIT ?) AS recent",
                        (cohort, from_revision, to, to, model_version, model_version,
                         last if last is not None else 2 ** 62))
            n, correct = cur.fetchone()
        return int(n), int(correct)

    # -- bundles -------------------------------------------------------------------------------
    def put_bundle(self, digest, version, manifest, archive):
        with self._tx() as cur:
            cur.execute("INSERT INTO bundles VALUES (?, ?, ?, ?, ?)",
                        (digest, version, json.dumps(manifest), bytes(archive), now_ms()))

    def get_bundle(self, digest):
        with self._tx() as cur:
            cur.execute("SELECT manifest, archive FROM bundles WHERE digest = ?", (digest,))
            row = cur.fetchone()
        return (json.loads(row[0]), bytes(row[1])) if row else None

    def bundle_by_version(self, version):
        with self._tx() as cur:
            cur.execute("SELECT digest, manifest FROM bundles WHERE version = ?", (version,))
            row = cur.fetchone()
        return (row[0], json.loads(row[1])) if row else None

    # -- cohorts -------------------------------------------------------------------------------
    def get_cohort(self, cohort):
        with self._tx() as cur:
            cur.execute("SELECT state, revision FROM cohorts WHERE cohort = ?", (cohort,))
            row = cur.fetchone()
        return (json.loads(row[0]), int(row[1])) if row else ({}, 0)

    def update_cohort(self, cohort, changes):
        """Merge ``changes`` into the cohort's state (a value of None removes the key) and give it a
        new revision, greater than every revision in the store."""
        unknown = set(changes) - set(_STATE_KEYS)
        if unknown:
            raise ValueError(f"unknown cohort state keys {sorted(unknown)}")
        with self._tx() as cur:
            self._lock_cohort(cur, cohort)
            cur.execute("SELECT state FROM cohorts WHERE cohort = ?", (cohort,))
            row = cur.fetchone()
            state = json.loads(row[0]) if row else {}
            for key, value in changes.items():
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
            cur.execute("SELECT COALESCE(MAX(revision), 0) + 1 FROM cohorts")
            revision = int(cur.fetchone()[0])
            cur.execute("INSERT INTO cohorts VALUES (?, ?, ?) ON CONFLICT (cohort) DO UPDATE SET state = excluded.state,"
                        " revision = excluded.revision", (cohort, json.dumps(state, sort_keys=True), revision))
        return state, revision

    def list_cohorts(self):
        with self._tx() as cur:
            cur.execute("SELECT cohort FROM cohorts UNION SELECT cohort FROM devices ORDER BY 1")
            return [r[0] for r in cur.fetchall()]

    # -- decisions, events, scores -------------------------------------------------------------
    def add_decision(self, cohort, kind, model_version, evidence):
        with self._tx() as cur:
            cur.execute("INSERT INTO decisions (cohort, kind, model_version, evidence, created_ms) VALUES (?, ?, ?, ?, ?)"
                        " RETURNING id", (cohort, kind, model_version, json.dumps(evidence, sort_keys=True), now_ms()))
            return int(cur.fetchone()[0])

    def list_decisions(self, cohort=""):
        with self._tx() as cur:
            cur.execute("SELECT id, cohort, kind, model_version, evidence, created_ms FROM decisions"
                        " WHERE ? = '' OR cohort = ? ORDER BY id", (cohort, cohort))
            rows = cur.fetchall()
        return [{"id": r[0], "cohort": r[1], "kind": r[2], "model_version": r[3], "evidence": json.loads(r[4]),
                 "created_ms": r[5]} for r in rows]

    def add_event(self, device_id, kind, detail, digest):
        with self._tx() as cur:
            cur.execute("INSERT INTO events (device_id, kind, detail, digest, created_ms) VALUES (?, ?, ?, ?, ?)",
                        (device_id, kind, detail, digest, now_ms()))

    def list_events(self, device_id=""):
        with self._tx() as cur:
            cur.execute("SELECT device_id, kind, detail, digest, created_ms FROM events WHERE ? = '' OR device_id = ?"
                        " ORDER BY id", (device_id, device_id))
            return [dict(zip(("device_id", "kind", "detail", "digest", "created_ms"), r)) for r in cur.fetchall()]

    def add_score(self, cohort, model_version, stats):
        with self._tx() as cur:
            cur.execute("INSERT INTO scores (cohort, model_version, stats, created_ms) VALUES (?, ?, ?, ?)",
                        (cohort, model_version, json.dumps(stats, sort_keys=True), now_ms()))

    def add_measurement(self, cohort, decision_id, phase, stats):
        with self._tx() as cur:
            cur.execute("INSERT INTO measurements (cohort, decision_id, phase, stats, created_ms) VALUES (?, ?, ?, ?, ?)",
                        (cohort, decision_id, phase, json.dumps(stats, sort_keys=True), now_ms()))

    def list_measurements(self, cohort=""):
        with self._tx() as cur:
            cur.execute("SELECT cohort, decision_id, phase, stats, created_ms FROM measurements"
                        " WHERE ? = '' OR cohort = ? ORDER BY id", (cohort, cohort))
            return [{"cohort": r[0], "decision_id": int(r[1]), "phase": r[2], "stats": json.loads(r[3]),
                     "created_ms": int(r[4])} for r in cur.fetchall()]

    def add_audit(self, device_id, cohort, kind, nbytes, reason):
        """Committed before it returns, in a transaction shared with concurrent audit rows and reports
        (one per admitted Predict call: a synced transaction each would cap the call rate)."""
        row = (device_id, cohort, kind, nbytes, reason, now_ms())
        self._group_commit().submit(lambda cur: cur.execute(
            "INSERT INTO audit (device_id, cohort, kind, bytes, reason, created_ms) VALUES (?, ?, ?, ?, ?, ?)", row))

    def list_audit(self, cohort=""):
        with self._tx() as cur:
            cur.execute("SELECT device_id, cohort, kind, bytes, reason, created_ms FROM audit"
                        " WHERE ? = '' OR cohort = ? ORDER BY id", (cohort, cohort))
            return [dict(zip(("device_id", "cohort", "kind", "bytes", "reason", "created_ms"), r))
                    for r in cur.fetchall()]

    # -- labelled examples and adaptation jobs ------------------------------------------------------
    def add_examples(self, device_id, cohort, examples, cap):
        """Store examples ``{model_version, label, shape, data}`` unless the device would hold more
        than ``cap``; return how many were stored (all or none)."""
        created = now_ms()
        with self._tx() as cur:
            cur.execute("SELECT COUNT(*) FROM examples WHERE device_id = ?", (device_id,))
            if int(cur.fetchone()[0]) + len(examples) > cap:
                return 0
            for e in examples:
                cur.execute("INSERT INTO examples (device_id, cohort, model_version, label, shape, data, created_ms)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?)", (device_id, cohort, e["model_version"], e["label"],
                                                             json.dumps(e["shape"]), bytes(e["data"]), created))
            return len(examples)

    def list_examples(self, cohort):
        with self._tx() as cur:
            cur.execute("SELECT id, label, shape, data FROM examples WHERE cohort = ? ORDER BY id", (cohort,))
            return [{"id": int(r[0]), "label": int(r[1]), "shape": json.loads(r[2]), "data": bytes(r[3])}
                    for r in cur.fetchall()]

    def delete_examples(self, ids):
        with self._tx() as cur:
            for i in ids:
                cur.execute("DELETE FROM examples WHERE id = ?", (i,))

    def enqueue_job(self, kind, cohort, payload):
        now = now_ms()
        with self._tx() as cur:
            cur.execute("INSERT INTO jobs (kind, cohort, payload, status, attempts, worker, lease_until_ms, result,"
                        " created_ms, updated_ms) VALUES (?, ?, ?, 'queued', 0, '', 0, '{}', ?, ?) RETURNING id",
                        (kind, cohort, json.dumps(payload, sort_keys=True), now, now))
            return int(cur.fetchone()[0])

    _JOB_COLUMNS = ("id", "kind", "cohort", "payload", "status", "attempts", "worker", "lease_until_ms", "result")

    def _job(self, row):
        job = dict(zip(self._JOB_COLUMNS, row))
        job["payload"], job["result"] = json.loads(job["payload"]), json.loads(job["result"])
        return job

    _CLAIMABLE = ("SELECT id FROM jobs WHERE (status = 'queued' OR (status = 'running' AND lease_until_ms < ?))"
                  " AND attempts < ? ORDER BY id LIMIT 1")

    def claim_job(self, worker, lease_ms, max_attempts=3):
        """Take the oldest queued job, or a running one whose worker's lease ran out (it died): it runs
        again, with ``attempts`` + 1. None when there is nothing to do."""
        now = now_ms()
        with self._tx() as cur:
            cur.execute(self._CLAIMABLE + self._SKIP_LOCKED, (now, max_attempts))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = ?, lease_until_ms = ?,"
                        " updated_ms = ? WHERE id = ?", (worker, now + lease_ms, now, row[0]))
            cur.execute(f"SELECT {', '.join(self._JOB_COLUMNS)} FROM jobs WHERE id = ?", (row[0],))
            return self._job(cur.fetchone())

    def finish_job(self, job_id, worker, status, result):
        """Record the outcome, only if ``worker`` still holds the job; True when recorded."""
        with self._tx() as cur:
            cur.execute("UPDATE jobs SET status = ?, result = ?, updated_ms = ? WHERE id = ? AND worker = ?"
                        " AND status = 'running'", (status, json.dumps(result, sort_keys=True), now_ms(), job_id, worker))
            return cur.rowcount == 1

    def fail_exhausted_jobs(self, max_attempts=3):
        """Jobs whose last attempt died too: failed, with the reason."""
        with self._tx() as cur:
            cur.execute("UPDATE jobs SET status = 'failed', result = ?, updated_ms = ? WHERE status = 'running'"
                        " AND lease_until_ms < ? AND attempts >= ?",
                        (json.dumps({"reason": f"worker died {max_attempts} times"}), now_ms(), now_ms(), max_attempts))

    def list_jobs(self, cohort=""):
        with self._tx() as cur:
            cur.execute(f"SELECT {', '.join(self._JOB_COLUMNS)} FROM jobs WHERE ? = '' OR cohort = ? ORDER BY id",
                        (cohort, cohort))
            return [self._job(r) for r in cur.fetchall()]

    def last_score(self, cohort, model_version):
        """The newest score of ``model_version`` in ``cohort`` (one row, by index), or None."""
        with self._tx() as cur:
            cur.execute("SELECT model_version, stats, created_ms FROM scores WHERE cohort = ? AND model_version = ?"
                        " ORDER BY id DESC LIMIT 1", (cohort, model_version))
            r = cur.fetchone()
        return {"model_version": r[0], "stats": json.loads(r[1]), "created_ms": r[2]} if r else None

    def list_scores(self, cohort):
        with self._tx() as cur:
            cur.execute("SELECT model_version, stats, created_ms FROM scores WHERE cohort = ? ORDER BY id", (cohort,))
            return [{"model_version": r[0], "stats": json.loads(r[1]), "created_ms": r[2]} for r in cur.fetchall()]
