"""The device SDK: ``Device`` runs a bundle, falls back locally, summarises traffic into mergeable
sketches, queues them on disk while offline and follows the coordinator's policy.

The core (sketches, queue, policy, fallback chain) is pure Python; numpy and a runtime backend are
used when present, and ``runner_factory`` plugs in any other runtime (e.g. wasm under Pyodide). In a browser, :class:`FetchTransport` speaks Connect over ``fetch``.
"""

from ._connect import ConnectTransport
from ._device import Device, Prediction
from ._fetch import FetchTransport
from ._policy import choose, in_canary
from ._queue import DiskQueue
from ._sketch import LATENCY_EDGES_MS, Window, latency_quantile, merge
from ._transport import GrpcTransport, Offline, Rejected

__all__ = ["Device", "Prediction", "GrpcTransport", "ConnectTransport", "FetchTransport", "Offline", "Rejected", "DiskQueue", "Window", "merge",
           "latency_quantile", "LATENCY_EDGES_MS", "in_canary", "choose"]
