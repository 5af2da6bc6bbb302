"""Security suite: each failure an outside tester found, reproduced against real coordinators.

Network exposure (plaintext non-loopback bind, weak admin token, startup line), storage integrity
(database removed while running, restart on a missing database). The HTTP port's stall tests are in
``test_security_http.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgefleet._errors import ConfigError
from edgefleet.coordinator import AdminClient, Server, ServerConfig
from edgefleet.coordinator.errors import StoreError
from edgefleet.device import Offline

from bundle_factory import ADMIN


def _config(tmp_path, **kw):
    return ServerConfig(**{"init": True, "store": f"sqlite:///{tmp_path / 'fleet.db'}", "admin_token": ADMIN,
                           "evaluate_interval_s": None, **kw})


# -- network exposure ------------------------------------------------------------------------------
def test_a_non_loopback_bind_needs_tls_or_an_explicit_flag(tmp_path):
    with pytest.raises(ConfigError, match="--tls-cert .* or --insecure-plaintext"):
        Server(_config(tmp_path, host="0.0.0.0"))
    assert not (tmp_path / "fleet.db").exists()   # refused before anything was opened
    with Server(_config(tmp_path, host="0.0.0.0", insecure_plaintext=True)) as srv:
        assert srv.grpc_target.startswith("0.0.0.0:") and srv.http_url.startswith("http://0.0.0.0:")


@pytest.mark.parametrize("token", ["x", "admin-secret", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"])
def test_weak_admin_tokens_are_refused(tmp_path, token):
    with pytest.raises(ConfigError, match="admin token is too weak"):
        Server(_config(tmp_path, admin_token=token))


def test_serve_prints_the_real_bind_address_and_refuses_plaintext_on_the_network(tmp_path):
    env = {**os.environ, "EDGEFLEET_ADMIN_TOKEN": ADMIN}
    args = [sys.executable, "-m", "edgefleet", "serve", "--store", f"sqlite:///{tmp_path / 'f.db'}", "--init",
            "--host", "0.0.0.0", "--port", "0", "--http-port", "0"]
    refused = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--insecure-plaintext" in refused.stderr and "Traceback" not in refused.stderr
    proc = subprocess.Popen(args + ["--insecure-plaintext"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("edgefleet serve: gRPC 0.0.0.0:") and "HTTP http://0.0.0.0:" in line, line
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert '"event": "insecure_plaintext"' in err


# -- storage integrity -------------------------------------------------------------------------------
def test_the_store_stops_acknowledging_when_its_file_is_removed(tmp_path, archives, bundles, public_key):
    import grpc
    from edgefleet.coordinator import fleet_pb2 as pb
    from edgefleet.coordinator import fleet_pb2_grpc as pb_grpc
    from edgefleet.coordinator.wire import window_from_dict
    from test_grpc import make_window
    with Server(_config(tmp_path, trusted_key=public_key)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        admin.publish_bundle(archives["1.0"])
        stub = pb_grpc.FleetStub(grpc.insecure_channel(srv.grpc_target))
        enrolled = stub.Enroll(pb.EnrollRequest(enrollment_token=admin.create_enrollment_token("eu")))
        md = (("authorization", f"Bearer {enrolled.device_token}"),)
        report = pb.ReportRequest(windows=[window_from_dict(make_window(bundles["1.0"]))])
        assert len(stub.Report(report, metadata=md).acknowledged) == 1
        for suffix in ("", "-wal", "-shm"):   # rm fleet.db*
            path = tmp_path / f"fleet.db{suffix}"
            if path.exists():
                path.unlink()
        report = pb.ReportRequest(windows=[window_from_dict(make_window(bundles["1.0"]))])
        with pytest.raises(grpc.RpcError) as info:
            stub.Report(report, metadata=md)   # not acknowledged: the device keeps it and retries
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "removed or replaced" in info.value.details()
        with pytest.raises(Offline, match="removed or replaced"):
            admin.create_enrollment_token("eu")
        with pytest.raises(StoreError, match="removed or replaced"):
            srv.store.count_windows()
        admin.close()


def test_the_store_notices_a_replaced_file(tmp_path):
    from edgefleet.coordinator.store import open_store
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    store.create_enrollment_token("h", "eu", 1)
    os.replace(tmp_path / "a.db", tmp_path / "old.db")
    other = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    other.close()
    os.replace(tmp_path / "b.db", tmp_path / "a.db")   # a different file under the same name
    with pytest.raises(StoreError, match="removed or replaced"):
        store.create_enrollment_token("h2", "eu", 1)
    store.close()


def test_a_restart_on_a_missing_database_refuses_without_init(tmp_path):
    with pytest.raises(StoreError, match="does not exist.*--init"):
        Server(_config(tmp_path, init=False))
    assert not (tmp_path / "fleet.db").exists()
    env = {**os.environ, "EDGEFLEET_ADMIN_TOKEN": ADMIN}
    r = subprocess.run([sys.executable, "-m", "edgefleet", "serve", "--store", f"sqlite:///{tmp_path / 'f.db'}",
                        "--port", "0", "--http-port", "-1"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--init" in r.stderr and "Traceback" not in r.stderr


def test_postgres_store_without_tables_refuses_without_init(pg_database):
    from edgefleet.coordinator.store import open_store
    with pytest.raises(StoreError, match="no edgefleet tables.*--init"):
        open_store(pg_database, create=False)
    open_store(pg_database, create=True).close()
    open_store(pg_database, create=False).close()
