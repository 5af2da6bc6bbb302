"""The coordinator's HTTP port on uvicorn + Starlette: the Connect API (:mod:`.connect`), ``/metrics``,
``/dashboard``, and the browser app's static files under ``/app/``.

What a public port needs, and where it lives: connection caps per client address and deadlines on
headers, bodies and idle connections (:mod:`._guard`); TLS handshakes in asyncio's SSL protocol with
their own timeout, so one silent client never holds the accept path; a global connection cap
(uvicorn answers 503 beyond it); CORS for named origins only; ``/metrics`` and ``/dashboard`` behind
the admin or read token (Bearer, or HTTP Basic with the token as password for a browser).

>>> srv = HttpServer(HttpConfig(), app).start()     # doctest: +SKIP
>>> srv.url                                         # doctest: +SKIP
'http://127.0.0.1:40124'
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edgefleet._errors import ConfigError

from ._guard import GuardedH11Protocol, Limits
from .connect import connect_routes, error

__all__ = ["HttpConfig", "HttpServer", "build_app", "default_app_dir", "check_cors_origins"]

log = logging.getLogger("edgefleet.coordinator.http")


def default_app_dir() -> Path | None:
    """The repository's ``wasm/web/`` when it exists (a source checkout), else None."""
    candidate = Path(__file__).resolve().parents[1] / "wasm" / "web"
    return candidate if candidate.is_dir() else None


def check_cors_origins(origins) -> list[str]:
    """Each origin must be ``scheme://host[:port]``; a wildcard is refused (name every origin)."""
    out = []
    for origin in origins or ():
        parsed = urlparse(origin)
        if origin.strip() == "*" or "*" in origin:
            raise ConfigError("--cors-origin: a wildcard is refused; name each origin (e.g. https://app.example)")
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/") \
                or parsed.query or parsed.fragment or "@" in parsed.netloc:
            raise ConfigError(f"--cors-origin {origin!r}: expected scheme://host[:port]")
        out.append(f"{parsed.scheme}://{parsed.netloc}")
    return out


@dataclass
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 0
    tls: tuple[str, str] | None = None        # (certificate, key) PEM files
    max_body: int = 8 * 1024 * 1024
    max_connections: int = 4096               # all clients; uvicorn answers 503 beyond it
    limits: Limits = field(default_factory=Limits)
    handshake_timeout_s: float = 10.0
    app_dir: Path | None = None               # served under /app/
    cors_origins: list[str] = field(default_factory=list)


def _token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer "):].strip()
    if auth.startswith("Basic "):
        try:
            return base64.b64decode(auth[len("Basic "):]).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


def build_app(servicers: dict, *, metrics, dashboard, may_read, config: HttpConfig, throttle=None) -> Starlette:
    """The Starlette application. ``may_read(token) -> bool`` guards ``/metrics`` and ``/dashboard``;
    wrong tokens there count against the client address in ``throttle`` (an AuthThrottle), like on
    the API."""

    def guarded(page):
        async def endpoint(request: Request) -> Response:
            address = request.client.host if request.client else "?"
            wait = throttle.locked_for(address) if throttle is not None else 0.0
            if wait > 0:
                return Response(f"too many failed authentications; retry in {wait:.1f} s\n", status_code=429,
                                media_type="text/plain")
            token = _token(request)
            if not may_read(token):
                if token and throttle is not None:
                    throttle.failed(address)
                return Response("the admin or read token is required\n", status_code=401, media_type="text/plain",
                                headers={"WWW-Authenticate": 'Basic realm="edgefleet", charset="UTF-8"'})
            if throttle is not None:
                throttle.succeeded(address)
            return await page(request)
        return endpoint

    async def metrics_page(request: Request) -> Response:
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type=metrics.content_type)

    async def index_page(request: Request) -> Response:
        return HTMLResponse(await run_in_threadpool(dashboard.index))

    async def cohort_page(request: Request) -> Response:
        page = await run_in_threadpool(dashboard.cohort, request.path_params["cohort"])
        return error(404, "not_found", "no such cohort") if page is None else HTMLResponse(page)

    routes = connect_routes(servicers, config.max_body) + [
        Route("/metrics", guarded(metrics_page), methods=["GET"]),
        Route("/", guarded(index_page), methods=["GET"]),
        Route("/dashboard", guarded(index_page), methods=["GET"]),
        Route("/dashboard/", guarded(index_page), methods=["GET"]),
        Route("/dashboard/{cohort:path}", guarded(cohort_page), methods=["GET"]),
    ]
    if config.app_dir is not None:
        if not Path(config.app_dir).is_dir():
            raise ConfigError(f"--app-dir {config.app_dir}: not a directory")
        routes.append(Mount("/app", StaticFiles(directory=str(config.app_dir), html=True), name="app"))
    middleware = []
    if config.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=check_cors_origins(config.cors_origins),
                                     allow_methods=["GET", "POST"], allow_credentials=False, max_age=600,
                                     allow_headers=["authorization", "content-type", "connect-protocol-version",
                                                    "connect-timeout-ms"]))

    async def not_found(request: Request, exc) -> Response:
        return error(404, "not_found", f"no page {request.url.path}")

    async def not_allowed(request: Request, exc) -> Response:
        return error(405, "unimplemented", f"{request.method} is not served at {request.url.path}")

    return Starlette(routes=routes, middleware=middleware, exception_handlers={404: not_found, 405: not_allowed})


def _quiet_exceptions(loop, context) -> None:
    """A client that vanishes mid-handshake or mid-write is routine on a public port: one line, no
    traceback. Anything else goes to asyncio's default handler."""
    exc = context.get("exception")
    if isinstance(exc, (OSError, ssl.SSLError)):
        log.info("connection error: %s (%s)", context.get("message", ""), type(exc).__name__)
        return
    loop.default_exception_handler(context)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server loop with our own listening step: the socket bound by us (so a bind failure is
    ours to report), our protocol class, and a TLS handshake timeout."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, tls: ssl.SSLContext | None,
                 limits: Limits, handshake_timeout_s: float):
        super().__init__(config)
        self._sock, self._tls, self._limits, self._handshake = sock, tls, limits, handshake_timeout_s

    async def startup(self, sockets=None) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_exceptions)

        def protocol():
            return GuardedH11Protocol(config=self.config, server_state=self.server_state, app_state={},
                                      limits=self._limits, _loop=loop)
        tls = {"ssl": self._tls, "ssl_handshake_timeout": self._handshake} if self._tls else {}
        self.servers = [await loop.create_server(protocol, sock=self._sock, backlog=self.config.backlog, **tls)]
        self.started = True


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as e:
        raise ConfigError(f"serve: cannot bind the HTTP port {host}:{port} ({e})") from e
    return sock


class HttpServer:
    def __init__(self, config: HttpConfig, app: Starlette):
        self.config = config
        tls = None
        if config.tls is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                tls.load_cert_chain(config.tls[0], config.tls[1])
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"serve: cannot load the TLS certificate or key ({e})") from e
        self._sock = _bind(config.host, config.port)
        self.host, self.port = self._sock.getsockname()[:2]
        self.scheme = "https" if tls else "http"
        uv = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, server_header=False,
                            timeout_keep_alive=int(max(1, config.limits.idle_timeout_s)),
                            limit_concurrency=config.max_connections, timeout_graceful_shutdown=2,
                            h11_max_incomplete_event_size=16 * 1024, loop="asyncio", http="h11")
        self._server = _Uvicorn(uv, self._sock, tls, config.limits, config.handshake_timeout_s)
        self._thread = threading.Thread(target=self._server.run, name="edgefleet-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> "HttpServer":
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"serve: the HTTP server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
        self._sock.close()
