"""Cloud fallback (``Fleet.Predict``) on a real coordinator over gRPC and Connect: it answers only
devices of a cohort that opted in, within a per-device rate limit, with inputs of the model's shape;
everything that left a device is in the audit log; a device answers locally when the coordinator is
down or refuses, and its cohort's privacy default sends nothing."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.device import Device, GrpcTransport, Rejected

from bundle_factory import ADMIN, digits
from test_connect import post


@pytest.fixture
def cloud(server, admin, archives):
    admin.publish_bundle(archives["1.0"])
    for cohort in ("open", "closed"):
        admin.set_baseline(cohort, "1.0")
    admin.set_privacy("open", True, cloud_per_minute=120)  # a burst of 2 calls, then 2 per second
    tokens = {c: admin.create_enrollment_token(c, uses=4) for c in ("open", "closed")}
    return server, admin, tokens


def _device(server, bundle, tmp_path, token, public_key, name):
    dev = Device(bundle, tmp_path / name, transport=GrpcTransport(server.grpc_target), enrollment_token=token,
                 trusted_key=public_key, window_size=25)
    dev.sync()
    return dev


def test_predict_answers_an_opted_in_device_and_audits_it(cloud, bundles, tmp_path, public_key, capsys, monkeypatch):
    server, admin, tokens = cloud
    dev = _device(server, bundles["1.0"], tmp_path, tokens["open"], public_key, "d")
    _, _, x, y = digits()
    logits = dev.transport.predict(x[:3].reshape(-1).tolist(), 3, "1.0", 5.0)
    assert len(logits) == 30 and (np.asarray(logits).reshape(3, 10).argmax(1) == y[:3]).sum() >= 2
    audit = admin.list_audit("open")
    assert [(e["device_id"], e["bytes"], e["kind"]) for e in audit] == [(dev.device_id, 3 * 64 * 4, "predict_inputs")]
    assert "cloud fallback: 3 low-confidence input(s) sent to 1.0/onnx-fp32" in audit[0]["reason"]
    # `edgefleet inspect --audit` shows the same log
    from edgefleet.cli import main
    monkeypatch.setenv("EDGEFLEET_ADMIN_TOKEN", ADMIN)
    capsys.readouterr()
    assert main(["inspect", "--audit", server.grpc_target]) == 0
    out = capsys.readouterr().out
    assert "1 transfers of raw data off devices, 768 bytes in all" in out and dev.device_id in out
    dev.close()


def test_withdrawing_the_opt_in_stops_predict_at_once(cloud, bundles, tmp_path, public_key):
    """Predict keeps the cohort's privacy settings between calls (no store read per call), yet an
    opt-out made on this coordinator applies to the very next call; opting in again works at once too."""
    server, admin, tokens = cloud
    dev = _device(server, bundles["1.0"], tmp_path, tokens["open"], public_key, "d")
    row = digits()[2][0].tolist()
    assert len(dev.transport.predict(row, 1, "1.0", 5.0)) == 10
    admin.set_privacy("open", False)
    with pytest.raises(Rejected, match="PERMISSION_DENIED.*does not allow raw inputs"):
        dev.transport.predict(row, 1, "1.0", 5.0)
    assert len(admin.list_audit("open")) == 1
    admin.set_privacy("open", True, cloud_per_minute=120)
    assert len(dev.transport.predict(row, 1, "1.0", 5.0)) == 10
    assert len(admin.list_audit("open")) == 2
    dev.close()


def test_predict_refuses_bad_callers_and_bad_inputs(cloud, bundles, tmp_path, public_key):
    server, admin, tokens = cloud
    closed = _device(server, bundles["1.0"], tmp_path, tokens["closed"], public_key, "c")
    row = digits()[2][0].tolist()
    with pytest.raises(Rejected, match="PERMISSION_DENIED.*does not allow raw inputs"):
        closed.transport.predict(row, 1, "1.0", 5.0)
    stranger = GrpcTransport(server.grpc_target)
    stranger.token = "not-a-device-token"
    with pytest.raises(Rejected, match="UNAUTHENTICATED"):
        stranger.predict(row, 1, "1.0", 5.0)
    stranger.close()
    opened = _device(server, bundles["1.0"], tmp_path, tokens["open"], public_key, "o")
    with pytest.raises(Rejected, match=r"INVALID_ARGUMENT.*values: 63 numbers for 1 rows of shape \[64\]"):
        opened.transport.predict(row[:63], 1, "1.0", 5.0)
    with pytest.raises(Rejected, match="INVALID_ARGUMENT.*NaN"):
        opened.transport.predict([float("nan")] * 64, 1, "1.0", 5.0)
    with pytest.raises(Rejected, match="INVALID_ARGUMENT.*rows: 0"):
        opened.transport.predict([], 0, "1.0", 5.0)
    # the same refusals over Connect, with the HTTP status of each code
    status, body = post(server.http_url, "/edgefleet.v1.Fleet/Predict", {"values": row, "rows": 1},
                        closed.transport.token)
    assert status == 403 and body["code"] == "permission_denied"
    # beyond the cohort's rate limit (120/min: a burst of 2): RESOURCE_EXHAUSTED, HTTP 429 over Connect
    answers = [post(server.http_url, "/edgefleet.v1.Fleet/Predict", {"values": row, "rows": 1},
                    opened.transport.token)[0] for _ in range(4)]
    assert answers[:2] == [200, 200] and 429 in answers[2:], answers
    assert len(admin.list_audit("open")) == answers.count(200)  # refused calls left nothing on the coordinator
    assert admin.list_audit("closed") == []
    closed.close()
    opened.close()


def test_device_answers_locally_when_the_cloud_is_down_or_refuses(cloud, bundles, tmp_path, public_key):
    server, admin, tokens = cloud
    dev = _device(server, bundles["1.0"], tmp_path, tokens["open"], public_key, "d")
    # the ladder's cloud rung, set by hand here: every input goes to the cloud
    remedy = {"cloud": True, "raw_inputs_allowed": True, "cloud_confidence_below": 1.01, "cloud_latency_ms": 2000,
              "cloud_per_minute": 6000}
    dev.policy = {**dev.policy, "remedy": remedy}
    _, _, x, y = digits()
    preds = dev.predict(x[:5])
    assert {p.artifact for p in preds} == {"cloud"} and dev.cloud.stats["raw_bytes_sent"] == 5 * 64 * 4
    server.stop(0)  # the coordinator goes away: the device keeps answering, locally, within its deadline
    preds = dev.predict(x[5:10])
    assert len(preds) == 5 and {p.artifact for p in preds} == {"onnx-int8"}
    assert dev.cloud.stats["cloud_local"] == 5
    dev.close()


def test_device_answers_locally_within_its_deadline_when_the_cloud_is_slow(cloud, bundles, tmp_path, public_key):
    """A coordinator that cannot commit (another writer holds its SQLite store) answers nothing in
    time: the device gives up at its latency budget and answers locally, instead of waiting or failing."""
    import sqlite3
    import time
    server, admin, tokens = cloud
    dev = _device(server, bundles["1.0"], tmp_path, tokens["open"], public_key, "d")
    dev.policy = {**dev.policy, "remedy": {"cloud": True, "raw_inputs_allowed": True, "cloud_confidence_below": 1.01,
                                           "cloud_latency_ms": 200, "cloud_per_minute": 6000}}
    _, _, x, _ = digits()
    assert {p.artifact for p in dev.predict(x[:2])} == {"cloud"}
    blocker = sqlite3.connect(str(server.store.path), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")   # every coordinator transaction now waits for this writer
    try:
        start = time.monotonic()
        preds = dev.predict(x[2:5])
        waited = time.monotonic() - start
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert len(preds) == 3 and {p.artifact for p in preds} == {"onnx-int8"} and dev.cloud.stats["cloud_local"] == 3
    assert waited < 5.0, waited   # the budget (0.2 s) plus the local run, not the coordinator's 30 s lock wait
    dev.close()


def test_privacy_default_sends_nothing(cloud, bundles, tmp_path, public_key):
    server, admin, tokens = cloud
    dev = _device(server, bundles["1.0"], tmp_path, tokens["closed"], public_key, "d")
    # even a policy asking for the cloud is not followed without the cohort's opt-in
    dev.policy = {**dev.policy, "remedy": {**dev.policy.get("remedy", {}), "cloud": True, "cloud_confidence_below": 1.01}}
    assert dev.policy["remedy"]["raw_inputs_allowed"] is False
    preds = dev.predict(digits()[2][:5])
    assert {p.artifact for p in preds} == {"onnx-int8"} and dev.cloud.stats["raw_bytes_sent"] == 0
    assert admin.list_audit() == []
    dev.close()


def test_predict_counts_against_the_devices_call_cap_as_well(tmp_path, archives, bundles, public_key):
    """Two limits hold at once: the cohort's Predict rate (here generous) and the per-device call cap
    of every Fleet call (here one call per 2 s, burst 1): a device cannot go past the cap through Predict, and the
    Predict calls it made use up its budget for its other calls too."""
    import time

    import grpc

    from edgefleet.coordinator import AdminClient, Server, ServerConfig
    from edgefleet.proto import fleet_pb2 as pb
    from edgefleet.proto.fleet_pb2_grpc import FleetStub
    config = ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'fleet.db'}", admin_token=ADMIN,
                          trusted_key=public_key, evaluate_interval_s=None, device_rate=0.5)
    with Server(config) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        admin.publish_bundle(archives["1.0"])
        admin.set_baseline("open", "1.0")
        admin.set_privacy("open", True, cloud_per_minute=6000)
        channel = grpc.insecure_channel(srv.grpc_target)
        fleet = FleetStub(channel)
        token = fleet.Enroll(pb.EnrollRequest(enrollment_token=admin.create_enrollment_token("open"))).device_token
        md = (("authorization", f"Bearer {token}"),)
        row = digits()[2][0].tolist()
        answers, started = [], time.monotonic()
        for _ in range(8):
            try:
                fleet.Predict(pb.PredictRequest(values=row, rows=1, model_version="1.0"), metadata=md, timeout=10)
                answers.append("OK")
            except grpc.RpcError as e:
                answers.append(e.details() if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else e.code().name)
        allowed = 1 + int((time.monotonic() - started) * 0.5)   # the burst, then what refilled meanwhile
        assert answers[0] == "OK" and answers.count("OK") <= allowed, answers
        assert all(a == "OK" or "calls/s" in a for a in answers), answers
        assert len(admin.list_audit("open")) == answers.count("OK")   # refused calls sent nothing anywhere
        with pytest.raises(grpc.RpcError) as info:   # the same budget: GetPolicy waits too
            fleet.GetPolicy(pb.PolicyRequest(), metadata=md, timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        channel.close()
        admin.close()
