"""Security suite: each failure an outside tester found, reproduced against real coordinators.

Network exposure (plaintext non-loopback bind, weak admin token, startup line), storage integrity
(database removed while running, restart on a missing database). The HTTP port's stall tests are in
``test_security_http.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
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
                           "evaluate_interval_s": None, "allow_unsigned": True, **kw})


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


def test_a_port_in_use_is_a_clear_configuration_error(tmp_path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot bind the gRPC port 127.0.0.1:{port}"):
            Server(_config(tmp_path, port=port))
        with pytest.raises(ConfigError, match=f"cannot bind the HTTP port 127.0.0.1:{port}"):
            Server(_config(tmp_path, http_port=port))


# -- storage integrity -------------------------------------------------------------------------------
def test_the_store_stops_acknowledging_when_its_file_is_removed(tmp_path, archives, bundles, public_key):
    import grpc
    from edgefleet.proto import fleet_pb2 as pb
    from edgefleet.proto import fleet_pb2_grpc as pb_grpc
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


# -- signing on by default -----------------------------------------------------------------------------
def _copy(src, dest):
    import shutil
    shutil.copytree(src, dest)
    return dest


def _hand_edit(bundle_dir):
    """Rename a label and change the input shape in manifest.json, as a person with an editor would."""
    import json
    path = bundle_dir / "manifest.json"
    m = json.loads(path.read_text())
    m["task"]["labels"][0] = "zero-renamed"
    m["inputs"][0]["shape"] = [None, 65]
    path.write_text(json.dumps(m, indent=2))


@pytest.fixture
def variants(bundles, tmp_path):
    """Signed by the project key, unsigned, signed by a stranger, and hand-edited after signing."""
    from edgefleet._signing import generate_key
    from bundle_factory import make_bundle
    edited = _copy(bundles["1.0"], tmp_path / "edited")
    _hand_edit(edited)
    return {"good": bundles["1.0"], "unsigned": make_bundle(tmp_path / "unsigned", version="3.0"),
            "foreign": make_bundle(tmp_path / "foreign", version="3.1", signing_key=generate_key()),
            "edited": edited}


def _archive(path, tmp_path):
    from edgefleet.bundle import pack
    return pack(path, tmp_path / f"{path.name}.tgz").read_bytes()


def test_serve_needs_a_trusted_key_or_an_explicit_flag(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no trusted key.*--allow-unsigned"):
        Server(_config(tmp_path, allow_unsigned=False))
    env = {**os.environ, "EDGEFLEET_ADMIN_TOKEN": ADMIN, "EDGEFLEET_KEY_DIR": str(tmp_path / "no-key-here")}
    r = subprocess.run([sys.executable, "-m", "edgefleet", "serve", "--store", f"sqlite:///{tmp_path / 'f.db'}",
                        "--init", "--port", "0", "--http-port", "-1"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "keys init" in r.stderr and "Traceback" not in r.stderr


def test_publish_refuses_unsigned_foreign_and_edited_bundles(server, admin, variants, tmp_path):
    from edgefleet.device import Rejected
    assert admin.publish_bundle(_archive(variants["good"], tmp_path))["signed"]
    for name, what in (("unsigned", "UNSIGNED"), ("foreign", "UNTRUSTED KEY"), ("edited", "SIGNATURE INVALID")):
        with pytest.raises(Rejected, match=f"INVALID_ARGUMENT.*{what}"):
            admin.publish_bundle(_archive(variants[name], tmp_path))
    assert server.store.bundle_by_version("3.0") is None and server.store.bundle_by_version("3.1") is None


def test_a_consistent_tamper_in_the_store_is_not_served(server, admin, variants, tmp_path, public_key):
    """Rewrite archive, manifest and digest of a published version in the database, consistently: the
    signature cannot be rewritten, so the coordinator refuses to serve it and the device refuses it too."""
    import json
    import sqlite3
    import grpc
    from edgefleet.bundle import Bundle
    from edgefleet.proto import fleet_pb2 as pb
    from edgefleet.proto import fleet_pb2_grpc as pb_grpc
    published = admin.publish_bundle(_archive(variants["good"], tmp_path))
    admin.set_baseline("eu", "1.0")
    rogue = _copy(variants["good"], tmp_path / "rogue")
    _hand_edit(rogue)
    rogue_bundle = Bundle.open(rogue)
    db = sqlite3.connect(server.store.path)
    db.execute("UPDATE bundles SET digest = ?, manifest = ?, archive = ? WHERE version = '1.0'",
               (rogue_bundle.digest, json.dumps(rogue_bundle.manifest), _archive(rogue, tmp_path)))
    db.execute("UPDATE cohorts SET state = replace(state, ?, ?)", (published["digest"], rogue_bundle.digest))
    db.commit()
    db.close()
    stub = pb_grpc.FleetStub(grpc.insecure_channel(server.grpc_target))
    token = stub.Enroll(pb.EnrollRequest(enrollment_token=admin.create_enrollment_token("eu"))).device_token
    with pytest.raises(grpc.RpcError) as info:
        list(stub.FetchBundle(pb.FetchBundleRequest(digest=rogue_bundle.digest),
                              metadata=(("authorization", f"Bearer {token}"),)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "SIGNATURE INVALID" in info.value.details()


def test_device_requires_a_trusted_key_and_refuses_bad_bundles(variants, tmp_path, public_key):
    from edgefleet import BundleError, Device
    with pytest.raises(ConfigError, match="trusted_key is required"):
        Device(variants["good"], tmp_path / "d0")
    Device(variants["good"], tmp_path / "d1", trusted_key=public_key).close()
    for i, (name, what) in enumerate((("unsigned", "not signed"), ("foreign", "untrusted key"),
                                      ("edited", "signature does not match"))):
        with pytest.raises(BundleError, match=what):
            Device(variants[name], tmp_path / f"e{i}", trusted_key=public_key)
    Device(variants["unsigned"], tmp_path / "d2", allow_unsigned=True).close()   # only when told


def test_predict_and_inspect_verify_the_signature_loudly(variants, tmp_path, capsys):
    import numpy as np
    from edgefleet.cli import main
    from bundle_factory import digits
    np.save(tmp_path / "x.npy", digits()[2][:3])
    assert main(["inspect", str(variants["good"])]) == 0
    assert "signature: signed by the trusted key" in capsys.readouterr().out
    assert main(["predict", str(variants["good"]), str(tmp_path / "x.npy")]) == 0
    capsys.readouterr()
    for name, what, inspect_code in (("unsigned", "UNSIGNED", 0), ("foreign", "SIGNED BY AN UNTRUSTED KEY", 0),
                                     ("edited", "SIGNATURE INVALID", 5)):
        assert main(["predict", str(variants[name]), str(tmp_path / "x.npy")]) == 5
        err = capsys.readouterr().err
        assert what in err and len(err.strip().splitlines()) == 1, err
        assert main(["inspect", str(variants[name])]) == inspect_code
        out, err = capsys.readouterr()
        assert f"signature: {what}" in out and "WARNING" in err and "all verified" not in out
    assert main(["predict", str(variants["unsigned"]), str(tmp_path / "x.npy"), "--allow-unsigned"]) == 0
    assert "WARNING: bundle is UNSIGNED" in capsys.readouterr().err


def test_keys_init_once_and_export_signs_with_the_project_key(tmp_path, capsys, monkeypatch, digits_bundle):
    from edgefleet.bundle import Bundle
    from edgefleet.cli import main
    monkeypatch.setenv("EDGEFLEET_KEY_DIR", str(tmp_path / "keys"))
    assert main(["export", "--out", str(tmp_path / "b")]) == 2
    assert "edgefleet keys init" in capsys.readouterr().err
    assert main(["keys", "init"]) == 0
    assert (tmp_path / "keys" / "signing.key").stat().st_mode & 0o777 == 0o600
    assert main(["keys", "init"]) == 2 and "already exists" in capsys.readouterr().err
    # the session's export (tests/conftest.py) was signed by the session project key, recorded by path
    manifest = Bundle.open(digits_bundle).manifest
    assert manifest["provenance"]["signing_key"]["path"].endswith("signing.key")
    assert not list(Path(digits_bundle).glob("*.key"))   # the key never goes into the bundle


# -- identities ------------------------------------------------------------------------------------------
def _stub(srv):
    import grpc
    from edgefleet.proto import fleet_pb2_grpc as pb_grpc
    channel = grpc.insecure_channel(srv.grpc_target)
    return pb_grpc.FleetStub(channel), pb_grpc.IdentityStub(channel)


def _md(token):
    return (("authorization", f"Bearer {token}"),)


def _enroll(srv, admin, cohort="eu"):
    from edgefleet.proto import fleet_pb2 as pb
    fleet, _ = _stub(srv)
    return fleet.Enroll(pb.EnrollRequest(enrollment_token=admin.create_enrollment_token(cohort)))


def test_revoked_devices_are_refused_everywhere(tmp_path, public_key, capsys, monkeypatch):
    import grpc
    from edgefleet.cli import main
    from edgefleet.proto import fleet_pb2 as pb
    with Server(_config(tmp_path, trusted_key=public_key, allow_unsigned=False, watch_interval_s=0.1)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        a, b = _enroll(srv, admin), _enroll(srv, admin)
        fleet, _ = _stub(srv)
        watch = fleet.WatchPolicy(pb.PolicyRequest(), metadata=_md(a.device_token), timeout=20)
        next(watch)
        assert admin.revoke_device(a.device_id) is True
        with pytest.raises(grpc.RpcError) as info:
            fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(a.device_token))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            next(watch)   # the open watch ends too
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert admin.revoke_device(a.device_id) is False   # already revoked
        # the CLI does the same for the other device
        port = srv.grpc_target.rsplit(":", 1)[1]
        monkeypatch.setenv("EDGEFLEET_ADMIN_TOKEN", ADMIN)
        assert main(["devices", "revoke", b.device_id, "--target", f"127.0.0.1:{port}"]) == 0
        assert "revoked" in capsys.readouterr().out
        with pytest.raises(grpc.RpcError):
            fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(b.device_token))
        from edgefleet.device import Rejected
        with pytest.raises(Rejected, match="NOT_FOUND"):
            admin.revoke_device("dev-nope")
        admin.close()


def test_tokens_expire_and_rotate(tmp_path, public_key):
    import time
    import grpc
    from edgefleet.proto import fleet_pb2 as pb
    with Server(_config(tmp_path, trusted_key=public_key, allow_unsigned=False, token_ttl_s=1.5,
                        enrollment_ttl_s=1.0)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        fleet, identity = _stub(srv)
        late = admin.create_enrollment_token("eu")
        d = _enroll(srv, admin)
        rotated = identity.RotateToken(pb.RotateTokenRequest(), metadata=_md(d.device_token))
        assert rotated.expires_ms > time.time() * 1000
        with pytest.raises(grpc.RpcError) as info:   # the old token is gone at once
            fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(d.device_token))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(rotated.device_token)).cohort == "eu"
        time.sleep(1.7)
        with pytest.raises(grpc.RpcError) as info:
            fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(rotated.device_token))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:   # an enrollment token expires too
            fleet.Enroll(pb.EnrollRequest(enrollment_token=late))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in info.value.details()
        admin.close()


def test_the_device_sdk_rotates_its_token(tmp_path, bundles, archives, public_key):
    from edgefleet.device import Device, GrpcTransport
    with Server(_config(tmp_path, trusted_key=public_key, allow_unsigned=False)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        admin.publish_bundle(archives["1.0"])
        admin.set_baseline("eu", "1.0")
        clock = [1_800_000_000.0]
        dev = Device(bundles["1.0"], tmp_path / "dev", transport=GrpcTransport(srv.grpc_target),
                     enrollment_token=admin.create_enrollment_token("eu"), trusted_key=public_key,
                     rotate_after_s=3600, clock=lambda: clock[0])
        assert dev.sync()["online"]
        first = dev.identity["device_token"]
        clock[0] += 3601
        assert dev.sync()["online"] and dev.stats["token_rotations"] == 1
        assert dev.identity["device_token"] != first
        assert json.loads((tmp_path / "dev" / "identity.json").read_text())["device_token"] == dev.identity["device_token"]
        dev.close()
        admin.close()


def test_failed_authentication_is_throttled_per_client_address(tmp_path, public_key):
    import http.client
    with Server(_config(tmp_path, trusted_key=public_key, allow_unsigned=False)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        good = _enroll(srv, admin)
        port = srv.http.port

        def get_policy(token, source):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
            conn.request("POST", "/edgefleet.v1.Fleet/GetPolicy", body=b"{}",
                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            status = conn.getresponse().status
            conn.close()
            return status

        statuses = [get_policy(f"guess-{i}", "127.0.0.2") for i in range(60)]
        assert statuses.count(401) <= 12 and statuses.count(429) >= 45, statuses   # was: 2,000 guesses in 2.7 s
        assert get_policy(good.device_token, "127.0.0.1") == 200    # another address is not affected
        assert get_policy(good.device_token, "127.0.0.2") == 429    # the locked address waits, token or not
        admin.close()


def test_a_device_fetches_only_bundles_its_policy_names(tmp_path, archives, public_key):
    import grpc
    from edgefleet.proto import fleet_pb2 as pb
    with Server(_config(tmp_path, trusted_key=public_key, allow_unsigned=False)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        mine = admin.publish_bundle(archives["1.0"])["digest"]
        other = admin.publish_bundle(archives["1.1"])["digest"]
        admin.set_baseline("eu", "1.0")
        admin.set_baseline("us", "1.1")
        d = _enroll(srv, admin, "eu")
        fleet, _ = _stub(srv)
        assert b"".join(c.data for c in fleet.FetchBundle(pb.FetchBundleRequest(digest=mine),
                                                            metadata=_md(d.device_token))) == archives["1.0"]
        with pytest.raises(grpc.RpcError) as info:
            list(fleet.FetchBundle(pb.FetchBundleRequest(digest=other), metadata=_md(d.device_token)))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "not named by the policy" in info.value.details()
        admin.close()


def test_one_device_cannot_take_every_watch_slot_or_flood_calls(tmp_path, public_key):
    import grpc
    from edgefleet.proto import fleet_pb2 as pb
    with Server(_config(tmp_path, trusted_key=public_key, allow_unsigned=False, device_rate=5.0)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        a, b = _enroll(srv, admin), _enroll(srv, admin)
        fleet, _ = _stub(srv)
        first = fleet.WatchPolicy(pb.PolicyRequest(), metadata=_md(a.device_token), timeout=20)
        next(first)
        with pytest.raises(grpc.RpcError) as info:
            next(fleet.WatchPolicy(pb.PolicyRequest(), metadata=_md(a.device_token), timeout=20))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "already has 1" in info.value.details()
        other = fleet.WatchPolicy(pb.PolicyRequest(), metadata=_md(b.device_token), timeout=20)
        assert next(other).cohort == "eu"   # slots remain for other devices
        first.cancel()
        other.cancel()
        codes = []
        for _ in range(30):
            try:
                fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(a.device_token))
                codes.append("OK")
            except grpc.RpcError as e:
                codes.append(e.code().name)
        assert "RESOURCE_EXHAUSTED" in codes and codes.count("OK") < 30
        assert fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(b.device_token)).cohort == "eu"
        admin.close()


def test_a_device_rate_below_one_call_per_second_still_lets_a_device_call(tmp_path, public_key):
    """`--device-rate 0.2` (burst 2 x 0.2 = 0.4 calls) once refused every call: the burst is at least
    one call, so a device makes one call, is refused until its bucket refills, and is never locked out."""
    import grpc
    from edgefleet.coordinator.throttle import RateLimit
    from edgefleet.proto import fleet_pb2 as pb
    limit = RateLimit(0.2, 0.4)
    assert limit.burst == 1.0
    assert [limit.allow("d", now=t) for t in (0.0, 0.1, 4.9, 5.0, 5.1)] == [True, False, False, True, False]
    with pytest.raises(ValueError, match="above 0"):
        RateLimit(0.0, 0.0)
    with pytest.raises(ConfigError, match="--device-rate 0"):
        Server(_config(tmp_path, device_rate=0.0))
    with Server(_config(tmp_path, trusted_key=public_key, allow_unsigned=False, device_rate=0.2)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        d = _enroll(srv, admin)
        fleet, _ = _stub(srv)
        assert fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(d.device_token)).cohort == "eu"
        with pytest.raises(grpc.RpcError) as info:
            fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(d.device_token))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "burst 1" in info.value.details()
        admin.close()


@pytest.mark.parametrize("kind", ["grpc", "connect"])
def test_devices_rotate_before_their_token_expires(tmp_path, bundles, archives, public_key, kind):
    """The coordinator states the token's expiry at enrollment; the SDK rotates once half its life has
    passed (one rule for every transport), long before ``rotate_after_s``: with 4 s tokens a device
    syncing every ~2 s stays online past its first token's expiry, and each old token is refused."""
    import time

    import grpc
    from edgefleet.device import ConnectTransport, Device, GrpcTransport
    from edgefleet.proto import fleet_pb2 as pb
    with Server(_config(tmp_path, trusted_key=public_key, allow_unsigned=False, token_ttl_s=4.0)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        admin.publish_bundle(archives["1.0"])
        admin.set_baseline("eu", "1.0")
        transport = GrpcTransport(srv.grpc_target) if kind == "grpc" else ConnectTransport(srv.http_url)
        dev = Device(bundles["1.0"], tmp_path / "dev", transport=transport, trusted_key=public_key,
                     enrollment_token=admin.create_enrollment_token("eu"))
        assert dev.sync()["online"]
        first = dict(dev.identity)
        assert 3000 <= first["token_expires_ms"] - first["token_issued_ms"] <= 4500
        time.sleep(max(0.0, (first["token_issued_ms"] + 2100) / 1000 - time.time()))
        assert dev.sync()["online"] and dev.stats["token_rotations"] == 1
        fleet, _ = _stub(srv)
        with pytest.raises(grpc.RpcError) as info:   # the old token stopped at once
            fleet.GetPolicy(pb.PolicyRequest(), metadata=_md(first["device_token"]))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        time.sleep(max(0.0, (first["token_expires_ms"] + 300) / 1000 - time.time()))
        assert dev.sync()["online"]   # past the first token's expiry: still a valid identity
        assert dev.stats["token_rotations"] >= 1 and dev.identity["token_expires_ms"] > time.time() * 1000
        dev.close()
        admin.close()
