"""The policy engine: merged sketches + rules -> per-cohort decisions, each stored with its evidence.

One pass of :func:`evaluate` looks at every cohort that has a baseline version:

- **fallback ladder** — when the first ``[[fallback]]`` rule fires on the cohort's merged windows,
  climb the ``[ladder]`` (:mod:`~edgefleet.coordinator.ladder`): each rung is tried, measured against
  the accuracy before it, kept or reverted; the cohort returns to its primary when the shift is over.
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
from .drift import drift_report, merge_windows
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
    decisions = []
    for cohort in store.list_cohorts():
        state, revision = store.get_cohort(cohort)
        baseline = (state.get("baseline") or {}).get("version")
        if not baseline:
            continue
        report = _stats(store, rules, cohort, baseline, monitoring_for)
        if report is not None:
            _timeline(store, cohort, baseline, report, revision)
        if rules.fallback and manifest_for is not None:
            decide = lambda kind, version, evidence, changes, c=cohort: _decide(store, c, kind, version, evidence,
                                                                               changes)
            decisions += ladder.step(store, rules, cohort, state, baseline, manifest_for(baseline), revision, decide)
        if (state.get("canary") or {}).get("version"):
            decisions += _canary(store, rules, cohort, state, baseline, report, monitoring_for)
        if (state.get("shadow") or {}).get("version"):
            decisions += _shadow(store, rules, cohort, state, baseline)
    return decisions


def _timeline(store, cohort, baseline, report, revision) -> None:
    """One point of the cohort's accuracy timeline: drift statistics, the label-free estimate, and the
    realized accuracy (Wilson interval) of the most recent labels, whatever arm served them."""
    n, correct = store.label_stats(cohort, baseline)
    store.add_score(cohort, baseline, {**report, "label_accuracy": correct / n if n else None, "labels": n})
    store.add_measurement(cohort, 0, "timeline", {
        **accuracy_between(store, cohort, 0, None, estimate=report["estimated_accuracy"], last=100),
        "policy_revision": revision})


def _stats(store, rules, cohort, version, monitoring_for) -> dict | None:
    windows = store.recent_windows(cohort, version, rules.drift.lookback_windows)
    if not windows:
        return None
    merged = merge_windows(windows)
    report = drift_report(merged, monitoring_for(version))
    report["enough_evidence"] = (merged["windows"] >= rules.drift.min_windows
                                 and merged["count"] >= rules.drift.min_samples)
    return report


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
    if src_c.startswith("labels") != src_b.startswith("labels"):
        return []  # labels on one side only: wait (a shifted model's confidence is no measure of its accuracy)
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
