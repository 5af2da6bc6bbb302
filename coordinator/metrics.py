"""Prometheus metrics in the text exposition format, without a client library.

>>> m = Metrics(); m.rpc("Report", "OK", 0.002); "edgefleet_rpc_total" in m.render()
True
"""

from __future__ import annotations

import threading

__all__ = ["Metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))


def _labels(pairs: dict) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs.items())) + "}" if pairs else ""


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple], float] = {}
        self._hist: dict[str, list] = {}
        self._gauges: dict[str, callable] = {}
        self._help = {
            "edgefleet_rpc_total": ("counter", "Calls by method and status code."),
            "edgefleet_windows_ingested_total": ("counter", "Telemetry windows durably stored (new, not replays)."),
            "edgefleet_windows_duplicate_total": ("counter", "Replayed windows acknowledged without change."),
            "edgefleet_reports_rejected_total": ("counter", "Reports refused by validation (nothing stored)."),
            "edgefleet_decisions_total": ("counter", "Policy decisions by kind."),
            "edgefleet_rpc_seconds": ("histogram", "Call latency (acknowledgement latency for Report)."),
        }

    def inc(self, name: str, value: float = 1.0, **labels) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0.0) + value

    def rpc(self, method: str, code: str, seconds: float) -> None:
        self.inc("edgefleet_rpc_total", method=method, code=code)
        with self._lock:
            buckets = self._hist.setdefault(method, [0] * len(_BUCKETS) + [0.0, 0])
            for i, le in enumerate(_BUCKETS):
                if seconds <= le:
                    buckets[i] += 1
            buckets[-2] += seconds
            buckets[-1] += 1

    def gauge(self, name: str, help_text: str, fn) -> None:
        """A gauge read at scrape time from ``fn() -> float``."""
        self._help[name] = ("gauge", help_text)
        self._gauges[name] = fn

    def render(self) -> str:
        lines, emitted = [], set()
        with self._lock:
            counters = sorted(self._counters.items())
            hists = {k: list(v) for k, v in self._hist.items()}
        for (name, labels), value in counters:
            if name not in emitted:
                kind, text = self._help.get(name, ("counter", name))
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                emitted.add(name)
            lines.append(f"{name}{_labels(dict(labels))} {value:g}")
        if hists:
            lines += ["# HELP edgefleet_rpc_seconds " + self._help["edgefleet_rpc_seconds"][1],
                      "# TYPE edgefleet_rpc_seconds histogram"]
            for method, b in sorted(hists.items()):
                for le, count in zip(_BUCKETS, b):
                    le_s = "+Inf" if le == float("inf") else f"{le:g}"
                    lines.append(f'edgefleet_rpc_seconds_bucket{{le="{le_s}",method="{method}"}} {count}')
                lines.append(f'edgefleet_rpc_seconds_sum{{method="{method}"}} {b[-2]:.6f}')
                lines.append(f'edgefleet_rpc_seconds_count{{method="{method}"}} {b[-1]}')
        for name, fn in sorted(self._gauges.items()):
            try:
                value = float(fn())
            except Exception:  # a failing gauge must not break the scrape; it is left out
                continue
            lines += [f"# HELP {name} {self._help[name][1]}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
