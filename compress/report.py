"""The export report: a text table for the terminal, ``card.md`` and ``report.html`` (inline SVG plots)."""

from __future__ import annotations

import html

_HEAD = ("target", "shipped", "bytes", "% teacher", "test acc", "drop", "agree", "max|d|", "parity", "p50 b1 ms", "p50 b32 ms")


def _fmt_parity(p: dict) -> str:
    if "max_lsb" in p:
        return f"{p['max_lsb']:.0f}/{p['mean_lsb']:.3f} LSB"
    return f"{p.get('max_abs', 0):.1e} abs"


def target_rows(result) -> list[tuple]:
    rows = []
    teacher_bytes = result.teacher["onnx_bytes"]
    for v in result.verdicts:
        m = v.metrics
        lat = m.get("latency", {})
        rows.append((
            v.target, "yes" if v.shipped else "NO", f"{m['bytes']:,}" if "bytes" in m else "-",
            f"{100 * m['bytes'] / teacher_bytes:.1f}%" if "bytes" in m else "-",
            f"{m['test_accuracy']:.2f}" if "test_accuracy" in m else "-",
            f"{m['accuracy_drop']:+.2f}" if "accuracy_drop" in m else "-",
            f"{m['teacher_agreement']:.1f}%" if "teacher_agreement" in m else "-",
            f"{m['max_abs_diff_vs_teacher']:.3f}" if "max_abs_diff_vs_teacher" in m else "-",
            _fmt_parity(m["parity"]) if "parity" in m else "-",
            f"{lat['batch1']['p50_ms']:.3f}" if lat else "-", f"{lat['batch32']['p50_ms']:.3f}" if lat else "-",
        ))
    return rows


def _table(head, rows) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def stage_rows(result) -> list[tuple]:
    t = result.teacher
    rows = [("teacher", f"{t['params']:,}", f"{t['params']:,}", f"{t['val_accuracy']:.2f}")]
    for s in result.stages:
        rows.append((s["stage"], f"{s['params']:,}", f"{s['nonzero']:,}", f"{s['val_accuracy']:.2f}"))
    return rows


def text_table(result) -> str:
    t = result.teacher
    parts = [f"teacher: {t['params']:,} parameters, fp32 ONNX {t['onnx_bytes']:,} bytes, "
             f"val {t['val_accuracy']:.2f}%, test {t['test_accuracy']:.2f}%",
             "", "stages (last attempt):", _table(("stage", "params", "nonzero", "val acc"), stage_rows(result))]
    if len(result.attempts) > 1:
        parts += ["", "attempts (accuracy budget):"]
        parts += [f"  #{a.number} {'ok ' if a.ok else 'miss'} int8 val {a.int8_val_accuracy:.2f}% drop {a.drop:+.2f}  [{a.recipe}]"
                  for a in result.attempts]
    parts += ["", "targets (test split; latency single-threaded):", _table(_HEAD, target_rows(result))]
    skipped = [v for v in result.verdicts if not v.shipped]
    for v in skipped:
        parts.append(f"  not shipped: {v.target}: {v.reason}")
    if result.bundle is not None:
        parts += ["", f"bundle: {result.bundle.path}  (fallback chain: {' > '.join(result.bundle.fallback_chain)})"]
    return "\n".join(parts)


def model_card(result, fields: dict) -> str:
    t = result.teacher
    lines = [
        f"# Model card: {fields['model']['name']} v{fields['model']['version']}", "",
        "## Intended use",
        f"A {fields['task']['kind']} over {len(fields['task']['labels'])} classes "
        f"({', '.join(fields['task']['labels'][:12])}{', ...' if len(fields['task']['labels']) > 12 else ''}), "
        "compressed by edgefleet for CPU, mobile and browser runtimes. Inputs must follow the preprocessing in "
        "the manifest; outputs are logits.", "",
        "## Data",
        f"Data set `{result.config['data']}` (sha256 {fields['provenance']['data']['sha256'][:16]}...), splits "
        + ", ".join(f"{k} {v}" for k, v in fields["provenance"]["data"]["sizes"].items()) + ". "
        "Calibration uses the training split; the accuracy budget the validation split; every number below the "
        "held-out test split.", "",
        "## Compression",
        f"Recipe `{result.config['recipe']['name']}`: "
        + " -> ".join(p["name"] for p in result.config["recipe"]["passes"])
        + f"; accuracy budget {result.config['max_drop']} points (validation); {len(result.attempts)} attempt(s).", "",
        f"Teacher: {t['params']:,} parameters, test accuracy {t['test_accuracy']:.2f}%.", "",
        "## Metrics per target", "",
        "| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD),
        *["| " + " | ".join(str(c) for c in row) + " |" for row in target_rows(result)], "",
        "## Limits",
        "- int8 artifacts match edgefleet's integer reference within the parity tolerance shown; they are "
        "not bit-identical to the fp32 model.",
        "- Accuracy was measured on the test split of the data above only; monitor drift in the field "
        "(the manifest carries the monitoring reference).",
        f"- Latency measured on {result.machine['cpu']} ({', '.join(result.machine['cpu_flags'])}), one thread.",
    ]
    return "\n".join(lines) + "\n"


def _bar_chart(title: str, items: list[tuple[str, float]], unit: str, width: int = 560) -> str:
    if not items:
        return ""
    bar_h, gap, left = 18, 6, 150
    top = max(v for _, v in items) or 1.0
    h = 30 + len(items) * (bar_h + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = 26 + i * (bar_h + gap)
        w = max(1.0, (width - left - 90) * value / top)
        parts.append(f'<text x="{left - 6}" y="{y + 13}" font-size="12" text-anchor="end">{html.escape(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#3b82f6"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 13}" font-size="12">{value:,.3f} {unit}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def html_report(result, fields: dict) -> str:
    t = result.teacher
    stage_acc = [("teacher", t["val_accuracy"])] + [(s["stage"], s["val_accuracy"]) for s in result.stages]
    stage_size = [("teacher", t["params"] * 4 / 1024)] + [(s["stage"], s["params"] * 4 / 1024) for s in result.stages]
    shipped = [v for v in result.verdicts if "test_accuracy" in v.metrics]
    charts = [
        _bar_chart("Validation accuracy per stage", stage_acc, "%"),
        _bar_chart("fp32 parameter size per stage", stage_size, "KiB"),
        _bar_chart("Test accuracy per target", [(v.target, v.metrics["test_accuracy"]) for v in shipped], "%"),
        _bar_chart("Artifact size per target", [(v.target, v.metrics["bytes"] / 1024) for v in shipped], "KiB"),
        _bar_chart("Latency p50, batch 1", [(v.target, v.metrics["latency"]["batch1"]["p50_ms"]) for v in shipped
                                             if "latency" in v.metrics], "ms"),
        _bar_chart("Latency p50, batch 32", [(v.target, v.metrics["latency"]["batch32"]["p50_ms"]) for v in shipped
                                              if "latency" in v.metrics], "ms"),
    ]

    def table(head, rows):
        return ("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in head) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                + "</table>")

    attempts = [(a.number, "ok" if a.ok else "missed", f"{a.int8_val_accuracy:.2f}", f"{a.drop:+.2f}", a.recipe)
                for a in result.attempts]
    skipped = "".join(f"<li><b>{html.escape(v.target)}</b>: {html.escape(v.reason)}</li>"
                      for v in result.verdicts if not v.shipped)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgefleet export report: {html.escape(fields['model']['name'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#111}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}}
th{{background:#f3f4f6}}td:first-child{{text-align:left}}.charts svg{{display:block;margin:1em 0}}</style></head>
<body><h1>Export report: {html.escape(fields['model']['name'])} v{html.escape(fields['model']['version'])}</h1>
<p>Teacher: {t['params']:,} parameters, fp32 ONNX {t['onnx_bytes']:,} bytes, validation {t['val_accuracy']:.2f}%,
test {t['test_accuracy']:.2f}%. Accuracy budget: {result.config['max_drop']} points. Machine: {html.escape(result.machine['cpu'])}
({html.escape(', '.join(result.machine['cpu_flags']))}), latency single-threaded.</p>
<h2>Stages</h2>{table(("stage", "params", "nonzero", "val acc"), stage_rows(result))}
<h2>Attempts</h2>{table(("#", "result", "int8 val acc", "drop", "recipe"), attempts)}
<h2>Targets</h2>{table(_HEAD, target_rows(result))}
{f'<h3>Not shipped</h3><ul>{skipped}</ul>' if skipped else ''}
<h2>Plots</h2><div class="charts">{''.join(charts)}</div>
</body></html>
"""


def result_json(result) -> str:
    import json

    return json.dumps({
        "teacher": result.teacher, "stages": result.stages, "attempts": [a.__dict__ for a in result.attempts],
        "targets": [{"target": v.target, "shipped": v.shipped, "reason": v.reason, "metrics": v.metrics} for v in result.verdicts],
        "machine": result.machine, "config": result.config,
        "bundle": str(result.bundle.path) if result.bundle else None,
    }, indent=2, default=float)
