"""Shared helpers of the benchmarks: timing medians, tables, JSON output."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"


def time_call(fn, *, repeats: int = 5, budget_s: float = 0.4, warmup: int = 3) -> dict:
    """Median over ``repeats`` rounds of the per-call median within a time budget (ms)."""
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(repeats):
        times = []
        start = time.perf_counter()
        while time.perf_counter() - start < budget_s / repeats or len(times) < 5:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        rounds.append(statistics.median(times) * 1e3)
    return {"median_ms": statistics.median(rounds), "min_round_ms": min(rounds), "max_round_ms": max(rounds), "rounds": repeats}


def batch_of(x: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(np.resize(x, (n, *x.shape[1:])).astype(x.dtype))


def print_table(head: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths))))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"\nwrote {path}")
    return path
