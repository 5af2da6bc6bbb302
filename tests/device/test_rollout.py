"""Rollouts through the coordinator: canary switch and rollback with an atomic, persistent swap;
tampered bundles (digest, signature) refused while the current model keeps serving, and the refusal
reaches the coordinator."""

from __future__ import annotations

import io
import sqlite3
import tarfile

import pytest

from edgefleet.bundle import pack
from edgefleet.coordinator import AdminClient, Server, ServerConfig
from edgefleet.device import Device, GrpcTransport

from bundle_factory import digits, make_bundle
from bundle_factory import ADMIN


@pytest.fixture
def fleet(server, admin, archives, bundles, public_key, tmp_path):
    for v in ("1.0", "1.1"):
        admin.publish_bundle(archives[v])
    admin.set_baseline("eu", "1.0")
    token = admin.create_enrollment_token("eu", uses=10)

    def device(name):
        dev = Device(bundles["1.0"], tmp_path / name, transport=GrpcTransport(server.grpc_target),
                     enrollment_token=token, trusted_key=public_key)
        dev.sync()
        return dev
    return device


def test_canary_swap_persists_and_rolls_back(fleet, admin, bundles, public_key, server, tmp_path):
    dev = fleet("d1")
    assert dev.model_version == "1.0"
    admin.start_canary("eu", "1.1", share=1.0)
    assert dev.sync()["policy_applied"] and dev.model_version == "1.1"
    assert dev.predict(digits()[2][:3])[0].model_version == "1.1"
    # the swap survives a restart (the pointer file is replaced atomically)
    dev.close()
    again = Device(bundles["1.0"], tmp_path / "d1", transport=GrpcTransport(server.grpc_target), trusted_key=public_key)
    assert again.model_version == "1.1"
    admin.stop_canary("eu", promote=False)
    assert again.sync()["policy_applied"] and again.model_version == "1.0"
    again.close()


def test_fallback_artifact_switches_and_clears(fleet, admin):
    dev = fleet("d1")
    assert dev.artifact == "onnx-int8"
    admin.set_fallback("eu", artifact="onnx-fp32", reason="ops")
    dev.sync()
    assert dev.artifact == "onnx-fp32" and dev.predict(digits()[2][:1])[0].artifact == "onnx-fp32"
    admin.set_fallback("eu")
    dev.sync()
    assert dev.artifact == "onnx-int8"


def _tamper_archive(archive: bytes) -> bytes:
    """Flip a byte inside model.int8.onnx, keep the manifest: the artifact's sha256 no longer matches."""
    src = tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "model.int8.onnx":
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            dst.addfile(member, io.BytesIO(data))
    return out.getvalue()


def test_tampered_digest_is_refused_and_reported(fleet, admin, server, archives):
    dev = fleet("d1")
    digest = server.store.bundle_by_version("1.1")[0]
    conn = sqlite3.connect(server.store.path)  # the bytes on offer change after publishing (store or transit)
    conn.execute("UPDATE bundles SET archive = ? WHERE digest = ?", (_tamper_archive(archives["1.1"]), digest))
    conn.commit()
    conn.close()
    admin.start_canary("eu", "1.1", share=1.0)
    result = dev.sync()
    assert result["online"] and not result["policy_applied"]
    assert dev.model_version == "1.0" and dev.predict(digits()[2][:2])[0].model_version == "1.0"
    events = admin.list_events(dev.device_id)
    assert [e["kind"] for e in events] == ["bundle_refused"]
    assert "sha256 mismatch" in events[0]["detail"] and events[0]["digest"] == digest


def test_untrusted_signature_is_refused_and_reported(bundles, public_key, tmp_path):
    from edgefleet._signing import generate_key
    rogue = make_bundle(tmp_path / "rogue", version="6.6", signing_key=generate_key())
    # a coordinator that accepts any bundle (--allow-unsigned) offers one signed by another key
    with Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'f.db'}", admin_token=ADMIN, http_port=None,
                             evaluate_interval_s=None, allow_unsigned=True)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        admin.publish_bundle(pack(bundles["1.0"], tmp_path / "a.tgz").read_bytes())
        admin.publish_bundle(pack(rogue, tmp_path / "r.tgz").read_bytes())
        admin.set_baseline("eu", "1.0")
        dev = Device(bundles["1.0"], tmp_path / "dev", transport=GrpcTransport(srv.grpc_target),
                     enrollment_token=admin.create_enrollment_token("eu"), trusted_key=public_key)
        dev.sync()
        admin.set_baseline("eu", "6.6")
        assert not dev.sync()["policy_applied"]
        assert dev.model_version == "1.0" and dev.predict(digits()[2][:1])[0].model_version == "1.0"
        events = admin.list_events(dev.device_id)
        assert events[-1]["kind"] == "bundle_refused" and "untrusted key" in events[-1]["detail"]
        assert not any((tmp_path / "dev" / "bundles").iterdir())  # nothing of it was kept
        admin.close()
        dev.close()


def test_follow_policy_applies_streamed_changes(fleet, admin):
    import threading
    import time
    dev = fleet("d1")
    stop, result = threading.Event(), {}
    thread = threading.Thread(target=lambda: result.update(n=dev.follow_policy(stop, timeout_s=20)))
    thread.start()
    time.sleep(0.3)  # the watch is open
    admin.set_fallback("eu", artifact="onnx-fp32", reason="watch test")
    for _ in range(100):  # bounded wait for the streamed policy to land
        if dev.artifact == "onnx-fp32":
            break
        time.sleep(0.05)
    stop.set()
    dev.transport.cancel_watch()
    thread.join(30)
    assert dev.artifact == "onnx-fp32" and result["n"] >= 1 and not thread.is_alive()


def test_old_bundles_are_pruned(fleet, admin, archives, tmp_path):
    dev = fleet("d1")
    admin.start_canary("eu", "1.1", share=1.0)
    dev.sync()
    admin.stop_canary("eu", promote=True)  # baseline 1.1
    admin.publish_bundle(archives["2.0-bad"])
    admin.set_baseline("eu", "2.0-bad")
    dev.sync()
    kept = sorted(p.name for p in (tmp_path / "d1" / "bundles").iterdir())
    assert dev.model_version == "2.0-bad" and len(kept) == 2  # the serving bundle and the one before
