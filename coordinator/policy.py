"""The policy engine: merged sketches + rules -> per-cohort decisions, each stored with its evidence.

One pass of :func:`evaluate` looks at every cohort that has a baseline version:

- **verdict** — the cohort's sequential drift monitor (:class:`~edgefleet.coordinator.drift.Monitor`)
  looks at the windows of its serving version that arrived since the last look; its state survives in
  the score history. The verdict (``insufficient``, ``ok``, ``drift``, ``recovered``, with its evidence)
  is stored with every score point; a snapshot report of the most recent windows and the label-free
  accuracy estimate come with it, and Benjamini-Hochberg across all cohorts x signals of the snapshots
  marks which signals moved (``fdr_rejected``).
- **fallback ladder** — on a ``drift`` verdict for which the first ``[[fallback]]`` rule applies (cohort,
  and the estimated accuracy drop), climb the ``[ladder]`` (:mod:`~edgefleet.coordinator.ladder`):
  each rung is tried, measured against the accuracy before it, kept or reverted; on ``recovered``
  the cohort returns to its primary model, and that decision is measured too.
- **canary** — compare the canary version's windows with the baseline's: roll back when the canary's
  accuracy (from labels when there are enough, else estimated from confidence) is lower by more than
  the margin or its error rate higher; promote after ``promote_after_windows`` healthy windows.
- **shadow** — once the candidate has been run beside the serving model on enough inputs, record the
  agreement and a pass/fail verdict, and stop the shadow evaluation.

Every evaluation also records each cohort's statistics as a score point and its realized accuracy
(labels, Wilson interval) and label-free estimate as a timeline measurement (the dashboard's plots).
"""

from __future__ import annotations

from typing import Callable

from . import ladder
from .drift import Monitor, MonitorSettings, drift_report, fdr, merge_windows
from .measure import accuracy_between
from .rules import Rules

__all__ = ["evaluate"]


def _accuracy(store, cohort: str, version: str, report: dict, min_labels: int,
              since_revision: int = 0) -> tuple[float | None, str]:
    """Labels of ``version`` in the cohort since the canary started (both arms over the same stretch)."""
    n, correct = store.label_stats_between(cohort, since_revision, None, model_version=version)
    if n >= min_labels:
        return correct / n, f"labels ({n})"
    return report["estimated_accuracy"], "estimated from confidence"


def evaluate(store, rules: Rules, monitoring_for: Callable[[str], dict],
             manifest_for: Callable[[str], dict] | None = None) -> list[dict]:
    """Run every rule once over every cohort; return the decisions made (already stored)."""
    decisions, looked = [], []
    for cohort in store.list_cohorts():
        state, revision = store.get_cohort(cohort)
        baseline = (state.get("baseline") or {}).get("version")
        if not baseline:
            continue
        fallback = state.get("fallback") or {}
        serving = fallback.get("version") or baseline  # what the monitor watches
        report = _stats(store, rules, cohort, serving, monitoring_for, fallback.get("since_ms"))
        looked.append((cohort, state, revision, baseline, serving, report))
    _mark_fdr([r[-1] for r in looked if r[-1] is not None], rules.drift.alpha)
    for cohort, state, revision, baseline, serving, report in looked:
        if report is not None:
            _timeline(store, cohort, serving, report, revision)
        if rules.fallback and manifest_for is not None:
            decide = lambda kind, version, evidence, changes, c=cohort: _decide(store, c, kind, version, evidence,
                                                                               changes)
            made = ladder.step(store, rules, cohort, state, baseline, manifest_for(baseline), report, decide)
            if made:  # the ladder may have promoted or ended a canary: the rules below see what it left
                state, revision = store.get_cohort(cohort)
                baseline = (state.get("baseline") or {}).get("version") or baseline
            decisions += made
        if (state.get("canary") or {}).get("version"):
            decisions += _canary(store, rules, cohort, state, baseline, report, monitoring_for)
        if (state.get("shadow") or {}).get("version"):
            decisions += _shadow(store, rules, cohort, state, baseline)
    return decisions


def monitor_settings(rules: Rules) -> MonitorSettings:
    d = rules.drift
    return MonitorSettings(alpha=d.alpha, horizon=d.horizon, min_samples=d.min_samples,
                           recover_looks=d.recover_looks, recover_p=d.recover_p)


def _last_monitor(store, cohort: str, version: str) -> dict | None:
    """The monitor's saved state (its last 16 blocks, cursor and status): one score row, whatever the
    length of the cohort's history. Every score :func:`_timeline` writes carries it."""
    score = store.last_score(cohort, version)
    return score["stats"].get("monitor") if score else None


def _timeline(store, cohort, version, report, revision) -> None:
    """One point of the cohort's accuracy timeline: the drift report and verdict, the label-free
    estimate, and the realized accuracy (Wilson interval) of the most recent labels, whatever arm
    served them."""
    n, correct = store.label_stats(cohort, version)
    realized = correct / n if n else None
    est = report["estimated_accuracy"]
    store.add_score(cohort, version, {**report, "label_accuracy": realized, "labels": n,
                                      "estimation_error": (round(est - realized, 6)
                                                           if realized is not None and est is not None else None)})
    store.add_measurement(cohort, 0, "timeline", {
        **accuracy_between(store, cohort, 0, None, estimate=est, last=100), "policy_revision": revision,
        "verdict": (report.get("verdict") or {}).get("state")})


def _stats(store, rules, cohort, version, monitoring_for, fallback_since: int | None = None) -> dict | None:
    """The drift report and the monitor's verdict on ``version``'s windows. ``fallback_since``: the
    cohort falls back to this version since then; its monitor starts in the primary's alarm on the
    windows from then on, so the end of the shift releases the cohort as it does from an artifact."""
    saved = _last_monitor(store, cohort, version) or {}
    if fallback_since is not None and saved.get("fallback_since") != fallback_since:
        saved = {"cursor_ms": fallback_since, "state": Monitor(monitor_settings(rules)).alarmed().state}
    windows = [w for w in store.recent_windows(cohort, version, rules.drift.lookback_windows)
               if fallback_since is None or w.get("received_ms", 0) > fallback_since]
    if not windows:
        return None
    reference = monitoring_for(version)
    report = drift_report(merge_windows(windows), reference, alpha=rules.drift.alpha,
                          min_samples=rules.drift.min_samples)
    cursor, seen = saved.get("cursor_ms", -1), set(saved.get("cursor_ids", []))
    monitor = Monitor(monitor_settings(rules), saved.get("state"))
    ident = lambda w: f"{w.get('device_id', '')}/{w['report_id']}"  # noqa: E731
    fresh = [w for w in windows if w.get("received_ms", 0) > cursor
             or (w.get("received_ms", 0) == cursor and ident(w) not in seen)]
    verdict = monitor.look(merge_windows(fresh), reference)
    if verdict["state"] != "insufficient":  # else the windows wait for the next look
        last = max(w.get("received_ms", 0) for w in fresh)
        seen = (seen if last == cursor else set()) | {ident(w) for w in fresh if w.get("received_ms", 0) == last}
        cursor = last
    report["verdict"] = _summary(verdict, report)
    report["monitor"] = {"cursor_ms": cursor, "cursor_ids": sorted(seen), "state": monitor.state,
                         **({"fallback_since": fallback_since} if fallback_since is not None else {})}
    return report


def _summary(verdict: dict, snapshot: dict) -> dict:
    """The verdict the rules (and the fallback ladder) read: small and documented in docs/coordinator.md."""
    look = verdict.get("report") or {}
    return {"state": verdict["state"], "status": verdict["status"], "look": verdict.get("look"),
            "p_value": verdict.get("p_value"), "alpha_look": verdict.get("alpha_look"),
            "scale": verdict.get("scale"), "samples": look.get("samples"), "effect": look.get("effect"),
            "effect_signal": look.get("effect_signal"), "start_ms": look.get("start_ms"),
            "end_ms": look.get("end_ms"), "reason": verdict.get("reason"),
            "accuracy": snapshot["accuracy"], "accuracy_drop": snapshot["accuracy_drop"]}


def _mark_fdr(reports: list[dict], alpha: float) -> None:
    family = [(r, t) for r in reports for t in r["signals"]]
    for (r, t), rejected in zip(family, fdr([t["p_value"] for _, t in family], alpha)):
        t["fdr_rejected"] = rejected


def _decide(store, cohort, kind, version, evidence, changes) -> dict:
    state, revision = store.update_cohort(cohort, {**changes, "reason": f"{kind}: {evidence['why']}"[:1000]})
    evidence = {**evidence, "policy_revision": revision}
    decision_id = store.add_decision(cohort, kind, version, evidence)
    return {"id": decision_id, "cohort": cohort, "kind": kind, "model_version": version, "evidence": evidence}


def _canary(store, rules, cohort, state, baseline, base_report, monitoring_for) -> list[dict]:
    canary = state["canary"]["version"]
    rule = rules.canary
    windows = store.recent_windows(cohort, canary, rules.drift.lookback_windows)
    if not windows or base_report is None:
        return []
    merged = merge_windows(windows)
    report = drift_report(merged, monitoring_for(canary))
    if merged["count"] < rule.min_samples or base_report["samples"] < rule.min_samples:
        return []
    since = state["canary"].get("since_revision", 0)
    acc_c, src_c = _accuracy(store, cohort, canary, report, rule.min_samples, since)
    # both arms over the same stretch; a canary on the whole cohort leaves the baseline only its past
    concurrent = (state.get("canary_share") or 0.0) < 1.0
    acc_b, src_b = _accuracy(store, cohort, baseline, base_report, rule.min_samples, since if concurrent else 0)
    labelled = (src_c.startswith("labels"), src_b.startswith("labels"))
    ladder_state = state.get("ladder") or {}
    if ladder_state.get("status") == "trying" and ladder_state.get("rung") == "adapt":
        return []  # the ladder's adapt rung judges its canary against the accuracy before it
    drifting = ladder_state.get("status") in ("measuring", "trying")
    if labelled[0] != labelled[1] or (drifting and not all(labelled)):
        # labels on one side only, or none under a detected drift: wait (a shifted model's confidence is
        # no measure of its accuracy)
        return []
    evidence = {"canary": {"version": canary, "accuracy": acc_c, "accuracy_source": src_c, "statistics": report},
                "baseline": {"version": baseline, "accuracy": acc_b, "accuracy_source": src_b,
                             "statistics": base_report},
                "thresholds": {"rollback_margin": rule.rollback_margin,
                               "promote_after_windows": rule.promote_after_windows}}
    worse = []
    if acc_c is not None and acc_b is not None and acc_c < acc_b - rule.rollback_margin:
        worse.append(f"accuracy {acc_c:.3f} < baseline {acc_b:.3f} - {rule.rollback_margin:g}")
    if report["error_rate"] > base_report["error_rate"] + rule.rollback_margin:
        worse.append(f"error rate {report['error_rate']:.3f} > baseline {base_report['error_rate']:.3f} "
                     f"+ {rule.rollback_margin:g}")
    if worse:
        evidence["why"] = "; ".join(worse)
        return [_decide(store, cohort, "canary_rollback", canary, evidence, {"canary": None, "canary_share": None})]
    if merged["windows"] >= rule.promote_after_windows:
        evidence["why"] = f"{merged['windows']} healthy canary windows >= {rule.promote_after_windows}"
        return [_decide(store, cohort, "canary_promote", canary, evidence,
                        {"baseline": state["canary"], "previous": state.get("baseline"), "canary": None,
                         "canary_share": None})]
    return []


def _shadow(store, rules, cohort, state, baseline) -> list[dict]:
    candidate = state["shadow"]["version"]
    windows = [w for w in store.recent_windows(cohort, baseline, rules.drift.lookback_windows)
               if w.get("shadow_version") == candidate]
    seen = sum(w.get("shadow_count", 0) for w in windows)
    if seen < rules.shadow.min_samples:
        return []
    agree = sum(w.get("shadow_agree", 0) for w in windows)
    agreement = agree / seen
    verdict = "pass" if agreement >= rules.shadow.min_agreement else "fail"
    evidence = {"why": f"agreement {agreement:.3f} on {seen} inputs ({verdict}, threshold "
                       f"{rules.shadow.min_agreement:g})", "candidate": candidate, "serving": baseline,
                "agreement": agreement, "inputs": seen, "verdict": verdict, "windows": len(windows)}
    return [_decide(store, cohort, "shadow_report", candidate, evidence, {"shadow": None})]
