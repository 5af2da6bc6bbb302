"""HTML dashboard: one page per cohort with inline SVG plots over time (the drift verdicts' evidence:
-log10 p of each look against its level, the effect size; the label-free accuracy estimate with its
interval beside the accuracy from labels), the last verdicts, and the decisions with their evidence.
No JavaScript, no CDN."""

from __future__ import annotations

import html
import json
import math
from urllib.parse import quote

__all__ = ["Dashboard", "svg_plot"]

_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
          "pre{white-space:pre-wrap;max-height:12em;overflow:auto;margin:0;font-size:.8em}")


def svg_plot(title: str, series: dict[str, list[tuple[float, float]]], *, marks: list[float] = (),
             hline: float | None = None, width: int = 560, height: int = 180, mark_labels: list[str] = ()) -> str:
    """A line plot of ``{label: [(t, y), ...]}`` with vertical lines at ``marks`` (decision times, named
    by ``mark_labels`` when given) and a dotted horizontal line at ``hline`` (a threshold)."""
    points = [p for s in series.values() for p in s if p[1] is not None and math.isfinite(p[1])]
    pad = 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
           f'<title>{html.escape(title)}</title><text x="{pad}" y="14" font-size="12">{html.escape(title)}</text>']
    if not points:
        out.append(f'<text x="{pad}" y="{height // 2}" font-size="12">no data yet</text></svg>')
        return "".join(out)
    ts = [p[0] for p in points] + list(marks)
    ys = [p[1] for p in points]
    t0, t1 = min(ts), max(ts)
    y0, y1 = min(min(ys), 0.0), max(ys + ([hline] if hline is not None else []))
    t1, y1 = (t1 if t1 > t0 else t0 + 1), (y1 if y1 > y0 else y0 + 1)

    def xy(t, y):
        return (pad + (t - t0) / (t1 - t0) * (width - 2 * pad),
                height - pad + 10 - (y - y0) / (y1 - y0) * (height - pad - 30))
    out.append(f'<line x1="{pad}" y1="{height - pad + 10}" x2="{width - pad}" y2="{height - pad + 10}" stroke="#999"/>')
    out.append(f'<text x="2" y="{height - pad + 10}" font-size="10">{y0:.3g}</text>'
               f'<text x="2" y="30" font-size="10">{y1:.3g}</text>')
    for i, t in enumerate(marks):
        x, _ = xy(t, y0)
        out.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - pad + 10}" stroke="#d33" '
                   'stroke-dasharray="4,3"/>')
        if i < len(mark_labels):
            out.append(f'<text x="{x + 2:.1f}" y="{28 + 10 * (i % 6)}" font-size="9" fill="#d33">'
                       f'{html.escape(mark_labels[i])}</text>')
    if hline is not None:
        _, y = xy(t0, hline)
        out.append(f'<line x1="{pad}" y1="{y:.1f}" x2="{width - pad}" y2="{y:.1f}" stroke="#888" stroke-dasharray="1,3"/>'
                   f'<text x="{width - pad + 2}" y="{y + 3:.1f}" font-size="9">{hline:g}</text>')
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
    for i, (label, pts) in enumerate(series.items()):
        pts = [p for p in pts if p[1] is not None and math.isfinite(p[1])]
        if not pts:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(*p) for p in pts))
        colour = colours[i % len(colours)]
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        out.append(f'<text x="{width - pad - 150}" y="{14 + 12 * i}" font-size="11" fill="{colour}">'
                   f'{html.escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


class Dashboard:
    def __init__(self, store, rules=None):
        self.store, self.rules = store, rules

    def _page(self, title: str, body: str) -> str:
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")

    def index(self) -> str:
        rows = []
        devices = self.store.list_devices()
        for cohort in self.store.list_cohorts():
            state, revision = self.store.get_cohort(cohort)
            n = sum(1 for d in devices if d["cohort"] == cohort)
            baseline = (state.get("baseline") or {}).get("version", "-")
            fallback = state.get("fallback_artifact") or (state.get("fallback") or {}).get("version", "") or "-"
            cells = [f"<a href='/dashboard/{html.escape(quote(cohort, safe=''))}'>{html.escape(cohort)}</a>", str(n),
                     html.escape(baseline), html.escape(fallback), html.escape(state.get("reason", ""))]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        table = ("<table><tr><th>cohort</th><th>devices</th><th>baseline</th><th>fallback</th><th>last change</th></tr>"
                 + "".join(rows) + "</table>")
        return self._page("edgefleet fleet", f"<p>{self.store.count_windows()} telemetry windows stored.</p>{table}"
                                             f"{self._audit()}")

    def _effects(self, cohort: str) -> str:
        """Each measured decision: accuracy before and after, with where each number came from."""
        by_decision: dict[int, dict] = {}
        for m in self.store.list_measurements(cohort):
            if m["decision_id"]:
                by_decision.setdefault(m["decision_id"], {})[m["phase"]] = m["stats"]

        def cell(s):
            if not s or s.get("accuracy") is None:
                return "-"
            lo, hi = s["interval"]
            return (f"{s['accuracy']:.3f} ({html.escape(s['source'])}, {s['labels']} labels, "
                    f"[{lo:.3f}, {hi:.3f}])")
        rows = "".join(f"<tr><td>{d}</td><td>{cell(p.get('before'))}</td><td>{cell(p.get('after'))}</td></tr>"
                       for d, p in sorted(by_decision.items()))
        return ("<h2>measured effect of decisions</h2><table><tr><th>decision</th><th>accuracy before</th>"
                f"<th>accuracy after</th></tr>{rows}</table>") if rows else ""

    def _audit(self, cohort: str = "") -> str:
        """What raw data left devices (cloud fallback): when, which device, how many bytes, why."""
        entries = self.store.list_audit(cohort)
        total = sum(e["bytes"] for e in entries)
        rows = "".join(f"<tr><td>{e['created_ms']}</td><td>{html.escape(e['device_id'])}</td>"
                       f"<td>{html.escape(e['cohort'])}</td><td>{e['bytes']}</td><td>{html.escape(e['reason'])}</td></tr>"
                       for e in entries[-50:])
        return (f"<h2>raw data that left devices</h2><p>{len(entries)} transfers, {total} bytes in all"
                f"{' (latest 50 below)' if len(entries) > 50 else ''}.</p>" + (
                    "<table><tr><th>time (ms)</th><th>device</th><th>cohort</th><th>bytes</th><th>why</th></tr>"
                    f"{rows}</table>" if rows else ""))

    def cohort(self, cohort: str) -> str | None:
        if cohort not in self.store.list_cohorts():
            return None
        scores = self.store.list_scores(cohort)
        decisions = self.store.list_decisions(cohort)
        t0 = min([s["created_ms"] for s in scores] + [d["created_ms"] for d in decisions] or [0])
        t = lambda ms: (ms - t0) / 1000.0  # noqa: E731 - seconds since the first point
        marks = [t(d["created_ms"]) for d in decisions if d["kind"] != "manual"]
        def pts(key):
            return [(t(s["created_ms"]), key(s["stats"])) for s in scores]

        def neglog(p):
            return None if p is None else min(-math.log10(max(p, 1e-300)), 300)
        alpha_look = next((s["stats"]["verdict"].get("alpha_look") for s in reversed(scores)
                           if (s["stats"].get("verdict") or {}).get("alpha_look")), None)
        drift = svg_plot("drift evidence: -log10 p of each look (alarm above the line) — seconds since the first point", {
            "look": pts(lambda st: neglog((st.get("verdict") or {}).get("p_value"))),
            "snapshot": pts(lambda st: neglog(st.get("p_value")))},
            marks=marks, hline=neglog(alpha_look) if alpha_look else None)
        effect = svg_plot("effect size: largest total-variation distance to the reference", {
            "effect": pts(lambda st: st.get("effect"))}, marks=marks)
        estimate = svg_plot("accuracy: estimated (ATC, 95% interval) and from labels", {
            "estimated": pts(lambda st: st.get("estimated_accuracy")),
            "low": pts(lambda st: (st.get("accuracy") or {}).get("low")),
            "high": pts(lambda st: (st.get("accuracy") or {}).get("high")),
            "labels": pts(lambda st: st.get("label_accuracy")),
        }, marks=marks)
        state_rows = "".join(
            f"<tr><td>{t(s['created_ms']):.0f}</td><td>{html.escape(s['model_version'])}</td>"
            f"<td>{html.escape(str((s['stats'].get('verdict') or {}).get('state')))}</td>"
            f"<td>{html.escape(str((s['stats'].get('verdict') or {}).get('status')))}</td>"
            f"<td>{(s['stats'].get('verdict') or {}).get('samples')}</td>"
            f"<td>{html.escape(str(s['stats'].get('effect_signal')))}</td>"
            f"<td>{s['stats'].get('estimation_error')}</td></tr>" for s in scores[-10:])
        verdicts = ("<h2>last verdicts</h2><table><tr><th>t (s)</th><th>version</th><th>verdict</th><th>status</th>"
                    f"<th>n</th><th>largest effect</th><th>estimate - labels</th></tr>{state_rows}</table>")
        measured = [d for d in decisions if d["kind"] != "manual"]
        timeline = [m for m in self.store.list_measurements(cohort) if m["phase"] == "timeline"]
        acc = svg_plot("accuracy timeline: labels (last 100, 95% Wilson interval) and label-free estimate", {
            "labels": [(t(m["created_ms"]), m["stats"]["label_accuracy"]) for m in timeline],
            "interval low": [(t(m["created_ms"]), m["stats"]["interval"][0] if m["stats"]["labels"] else None)
                             for m in timeline],
            "interval high": [(t(m["created_ms"]), m["stats"]["interval"][1] if m["stats"]["labels"] else None)
                              for m in timeline],
            "estimated": [(t(m["created_ms"]), m["stats"]["estimate"]) for m in timeline],
        }, marks=[t(d["created_ms"]) for d in measured],
            mark_labels=[f"{d['kind']} {d['evidence'].get('rung', '')}".strip() for d in measured])
        effects = self._effects(cohort)
        audit = self._audit(cohort)
        rows = "".join(f"<tr><td>{d['id']}</td><td>{html.escape(d['kind'])}</td><td>{html.escape(d['model_version'])}</td>"
                       f"<td>{html.escape(d['evidence'].get('why', ''))}<pre>{html.escape(json.dumps(d['evidence'], indent=1))}"
                       f"</pre></td></tr>" for d in reversed(decisions))
        state, revision = self.store.get_cohort(cohort)
        body = (f"<p><a href='/dashboard'>all cohorts</a> · policy revision {revision}: "
                f"<code>{html.escape(json.dumps(state, sort_keys=True))}</code></p>{acc}<br>{drift}<br>{effect}<br>"
                f"{estimate}{verdicts}{effects}{audit}"
                f"<h2>decisions</h2><table><tr><th>id</th><th>kind</th><th>version</th><th>evidence</th></tr>{rows}</table>")
        return self._page(f"cohort {cohort}", body)
