"""Adaptation from opted-in labelled examples: the examples' validation and caps, and jobs taken by
worker processes from the store: a worker killed mid-job (the job runs again, nothing half-published),
a result that misses the accuracy budget (not published, reason recorded), a finished job publishing
a signed-off new version as a canary on its cohort only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edgefleet.coordinator import AdminClient, Server, ServerConfig
from edgefleet.device import Device, GrpcTransport, Rejected

from bundle_factory import ADMIN, digits


@pytest.fixture
def plain_server(tmp_path, public_key):
    srv = Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'fleet.db'}", admin_token=ADMIN, trusted_key=public_key,
                              evaluate_interval_s=None, http_port=None)).start()
    admin = AdminClient(srv.grpc_target, ADMIN)
    yield srv, admin
    admin.close()
    srv.stop(0)


def _enrolled(srv, admin, bundle, tmp_path, cohort, name="d"):
    dev = Device(bundle, tmp_path / name, transport=GrpcTransport(srv.grpc_target), trusted_key=srv.config.trusted_key,
                 enrollment_token=admin.create_enrollment_token(cohort), window_size=25)
    dev.sync()
    return dev


def _example(values, label=3, shape=(64,), dtype="float32", version="1.0"):
    return {"prediction_id": "p1", "values": list(values), "shape": list(shape), "dtype": dtype, "label": label,
            "model_version": version}


def test_labelled_examples_are_validated_capped_and_opt_in(plain_server, archives, bundles, tmp_path):
    srv, admin = plain_server
    admin.publish_bundle(archives["1.0"])
    for cohort in ("open", "closed"):
        admin.set_baseline(cohort, "1.0")
    admin.set_privacy("open", False, examples_allowed=True, max_examples=3)
    dev = _enrolled(srv, admin, bundles["1.0"], tmp_path, "open")
    row = digits()[2][0].tolist()
    for bad, message in [
        (_example(row[:63] + [0.0, 0.0], shape=(65,)), r"examples\[1\].shape: \[65\] is not the model input's \[64\]"),
        (_example(row, dtype="float64"), r"examples\[1\].dtype: 'float64' is not the model input's 'float32'"),
        (_example(row[:60]), r"examples\[1\].values: 60 numbers for shape \[64\]"),
        (_example([float("nan")] * 64), r"examples\[1\].values: NaN"),
        (_example(row, label=10), r"examples\[1\].label: 10 is not a class index"),
        (_example(row, version="9.9"), r"examples\[1\].model_version: unknown"),
    ]:
        with pytest.raises(Rejected, match="INVALID_ARGUMENT.*" + message):
            dev.transport.submit_examples([_example(row), bad])  # one bad example refuses the whole request
    assert srv.store.list_examples("open") == [] and admin.list_audit() == []
    assert dev.transport.submit_examples([_example(row)] * 3) == 3
    with pytest.raises(Rejected, match="FAILED_PRECONDITION.*more than 3 labelled examples"):
        dev.transport.submit_examples([_example(row)])
    closed = _enrolled(srv, admin, bundles["1.0"], tmp_path, "closed", "c")
    with pytest.raises(Rejected, match="PERMISSION_DENIED.*does not allow labelled examples"):
        closed.transport.submit_examples([_example(row)])
    # the device SDK keeps an example only under its cohort's opt-in, within the cap
    x, y = digits()[2][:5], digits()[3][:5]
    preds = closed.predict(x)
    for p, label, xi in zip(preds, y, x):
        closed.feedback(p.prediction_id, int(label), example=xi)
    closed.sync()
    assert closed.stats["examples_sent"] == 0 and srv.store.list_examples("closed") == []
    audit = admin.list_audit()
    assert [(e["cohort"], e["kind"], e["bytes"]) for e in audit] == [("open", "labelled_examples", 3 * 64 * 4)]
    dev.close()
    closed.close()


def _worker(store_url, weights, lease_s, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgefleet", "worker", "--store", store_url, "--weights",
                             str(weights), "--lease-s", str(lease_s), "--once", "--epochs", "5", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def _published(tmp_path, bundle, public_key):
    """A signed coordinator on a new SQLite store with ``bundle`` published: (store URL, server, admin, version)."""
    from edgefleet.bundle import pack

    store_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    srv = Server(ServerConfig(init=True, store=store_url, admin_token=ADMIN, trusted_key=public_key,
                              evaluate_interval_s=None, http_port=None)).start()
    admin = AdminClient(srv.grpc_target, ADMIN)
    try:
        return store_url, srv, admin, admin.publish_bundle(pack(bundle, tmp_path / "b.tar.gz").read_bytes())["version"]
    except BaseException:
        admin.close()
        srv.stop(0)
        raise


def test_adaptation_job_killed_mid_way_runs_again_and_publishes_once(tmp_path, digits_bundle, digits_teacher_weights, public_key):
    from edgefleet.coordinator.simulate import load_inputs, shift_inputs
    from edgefleet.bundle import Bundle

    store_url, srv, admin, version = _published(tmp_path, digits_bundle, public_key)
    try:
        admin.set_baseline("shifted", version)
        admin.set_baseline("other", version)
        admin.set_privacy("shifted", False, examples_allowed=True, max_examples=100)
        dev = _enrolled(srv, admin, digits_bundle, tmp_path, "shifted")
        x, y = load_inputs(Bundle.open(digits_bundle))
        rng = np.random.default_rng(0)
        xs = shift_inputs(x[:60], rng)
        for p, label, xi in zip(dev.predict(xs), y[:60], xs):
            dev.feedback(p.prediction_id, int(label), example=xi)
        dev.sync()
        assert len(srv.store.list_examples("shifted")) == 60
        job = srv.store.enqueue_job("adapt", "shifted", {"version": version, "max_drop": 2.0, "canary_share": 0.5})

        first = _worker(store_url, digits_teacher_weights, 2)
        deadline = time.monotonic() + 120
        while srv.store.list_jobs()[0]["status"] != "running":
            assert time.monotonic() < deadline and first.poll() is None, first.stdout.read().decode()
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # mid-way: fine-tuning or exporting
        first.wait(30)
        assert [b for b in _versions(srv.store) if b != version] == []  # nothing (half-)published
        time.sleep(2.5)  # the dead worker's lease runs out

        second = _worker(store_url, digits_teacher_weights, 600)
        out, _ = second.communicate(timeout=600)
        assert second.returncode == 0, out.decode()
        done = srv.store.list_jobs()[0]
        assert done["id"] == job and done["status"] == "done" and done["attempts"] == 2, done
        adapted = f"{version}+adapt.{job}"
        assert _versions(srv.store) == sorted([version, adapted]) and done["result"]["version"] == adapted
        assert done["result"]["examples_after"] > done["result"]["examples_before"]
        state, _ = srv.store.get_cohort("shifted")
        assert state["canary"]["version"] == adapted and state["canary_share"] == 0.5
        assert srv.store.get_cohort("other")[0].get("canary") is None  # that cohort only
        assert [d["kind"] for d in admin.list_decisions("shifted")][-1] == "adaptation_canary"
        assert srv.store.list_examples("shifted") == []  # used, then deleted
        dev.close()
    finally:
        admin.close()
        srv.stop(0)


def test_adaptation_missing_the_budget_is_not_published(tmp_path, digits_bundle, digits_teacher_weights, public_key):
    from edgefleet.coordinator.adapt import WorkerConfig, run_worker

    store_url, srv, admin, version = _published(tmp_path, digits_bundle, public_key)
    try:
        admin.set_baseline("c", version)
        admin.set_privacy("c", False, examples_allowed=True, max_examples=100)
        dev = _enrolled(srv, admin, digits_bundle, tmp_path, "c")
        from edgefleet.bundle import Bundle
        from edgefleet.coordinator.simulate import load_inputs
        x = load_inputs(Bundle.open(digits_bundle))[0][:80]
        rng = np.random.default_rng(0)
        for p, xi in zip(dev.predict(x), x):  # wrong labels: adapting to them costs the original accuracy
            dev.feedback(p.prediction_id, int(rng.integers(0, 10)), example=xi)
        dev.sync()
        job = srv.store.enqueue_job("adapt", "c", {"version": version, "max_drop": 0.5})
        from edgefleet.keys import project_private_key
        assert run_worker(WorkerConfig(store=store_url, weights=str(digits_teacher_weights), epochs=5,
                                       example_weight=40, signing_key=project_private_key()[0]), once=True, log=lambda m: None) == 1
        failed = srv.store.list_jobs()[0]
        assert failed["id"] == job and failed["status"] == "failed"
        assert "lost" in failed["result"]["reason"] and "budget 0.5" in failed["result"]["reason"]
        assert _versions(srv.store) == [version] and srv.store.get_cohort("c")[0].get("canary") is None
        dev.close()
    finally:
        admin.close()
        srv.stop(0)


def _versions(store) -> list[str]:
    with store._tx() as cur:
        cur.execute("SELECT version FROM bundles ORDER BY version")
        return [r[0] for r in cur.fetchall()]
