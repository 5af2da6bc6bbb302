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
    """``payload`` as ``bench-results/<name>.json``."""
    print()
    return write_json_to(RESULTS / f"{name}.json", payload)


def write_json_to(path: str | Path, payload: dict) -> Path:
    """``payload`` as JSON at ``path`` (a benchmark's ``--out``), folders made as needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path}")
    return path


def time_steps(steps: dict, make_inputs, rounds: int) -> dict:
    """Per-call wall and CPU time (µs) of each step, interleaved round by round so a busy machine slows
    all alike: ``steps`` maps a name to ``fn(item)``; ``make_inputs()`` gives each round's
    ``{name: items}``. Returns ``{name: {"wall"|"cpu": {"min", "median"}}}`` over rounds."""
    per = {k: {"wall": [], "cpu": []} for k in steps}
    for _ in range(rounds):
        inputs = make_inputs()
        for name, fn in steps.items():
            items = inputs[name]
            t0, c0 = time.perf_counter(), time.process_time()
            for x in items:
                fn(x)
            per[name]["wall"].append((time.perf_counter() - t0) / len(items) * 1e6)
            per[name]["cpu"].append((time.process_time() - c0) / len(items) * 1e6)
    return {k: {m: {"min": round(min(v), 2), "median": round(statistics.median(v), 2)} for m, v in d.items()}
            for k, d in per.items()}


def print_steps(rows: dict, unit: str, apart: tuple = ()) -> None:
    """The table of :func:`time_steps`, with each step's share of the summed median CPU time; steps
    named in ``apart`` (alternatives or sums of the others) are left out of the shares."""
    cpu_total = sum(r["cpu"]["median"] for k, r in rows.items() if k not in apart) or 1.0
    width = max(10, *(len(k) + 2 for k in rows))
    print(f"{'step':<{width}}{'wall min':>10}{'wall med':>10}{'cpu min':>10}{'cpu med':>10}{'cpu share':>11}")
    for k, r in rows.items():
        share = "-" if k in apart else f"{r['cpu']['median'] / cpu_total:.0%}"
        print(f"{k:<{width}}{r['wall']['min']:>10.1f}{r['wall']['median']:>10.1f}{r['cpu']['min']:>10.1f}"
              f"{r['cpu']['median']:>10.1f}{share:>11}")
    print(unit)
