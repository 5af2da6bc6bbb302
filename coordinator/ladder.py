"""The fallback ladder: when a cohort drifts, try remedies cheapest first, measure each, keep what
helps, revert what does not, and return to the primary model when the shift is over.

A cohort's ``ladder`` state moves through::

    (none) --drift--> measuring --before known--> trying rung i --judged--> trying rung i+1 ...
           --> settled | exhausted
    measuring | trying | settled | exhausted --verdict "recovered"--> released
           --measured--> (none)

Each step is a decision stored with its evidence and its measurement:

- ``drift_detected``: the verdict; the primary keeps serving while its accuracy on the shifted data
  is measured (labels of predictions served after the detection, or the label-free estimate when
  the evaluation budget of windows passes first): the *before* of every rung;
- ``fallback``: a rung is tried (evidence: the drift verdict, the rung, its action, *before*);
- ``rung_kept`` / ``rung_reverted``: the rung's accuracy *after* (labels of predictions served under
  the rung's policy revision, with a Wilson interval; the estimate when labels are short at the end
  of the evaluation budget) against *before*; a rung that adds less than ``min_gain`` is reverted;
- ``settle`` (the best kept rung stays) or ``exhausted`` (nothing helped: the primary serves);
- ``release``: the drift engine's verdict is ``recovered`` (its monitor's hysteresis: several
  unremarkable looks after the alarm), the cohort returns to its primary; then
  ``release_measured`` once the primary's accuracy after the release is known.

A rung is an object with a ``name`` and ``plan(ctx) -> (changes, detail)`` (cohort-state changes), or
``Skip`` with the reason it cannot apply; rungs are found by name in :data:`RUNGS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .drift import estimate_accuracy, merge_windows
from .labelshift import bbse_weights, class_recalls, logit_bias
from .measure import accuracy_between, wilson

__all__ = ["step", "drift_verdict", "RUNGS", "Skip", "REMEDY_CLEARED"]

#: cohort-state changes that undo every rung
REMEDY_CLEARED = {"fallback_artifact": None, "fallback": None, "remedy": None}


class Skip(Exception):
    """A rung cannot apply to this cohort now (the message says why)."""


@dataclass
class Context:
    store: object
    rules: object
    cohort: str
    state: dict
    version: str              # the primary (baseline) version
    manifest: dict            # its manifest
    merged: dict              # the merged sketch that fired
    rule: object              # the [[fallback]] rule that fired
    before: dict | None = None  # the primary's measured accuracy under the shift


class ArtifactRung:
    name = "artifact"

    def plan(self, ctx):
        target = ctx.rule.to_artifact or ctx.rules.ladder.artifact
        targets = {a["target"] for a in ctx.manifest.get("artifacts", [])}
        if target not in targets:
            raise Skip(f"bundle {ctx.version} has no artifact {target!r}")
        if set(ctx.merged["artifacts"]) == {target}:
            raise Skip(f"the cohort already serves {target}")
        return {"fallback_artifact": target}, f"serve artifact {target}"


class PreviousVersionRung:
    name = "previous_version"

    def plan(self, ctx):
        previous = ctx.rule.to_version or (ctx.state.get("previous") or {}).get("version", "")
        if not previous or previous == ctx.version:
            raise Skip("no previous known-good version for this cohort")
        found = ctx.store.bundle_by_version(previous)
        if found is None:
            raise Skip(f"previous version {previous} is not published")
        # since_ms: the fallback version's drift monitor starts in the primary's alarm from then on, so
        # the end of the shift is seen on its windows and the cohort released as from an artifact
        return ({"fallback": {"version": previous, "digest": found[0], "since_ms": _now_ms()}},
                f"serve version {previous}")


class LabelShiftRung:
    name = "label_shift"

    def plan(self, ctx):
        monitoring = ctx.manifest["monitoring"]
        confusion = monitoring.get("confusion")
        if not confusion:
            raise Skip(f"bundle {ctx.version} has no validation confusion matrix in its monitoring reference")
        _require_label_shift_possible(ctx.before, confusion)
        try:
            weights = bbse_weights(confusion, ctx.merged["class_counts"])
        except ValueError as e:
            raise Skip(f"label-shift estimate failed: {e}") from e
        bias = logit_bias(weights, monitoring.get("temperature", 1.0))
        return ({"remedy": {"logit_bias": bias}},
                f"logit bias from BBSE prior ratios {[round(w, 3) for w in weights]} "
                f"on {sum(ctx.merged['class_counts'])} predicted-class counts")


def _require_label_shift_possible(before: dict | None, confusion) -> None:
    """Skip the rung when the measured accuracy rules out a pure label shift: under one, accuracy is a
    mix of the per-class recalls and cannot fall below the lowest. Both sides are samples, so the
    rung is skipped only when the upper 95 % bound of *before* (labels only) is under the lower 95 %
    bound of every class's validation recall."""
    if not before or before.get("source") != "labels":
        return
    floor = min(wilson(correct, n)[0] for correct, n in class_recalls(confusion) if n)
    if before["interval"][1] < floor:
        raise Skip(f"accuracy {before['accuracy']:.3f} (95% up to {before['interval'][1]:.3f}) is below every "
                   f"class's validation recall (95% from {floor:.3f}): not a pure label shift, a logit bias "
                   "cannot recover it")


class CloudRung:
    name = "cloud"

    def plan(self, ctx):
        if not (ctx.state.get("privacy") or {}).get("raw_inputs_allowed"):
            raise Skip("the cohort has not opted in to raw inputs leaving its devices (SetPrivacy)")
        lad = ctx.rules.ladder
        threshold = max(lad.cloud_confidence_below, _confidence_quantile(ctx, lad.cloud_share))
        return ({"remedy": {"cloud": True, "cloud_confidence_below": threshold,
                            "cloud_latency_ms": lad.cloud_latency_ms, "cloud_per_minute": lad.cloud_per_minute}},
                f"send inputs under confidence {threshold:.3f} (about {lad.cloud_share:.0%} of the cohort's recent "
                f"inputs, at least those under {lad.cloud_confidence_below:g}) to Predict "
                f"(deadline {lad.cloud_latency_ms:g} ms, {lad.cloud_per_minute:g}/min per device)")


def _confidence_quantile(ctx, share: float) -> float:
    """The confidence under which about ``share`` of the cohort's recent inputs fall, read from the
    merged confidence histogram (a bin's upper edge): a shifted model is often confidently wrong, so
    a fixed threshold would send nothing."""
    counts = ctx.merged.get("confidence") or []
    edges = ctx.manifest["monitoring"]["confidence"]["edges"]
    total = sum(counts)
    if not total or share <= 0:
        return 0.0
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= share * total:
            return min(1.0, edges[i + 1]) + (1e-9 if edges[i + 1] >= 1.0 else 0.0)
    return 1.0 + 1e-9


class AdaptRung:
    """Queue an adaptation job (``edgefleet.coordinator.adapt``); the primary serves meanwhile. The job
    starts the adapted version as a canary on the cohort (``adapt_canary_share``); the ladder judges
    that canary like every rung, on the labels of its predictions against *before*, and promotes it
    (the cohort's new baseline) or rolls it back. Only examples labelled after the detection are used
    (those held from before are deleted at detection: they show the data before the shift)."""

    name = "adapt"

    def plan(self, ctx):
        from .adapt import MIN_EXAMPLES
        if not (ctx.state.get("privacy") or {}).get("examples_allowed"):
            raise Skip("the cohort has not opted in to labelled examples leaving its devices (SetPrivacy)")
        n = len(ctx.store.list_examples(ctx.cohort))
        if n < MIN_EXAMPLES:
            raise Skip(f"{n} labelled examples from the cohort, at least {MIN_EXAMPLES} needed")
        lad = ctx.rules.ladder
        job = ctx.store.enqueue_job("adapt", ctx.cohort, {"version": ctx.version, "max_drop": lad.adapt_max_drop,
                                                          "canary_share": lad.adapt_canary_share})
        return {}, f"adaptation job #{job} queued on {n} labelled examples"


RUNGS = {r.name: r for r in (ArtifactRung(), PreviousVersionRung(), LabelShiftRung(), CloudRung(), AdaptRung())}


# -- the drift engine, read in one place ------------------------------------------------------------
def drift_verdict(rules, cohort: str, report: dict | None) -> dict:
    """The drift engine's verdict of this evaluation for the cohort's serving version, as the ladder
    reads it: ``{"state": "drift" | "ok" | "recovered" | "insufficient", "rule", "why", "verdict"}``.
    ``rule`` is the first ``[[fallback]]`` rule that applies to a ``drift`` (cohort and estimated
    accuracy drop); ``recovered`` comes after the monitor's own hysteresis (``recover_looks``
    unremarkable looks after an alarm). The only function that reads the drift engine's verdict."""
    if report is None or not report.get("verdict"):
        return {"state": "insufficient", "rule": None, "why": "no windows", "verdict": None}
    v = report["verdict"]
    rule = None
    if v["state"] in ("drift", "recovered"):
        drop = v.get("accuracy_drop")
        rule = next((r for r in rules.fallback if r.applies_to(cohort) and (
            r.min_accuracy_drop <= 0 or (drop is not None and drop >= r.min_accuracy_drop))), None)
    if v["state"] == "drift":
        why = (f"drift: p={v['p_value']:.3g} <= {v['alpha_look']:.3g} (look {v['look']}, n={v['samples']}, "
               f"effect {v['effect']:.3f} on {v['effect_signal']})")
    else:
        why = f"{v['state']}: {v.get('reason') or ''}".strip()
    return {"state": v["state"], "rule": rule, "why": why, "verdict": v}


def _recent(store, cohort, version, ladder, last: int = 20) -> dict:
    """The merged sketch of the cohort's most recent windows of ``version`` (what a rung is planned on)."""
    windows = [w for w in store.recent_windows(cohort, version, last) if w["received_ms"] > ladder.get("since_ms", 0)]
    return merge_windows(windows)


# -- the state machine ------------------------------------------------------------------------------
def _now_ms() -> int:
    return int(time.time() * 1000)


def _expected_accuracy(manifest: dict) -> float | None:
    value = manifest["monitoring"].get("expected_accuracy")
    return value / 100.0 if value is not None else None


def step(store, rules, cohort: str, state: dict, version: str, manifest: dict, report: dict | None,
         decide) -> list[dict]:
    """One evaluation of the cohort's ladder on this evaluation's drift ``report`` (of the serving
    version); ``decide(kind, version, evidence, changes)`` stores a decision (and the policy change)
    and returns it with its ``policy_revision``."""
    ladder = state.get("ladder") or {}
    status = ladder.get("status", "")
    verdict = drift_verdict(rules, cohort, report)
    if status in ("", "done"):
        return _detect(store, rules, cohort, version, verdict, ladder, decide)
    if status == "released":
        return _measure_release(store, rules, cohort, ladder, version, decide)
    made = _maybe_release(store, rules, cohort, state, version, manifest, ladder, verdict, decide)
    if made or status not in ("trying", "measuring"):
        return made
    if status == "measuring":
        waiting = _measure_before(store, rules, cohort, state, version, manifest, ladder)
        if waiting is not None:
            return waiting
        return _try_next(store, rules, cohort, state, version, manifest, ladder,
                         _recent(store, cohort, version, ladder), decide)
    return _judge(store, rules, cohort, state, version, manifest, ladder, decide)


def _detect(store, rules, cohort, version, verdict, ladder, decide):
    if verdict["state"] != "drift" or verdict["rule"] is None:
        return []
    rule, v = verdict["rule"], verdict["verdict"]
    if (v.get("start_ms") or 0) < ladder.get("since_ms", 0) or v.get("p_value") is None \
            or v["p_value"] > v["alpha_look"]:
        # act on a look that itself shows the drift in data after the last release (a held alarm, or
        # evidence pooled across the release, is not a new shift)
        return []
    measuring = {"status": "measuring", "detected": {"why": verdict["why"], "rule": rule.name, "verdict": v},
                 "results": [], "next": 0, "rule": rule.name, "since_ms": ladder.get("since_ms", 0),
                 "started_ms": _now_ms()}
    evidence = {"why": f"{verdict['why']}: measure the primary's accuracy under the shift before trying a rung",
                "rule": rule.name, "verdict": v,
                "thresholds": {"alpha": rules.drift.alpha, "horizon": rules.drift.horizon,
                               "min_accuracy_drop": rule.min_accuracy_drop, "eval_labels": rules.ladder.eval_labels,
                               "eval_windows": rules.ladder.eval_windows}}
    stale = [e["id"] for e in store.list_examples(cohort)]
    if stale:  # labelled examples from before the shift would teach an adaptation the old data
        store.delete_examples(stale)
        evidence["examples_deleted"] = len(stale)
    made = decide("drift_detected", version, evidence, {"ladder": measuring})
    measuring["revision"] = made["evidence"]["policy_revision"]
    store.update_cohort(cohort, {"ladder": measuring})
    return [made]


def _measure_before(store, rules, cohort, state, version, manifest, ladder):
    """After detection, the primary's accuracy on shifted data: labels of predictions served since the
    detection (or the estimate once the evaluation budget of windows is spent); then the first rung."""
    n, _ = store.label_stats_between(cohort, ladder["revision"])
    estimate, windows = _arm_estimate(store, cohort, state, version, ladder, manifest)
    if n < rules.ladder.eval_labels and windows < rules.ladder.eval_windows:
        return []
    ladder.update(status="trying", before=accuracy_between(store, cohort, ladder["revision"], None, estimate=estimate))
    return None


def _try_next(store, rules, cohort, state, version, manifest, ladder, merged, decide):
    """Apply the next applicable rung (skipping those that cannot apply, with the reason), or settle."""
    rule = next((r for r in rules.fallback if r.name == ladder["rule"]), rules.fallback[0] if rules.fallback else None)
    skipped = []
    while ladder["next"] < len(rules.ladder.rungs):
        name = rules.ladder.rungs[ladder["next"]]
        ladder["next"] += 1
        ctx = Context(store, rules, cohort, state, version, manifest, merged, rule, ladder.get("before"))
        try:
            changes, detail = RUNGS[name].plan(ctx)
        except Skip as e:
            skipped.append({"rung": name, "reason": str(e)})
            continue
        ladder.update(rung=name, action=changes, started_ms=_now_ms())
        ladder.setdefault("skipped", []).extend(skipped)
        evidence = {"why": f"{ladder['detected']['why']}: try rung {name} ({detail})", "rung": name,
                    "action": changes, "detail": detail, "before": ladder["before"], "skipped": skipped,
                    "rule": ladder["rule"], "verdict": ladder["detected"]["verdict"],
                    "thresholds": {"eval_labels": rules.ladder.eval_labels, "eval_windows": rules.ladder.eval_windows,
                                   "min_gain": rules.ladder.min_gain}}
        # the previous rung's changes are undone in the same policy change
        made = decide("fallback", version, evidence, {**REMEDY_CLEARED, **changes, "ladder": ladder})
        ladder["revision"] = made["evidence"]["policy_revision"]
        ladder["decision"] = made["id"]
        store.update_cohort(cohort, {"ladder": ladder})
        store.add_measurement(cohort, made["id"], "before", ladder["before"])
        return [made]
    ladder.setdefault("skipped", []).extend(skipped)
    return [_settle(store, rules, cohort, version, ladder, decide)]


def _settle(store, rules, cohort, version, ladder, decide):
    kept = [r for r in ladder["results"] if r["kept"]]
    if kept:
        best = max(kept, key=lambda r: r["after"]["accuracy"] or 0.0)
        ladder.update(status="settled", rung=best["rung"], action=best["action"], started_ms=_now_ms())
        evidence = {"why": f"rung {best['rung']} kept: accuracy {best['after']['accuracy']:.3f} vs "
                           f"{ladder['before']['accuracy'] if ladder['before']['accuracy'] is not None else float('nan'):.3f} before",
                    "rung": best["rung"], "results": ladder["results"], "skipped": ladder.get("skipped", []),
                    "action": best["action"]}
        return decide("settle", version, evidence, {**REMEDY_CLEARED, **best["action"], "ladder": ladder})
    ladder.update(status="exhausted", rung="", action={}, started_ms=_now_ms())
    evidence = {"why": "no rung helped; the primary model serves until the shift is over",
                "results": ladder["results"], "skipped": ladder.get("skipped", [])}
    return decide("exhausted", version, evidence, {**REMEDY_CLEARED, "ladder": ladder})


def _arm_estimate(store, cohort, state, version, ladder, manifest) -> tuple[float | None, int]:
    """Label-free estimate and window count of what the cohort served since the rung started."""
    serving = (state.get("fallback") or {}).get("version") or version
    monitoring = manifest["monitoring"] if serving == version else store.bundle_by_version(serving)[1]["monitoring"]
    windows = [w for w in store.recent_windows(cohort, serving, 10_000) if w["received_ms"] > ladder.get("started_ms", 0)]
    if not windows:
        return None, 0
    found = estimate_accuracy(merge_windows(windows), monitoring)
    return (found["estimate"] if found else None), len(windows)


def _adapt_arm(store, cohort, state) -> tuple[str, dict]:
    """Where the adapt rung stands: ("wait", {}) while its job runs; ("failed", {reason}); ("canary",
    the canary target) while the adapted version serves as a canary; ("promoted" | "ended", {reason})
    when something outside the ladder ended the canary."""
    jobs = store.list_jobs(cohort)
    if not jobs or jobs[-1]["status"] in ("queued", "running"):
        return "wait", {}
    job = jobs[-1]
    if job["status"] == "failed":
        return "failed", {"reason": f"adaptation job #{job['id']} failed: {job['result'].get('reason', '')}"}
    adapted = job["result"]["version"]
    canary = state.get("canary") or {}
    if canary.get("version") == adapted:
        return "canary", canary
    if (state.get("baseline") or {}).get("version") == adapted:
        return "promoted", {"reason": f"{adapted} was promoted outside the ladder"}
    return "ended", {"reason": f"the canary of {adapted} was ended outside the ladder"}


def _judge(store, rules, cohort, state, version, manifest, ladder, decide):
    lad = rules.ladder
    since, arm = ladder["revision"], ""
    if ladder["rung"] == "adapt":
        where, detail = _adapt_arm(store, cohort, state)
        if where == "wait":
            return []
        if where != "canary":
            return _adapt_ended(store, rules, cohort, state, version, manifest, ladder, decide, where, detail)
        since, arm = detail.get("since_revision", ladder["revision"]), detail["version"]
    n, _ = store.label_stats_between(cohort, since, model_version=arm)
    # an adapted canary is judged on labels only (a shifted model's confidence is no measure of it)
    estimate, windows = _arm_estimate(store, cohort, state, version, ladder, manifest) if not arm else (None, 0)
    if n < lad.eval_labels and (arm or windows < lad.eval_windows):
        return []
    after = accuracy_between(store, cohort, since, None, estimate=estimate, model_version=arm)
    before = ladder["before"]
    gain = (after["accuracy"] - before["accuracy"]) if None not in (after["accuracy"], before["accuracy"]) else None
    z = _z(before, after)
    kept = gain is not None and gain >= lad.min_gain and (z is None or z >= lad.keep_z)
    result = {"rung": ladder["rung"], "action": ladder["action"], "after": after, "gain": gain, "z": z,
              "kept": kept, "decision": ladder["decision"]}
    ladder["results"].append(result)
    store.add_measurement(cohort, ladder["decision"], "after", after)
    why = (f"rung {ladder['rung']}: accuracy {after['accuracy'] if after['accuracy'] is not None else float('nan'):.3f} "
           f"({after['source']}, {after['labels']} labels, 95% [{after['interval'][0]:.3f}, {after['interval'][1]:.3f}])"
           f" vs {before['accuracy'] if before['accuracy'] is not None else float('nan'):.3f} before; "
           f"gain {gain if gain is not None else float('nan'):+.3f} (min {lad.min_gain:g}), z "
           f"{z if z is not None else float('nan'):.2f} (min {lad.keep_z:g}): {'kept' if kept else 'reverted'}")
    kind = "rung_kept" if kept else "rung_reverted"
    evidence = {"why": why, "rung": ladder["rung"], "before": before, "after": after, "gain": gain, "z": z,
                "decision": ladder["decision"]}
    if arm:
        return _adapt_judged(store, rules, cohort, state, version, manifest, ladder, decide, kept, evidence, detail)
    target = _expected_accuracy(manifest)
    if kept and target is not None and after["accuracy"] >= target - lad.good_enough:
        store.add_decision(cohort, kind, version, {**evidence, "policy_revision": ladder["revision"]})
        return [_settle(store, rules, cohort, version, ladder, decide)]
    made = store.add_decision(cohort, kind, version, {**evidence, "policy_revision": ladder["revision"]})
    recorded = {"id": made, "cohort": cohort, "kind": kind, "model_version": version, "evidence": evidence}
    return [recorded] + _try_next(store, rules, cohort, state, version, manifest, ladder,
                                  _recent(store, cohort, version, ladder), decide)


def _adapt_judged(store, rules, cohort, state, version, manifest, ladder, decide, kept, evidence, canary):
    """The adapted canary measured: promoted to the cohort's baseline (kept), or rolled back and the
    ladder goes on."""
    if kept:
        ladder.update(status="settled", rung="adapt", action={}, started_ms=_now_ms())
        target = {"version": canary["version"], "digest": canary["digest"]}
        return [decide("rung_kept", version, evidence, {"baseline": target, "previous": state.get("baseline"),
                                                        "canary": None, "canary_share": None, "ladder": ladder})]
    made = decide("rung_reverted", version, evidence, {"canary": None, "canary_share": None})
    return [made] + _try_next(store, rules, cohort, state, version, manifest, ladder,
                              _recent(store, cohort, version, ladder), decide)


def _adapt_ended(store, rules, cohort, state, version, manifest, ladder, decide, where, detail):
    """The adapt rung ended without a canary to judge: its job failed, or the canary was promoted or
    rolled back outside the ladder."""
    kept = where == "promoted"
    after = {"accuracy": None, "source": "job" if where == "failed" else "outside the ladder", "labels": 0,
             "interval": [0.0, 1.0], "reason": detail["reason"]}
    ladder["results"].append({"rung": "adapt", "action": {}, "after": after, "gain": None, "z": None, "kept": kept,
                              "decision": ladder["decision"]})
    store.add_measurement(cohort, ladder["decision"], "after", after)
    kind = "rung_kept" if kept else "rung_reverted"
    evidence = {"why": f"rung adapt: {detail['reason']}", "rung": "adapt", "before": ladder["before"],
                "after": after, "decision": ladder["decision"], "policy_revision": ladder["revision"]}
    made = store.add_decision(cohort, kind, version, evidence)
    recorded = {"id": made, "cohort": cohort, "kind": kind, "model_version": version, "evidence": evidence}
    if kept:
        ladder.update(status="settled", rung="adapt", action={}, started_ms=_now_ms())
        store.update_cohort(cohort, {"ladder": ladder})
        return [recorded]
    return [recorded] + _try_next(store, rules, cohort, state, version, manifest, ladder,
                                  _recent(store, cohort, version, ladder), decide)


def _z(before: dict, after: dict) -> float | None:
    """One-sided two-proportion z statistic of after > before, when both come from labels."""
    if before.get("source") != "labels" or after.get("source") != "labels":
        return None
    n1, n2 = before["labels"], after["labels"]
    pooled = (before["correct"] + after["correct"]) / (n1 + n2)
    se = (pooled * (1 - pooled) * (1 / n1 + 1 / n2)) ** 0.5
    gain = after["correct"] / n2 - before["correct"] / n1
    return round(gain / se, 4) if se > 0 else (float("inf") if gain > 0 else 0.0)


def _maybe_release(store, rules, cohort, state, version, manifest, ladder, verdict, decide):
    """The drift engine says the shift is over (``recovered``): back to the primary model."""
    rule = verdict["rule"] or next((r for r in rules.fallback if r.name == ladder.get("rule")), None)
    if verdict["state"] != "recovered" or (rule is not None and not rule.release):
        return []
    before = accuracy_between(store, cohort, ladder.get("revision", 0), None,
                              estimate=(verdict["verdict"].get("accuracy") or {}).get("estimate"),
                              last=rules.ladder.eval_labels)
    released = {"status": "released", "before": before, "from": ladder.get("rung", ""), "started_ms": _now_ms(),
                "since_ms": _now_ms()}
    evidence = {"why": f"shift over ({verdict['why']}): return to the primary model",
                "from_rung": ladder.get("rung", ""), "from_status": ladder["status"], "before": before,
                "verdict": verdict["verdict"]}
    made = decide("release", version, evidence, {**REMEDY_CLEARED, "ladder": released})
    released["revision"], released["decision"] = made["evidence"]["policy_revision"], made["id"]
    store.update_cohort(cohort, {"ladder": released})
    store.add_measurement(cohort, made["id"], "before", before)
    return [made]


def _measure_release(store, rules, cohort, ladder, version, decide):
    n, _ = store.label_stats_between(cohort, ladder["revision"])
    if n < rules.ladder.eval_labels:
        return []
    after = accuracy_between(store, cohort, ladder["revision"], None)
    store.add_measurement(cohort, ladder["decision"], "after", after)
    before = ladder["before"]
    evidence = {"why": f"after release: accuracy {after['accuracy']:.3f} ({after['labels']} labels, 95% "
                       f"[{after['interval'][0]:.3f}, {after['interval'][1]:.3f}]) vs "
                       f"{before['accuracy'] if before['accuracy'] is not None else float('nan'):.3f} under the remedy",
                "before": before, "after": after, "decision": ladder["decision"]}
    done = {"status": "done", "since_ms": ladder["since_ms"], "since_revision": ladder["revision"]}
    return [decide("release_measured", version, evidence, {"ladder": done})]
