"""The fleet coordinator: gRPC + HTTP/1.1 (Connect) service, durable store, drift and policy engines.

>>> from edgefleet.coordinator import Server, ServerConfig              # doctest: +SKIP
>>> with Server(ServerConfig(init=True, store="sqlite:///fleet.db", admin_token="s3cret")) as srv:   # doctest: +SKIP
...     print(srv.grpc_target, srv.http_url)

Needs the ``server`` extra (grpcio, protobuf, cryptography). See ``docs/coordinator.md``.
"""

from __future__ import annotations

__all__ = ["Server", "ServerConfig", "AdminClient", "Coordinator", "open_store", "load_rules", "parse_rules"]


def __getattr__(name: str):
    if name in ("Server", "ServerConfig"):
        from . import server
        return getattr(server, name)
    if name == "AdminClient":
        from .admin import AdminClient
        return AdminClient
    if name == "Coordinator":
        from .service import Coordinator
        return Coordinator
    if name == "open_store":
        from .store import open_store
        return open_store
    if name in ("load_rules", "parse_rules"):
        from . import rules
        return getattr(rules, name)
    raise AttributeError(f"module 'edgefleet.coordinator' has no attribute {name!r}")
