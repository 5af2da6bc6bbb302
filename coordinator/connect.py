"""The Connect protocol over HTTP/1.1: the same servicer objects as gRPC, as Starlette routes.

Unary call: ``POST /edgefleet.v1.Fleet/Report`` with ``Content-Type: application/json`` (protobuf
JSON mapping) or ``application/proto``, ``Authorization: Bearer <token>``. Success is HTTP 200 with the
response message; an error is the Connect error JSON ``{"code": "invalid_argument", "message": ...}``
with the matching HTTP status. FetchBundle is served as a Connect server stream
(``application/connect+json`` or ``+proto``: enveloped messages, then an end-of-stream envelope);
WatchPolicy is gRPC only (a browser polls GetPolicy). ``edgefleet.device.ConnectTransport`` is a
standard-library client of this port; :mod:`.web` serves these routes.

>>> import urllib.request, json                     # doctest: +SKIP
>>> req = urllib.request.Request(url + "/edgefleet.v1.Fleet/GetPolicy", data=b"{}", headers={
...     "Content-Type": "application/json", "Authorization": "Bearer " + token})
>>> json.load(urllib.request.urlopen(req))["cohort"]
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from edgefleet.proto import fleet_pb2 as pb

__all__ = ["connect_routes", "HTTP_STATUS"]

#: Connect error code -> HTTP status (the Connect protocol's error-code table)
HTTP_STATUS = {"invalid_argument": 400, "unauthenticated": 401, "permission_denied": 403, "not_found": 404,
               "failed_precondition": 400, "out_of_range": 400, "resource_exhausted": 429, "unimplemented": 501,
               "unavailable": 503, "internal": 500, "unknown": 500, "deadline_exceeded": 504}

#: server-streaming methods served over HTTP (a finite stream; a watch would pin a thread per page)
STREAMING_OVER_HTTP = ("FetchBundle",)


class _Abort(Exception):
    def __init__(self, code, details):
        super().__init__(details)
        self.code, self.details = code, details


class _TooLarge(Exception):
    pass


class HttpContext:
    """The ServicerContext methods the servicers use: metadata, abort, is_active, peer."""

    def __init__(self, authorization: str, client: tuple | None):
        self._md = (("authorization", authorization),) if authorization else ()
        self._peer = f"ipv4:{client[0]}:{client[1]}" if client else "unknown"

    def invocation_metadata(self):
        return self._md

    def abort(self, code, details):
        raise _Abort(code, details)

    def is_active(self):
        return True

    def peer(self) -> str:
        return self._peer


def error(status: int, code: str, message: str, *, close: bool = False) -> Response:
    return Response(json.dumps({"code": code, "message": message}), status_code=status,
                    media_type="application/json", headers={"Connection": "close"} if close else None)


def _envelope(flags: int, data: bytes) -> bytes:
    return bytes([flags]) + len(data).to_bytes(4, "big") + data


async def _body(request: Request, max_body: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > max_body):
        raise _TooLarge(f"body of {length} bytes exceeds {max_body}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise _TooLarge(f"body exceeds {max_body} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _accept(request: Request, max_body: int, ctypes: tuple[str, ...], refusal: str):
    """``(content type, body, call context)`` of a Connect request, or the error response refusing it
    (body over ``max_body``, client gone, a content type not in ``ctypes``)."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip()
    try:
        body = await _body(request, max_body)
    except _TooLarge as e:
        return error(429, "resource_exhausted", str(e), close=True)
    except ClientDisconnect:
        return Response(status_code=400)   # nobody to answer
    if ctype not in ctypes:
        return error(415, "invalid_argument", refusal)
    return ctype, body, HttpContext(request.headers.get("authorization", ""), request.client)


def _decode(request_cls, raw: bytes, as_json: bool):
    try:
        return json_format.Parse(raw or b"{}", request_cls()) if as_json else request_cls.FromString(raw)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError, ValueError) as e:
        raise _Abort(None, f"cannot decode {request_cls.__name__}: {e}") from e


def _encode(message, as_json: bool) -> bytes:
    return json_format.MessageToJson(message).encode() if as_json else message.SerializeToString()


def _unary(handler, request_cls, max_body: int):
    async def endpoint(request: Request) -> Response:
        accepted = await _accept(request, max_body, ("application/json", "application/proto"),
                                 "Content-Type must be application/json or application/proto")
        if isinstance(accepted, Response):
            return accepted
        ctype, body, context = accepted
        as_json = ctype == "application/json"
        try:
            message = _decode(request_cls, body, as_json)
            response = await run_in_threadpool(handler, message, context)
        except _Abort as e:
            code = e.code.name.lower() if e.code is not None else "invalid_argument"
            return error(HTTP_STATUS.get(code, 500), code, e.details)
        return Response(_encode(response, as_json), media_type=ctype)
    return endpoint


def _server_stream(handler, request_cls, max_body: int):
    """Connect server streaming: one enveloped request in; enveloped messages out, then an
    end-of-stream envelope (flag 2) holding ``{}`` or the error."""
    async def endpoint(request: Request) -> Response:
        accepted = await _accept(request, max_body, ("application/connect+json", "application/connect+proto"),
                                 "a streaming call needs Content-Type application/connect+json or "
                                 "application/connect+proto")
        if isinstance(accepted, Response):
            return accepted
        ctype, body, context = accepted
        as_json = ctype.endswith("json")
        frames, end = [], {}
        try:
            if len(body) < 5 or int.from_bytes(body[1:5], "big") != len(body) - 5:
                raise _Abort(None, "the request must be one enveloped message")
            message = _decode(request_cls, body[5:], as_json)
            for out in await run_in_threadpool(lambda: list(handler(message, context))):
                frames.append(_envelope(0, _encode(out, as_json)))
        except _Abort as e:
            code = e.code.name.lower() if e.code is not None else "invalid_argument"
            end = {"error": {"code": code, "message": e.details}}
        frames.append(_envelope(2, json.dumps(end).encode()))
        return Response(b"".join(frames), media_type=ctype)
    return endpoint


def connect_routes(servicers: dict, max_body: int) -> list[Route]:
    """One POST route per unary method (and per method in ``STREAMING_OVER_HTTP``) of each service."""
    routes = []
    for service_name, servicer in servicers.items():
        for method in pb.DESCRIPTOR.services_by_name[service_name].methods:
            if method.client_streaming or (method.server_streaming and method.name not in STREAMING_OVER_HTTP):
                continue
            make = _server_stream if method.server_streaming else _unary
            endpoint = make(getattr(servicer, method.name), getattr(pb, method.input_type.name), max_body)
            routes.append(Route(f"/edgefleet.v1.{service_name}/{method.name}", endpoint, methods=["POST"]))
    return routes
