"""One store conformance suite, subclassed per backend (SQLite always; PostgreSQL where installed)."""

from __future__ import annotations

import threading

import pytest

from edgefleet.coordinator.store_sqlite import SqliteStore


def window(rid, version="1.0", n=3):
    return {"report_id": rid, "model_version": version, "artifact": "onnx-int8", "count": n, "start_ms": 0,
            "end_ms": 1, "class_counts": [n, 0], "confidence": [n], "projections": [], "latency": [],
            "errors": {}, "confidence_sum": 0.9 * n, "merged": 1, "shadow_version": "", "shadow_count": 0,
            "shadow_agree": 0}


def _old_schema(auto: str, blob: str) -> list[str]:
    """The DDL of the first release (schema 1): before token expiry and revocation, labels by policy
    revision and artifact, and the measurements, audit, examples, jobs and schema_version tables."""
    return [
        "CREATE TABLE enrollment_tokens (token_hash TEXT PRIMARY KEY, cohort TEXT NOT NULL,"
        " uses_left INTEGER NOT NULL, created_ms BIGINT NOT NULL)",
        "CREATE TABLE devices (device_id TEXT PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL,"
        " cohort TEXT NOT NULL, hardware TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        f"CREATE TABLE windows (seq {auto}, device_id TEXT NOT NULL, report_id TEXT NOT NULL,"
        " cohort TEXT NOT NULL, model_version TEXT NOT NULL, artifact TEXT NOT NULL, n BIGINT NOT NULL,"
        " received_ms BIGINT NOT NULL, payload TEXT NOT NULL, UNIQUE (device_id, report_id))",
        "CREATE INDEX windows_by_cohort ON windows (cohort, model_version, seq)",
        f"CREATE TABLE bundles (digest TEXT PRIMARY KEY, version TEXT UNIQUE NOT NULL,"
        f" manifest TEXT NOT NULL, archive {blob} NOT NULL, created_ms BIGINT NOT NULL)",
        "CREATE TABLE cohorts (cohort TEXT PRIMARY KEY, state TEXT NOT NULL, revision BIGINT NOT NULL)",
        f"CREATE TABLE decisions (id {auto}, cohort TEXT NOT NULL, kind TEXT NOT NULL,"
        " model_version TEXT NOT NULL, evidence TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        f"CREATE TABLE events (id {auto}, device_id TEXT NOT NULL, kind TEXT NOT NULL,"
        " detail TEXT NOT NULL, digest TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        "CREATE TABLE labels (device_id TEXT NOT NULL, prediction_id TEXT NOT NULL,"
        " cohort TEXT NOT NULL, model_version TEXT NOT NULL, label INTEGER NOT NULL, predicted INTEGER NOT NULL,"
        " created_ms BIGINT NOT NULL, PRIMARY KEY (device_id, prediction_id))",
        f"CREATE TABLE scores (id {auto}, cohort TEXT NOT NULL, model_version TEXT NOT NULL,"
        " stats TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        # what the first release had written
        "INSERT INTO enrollment_tokens VALUES ('enroll-hash', 'eu', 2, 1)",
        f"INSERT INTO devices VALUES ('d-old', '{_sha('old-device-token')}', 'eu', 'x86', 1)",
        "INSERT INTO labels VALUES ('d-old', 'p1', 'eu', '1.0', 3, 3, 1)",
        "INSERT INTO cohorts VALUES ('eu', '{\"reason\": \"old\"}', 7)",
    ]


def _on_threads(n: int, fn) -> list[Exception]:
    """Run ``fn(0) ... fn(n - 1)`` on n threads at once; the exceptions they raised."""
    errors = []

    def run(d):
        try:
            fn(d)
        except Exception as e:   # noqa: BLE001 - returned to the test
            errors.append(e)
    threads = [threading.Thread(target=run, args=(d,)) for d in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _sha(token: str) -> str:
    import hashlib
    return hashlib.sha256(token.encode()).hexdigest()


def _run_sql(url: str, statements: list[str]) -> None:
    """Statements run straight on the database behind ``url``, outside any edgefleet code."""
    if url.startswith("postgresql://"):
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            for stmt in statements:
                conn.execute(stmt)
        return
    import sqlite3
    conn = sqlite3.connect(url[len("sqlite://"):])
    with conn:
        for stmt in statements:
            conn.execute(stmt)
    conn.close()


class StoreContract:
    """Every backend must pass these. Subclasses provide the ``store`` fixture, and ``empty_url`` (a
    store URL where nothing exists yet) with the DDL types of their engine (``ddl_types``)."""

    def test_a_store_from_the_first_schema_is_migrated_in_place(self, empty_url, public_key):
        """``serve`` on a store made before token expiry, audit, jobs...: every column and table is
        added in place, old rows keep working (an old device calls with its old token), opening it
        again changes nothing, and a store from a newer schema is refused with both versions named."""
        import grpc

        from edgefleet.coordinator import Server, ServerConfig
        from edgefleet.coordinator._sql import ADDED_COLUMNS, SCHEMA_VERSION
        from edgefleet.coordinator.errors import StoreError
        from edgefleet.coordinator.store import open_store
        from edgefleet.proto import fleet_pb2 as pb
        from edgefleet.proto.fleet_pb2_grpc import FleetStub

        from bundle_factory import ADMIN
        _run_sql(empty_url, _old_schema(*self.ddl_types))
        store = open_store(empty_url, create=False)
        try:
            with store._tx() as cur:
                for table, column, _ in ADDED_COLUMNS:
                    assert column in store._columns(cur, table), (table, column)
                cur.execute("SELECT version FROM schema_version")
                assert [r[0] for r in cur.fetchall()] == [SCHEMA_VERSION]
            assert store.device_auth(_sha("old-device-token")) == ("d-old", "eu", 0, 0)  # never expires
            assert store.consume_enrollment_token("enroll-hash") == "eu"
            assert store.label_stats_between("eu", 0) == (1, 1)   # old labels count under revision 0
            store.add_labels("d-old", "eu", [{"prediction_id": "p2", "model_version": "1.0", "label": 1,
                                              "predicted": 2, "policy_revision": 8, "artifact": "onnx-fp32"}])
            assert store.label_stats_between("eu", 8) == (1, 0)
            store.add_audit("d-old", "eu", "predict_inputs", 256, "cloud fallback")
            assert [a["bytes"] for a in store.list_audit("eu")] == [256]
            assert store.enqueue_job("adapt", "eu", {}) >= 1
            _, revision = store.update_cohort("eu", {"reason": "new"})
            assert revision == 8
        finally:
            store.close()
        with Server(ServerConfig(store=empty_url, init=False, admin_token=ADMIN, trusted_key=public_key,
                                 evaluate_interval_s=None, http_port=None)) as srv:   # migrated again: nothing to do
            channel = grpc.insecure_channel(srv.grpc_target)
            policy = FleetStub(channel).GetPolicy(
                pb.PolicyRequest(), metadata=(("authorization", "Bearer old-device-token"),), timeout=10)
            assert policy.cohort == "eu" and policy.revision == 8
            channel.close()
        _run_sql(empty_url, ["UPDATE schema_version SET version = 99"])
        with pytest.raises(StoreError, match=f"schema version 99, newer than this coordinator's {SCHEMA_VERSION}"):
            open_store(empty_url, create=False)

    def test_enrollment_token_uses(self, store):
        store.create_enrollment_token("h1", "eu", 2)
        assert store.consume_enrollment_token("h1") == "eu"
        assert store.consume_enrollment_token("h1") == "eu"
        assert store.consume_enrollment_token("h1") is None
        assert store.consume_enrollment_token("nope") is None

    def test_devices(self, store):
        store.add_device("d1", "t1", "eu", "x86")
        assert store.device_by_token("t1") == ("d1", "eu")
        assert store.device_by_token("t2") is None
        assert store.set_device_cohort("d1", "us") and not store.set_device_cohort("zz", "us")
        assert store.device_by_token("t1") == ("d1", "us")
        assert [d["device_id"] for d in store.list_devices()] == ["d1"]

    def test_ingest_is_idempotent(self, store):
        assert store.ingest_windows("d1", "eu", [window("a"), window("b")]) == 2
        assert store.ingest_windows("d1", "eu", [window("a"), window("c")]) == 1
        assert store.ingest_windows("d2", "eu", [window("a")]) == 1  # ids are per device
        assert store.count_windows() == 4
        assert sorted(store.window_ids()) == [("d1", "a"), ("d1", "b"), ("d1", "c"), ("d2", "a")]

    def test_concurrent_reports_share_commits_exactly_once(self, store):
        """Group commit: 16 threads x 25 single-window reports, every 5th a replay of an earlier one;
        each report's count is its own, nothing is lost or doubled, and commits are shared."""
        results = {}

        def device(d):
            for i in range(25):
                rid = f"r{i - 1}" if i % 5 == 4 else f"r{i}"
                results[(d, i)] = store.ingest_windows(f"d{d}", "eu", [window(rid)])
        assert _on_threads(16, device) == []
        assert all(results[(d, i)] == (0 if i % 5 == 4 else 1) for d in range(16) for i in range(25))
        assert store.count_windows() == 16 * 20 == len(set(store.window_ids()))
        assert store._group_commit().rounds < 16 * 25   # some reports shared a transaction

    def test_concurrent_audit_rows_share_commits_and_none_is_lost(self, store):
        """One audit row per admitted Predict call: 16 threads x 20 rows beside reports, every row
        stored once with its own values, in fewer transactions than rows."""
        def device(d):
            for i in range(20):
                store.add_audit(f"d{d}", "eu", "predict_inputs", 4 * (i + 1), f"call {i}")
                if i % 10 == 0:
                    store.ingest_windows(f"d{d}", "eu", [window(f"r{i}")])
        assert _on_threads(16, device) == []
        rows = store.list_audit("eu")
        assert sorted((a["device_id"], a["reason"], a["bytes"]) for a in rows) == sorted(
            (f"d{d}", f"call {i}", 4 * (i + 1)) for d in range(16) for i in range(20))
        assert store.count_windows() == 32
        assert store._group_commit().rounds < 16 * 22   # some calls shared a transaction

    def test_last_score_is_the_newest_of_that_version(self, store):
        assert store.last_score("eu", "1.0") is None
        for i in range(3):
            store.add_score("eu", "1.0", {"i": i})
            store.add_score("eu", "1.1", {"i": 10 + i})
            store.add_score("us", "1.0", {"i": 20 + i})
        assert store.last_score("eu", "1.0")["stats"] == {"i": 2}
        assert store.last_score("eu", "1.1")["stats"] == {"i": 12}
        assert store.last_score("us", "1.1") is None

    def test_devices_can_be_revoked_and_their_tokens_rotated(self, store):
        store.add_device("d1", "t1", "eu", "x86", token_expires_ms=123)
        assert store.device_auth("t1") == ("d1", "eu", 123, 0)
        assert store.rotate_device_token("d1", "t1", "t2", 456) and not store.rotate_device_token("d1", "t1", "t3", 9)
        assert store.device_auth("t1") is None and store.device_auth("t2") == ("d1", "eu", 456, 0)
        assert store.revoke_device("d1") == (True, True) and store.revoke_device("d1") == (False, True)
        assert store.device_auth("t2")[3] > 0 and not store.rotate_device_token("d1", "t2", "t4", 9)
        assert store.revoke_device("nope") == (False, False)

    def test_enrollment_tokens_expire(self, store):
        store.create_enrollment_token("old", "eu", 5, expires_ms=1)
        assert store.consume_enrollment_token("old") is None

    def test_recent_windows_are_per_cohort_and_version_oldest_first(self, store):
        store.ingest_windows("d1", "eu", [window(f"w{i}") for i in range(5)])
        store.ingest_windows("d1", "eu", [window("v2", version="2.0")])
        store.ingest_windows("d2", "us", [window("x")])
        got = store.recent_windows("eu", "1.0", 3)
        assert [w["report_id"] for w in got] == ["w2", "w3", "w4"]
        assert got[0]["device_id"] == "d1" and got[0]["class_counts"] == [3, 0]

    def test_labels(self, store):
        labels = [{"prediction_id": "p1", "label": 1, "predicted": 1, "model_version": "1.0"},
                  {"prediction_id": "p2", "label": 0, "predicted": 1, "model_version": "1.0"}]
        assert store.add_labels("d1", "eu", labels) == 2
        assert store.add_labels("d1", "eu", labels) == 0
        assert store.label_stats("eu", "1.0") == (2, 1)
        assert store.label_stats("us", "1.0") == (0, 0)

    def test_bundles(self, store):
        store.put_bundle("dig1", "1.0", {"m": 1}, b"\x00archive")
        assert store.get_bundle("dig1") == ({"m": 1}, b"\x00archive")
        assert store.bundle_by_version("1.0") == ("dig1", {"m": 1})
        assert store.get_bundle("zz") is None and store.bundle_by_version("9") is None
        with pytest.raises(Exception):
            store.put_bundle("dig2", "1.0", {}, b"")  # a version names one bundle

    def test_cohort_state_and_global_revisions(self, store):
        assert store.get_cohort("eu") == ({}, 0)
        state, r1 = store.update_cohort("eu", {"baseline": {"version": "1.0", "digest": "d"}})
        _, r2 = store.update_cohort("us", {"fallback_artifact": "onnx-fp32"})
        state, r3 = store.update_cohort("eu", {"fallback_artifact": "onnx-fp32", "baseline": None})
        assert r1 < r2 < r3
        assert state == {"fallback_artifact": "onnx-fp32"} == store.get_cohort("eu")[0]
        assert store.list_cohorts() == ["eu", "us"]
        with pytest.raises(ValueError):
            store.update_cohort("eu", {"bogus": 1})

    def test_concurrent_cohort_updates_get_distinct_revisions(self, store):
        revisions, errors = [], []

        def worker(i):
            try:
                for _ in range(5):
                    revisions.append(store.update_cohort(f"c{i % 2}", {"reason": str(i)})[1])
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and len(set(revisions)) == 20

    def test_decisions_events_scores(self, store):
        i = store.add_decision("eu", "fallback", "1.0", {"why": "drift"})
        store.add_decision("us", "manual", "1.0", {})
        assert [d["id"] for d in store.list_decisions("eu")] == [i]
        assert store.list_decisions("eu")[0]["evidence"] == {"why": "drift"}
        assert len(store.list_decisions()) == 2
        store.add_event("d1", "bundle_refused", "bad digest", "abc")
        assert store.list_events("d1")[0]["kind"] == "bundle_refused" and store.list_events("d9") == []
        store.add_score("eu", "1.0", {"psi_max": 0.1})
        assert store.list_scores("eu")[0]["stats"] == {"psi_max": 0.1}

    def test_exclusive_section(self, store):
        with store.exclusive("evaluate") as mine:
            assert mine is True
        with store.exclusive("evaluate") as mine:  # released
            assert mine is True

    def test_labels_by_policy_revision(self, store):
        labels = [{"prediction_id": f"p{i}", "label": 1, "predicted": int(i % 3 == 0), "model_version": "1.0",
                   "policy_revision": i // 4, "artifact": "onnx-int8"} for i in range(12)]
        store.add_labels("d1", "eu", labels)
        assert store.label_stats_between("eu", 0) == (12, 4)
        assert store.label_stats_between("eu", 1, 2) == (4, 1)       # revisions [1, 2): p4..p7
        assert store.label_stats_between("eu", 2) == (4, 1)          # p8..p11
        assert store.label_stats_between("eu", 0, None, model_version="2.0") == (0, 0)
        assert store.label_stats_between("eu", 0, last=3)[0] == 3

    def test_measurements_and_audit(self, store):
        store.add_measurement("eu", 7, "before", {"accuracy": 0.5})
        store.add_measurement("us", 0, "timeline", {"accuracy": 0.9})
        assert [(m["decision_id"], m["phase"], m["stats"]) for m in store.list_measurements("eu")] == \
            [(7, "before", {"accuracy": 0.5})]
        store.add_audit("d1", "eu", "predict_inputs", 256, "cloud fallback")
        assert [(a["device_id"], a["bytes"]) for a in store.list_audit("eu")] == [("d1", 256)]
        assert store.list_audit("us") == []

    def test_examples_are_capped_all_or_none(self, store):
        ex = {"model_version": "1.0", "label": 3, "shape": [2], "data": b"\x00" * 8}
        assert store.add_examples("d1", "eu", [ex, ex], cap=3) == 2
        assert store.add_examples("d1", "eu", [ex, ex], cap=3) == 0      # would hold 4 > 3: none stored
        assert store.add_examples("d2", "eu", [ex], cap=3) == 1          # the cap is per device
        got = store.list_examples("eu")
        assert len(got) == 3 and got[0]["data"] == b"\x00" * 8 and got[0]["shape"] == [2]
        store.delete_examples([e["id"] for e in got[:2]])
        assert len(store.list_examples("eu")) == 1

    def test_job_queue_lease_retry_and_finish(self, store):
        import time
        first = store.enqueue_job("adapt", "eu", {"version": "1.0"})
        second = store.enqueue_job("adapt", "us", {"version": "1.0"})
        a = store.claim_job("w1", lease_ms=60_000)
        b = store.claim_job("w2", lease_ms=100)
        assert (a["id"], b["id"]) == (first, second) and a["payload"] == {"version": "1.0"} and a["attempts"] == 1
        assert store.claim_job("w3", lease_ms=100) is None               # both held
        time.sleep(0.2)                                                   # w2 died: its lease ran out
        again = store.claim_job("w3", lease_ms=60_000)
        assert again["id"] == second and again["attempts"] == 2
        assert not store.finish_job(second, "w2", "done", {})            # the dead worker no longer holds it
        assert store.finish_job(second, "w3", "done", {"version": "1.0+adapt"})
        assert store.finish_job(first, "w1", "failed", {"reason": "budget"})
        assert [(j["status"], j["result"]) for j in store.list_jobs()] == \
            [("failed", {"reason": "budget"}), ("done", {"version": "1.0+adapt"})]

    def test_concurrent_claims_take_distinct_jobs(self, store):
        ids = {store.enqueue_job("adapt", "eu", {"n": i}) for i in range(8)}
        taken, lock = [], threading.Lock()

        def worker(name):
            while (job := store.claim_job(name, lease_ms=60_000)) is not None:
                with lock:
                    taken.append(job["id"])
        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(taken) == sorted(ids)                               # each job exactly once

    def test_parallel_ingest_loses_nothing(self, store):
        def worker(d):
            for k in range(10):
                store.ingest_windows(f"d{d}", "eu", [window(f"{k}-{j}") for j in range(5)])
        threads = [threading.Thread(target=worker, args=(d,)) for d in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert store.count_windows() == 200


class TestSqliteStore(StoreContract):
    ddl_types = ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB")

    @pytest.fixture
    def store(self, tmp_path):
        s = SqliteStore(tmp_path / "fleet.db")
        yield s
        s.close()

    @pytest.fixture
    def empty_url(self, tmp_path):
        return f"sqlite:///{tmp_path / 'old.db'}"

    def test_wal_and_full_sync(self, store):
        with store._tx() as cur:
            cur.execute("PRAGMA journal_mode")
            assert cur.fetchone()[0] == "wal"
            cur.execute("PRAGMA synchronous")
            assert cur.fetchone()[0] == 2  # FULL

    def test_reopen_keeps_data(self, tmp_path):
        s = SqliteStore(tmp_path / "x.db")
        s.ingest_windows("d1", "eu", [window("a")])
        s.close()
        s = SqliteStore(tmp_path / "x.db")
        assert s.count_windows() == 1
        s.close()


class TestPostgresStore(StoreContract):
    ddl_types = ("BIGSERIAL PRIMARY KEY", "BYTEA")

    @pytest.fixture
    def empty_url(self, pg_database):
        return pg_database

    @pytest.fixture
    def store(self, pg_database):
        from edgefleet.coordinator.store_postgres import PostgresStore
        s = PostgresStore(pg_database)
        yield s
        s.close()

    def test_two_replicas_share_one_store(self, pg_database):
        from edgefleet.coordinator.store_postgres import PostgresStore
        a, b = PostgresStore(pg_database), PostgresStore(pg_database)
        try:
            a.ingest_windows("d1", "eu", [window("x")])
            assert b.ingest_windows("d1", "eu", [window("x")]) == 0
            assert b.count_windows() == 1
            with a.exclusive("evaluate") as held_by_a, b.exclusive("evaluate") as held_by_b:
                assert held_by_a and not held_by_b  # one replica evaluates at a time
            _, r1 = a.update_cohort("eu", {"reason": "a"})
            _, r2 = b.update_cohort("eu", {"reason": "b"})
            assert r2 > r1 and a.get_cohort("eu")[0]["reason"] == "b"
        finally:
            a.close()
            b.close()
