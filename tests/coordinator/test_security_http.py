"""Security suite, HTTP port: what an outside tester found stalled the old hand-written server.

- one idle TCP connection on the TLS port blocked every HTTPS client (handshake on the accept path);
- 64-70 slow connections (slowloris) made ``/metrics`` and the Connect API unreachable, and left
  BrokenPipe tracebacks in the log;
- ``/metrics`` and ``/dashboard`` answered without a token.

The stall tests run a real ``edgefleet serve`` process on 127.0.0.1 and attack it from other loopback
addresses (127.0.0.2-5), so the per-address connection cap does not hide the attack from the server.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bundle_factory import ADMIN
from test_grpc import _self_signed

STRONG_ADMIN = "a-strong-admin-token-for-the-security-suite-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``edgefleet serve`` in a subprocess; its stderr (the JSON-lines log) is kept."""

    def __init__(self, tmp_path: Path, *extra: str, tls: tuple[str, str] | None = None):
        self.grpc_port, self.http_port = _free_port(), _free_port()
        self.log_path = tmp_path / "serve.log"
        self.tls = tls
        args = [sys.executable, "-m", "edgefleet", "serve", "--store", f"sqlite:///{tmp_path / 'fleet.db'}",
                "--port", str(self.grpc_port), "--http-port", str(self.http_port), "--evaluate-interval", "0", "--init",
                *extra]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        env = {**os.environ, "EDGEFLEET_ADMIN_TOKEN": STRONG_ADMIN, "OMP_NUM_THREADS": "1"}
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, env=env)
        self.banner = self.proc.stdout.readline().decode()
        if not self.banner.startswith("edgefleet serve:"):
            self.stop()
            raise AssertionError(f"serve did not start: {self.banner!r} {self.log_path.read_text()[-2000:]}")
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.http_port}"
        self.ssl = ssl.create_default_context(cafile=tls[0]) if tls else None

    def request(self, path: str, body: dict | None = None, token: str = STRONG_ADMIN, timeout: float = 10):
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST" if data else "GET")
        with urllib.request.urlopen(req, timeout=timeout, context=self.ssl) as r:
            return r.status, r.read()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _attackers(port: int, n: int, tls: ssl.SSLContext | None, stop: threading.Event, holding: list):
    """``n`` connections from 127.0.0.2-5: half open and silent (no TLS hello either), half slowloris
    (a request line, then one header byte every 0.5 s, never finishing)."""
    def slow(sock):
        try:
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname="localhost")
            sock.sendall(b"POST /edgefleet.v1.Fleet/GetPolicy HTTP/1.1\r\nHost: x\r\n")
            while not stop.wait(0.5):
                sock.sendall(b"X")
        except OSError:
            pass   # the server closed it (a deadline): what we want
        finally:
            sock.close()

    threads = []
    for i in range(n):
        s = socket.socket()
        s.bind((f"127.0.0.{2 + i % 4}", 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        holding.append(s)
        if i % 2:
            t = threading.Thread(target=slow, args=(s,), daemon=True)
            t.start()
            threads.append(t)
    return threads


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_200_idle_and_slowloris_connections_do_not_stall_the_http_port(tmp_path, use_tls):
    tls = _self_signed(tmp_path) if use_tls else None
    srv = ServeProcess(tmp_path, tls=tls)
    stop, holding = threading.Event(), []
    try:
        # a device to make real Connect calls with
        from edgefleet.coordinator import AdminClient
        admin = AdminClient(f"127.0.0.1:{srv.grpc_port}", STRONG_ADMIN, root_cert=tls[0] if tls else None)
        token = admin.create_enrollment_token("eu")
        admin.close()
        _, raw = srv.request("/edgefleet.v1.Fleet/Enroll", {"enrollmentToken": token}, token="")
        device_token = json.loads(raw)["deviceToken"]

        client_tls = None
        if tls:
            client_tls = ssl.create_default_context(cafile=tls[0])
        threads = _attackers(srv.http_port, 200, client_tls, stop, holding)
        time.sleep(1.0)   # every attacker connected; the slow ones have sent their first bytes
        latencies = []
        for _ in range(20):
            t0 = time.perf_counter()
            status, raw = srv.request("/edgefleet.v1.Fleet/GetPolicy", {}, token=device_token)
            assert status == 200 and json.loads(raw)["cohort"] == "eu"
            status, raw = srv.request("/metrics")
            assert status == 200 and b"edgefleet_rpc_total" in raw
            latencies.append(time.perf_counter() - t0)
        print(f"\n{'tls' if use_tls else 'plain'}: 20 GetPolicy+metrics pairs under 200 attackers, "
              f"max {max(latencies) * 1000:.0f} ms")
    finally:
        stop.set()
        for s in holding:
            try:
                s.close()
            except OSError:
                pass
        srv.stop()
    log = srv.log()
    assert "Traceback" not in log and "BrokenPipe" not in log, log[-3000:]
    for line in filter(None, log.splitlines()):
        json.loads(line)   # every log line is one JSON object


def test_deadlines_close_slow_and_idle_connections(tmp_path):
    from edgefleet.coordinator import Server, ServerConfig
    from edgefleet.coordinator._guard import Limits
    limits = Limits(idle_timeout_s=0.5, header_timeout_s=0.5, body_timeout_s=0.5)
    with Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'f.db'}", admin_token=STRONG_ADMIN, allow_unsigned=True, http_limits=limits,
                             evaluate_interval_s=None)) as srv:
        port = srv.http.port

        def closed_within(sock, seconds: float) -> bool:
            sock.settimeout(seconds)
            try:
                while sock.recv(1024):
                    pass   # a 4xx answer is fine too; what matters is that the connection ends
                return True
            except socket.timeout:
                return False
            except ConnectionError:
                return True

        idle = socket.create_connection(("127.0.0.1", port))
        headers = socket.create_connection(("127.0.0.1", port))
        headers.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")          # never finishes its headers
        body = socket.create_connection(("127.0.0.1", port))
        body.sendall(b"POST /edgefleet.v1.Fleet/GetPolicy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")                     # 1 of 100 body bytes
        for sock in (idle, headers, body):
            assert closed_within(sock, 5.0)
            sock.close()
        # and the port still answers
        req = urllib.request.Request(srv.http_url + "/metrics", headers={"Authorization": f"Bearer {STRONG_ADMIN}"})
        assert urllib.request.urlopen(req, timeout=5).status == 200


def test_connections_per_client_address_are_capped(tmp_path):
    from edgefleet.coordinator import Server, ServerConfig
    from edgefleet.coordinator._guard import Limits
    with Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'f.db'}", admin_token=STRONG_ADMIN, allow_unsigned=True,
                             http_limits=Limits(per_address=3), evaluate_interval_s=None)) as srv:
        port = srv.http.port
        held = []
        for _ in range(3):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", port))
            held.append(s)
        time.sleep(0.2)
        extra = socket.socket()
        extra.bind(("127.0.0.2", 0))
        extra.settimeout(5)
        extra.connect(("127.0.0.1", port))
        try:
            extra.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert extra.recv(100) == b""          # closed without an answer
        except ConnectionError:
            pass                                    # or reset: refused either way
        extra.close()
        # another address is unaffected
        req = urllib.request.Request(srv.http_url + "/metrics", headers={"Authorization": f"Bearer {STRONG_ADMIN}"})
        assert urllib.request.urlopen(req, timeout=5).status == 200
        for s in held:
            s.close()


def test_metrics_and_dashboard_need_the_admin_or_read_token(tmp_path):
    from edgefleet.coordinator import Server, ServerConfig
    read = "a-read-only-token-for-scrapers-0123456789"
    with Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'f.db'}", admin_token=STRONG_ADMIN, allow_unsigned=True, read_token=read,
                             evaluate_interval_s=None)) as srv:
        for path in ("/metrics", "/dashboard", "/dashboard/eu", "/"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(srv.http_url + path, timeout=5)
            assert info.value.code == 401 and "Basic" in info.value.headers["WWW-Authenticate"]
            bad = urllib.request.Request(srv.http_url + path, headers={"Authorization": "Bearer wrong"})
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(bad, timeout=5)
            assert info.value.code == 401
        for token in (STRONG_ADMIN, read):
            req = urllib.request.Request(srv.http_url + "/metrics", headers={"Authorization": f"Bearer {token}"})
            assert b"edgefleet_devices" in urllib.request.urlopen(req, timeout=5).read()
        import base64
        basic = base64.b64encode(f"browser:{read}".encode()).decode()   # a browser's login prompt
        req = urllib.request.Request(srv.http_url + "/dashboard", headers={"Authorization": f"Basic {basic}"})
        assert b"edgefleet fleet" in urllib.request.urlopen(req, timeout=5).read()


def test_metrics_label_values_are_escaped():
    from edgefleet.coordinator.metrics import Metrics
    m = Metrics()
    m.rpc('Re"port\n{x="1"}', "OK", 0.001)
    text = m.render().decode()
    assert 'method="Re\\"port\\n{x=\\"1\\"}"' in text


def test_static_app_and_cors_for_named_origins_only(tmp_path):
    from edgefleet._errors import ConfigError
    from edgefleet.coordinator import Server, ServerConfig
    app = tmp_path / "web"
    app.mkdir()
    (app / "index.html").write_text("<!doctype html><title>edgefleet app</title>")
    origin = "http://127.0.0.1:9999"
    with Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'f.db'}", admin_token=STRONG_ADMIN, allow_unsigned=True, app_dir=str(app),
                             cors_origins=(origin,), evaluate_interval_s=None)) as srv:
        assert b"edgefleet app" in urllib.request.urlopen(srv.http_url + "/app/", timeout=5).read()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(srv.http_url + "/app/../f.db", timeout=5)
        assert info.value.code == 404

        def preflight(from_origin):
            req = urllib.request.Request(srv.http_url + "/edgefleet.v1.Fleet/Report", method="OPTIONS", headers={
                "Origin": from_origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type"})
            try:
                r = urllib.request.urlopen(req, timeout=5)
            except urllib.error.HTTPError as e:
                r = e
            return r.status, r.headers
        status, headers = preflight(origin)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
        assert "authorization" in headers["Access-Control-Allow-Headers"].lower()
        assert headers.get("Access-Control-Allow-Credentials") is None
        status, headers = preflight("http://evil.example")
        assert status == 400 and headers.get("Access-Control-Allow-Origin") is None
    for bad in ("*", "https://*.example", "ftp://x", "https://app.example/path"):
        with pytest.raises(ConfigError, match="cors-origin"):
            Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'g.db'}", admin_token=STRONG_ADMIN, allow_unsigned=True,
                                cors_origins=(bad,)))
