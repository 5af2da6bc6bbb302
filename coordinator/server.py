"""Assemble and run a coordinator: store + service + gRPC server + HTTP/1.1 (Connect, metrics,
dashboard) + a background policy evaluation.

>>> srv = Server(ServerConfig(init=True, store="sqlite:///tmp/fleet.db", admin_token="secret")).start()   # doctest: +SKIP
>>> srv.grpc_target, srv.http_url                                                              # doctest: +SKIP
('127.0.0.1:40123', 'http://127.0.0.1:40124')
>>> srv.stop()                                                                                 # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from edgefleet._errors import ConfigError

from ._guard import Limits
from .dashboard import Dashboard
from .handlers import generic_handler
from .metrics import Metrics
from .rules import Rules, load_rules
from .service import Coordinator
from .servicers import AdminServicer, FleetServicer, IdentityServicer
from .store import open_store
from .throttle import RateLimit
from .web import HttpConfig, HttpServer, build_app, check_cors_origins, default_app_dir

__all__ = ["Server", "ServerConfig"]

log = logging.getLogger("edgefleet.coordinator")


@dataclass
class ServerConfig:
    """Everything ``edgefleet serve`` takes; the CLI builds one of these."""

    store: str = "sqlite:///edgefleet-coordinator.db"
    admin_token: str = ""
    host: str = "127.0.0.1"
    port: int = 0                        # gRPC; 0 picks a free port
    http_port: int | None = 0            # Connect + /metrics + dashboard; None disables
    tls_cert: str | None = None          # PEM files; both or neither
    tls_key: str | None = None
    rules: Rules | None = None
    trusted_key: bytes | None = None     # require bundles signed by this ed25519 public key
    max_message_bytes: int = 8 * 1024 * 1024
    max_concurrent_rpcs: int = 512
    workers: int = 64                    # gRPC worker threads; a Predict or Report holds one until its commit
    evaluate_interval_s: float | None = 10.0   # None: only on the Evaluate call
    watch_interval_s: float = 1.0
    max_watches: int | None = None       # open WatchPolicy streams (each holds a worker); default workers // 4
    watch_max_s: float = 300.0           # a watch ends after this long; the device watches again
    read_token: str = ""                 # reads /metrics and /dashboard (the admin token does too)
    http_limits: Limits | None = None    # per-address connections, header/body/idle timeouts
    app_dir: str | None = "default"      # static files under /app/; "default": the repo's wasm/web/ if present
    cors_origins: tuple[str, ...] = ()   # origins allowed to call the HTTP port from a page
    init: bool = False                   # create the store when it does not exist (else refuse: state was lost)
    insecure_plaintext: bool = False     # allow a non-loopback bind without TLS
    allow_unsigned: bool = False         # accept unsigned or foreign-signed bundles (else trusted_key is required)
    token_ttl_s: float = 30 * 86400      # device tokens expire (devices rotate before)
    enrollment_ttl_s: float = 7 * 86400  # enrollment tokens expire
    device_rate: float = 20.0            # calls per second per device (burst twice that, at least one call)
    watches_per_device: int = 1          # open WatchPolicy streams per device


#: an admin or read token shorter than this, or with fewer distinct characters, is refused
MIN_TOKEN_CHARS, MIN_TOKEN_DISTINCT = 20, 10


def check_token_strength(name: str, token: str) -> None:
    if len(token) < MIN_TOKEN_CHARS or len(set(token)) < MIN_TOKEN_DISTINCT:
        raise ConfigError(f"serve: the {name} token is too weak (at least {MIN_TOKEN_CHARS} characters with "
                          f"{MIN_TOKEN_DISTINCT} distinct ones); make one with: "
                          "python -c 'import secrets; print(secrets.token_urlsafe(32))'")


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as e:
        raise ConfigError(f"serve: --host {host!r} does not resolve ({e})") from e
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def _check(config: ServerConfig) -> None:
    """Refuse an unsafe or inconsistent configuration before anything is opened."""
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("serve: TLS needs both --tls-cert and --tls-key")
    if not config.admin_token:
        raise ConfigError("serve: an admin token is required")
    check_token_strength("admin", config.admin_token)
    if config.read_token:
        check_token_strength("read", config.read_token)
    check_cors_origins(config.cors_origins)
    if not config.device_rate > 0:
        raise ConfigError(f"serve: --device-rate {config.device_rate:g}: a device must be allowed some calls (> 0 per s)")
    if config.trusted_key is None and not config.allow_unsigned:
        raise ConfigError("serve: no trusted key for bundles: pass --trusted-key, run `edgefleet keys init` in this "
                          "directory, or --allow-unsigned to accept bundles nobody vouches for")
    if not config.tls_cert and not is_loopback(config.host):
        if not config.insecure_plaintext:
            raise ConfigError(f"serve: --host {config.host} is reachable from the network; give --tls-cert and "
                              "--tls-key, or --insecure-plaintext to send tokens and telemetry in the clear")
        log.warning(json.dumps({"event": "insecure_plaintext", "host": config.host,
                                "message": "serving without TLS on a non-loopback address"}))


class Server:
    def __init__(self, config: ServerConfig):
        _check(config)
        self.config = config
        self.store = open_store(config.store, create=config.init)
        try:
            self.metrics = Metrics()
            self.coordinator = Coordinator(self.store, admin_token=config.admin_token,
                                           rules=config.rules or load_rules(None), trusted_key=config.trusted_key,
                                           read_token=config.read_token, allow_unsigned=config.allow_unsigned,
                                           token_ttl_s=config.token_ttl_s, enrollment_ttl_s=config.enrollment_ttl_s,
                                           device_rate=RateLimit(config.device_rate, 2 * config.device_rate))
            self.metrics.gauge("edgefleet_devices", "Enrolled devices.", self.store.count_devices, cache_s=10.0)
            max_watches = config.max_watches if config.max_watches is not None else max(1, config.workers // 4)
            self.fleet = FleetServicer(self.coordinator, self.metrics, watch_interval_s=config.watch_interval_s,
                                       max_watches=max_watches, watch_max_s=config.watch_max_s,
                                       watches_per_device=config.watches_per_device)
            self.admin = AdminServicer(self.coordinator, self.metrics)
            self.identity = IdentityServicer(self.coordinator, self.metrics)
            self.grpc, self.port = self._grpc_server()
            self.http = self._http_server() if config.http_port is not None else None
        except BaseException:
            self.store.close()
            raise
        self._stop = threading.Event()
        self._evaluator = threading.Thread(target=self._evaluate_loop, name="edgefleet-evaluate", daemon=True)

    def _grpc_server(self):
        config = self.config
        options = [("grpc.max_receive_message_length", config.max_message_bytes),
                   ("grpc.max_send_message_length", config.max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="edgefleet"),
                             options=options, maximum_concurrent_rpcs=config.max_concurrent_rpcs)
        server.add_generic_rpc_handlers((generic_handler("Fleet", self.fleet), generic_handler("Admin", self.admin),
                                         generic_handler("Identity", self.identity)))
        address = f"{config.host}:{config.port}"
        if config.tls_cert:
            try:
                pair = (Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())
            except OSError as e:
                raise ConfigError(f"serve: cannot read the TLS certificate or key ({e})") from e
            credentials = grpc.ssl_server_credentials([pair])
        try:
            port = (server.add_secure_port(address, credentials) if config.tls_cert
                    else server.add_insecure_port(address))
        except RuntimeError:   # grpc's way of saying the address cannot be bound
            port = 0
        if not port:
            raise ConfigError(f"serve: cannot bind the gRPC port {address} (in use, or not an address of this host)")
        return server, port

    def _http_server(self) -> HttpServer:
        config = self.config
        app_dir = default_app_dir() if config.app_dir == "default" else config.app_dir
        http = HttpConfig(host=config.host, port=config.http_port,
                          tls=(config.tls_cert, config.tls_key) if config.tls_cert else None,
                          max_body=config.max_message_bytes, limits=config.http_limits or Limits(),
                          app_dir=Path(app_dir) if app_dir else None, cors_origins=list(config.cors_origins))
        app = build_app({"Fleet": self.fleet, "Admin": self.admin, "Identity": self.identity}, metrics=self.metrics,
                        dashboard=Dashboard(self.store, self.coordinator.rules),
                        may_read=self.coordinator.may_read, config=http, throttle=self.coordinator.auth_throttle)
        return HttpServer(http, app)

    @property
    def grpc_target(self) -> str:
        return f"{self.config.host}:{self.port}"

    @property
    def http_url(self) -> str | None:
        return self.http.url if self.http else None

    def start(self) -> "Server":
        self.grpc.start()
        if self.http:
            self.http.start()
        if self.config.evaluate_interval_s:
            self._evaluator.start()
        log.info("coordinator serving gRPC on %s, HTTP on %s", self.grpc_target, self.http_url)
        return self

    def _evaluate_loop(self) -> None:
        while not self._stop.wait(self.config.evaluate_interval_s):
            try:
                for d in self.coordinator.evaluate():
                    self.metrics.inc("edgefleet_decisions_total", kind=d["kind"])
            except Exception:  # keep serving; the next round retries
                log.exception("policy evaluation failed")

    def wait(self) -> None:
        self.grpc.wait_for_termination()

    def stop(self, grace: float = 1.0) -> None:
        self._stop.set()
        if self.http:
            self.http.stop()
        self.grpc.stop(grace).wait(grace + 5)
        if self._evaluator.is_alive():
            self._evaluator.join(5)
        self.store.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
