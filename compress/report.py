"""The export report: a text table for the terminal, ``card.md`` and ``report.html`` (inline SVG plots).

Every figure is in the task's own metric (accuracy, cosine to the teacher, MAE; see
:mod:`edgefleet.compress.tasks`). Plots of a score start at a baseline just below the smallest value
shown (and say so), so 98.6 % and 99.4 % do not look alike; size and latency bars start at zero.
"""

from __future__ import annotations

import html
import math

from .tasks import RECALL_K

#: fidelity columns (metric key, header, format) per task
_FIDELITY = {
    "classifier": (("teacher_agreement", "agree", "{:.1f}%"), ("max_abs_diff_vs_teacher", "max|d|", "{:.3f}")),
    "embedding": (("mean_cosine", "cos mean", "{:.4f}"), ("p1_cosine", "cos p1", "{:.4f}"),
                  (f"recall@{RECALL_K}", f"recall@{RECALL_K}", "{:.3f}")),
    "regression": (("mae_vs_teacher", "MAE vs fp32", "{:.4g}"), ("max_abs_diff_vs_teacher", "max|d|", "{:.4g}")),
}


def _fmt_parity(p: dict) -> str:
    if "max_lsb" in p:
        return f"{p['max_lsb']:.0f}/{p['mean_lsb']:.3f} LSB"
    return f"{p.get('max_abs', 0):.1e} abs"


def _head(task) -> tuple:
    return ("target", "shipped", "bytes", "% teacher", f"test {task.metric}", "drop",
            *(h for _, h, _ in _FIDELITY[task.kind]), "parity", "p50 b1 ms", "p50 b32 ms")


def target_rows(result) -> list[tuple]:
    task, m = result.task, result.task.metric
    rows = []
    teacher_bytes = result.teacher["onnx_bytes"]
    for v in result.verdicts:
        mt = v.metrics
        lat = mt.get("latency", {})
        rows.append((
            v.target, "yes" if v.shipped else "NO", f"{mt['bytes']:,}" if "bytes" in mt else "-",
            f"{100 * mt['bytes'] / teacher_bytes:.1f}%" if "bytes" in mt else "-",
            task.format(mt[f"test_{m}"]) if f"test_{m}" in mt else "-",
            f"{mt[f'{m}_drop']:+.4g}" if f"{m}_drop" in mt else "-",
            *(fmt.format(mt[key]) if key in mt else "-" for key, _, fmt in _FIDELITY[task.kind]),
            _fmt_parity(mt["parity"]) if "parity" in mt else "-",
            f"{lat['batch1']['p50_ms']:.3f}" if lat else "-", f"{lat['batch32']['p50_ms']:.3f}" if lat else "-",
        ))
    return rows


def _table(head, rows) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def stage_rows(result) -> list[tuple]:
    t, task = result.teacher, result.task
    rows = [("teacher", f"{t['params']:,}", f"{t['params']:,}", task.format(t[f"val_{task.metric}"]))]
    for s in result.stages:
        rows.append((s["stage"], f"{s['params']:,}", f"{s['nonzero']:,}", task.format(s["val_score"])))
    return rows


#: separates a pipeline step from its sub-steps in the timings (``attempt 1: quantize > calibration``);
#: a sub-step's seconds are part of its step's
SUB_STEP = " > "


def timing_rows(result) -> list[tuple]:
    """(step, seconds, share of the export's time, peak RSS MB) per step; a sub-step (``step >
    part``) is indented under its step and not counted twice in the total."""
    total = sum(sec for step, sec in result.timings.items() if SUB_STEP not in step) or 1.0
    rss = getattr(result, "peak_rss_mb", None) or {}
    return [(f"  {step.split(SUB_STEP, 1)[1]}" if SUB_STEP in step else step, f"{sec:.2f}", f"{100 * sec / total:.0f}%",
             f"{rss[step]:.0f}" if step in rss else "") for step, sec in result.timings.items()]


def island_lines(result) -> list[str]:
    """The precision islands the quantize pass chose (float32 op kinds, why, what each bought); none: []."""
    rows = next((s["changed"]["precision_islands"] for s in result.stages
                 if s["stage"] == "quantize" and "precision_islands" in (s.get("changed") or {})), None)
    if not rows:
        return []
    gain = lambda r: "" if r.get("gain") is None else f", gained {r['gain']:+.4g} (budget objective)"  # noqa: E731
    return ["", "precision islands (run in float32, everything else int8):",
            *[f"  {r['group']}: {len(r['nodes'])} node(s); {r['reason']}{gain(r)}" for r in rows]]


def _teacher_line(result) -> str:
    t, task = result.teacher, result.task
    m = task.metric
    return (f"teacher: {t['params']:,} parameters, fp32 ONNX {t['onnx_bytes']:,} bytes, "
            f"val {m} {task.format(t[f'val_{m}'])}, test {task.format(t[f'test_{m}'])}; "
            f"budget: {m} drop <= {result.config['max_drop']:.4g}")


def text_table(result) -> str:
    task = result.task
    parts = [_teacher_line(result), "", "stages (last attempt):",
             _table(("stage", "params", "nonzero", f"val {task.metric}"), stage_rows(result))]
    if len(result.attempts) > 1:
        parts += ["", "attempts (budget):"]
        parts += [f"  #{a.number} {'ok ' if a.ok else 'miss'} int8 val {task.format(a.int8_val_score)} "
                  f"drop {a.drop:+.4g}  [{a.recipe}]" for a in result.attempts]
    parts += island_lines(result)
    parts += ["", "targets (test split; latency single-threaded):", _table(_head(task), target_rows(result))]
    for v in result.verdicts:
        if not v.shipped:
            parts.append(f"  not shipped: {v.target}: {v.reason}")
    if result.timings:
        parts += ["", "where the time went (s):", _table(("step", "seconds", "share", "peak RSS MB"), timing_rows(result))]
    if result.bundle is not None:
        parts += ["", f"bundle: {result.bundle.path}  (fallback chain: {' > '.join(result.bundle.fallback_chain)})"]
    return "\n".join(parts)


def _intended_use(fields: dict) -> str:
    task = fields["task"]
    if task["kind"] == "classifier":
        labels = task["labels"]
        return (f"A classifier over {len(labels)} classes ({', '.join(labels[:12])}{', ...' if len(labels) > 12 else ''}); "
                "outputs are logits.")
    if task["kind"] == "embedding":
        return "An embedding model: outputs are vectors compared by cosine similarity."
    return "A regression model: outputs are real values in the targets' units."


def model_card(result, fields: dict) -> str:
    t, task = result.teacher, result.task
    m = task.metric
    inputs = ", ".join(f"`{s['name']}` {s['dtype']}{s['shape']}" for s in fields["inputs"])
    lines = [
        f"# Model card: {fields['model']['name']} v{fields['model']['version']}", "",
        "## Intended use",
        f"{_intended_use(fields)} Compressed by edgefleet for CPU, mobile and browser runtimes. Inputs: {inputs}; "
        "they must follow the preprocessing in the manifest.", "",
        "## Data",
        f"Data set `{result.config['data']}` (sha256 {fields['provenance']['data']['sha256'][:16]}...), splits "
        + ", ".join(f"{k} {v}" for k, v in fields["provenance"]["data"]["sizes"].items()) + ". "
        "Calibration uses the training split; the budget the validation split; every number below the "
        "held-out test split.", "",
        "## Compression",
        f"Recipe `{result.config['recipe']['name']}`: "
        + " -> ".join(p["name"] for p in result.config["recipe"]["passes"])
        + f"; budget: {m} drop <= {result.config['max_drop']:.4g} (validation); {len(result.attempts)} attempt(s).", "",
        f"Teacher: {t['params']:,} parameters, test {m} {task.format(t[f'test_{m}'])}.", "",
        "## Metrics per target", "",
        "| " + " | ".join(_head(task)) + " |", "|" + "---|" * len(_head(task)),
        *["| " + " | ".join(str(c) for c in row) + " |" for row in target_rows(result)], "",
        "## Limits",
        "- int8 artifacts match edgefleet's integer reference within the parity tolerance shown; they are "
        "not bit-identical to the fp32 model.",
        f"- The {m} was measured on the test split of the data above only; monitor drift in the field "
        "(the manifest carries the monitoring reference).",
        f"- Latency measured on {result.machine['cpu']} ({', '.join(result.machine['cpu_flags'])}), one thread.",
    ]
    return "\n".join(lines) + "\n"


def _svg(title: str, width: int, height: int, body: list[str]) -> str:
    return "\n".join([f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
                      f'aria-label="{html.escape(title)}">',
                      f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>', *body, "</svg>"])


def score_baseline(values: list[float]) -> float:
    """Where a score's bars start: a little below the smallest value, so differences show."""
    lo, hi = min(values), max(values)
    span = hi - lo if hi > lo else max(abs(hi) * 0.01, 1e-3)
    return lo - 0.25 * span


def _bar_chart(title: str, items: list[tuple[str, float]], unit: str, width: int = 560, baseline: float = 0.0) -> str:
    if not items:
        return ""
    bar_h, gap, left = 18, 6, 150
    top = max(v for _, v in items)
    scale = (width - left - 110) / ((top - baseline) or 1.0)
    h = 46 + len(items) * (bar_h + gap)
    body = []
    for i, (label, value) in enumerate(items):
        y = 26 + i * (bar_h + gap)
        w = max(1.0, (value - baseline) * scale)
        body.append(f'<text x="{left - 6}" y="{y + 13}" font-size="12" text-anchor="end">{html.escape(label)}</text>')
        body.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#3b82f6"/>')
        body.append(f'<text x="{left + w + 4:.1f}" y="{y + 13}" font-size="12">{value:,.4g} {unit}</text>')
    note = f"axis starts at {baseline:,.4g} {unit}" if baseline else "axis starts at 0"
    body.append(f'<text x="{left}" y="{h - 6}" font-size="11" fill="#555">{html.escape(note)}</text>')
    return _svg(title, width, h, body)


def _scatter(title: str, points: list[tuple[str, float, float, float]], xlabel: str, ylabel: str,
             width: int = 560, height: int = 320) -> str:
    """Points ``(label, x, y, r)``; ``r`` (latency) sets the marker radius."""
    if not points:
        return ""
    left, right, top, bottom = 60, 150, 30, 40
    xs, ys, rs = [p[1] for p in points], [p[2] for p in points], [p[3] for p in points]
    x0, x1 = 0.0, max(xs) * 1.08 or 1.0
    y0 = score_baseline(ys)
    y1 = max(ys) + (max(ys) - y0) * 0.15
    rmax = max(rs) or 1.0
    px = lambda v: left + (width - left - right) * (v - x0) / ((x1 - x0) or 1)  # noqa: E731
    py = lambda v: height - bottom - (height - top - bottom) * (v - y0) / ((y1 - y0) or 1)  # noqa: E731
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#999"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#999"/>',
            f'<text x="{(left + width - right) / 2}" y="{height - 8}" font-size="12" text-anchor="middle">{html.escape(xlabel)}</text>',
            f'<text x="12" y="{(top + height - bottom) / 2}" font-size="12" transform="rotate(-90 12 {(top + height - bottom) / 2})" '
            f'text-anchor="middle">{html.escape(ylabel)} (axis from {y0:.4g})</text>',
            f'<text x="{left}" y="{height - bottom + 14}" font-size="10">0</text>',
            f'<text x="{width - right}" y="{height - bottom + 14}" font-size="10" text-anchor="end">{x1:,.0f}</text>']
    for label, x, y, r in points:
        radius = 3 + 9 * math.sqrt(r / rmax) if r > 0 else 4
        body.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{radius:.1f}" fill="#3b82f6" fill-opacity="0.55" stroke="#1e3a8a"/>')
        body.append(f'<text x="{px(x) + radius + 3:.1f}" y="{py(y) + 4:.1f}" font-size="11">{html.escape(label)}</text>')
    return _svg(title, width, height, body)


def reliability_bins(confidence, correct, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per equal-width confidence bin (empty bins left out)."""
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(confidence) if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if idx:
            out.append((sum(confidence[i] for i in idx) / len(idx), sum(correct[i] for i in idx) / len(idx), len(idx)))
    return out


def _reliability_chart(bins: list[tuple[float, float, int]], size: int = 300) -> str:
    if not bins:
        return ""
    pad = 40
    inner = size - 2 * pad
    p = lambda v: pad + inner * v  # noqa: E731
    body = [f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="#999"/>',
            f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" stroke="#999" stroke-dasharray="4 3"/>',
            f'<text x="{size / 2}" y="{size - 10}" font-size="12" text-anchor="middle">calibrated confidence</text>',
            f'<text x="12" y="{size / 2}" font-size="12" transform="rotate(-90 12 {size / 2})" text-anchor="middle">accuracy</text>']
    pts = " ".join(f"{p(c):.1f},{size - p(a):.1f}" for c, a, _ in bins)
    body.append(f'<polyline points="{pts}" fill="none" stroke="#3b82f6" stroke-width="2"/>')
    for c, a, n in bins:
        body.append(f'<circle cx="{p(c):.1f}" cy="{size - p(a):.1f}" r="3" fill="#1e3a8a"><title>{n} samples</title></circle>')
    return _svg("Reliability of the calibrated confidence (validation, int8)", size + 80, size, body)


def html_report(result, fields: dict) -> str:
    t, task = result.teacher, result.task
    m = task.metric
    stage_score = [("teacher", t[f"val_{m}"])] + [(s["stage"], s["val_score"]) for s in result.stages]
    stage_size = [("teacher", t["params"] * 4 / 1024)] + [(s["stage"], s["params"] * 4 / 1024) for s in result.stages]
    scored = [v for v in result.verdicts if f"test_{m}" in v.metrics]
    target_score = [(v.target, v.metrics[f"test_{m}"]) for v in scored]
    trade = [("teacher fp32", t["onnx_bytes"] / 1024, t[f"test_{m}"], 0.0)] + [
        (v.target, v.metrics["bytes"] / 1024, v.metrics[f"test_{m}"],
         v.metrics.get("latency", {}).get("batch1", {}).get("p50_ms", 0.0)) for v in scored]
    unit = "%" if task.kind == "classifier" else m
    charts = [
        _bar_chart(f"Validation {m} per stage", stage_score, unit, baseline=score_baseline([v for _, v in stage_score])),
        _bar_chart("fp32 parameter size per stage", stage_size, "KiB"),
        _bar_chart(f"Test {m} per target", target_score, unit,
                   baseline=score_baseline([v for _, v in target_score]) if target_score else 0.0),
        _scatter(f"Size, {m} and latency per target (marker area: batch-1 latency)", trade, "artifact KiB", f"test {m}"),
        _bar_chart("Latency p50, batch 1", [(v.target, v.metrics["latency"]["batch1"]["p50_ms"]) for v in scored
                                             if "latency" in v.metrics], "ms"),
        _bar_chart("Latency p50, batch 32", [(v.target, v.metrics["latency"]["batch32"]["p50_ms"]) for v in scored
                                              if "latency" in v.metrics], "ms"),
        _reliability_chart(result.reliability) if getattr(result, "reliability", None) else "",
    ]

    def table(head, rows):
        return ("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in head) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                + "</table>")

    attempts = [(a.number, "ok" if a.ok else "missed", task.format(a.int8_val_score), f"{a.drop:+.4g}", a.recipe)
                for a in result.attempts]
    islands = island_lines(result)
    skipped = "".join(f"<li><b>{html.escape(v.target)}</b>: {html.escape(v.reason)}</li>"
                      for v in result.verdicts if not v.shipped)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgefleet export report: {html.escape(fields['model']['name'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#111}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}}
th{{background:#f3f4f6}}td:first-child{{text-align:left}}.charts svg{{display:block;margin:1em 0}}</style></head>
<body><h1>Export report: {html.escape(fields['model']['name'])} v{html.escape(fields['model']['version'])}</h1>
<p>Task: {html.escape(task.kind)}. {html.escape(_teacher_line(result))}. Machine: {html.escape(result.machine['cpu'])}
({html.escape(', '.join(result.machine['cpu_flags']))}), latency single-threaded.</p>
<h2>Stages</h2>{table(("stage", "params", "nonzero", f"val {m}"), stage_rows(result))}
<h2>Attempts</h2>{table(("#", "result", f"int8 val {m}", "drop", "recipe"), attempts)}
{f'<h2>Precision islands</h2><pre>{html.escape(chr(10).join(islands[2:]))}</pre>' if islands else ''}
<h2>Targets</h2>{table(_head(task), target_rows(result))}
{f'<h3>Not shipped</h3><ul>{skipped}</ul>' if skipped else ''}
<h2>Where the time went</h2>{table(("step", "seconds", "share", "peak RSS MB"), timing_rows(result))}
<h2>Plots</h2><div class="charts">{''.join(charts)}</div>
</body></html>
"""


def result_json(result) -> str:
    import json

    return json.dumps({
        "task": result.task.kind, "metric": result.task.metric,
        "teacher": result.teacher, "stages": result.stages, "attempts": [a.__dict__ for a in result.attempts],
        "targets": [{"target": v.target, "shipped": v.shipped, "reason": v.reason, "metrics": v.metrics} for v in result.verdicts],
        "timings": result.timings, "peak_rss_mb": result.peak_rss_mb, "machine": result.machine, "config": result.config,
        "bundle": str(result.bundle.path) if result.bundle else None,
    }, indent=2, default=float)
