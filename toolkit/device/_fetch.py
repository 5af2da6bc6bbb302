"""The Connect transport for a browser (Pyodide): the same Connect JSON as :class:`ConnectTransport`,
sent with the page's ``fetch`` instead of ``urllib`` (which cannot reach the network there).

``fetch`` is asynchronous and a page has no threads. The coroutine :meth:`FetchTransport.apost` does
the I/O; the transport's synchronous methods (what :class:`~edgefleet.device.Device` calls) wait for it
with Pyodide's ``run_sync``, which suspends the WebAssembly stack (JS Promise Integration) instead of
blocking the page: call ``Device.sync()`` from async code (``pyodide.runPythonAsync`` or an async
event handler). Same origin by default: ``base_url=""`` posts to the page's own server.
"""

from __future__ import annotations

import json

from ._connect import ConnectTransport
from ._transport import Offline

__all__ = ["FetchTransport"]


class FetchTransport(ConnectTransport):
    def __init__(self, base_url: str = "", *, timeout_s: float = 10.0):
        super().__init__(base_url, timeout_s=timeout_s)

    async def apost(self, method: str, body: bytes, ctype: str, timeout_s: float | None = None) -> bytes:
        from js import AbortSignal  # type: ignore[import-not-found]  # Pyodide only
        from pyodide.http import pyfetch  # type: ignore[import-not-found]

        headers = {"Content-Type": ctype, "Connect-Protocol-Version": "1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            r = await pyfetch(self._url(method), method="POST", headers=headers,
                              body=body, signal=AbortSignal.timeout(int((timeout_s or self.timeout_s) * 1000)))
            data = await r.bytes()
        except Exception as e:  # noqa: BLE001 - fetch rejects with a JS TypeError/AbortError when unreachable
            raise Offline(f"{method}: coordinator unreachable ({e})") from e
        if not r.ok:
            try:
                err = json.loads(data)
            except ValueError:
                err = {"code": "unavailable" if r.status >= 500 else "unknown", "message": f"HTTP {r.status}"}
            raise self._error(method, err)
        return data

    def _post(self, method: str, body: bytes, ctype: str, timeout_s: float | None = None) -> bytes:
        from pyodide.ffi import run_sync  # type: ignore[import-not-found]

        return run_sync(self.apost(method, body, ctype, timeout_s))
