"""Acceptance: ``kill -9`` of a real coordinator process in the middle of a 10,000-window report
stream; after a restart every acknowledged window is stored exactly once and the devices redeliver
the rest: nothing lost, nothing doubled."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from edgefleet.bundle import pack
from edgefleet.coordinator import AdminClient
from edgefleet.coordinator.store import open_store
from edgefleet.device import Device, GrpcTransport, Window

from bundle_factory import ADMIN

DEVICES, PER_DEVICE = 4, 2500


def start_server(store_url, port=0, *, init=False):
    proc = subprocess.Popen([sys.executable, "-m", "edgefleet", "serve", "--store", store_url, "--port",
                             str(port), "--http-port", "-1", "--admin-token", ADMIN, "--evaluate-interval", "0"]
                            + (["--init"] if init else []),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = ""
    for _ in range(20):  # "edgefleet serve: gRPC 127.0.0.1:PORT" after a few JSON log lines (bounded: it prints or exits)
        line = proc.stdout.readline()
        lines += line
        found = re.search(r"^edgefleet serve: gRPC 127\.0\.0\.1:(\d+)", line)
        if found or not line:
            break
    assert found, f"server did not start: {lines}{proc.stdout.read() if proc.poll() is not None else ''}"
    return proc, int(found.group(1))


class CountingTransport(GrpcTransport):
    """Records every acknowledgement the device received."""

    acked: list
    lock = threading.Lock()

    def report(self, windows):
        ids = super().report(windows)
        with self.lock:
            self.acked.extend(ids)
        return ids


def fill_queue(device, n):
    """n closed windows straight into the device's queue (fsync off: this test is about the server)."""
    device.queue.fsync = False
    mon = device.bundle.manifest["monitoring"]
    k = len(mon["projection"]["histograms"])
    ids = []
    for i in range(n):
        w = Window(mon, device.bundle.version, "onnx-int8", now_ms=i)
        w.observe([float(i % 10 == c) for c in range(10)], [0.0] * k, 1.0)
        data = w.close(i + 1)
        device.queue.put(data)
        ids.append(data["report_id"])
    device.queue.fsync = True
    return ids


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return request.getfixturevalue("pg_database")


def stored_ids(store_url):
    store = open_store(store_url)
    try:
        return store.window_ids()
    finally:
        store.close()


def test_kill_9_mid_stream_loses_nothing_and_doubles_nothing(tmp_path, bundles, store_url, public_key):
    proc, port = start_server(store_url, init=True)
    try:
        admin = AdminClient(f"127.0.0.1:{port}", ADMIN)
        admin.publish_bundle(pack(bundles["1.0"], tmp_path / "b.tgz").read_bytes())
        admin.set_baseline("eu", "1.0")
        token = admin.create_enrollment_token("eu", uses=DEVICES)
        admin.close()
        acked: list = []
        devices, generated = [], []
        for d in range(DEVICES):
            transport = CountingTransport(f"127.0.0.1:{port}", timeout_s=5)
            transport.acked = acked
            dev = Device(bundles["1.0"], tmp_path / f"dev{d}", transport=transport, enrollment_token=token,
                         trusted_key=public_key,
                         queue_bytes=64 * 1024 * 1024)
            dev.sync()  # enrol
            generated += fill_queue(dev, PER_DEVICE)
            devices.append(dev)

        killed = threading.Event()

        def killer():
            deadline = time.monotonic() + 120
            while len(acked) < 3000 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.002)
            os.kill(proc.pid, signal.SIGKILL)
            killed.set()

        threads = [threading.Thread(target=killer)] + [threading.Thread(target=d.sync) for d in devices]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert killed.is_set() and proc.wait(30) == -signal.SIGKILL
        acked_before_kill = set(acked)
        remaining = sum(len(d.queue) for d in devices)
        assert 3000 <= len(acked_before_kill) < DEVICES * PER_DEVICE and remaining > 0
        # every acknowledged window is durable in the store the killed process left behind
        assert acked_before_kill <= {rid for _, rid in stored_ids(store_url)}

        proc, port = start_server(store_url, port)
        for _ in range(40):  # bounded redelivery rounds; the channels reconnect within a second or two
            if all(len(d.queue) == 0 for d in devices):
                break
            for d in devices:
                d.sync()
            time.sleep(0.25)
        assert all(len(d.queue) == 0 for d in devices)
        stored = stored_ids(store_url)
        ids = [rid for _, rid in stored]
        assert len(ids) == len(set(stored)) == DEVICES * PER_DEVICE  # nothing doubled
        assert set(ids) == set(generated)                             # nothing lost
        for d in devices:
            d.close()
    finally:
        proc.kill()
        proc.wait(30)
