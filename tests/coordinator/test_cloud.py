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
