"""uvicorn's HTTP/1.1 protocol (h11) with the limits a public port needs: a connection cap per
client address and deadlines on everything a client owes the server.

- ``idle_timeout_s``: a connection with no request in flight is closed (from accept, and between
  requests through uvicorn's keep-alive timer);
- ``header_timeout_s``: once the first byte of a request arrived, its headers must be complete;
- ``body_timeout_s``: once the headers arrived, the body must be complete.

Time spent by the application answering is never the client's fault and has no deadline here.
A connection beyond ``per_address`` from one address is closed at once, before any byte is read.
The TLS handshake runs in asyncio's SSL protocol (never on the accepting code path) with its own
timeout, set where the listening socket is created (:mod:`.web`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["Limits", "GuardedH11Protocol"]

log = logging.getLogger("edgefleet.coordinator.http")


@dataclass
class Limits:
    per_address: int = 128
    idle_timeout_s: float = 10.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    open: dict[str, int] = field(default_factory=dict)   # client address -> open connections (loop thread only)
    refused: int = 0

    def admit(self, host: str) -> bool:
        n = self.open.get(host, 0)
        if n >= self.per_address:
            self.refused += 1
            return False
        self.open[host] = n + 1
        return True

    def release(self, host: str) -> None:
        n = self.open.get(host, 1) - 1
        if n > 0:
            self.open[host] = n
        else:
            self.open.pop(host, None)


class GuardedH11Protocol(H11Protocol):
    def __init__(self, *args, limits: Limits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._host: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_kind = ""

    def connection_made(self, transport) -> None:
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else "?"
        if not self.limits.admit(host):
            transport.abort()   # no bytes read, no answer: the cheapest refusal
            return
        self._host = host
        super().connection_made(transport)
        self._arm("idle", self.limits.idle_timeout_s)

    def connection_lost(self, exc) -> None:
        self._disarm()
        if self._host is None:
            return
        self.limits.release(self._host)
        self._host = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm("body", self.limits.body_timeout_s)
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm("header", self.limits.header_timeout_s)
        else:
            self._disarm()   # the request is complete: answering it is our part

    def _arm(self, kind: str, seconds: float) -> None:
        if self._deadline is not None and self._deadline_kind == kind:
            return
        self._disarm()
        self._deadline_kind = kind
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self._deadline_kind = ""

    def _expire(self) -> None:
        kind, self._deadline = self._deadline_kind, None
        if self.cycle is not None and not self.cycle.response_complete and kind == "idle":
            return   # a request is being answered
        log.debug("closing a connection from %s: %s timeout", self._host, kind)
        self.transport.close()
