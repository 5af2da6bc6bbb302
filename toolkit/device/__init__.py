"""The device SDK: ``Device`` runs a bundle, falls back locally, summarises traffic into mergeable
sketches, queues them on disk while offline and follows the coordinator's policy.

The core (sketches, queue, policy, fallback chain) is pure Python; numpy and a runtime backend are
used when present, and ``runner_factory`` plugs in any other runtime (e.g. wasm under Pyodide).
"""

from ._connect import ConnectTransport
from ._device import Device, Prediction
from ._policy import choose, in_canary
from ._queue import DiskQueue
from ._transport import GrpcTransport, Offline, Rejected, grpc_channel, translate_rpc_error
from edgefleet.telemetry import LATENCY_EDGES_MS, Window, latency_quantile, merge

__all__ = ["Device", "Prediction", "GrpcTransport", "ConnectTransport", "Offline", "Rejected", "DiskQueue", "Window", "merge",
           "latency_quantile", "LATENCY_EDGES_MS", "in_canary", "choose",
           "grpc_channel", "translate_rpc_error"]
