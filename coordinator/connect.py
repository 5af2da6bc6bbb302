"""The same handlers over HTTP/1.1: the Connect protocol (unary calls), plus ``/metrics`` and the
dashboard, from one origin so that a browser page can report telemetry without a proxy.

Unary call: ``POST /edgefleet.v1.Fleet/Report`` with ``Content-Type: application/json`` (protobuf
JSON mapping) or ``application/proto``, ``Authorization: Bearer <token>``. Success is HTTP 200 with the
response message; an error is the Connect error JSON ``{"code": "invalid_argument", "message": ...}``
with the matching HTTP status. FetchBundle is served as a Connect server stream
(``application/connect+json`` or ``+proto``: enveloped messages, then an end-of-stream envelope);
WatchPolicy is gRPC only (a browser polls GetPolicy). ``edgefleet.device.ConnectTransport`` is a
standard-library client of this port.

>>> import urllib.request, json                     # doctest: +SKIP
>>> req = urllib.request.Request(url + "/edgefleet.v1.Fleet/GetPolicy", data=b"{}", headers={
...     "Content-Type": "application/json", "Authorization": "Bearer " + token})
>>> json.load(urllib.request.urlopen(req))["cohort"]
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from edgefleet.proto import fleet_pb2 as pb

__all__ = ["ConnectServer", "HTTP_STATUS"]

#: Connect error code -> HTTP status (connectrpc.com/docs/protocol#error-codes)
HTTP_STATUS = {"invalid_argument": 400, "unauthenticated": 401, "permission_denied": 403, "not_found": 404,
               "failed_precondition": 400, "out_of_range": 400, "resource_exhausted": 429, "unimplemented": 501,
               "unavailable": 503, "internal": 500, "unknown": 500, "deadline_exceeded": 504}


class _Abort(Exception):
    def __init__(self, code, details):
        super().__init__(details)
        self.code, self.details = code, details


class _HttpContext:
    """The two ServicerContext methods the servicers use."""

    def __init__(self, authorization: str):
        self._md = (("authorization", authorization),) if authorization else ()

    def invocation_metadata(self):
        return self._md

    def abort(self, code, details):
        raise _Abort(code, details)

    def is_active(self):
        return True


#: server-streaming methods served over HTTP (a finite stream; a watch would pin a thread per page)
STREAMING_OVER_HTTP = ("FetchBundle",)


def _routes(servicers: dict) -> dict:
    routes = {}
    for service_name, servicer in servicers.items():
        for method in pb.DESCRIPTOR.services_by_name[service_name].methods:
            if method.client_streaming or (method.server_streaming and method.name not in STREAMING_OVER_HTTP):
                continue
            routes[f"/edgefleet.v1.{service_name}/{method.name}"] = (getattr(servicer, method.name),
                                                                     getattr(pb, method.input_type.name),
                                                                     method.server_streaming)
    return routes


def _envelope(flags: int, data: bytes) -> bytes:
    return bytes([flags]) + len(data).to_bytes(4, "big") + data


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, but at most ``max_connections`` at once: beyond that a connection is
    closed at once (a flood cannot exhaust the process)."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections: int):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class ConnectServer:
    """HTTP/1.1 server for Connect unary calls, ``/metrics`` and ``/dashboard`` (optionally TLS)."""

    def __init__(self, servicers: dict, metrics, dashboard, *, host: str = "127.0.0.1", port: int = 0,
                 max_body: int = 4 * 1024 * 1024, tls: tuple[str, str] | None = None, max_connections: int = 64):
        routes = _routes(servicers)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "edgefleet"
            timeout = 30  # an idle or slow connection gives its slot back

            def log_message(self, *args):  # quiet; metrics count the calls
                pass

            def _send(self, status, body: bytes, ctype: str):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status, code, message):
                self._send(status, json.dumps({"code": code, "message": message}).encode(), "application/json")

            def _stream(self, handler, request_cls, ctype, body):
                """Connect server streaming: one enveloped request in; enveloped messages out, then an
                end-of-stream envelope (flag 2) holding ``{}`` or the error."""
                if ctype not in ("application/connect+json", "application/connect+proto"):
                    return self._error(415, "invalid_argument", "a streaming call needs Content-Type "
                                                                "application/connect+json or application/connect+proto")
                as_json = ctype.endswith("json")
                frames, end = [], {}
                try:
                    if len(body) < 5 or int.from_bytes(body[1:5], "big") != len(body) - 5:
                        raise ValueError("the request must be one enveloped message")
                    raw = body[5:]
                    request = json_format.Parse(raw or b"{}", request_cls()) if as_json else request_cls.FromString(raw)
                    for message in handler(request, _HttpContext(self.headers.get("Authorization", ""))):
                        out = (json_format.MessageToJson(message).encode() if as_json
                               else message.SerializeToString())
                        frames.append(_envelope(0, out))
                except _Abort as e:
                    end = {"error": {"code": e.code.name.lower(), "message": e.details}}
                except (json_format.ParseError, DecodeError, UnicodeDecodeError, ValueError) as e:
                    end = {"error": {"code": "invalid_argument", "message": f"cannot decode {request_cls.__name__}: {e}"}}
                frames.append(_envelope(2, json.dumps(end).encode()))
                self._send(200, b"".join(frames), ctype)

            def do_GET(self):
                path = urlparse(self.path).path
                if path == "/metrics":
                    self._send(200, metrics.render().encode(), "text/plain; version=0.0.4")
                elif path in ("/", "/dashboard", "/dashboard/"):
                    self._send(200, dashboard.index().encode(), "text/html; charset=utf-8")
                elif path.startswith("/dashboard/"):
                    page = dashboard.cohort(unquote(path[len("/dashboard/"):]))
                    if page is None:
                        self._error(404, "not_found", "no such cohort")
                    else:
                        self._send(200, page.encode(), "text/html; charset=utf-8")
                else:
                    self._error(404, "not_found", f"no page {path}")

            def do_POST(self):
                route = routes.get(urlparse(self.path).path)
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    self.close_connection = True
                    return self._error(411, "invalid_argument", "Content-Length required")
                if int(length) > max_body:
                    self.close_connection = True
                    return self._error(429, "resource_exhausted", f"body of {length} bytes exceeds {max_body}")
                body = self.rfile.read(int(length))
                if route is None:
                    return self._error(404, "unimplemented", f"no unary method {self.path}")
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if route[2]:
                    return self._stream(route[0], route[1], ctype, body)
                if ctype not in ("application/json", "application/proto"):
                    return self._error(415, "invalid_argument", "Content-Type must be application/json or "
                                                                "application/proto")
                handler, request_cls, _ = route
                try:
                    if ctype == "application/json":
                        request = json_format.Parse(body or b"{}", request_cls())
                    else:
                        request = request_cls.FromString(body)
                except (json_format.ParseError, DecodeError, UnicodeDecodeError, ValueError) as e:
                    return self._error(400, "invalid_argument", f"cannot decode {request_cls.__name__}: {e}")
                try:
                    response = handler(request, _HttpContext(self.headers.get("Authorization", "")))
                except _Abort as e:
                    code = e.code.name.lower()
                    return self._error(HTTP_STATUS.get(code, 500), code, e.details)
                if ctype == "application/json":
                    out = json_format.MessageToJson(response, preserving_proto_field_name=False).encode()
                else:
                    out = response.SerializeToString()
                self._send(200, out, ctype)

        self.httpd = _BoundedHTTPServer((host, port), Handler, max_connections)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls[0], tls[1])
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="edgefleet-http", daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> "ConnectServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
