"""Assemble and run a coordinator: store + service + gRPC server + HTTP/1.1 (Connect, metrics,
dashboard) + a background policy evaluation.

>>> srv = Server(ServerConfig(store="sqlite:///tmp/fleet.db", admin_token="secret")).start()   # doctest: +SKIP
>>> srv.grpc_target, srv.http_url                                                              # doctest: +SKIP
('127.0.0.1:40123', 'http://127.0.0.1:40124')
>>> srv.stop()                                                                                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
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
from .servicers import AdminServicer, FleetServicer
from .store import open_store
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
    workers: int = 16
    evaluate_interval_s: float | None = 10.0   # None: only on the Evaluate call
    watch_interval_s: float = 1.0
    max_watches: int | None = None       # open WatchPolicy streams (each holds a worker); default workers // 4
    watch_max_s: float = 300.0           # a watch ends after this long; the device watches again
    read_token: str = ""                 # reads /metrics and /dashboard (the admin token does too)
    http_limits: Limits | None = None    # per-address connections, header/body/idle timeouts
    app_dir: str | None = "default"      # static files under /app/; "default": the repo's wasm/web/ if present
    cors_origins: tuple[str, ...] = ()   # origins allowed to call the HTTP port from a page


class Server:
    def __init__(self, config: ServerConfig):
        if bool(config.tls_cert) != bool(config.tls_key):
            raise ConfigError("serve: TLS needs both --tls-cert and --tls-key")
        if not config.admin_token:
            raise ConfigError("serve: an admin token is required")
        check_cors_origins(config.cors_origins)
        self.config = config
        self.store = open_store(config.store)
        self.metrics = Metrics()
        self.coordinator = Coordinator(self.store, admin_token=config.admin_token,
                                       rules=config.rules or load_rules(None), trusted_key=config.trusted_key,
                                       read_token=config.read_token)
        self.metrics.gauge("edgefleet_devices", "Enrolled devices.", self.store.count_devices, cache_s=10.0)
        max_watches = config.max_watches if config.max_watches is not None else max(1, config.workers // 4)
        self.fleet = FleetServicer(self.coordinator, self.metrics, watch_interval_s=config.watch_interval_s,
                                   max_watches=max_watches, watch_max_s=config.watch_max_s)
        self.admin = AdminServicer(self.coordinator, self.metrics)
        options = [("grpc.max_receive_message_length", config.max_message_bytes),
                   ("grpc.max_send_message_length", config.max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="edgefleet"),
                                options=options, maximum_concurrent_rpcs=config.max_concurrent_rpcs)
        self.grpc.add_generic_rpc_handlers((generic_handler("Fleet", self.fleet), generic_handler("Admin", self.admin)))
        address = f"{config.host}:{config.port}"
        if config.tls_cert:
            try:
                pair = (Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())
            except OSError as e:
                raise ConfigError(f"serve: cannot read the TLS certificate or key ({e})") from e
            creds = grpc.ssl_server_credentials([pair])
            self.port = self.grpc.add_secure_port(address, creds)
        else:
            self.port = self.grpc.add_insecure_port(address)
        if not self.port:
            raise ConfigError(f"serve: cannot bind the gRPC port {address} (in use, or not an address of this host)")
        self.http = None
        if config.http_port is not None:
            app_dir = default_app_dir() if config.app_dir == "default" else config.app_dir
            http = HttpConfig(host=config.host, port=config.http_port,
                              tls=(config.tls_cert, config.tls_key) if config.tls_cert else None,
                              max_body=config.max_message_bytes, limits=config.http_limits or Limits(),
                              app_dir=Path(app_dir) if app_dir else None, cors_origins=list(config.cors_origins))
            app = build_app({"Fleet": self.fleet, "Admin": self.admin}, metrics=self.metrics,
                            dashboard=Dashboard(self.store, self.coordinator.rules),
                            may_read=self.coordinator.may_read, config=http)
            self.http = HttpServer(http, app)
        self._stop = threading.Event()
        self._evaluator = threading.Thread(target=self._evaluate_loop, name="edgefleet-evaluate", daemon=True)

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
