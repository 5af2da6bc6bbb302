"""JSON-lines logging for ``edgefleet serve``: one object per line on stderr, so a log shipper needs
no parser. A message that is itself a JSON object (the decision and refusal records) is merged into
the line rather than quoted.

>>> configure_logging("info")       # doctest: +SKIP
{"ts": "2026-12-01T22:00:00.000Z", "level": "info", "logger": "edgefleet.coordinator", "event": "decision", ...}
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["configure_logging", "JsonLines", "LEVELS"]

LEVELS = ("debug", "info", "warning", "error")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = {"ts": ts, "level": record.levelname.lower(), "logger": record.name}
        message = record.getMessage()
        parsed = None
        if message.startswith("{"):
            try:
                parsed = json.loads(message)
            except ValueError:
                parsed = None
        if isinstance(parsed, dict):
            line.update({k: v for k, v in parsed.items() if k not in line})
        else:
            line["message"] = message
        if record.exc_info:
            line["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            line["stack"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "info", stream=None) -> None:
    """Route every logger (ours, uvicorn's, grpc's) to one JSON-lines handler at ``level``."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn announces its own start and stop at info; ours says it once
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))
