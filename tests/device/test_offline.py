"""Acceptance: a device cut off from the coordinator for a simulated day keeps predicting, its queue
stays within its byte budget, and everything is delivered after reconnect."""

from __future__ import annotations

import socket
import time

from edgefleet.bundle import pack
from edgefleet.coordinator import AdminClient, Server, ServerConfig
from edgefleet.device import Device, GrpcTransport

from bundle_factory import digits
from bundle_factory import ADMIN

BUDGET = 16 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def coordinator(tmp_path, port, trusted_key):
    return Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'fleet.db'}", admin_token=ADMIN, port=port,
                               http_port=None, evaluate_interval_s=None, trusted_key=trusted_key))


def test_a_day_offline_then_everything_is_delivered(bundles, tmp_path, public_key):
    port = free_port()
    now = [1_800_000_000.0]
    with coordinator(tmp_path, port, public_key) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN)
        admin.publish_bundle(pack(bundles["1.0"], tmp_path / "b.tgz").read_bytes())
        admin.set_baseline("field", "1.0")
        token = admin.create_enrollment_token("field")
        admin.close()
        dev = Device(bundles["1.0"], tmp_path / "dev", transport=GrpcTransport(f"127.0.0.1:{port}", timeout_s=2),
                     enrollment_token=token, window_size=10 ** 6, window_seconds=600, queue_bytes=BUDGET, trusted_key=public_key,
                     clock=lambda: now[0])
        assert dev.sync()["online"]
    # the coordinator is gone: a day of traffic, one batch a minute, a sync attempt every hour
    _, _, x, _ = digits()
    predictions = 0
    for minute in range(24 * 60):
        now[0] += 60
        preds = dev.predict(x[(minute * 4) % 700:(minute * 4) % 700 + 4])
        predictions += len(preds)
        assert dev.queue.bytes() <= BUDGET
        if minute % 60 == 59:
            assert dev.sync()["online"] is False
    dev.flush_window()
    assert predictions == 5760 and dev.queue.compactions > 0 and dev.queue.bytes() <= BUDGET
    queued = dev.queue.windows()
    assert sum(w["count"] for w in queued) == predictions
    with coordinator(tmp_path, port, public_key) as srv:
        result = {}
        for _ in range(40):  # bounded: the channel reconnects within seconds
            result = dev.sync()
            if result["online"] and len(dev.queue) == 0:
                break
            time.sleep(0.25)
        assert result["online"] and len(dev.queue) == 0
        stored = srv.store.recent_windows("field", "1.0", 10 ** 6)
        assert sum(w["count"] for w in stored) == predictions
        # every closed window arrived (merged into fewer, none dropped)
        assert sum(w["merged"] for w in stored) == dev.stats["windows"] > len(stored)
    dev.close()
