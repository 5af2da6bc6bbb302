"""The drift engine's acceptance: calibration (no-shift false-positive rate within a binomial bound of
alpha), power (an obvious shift flagged at n = 50), "not enough evidence" (never an alarm, never a
crash) on mismatched bins, empty windows and tiny samples, old-version windows, repeated looks with
recovery, the statistics against scipy, the label-free accuracy estimate."""

from __future__ import annotations

import math

import time

import numpy as np
import pytest
from scipy import stats

from edgefleet.compress.monitoring_ref import _histogram, build_reference
from edgefleet.coordinator.drift import (Monitor, MonitorSettings, drift_report, estimate_accuracy, fdr,
                                         merge_windows, simes, two_sample)

K = 4
ALPHA = 0.05
DRAWS = 200  # any number of draws gives a valid p-value; few keep the suite fast


def model(rng, n, *, prior=None, noise=0.0):
    """Synthetic classifier outputs: labels from ``prior``, logits peaked at the label (plus noise)."""
    y = rng.choice(K, size=n, p=prior if prior is not None else np.full(K, 1 / K))
    logits = rng.normal(size=(n, K)) * (1.2 + noise) + 2.5 * np.eye(K)[y]
    return logits, y


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    logits, y = model(rng, 400)
    return build_reference(None, logits, y, K)


def sketch(ref, logits) -> dict:
    """The window a device would send for these logits (numpy binning = device binning, tested in
    tests/telemetry)."""
    t = ref["temperature"]
    z = logits / t
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    conf = np.exp(logp.max(axis=1))
    proj = ref["projection"]
    zp = (logits - np.asarray(proj["mean"])) @ np.asarray(proj["components"]).T
    return {"schema_version": 2, "report_id": "r", "model_version": "1", "artifact": "a", "start_ms": 0,
            "end_ms": 1, "count": len(logits), "class_counts": np.bincount(logits.argmax(1), minlength=K).tolist(),
            "confidence": _histogram(conf, ref["confidence"]["edges"]),
            "class_confidence": [_histogram(logp[:, c], h["edges"]) for c, h in enumerate(ref["class_confidence"])],
            "projections": [_histogram(zp[:, j], h["edges"]) for j, h in enumerate(proj["histograms"])],
            "latency": [], "errors": {}, "confidence_sum": float(conf.sum()), "merged": 1,
            "shadow_version": "", "shadow_count": 0, "shadow_agree": 0}


def report(ref, windows, **kw):
    return drift_report(merge_windows(windows), ref, alpha=ALPHA, draws=DRAWS, **kw)


def binomial_upper(trials: int, rate: float, z: float = 3.09) -> float:
    """Upper end of a one-sided 99.9 % normal interval for a binomial share."""
    return rate + z * math.sqrt(rate * (1 - rate) / trials)


@pytest.mark.parametrize("n, trials", [(10, 300), (50, 300), (200, 200), (2000, 200)])
def test_no_shift_false_positive_rate_is_at_most_alpha(reference, n, trials):
    rng = np.random.default_rng(n)
    alarms = sum(report(reference, [sketch(reference, model(rng, n)[0])])["state"] == "drift"
                 for _ in range(trials))
    assert alarms / trials <= binomial_upper(trials, ALPHA), f"{alarms}/{trials} false alarms at n={n}"


def test_an_obvious_shift_is_flagged_at_n_50(reference):
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(40):
        logits, _ = model(rng, 50, prior=[0.7, 0.1, 0.1, 0.1], noise=1.0)  # label shift + noisy inputs
        r = drift_report(merge_windows([sketch(reference, logits)]), reference, alpha=ALPHA)  # default draws
        hits += r["state"] == "drift"
        assert r["effect"] > 0
    assert hits >= 36, f"flagged {hits}/40"


def test_not_enough_evidence_is_never_an_alarm(reference):
    rng = np.random.default_rng(2)
    shifted = sketch(reference, model(rng, 5, prior=[1, 0, 0, 0])[0])
    assert report(reference, [shifted])["state"] == "insufficient"            # tiny sample
    empty = {**shifted, "count": 0, "class_counts": [0] * K, "confidence": [0] * len(shifted["confidence"]),
             "class_confidence": [], "projections": [], "confidence_sum": 0.0}
    assert report(reference, [empty])["state"] == "insufficient"              # empty window
    assert report(reference, [])["state"] == "insufficient"                   # no window at all
    big = sketch(reference, model(rng, 200, prior=[1, 0, 0, 0])[0])
    bad_bins = {**big, "class_counts": big["class_counts"] + [0], "confidence": big["confidence"][:-1],
                "class_confidence": [h + [0] for h in big["class_confidence"]], "projections": [[200]] * 4}
    r = report(reference, [bad_bins])
    assert r["state"] == "insufficient" and len(r["skipped"]) == 2 + 2 * K
    assert all("bins but the reference has" in s["reason"] for s in r["skipped"])
    r = report(reference, [{"count": 50, "class_counts": "garbage"}])
    assert r["state"] == "insufficient" and "unreadable" in r["skipped"][0]["reason"]


def test_an_old_version_window_is_still_tested(reference):
    rng = np.random.default_rng(3)
    w = sketch(reference, model(rng, 300, prior=[0.85, 0.05, 0.05, 0.05])[0])
    old = {k: v for k, v in w.items() if k not in ("schema_version", "class_confidence")}
    r = report(reference, [old])
    assert r["state"] == "drift"
    assert {s["signal"] for s in r["signals"]} == {"class_counts", "confidence", *(f"projection[{j}]" for j in range(4))}
    assert all(s["reason"] == "nothing observed" for s in r["skipped"])


def test_statistics_match_scipy():
    rng = np.random.default_rng(4)
    for _ in range(10):
        x, r = rng.integers(1, 60, 6), rng.integers(1, 60, 6)
        chi = stats.chi2_contingency(np.vstack([x, r]), correction=False)
        ours = two_sample(x.tolist(), r.tolist(), draws=50)
        assert ours["statistic"] == pytest.approx(chi.statistic, rel=1e-5)
        ks = stats.ks_2samp(np.repeat(np.arange(6), x), np.repeat(np.arange(6), r))
        assert two_sample(x.tolist(), r.tolist(), ordered=True, draws=50)["statistic"] == pytest.approx(ks.statistic,
                                                                                                         abs=1e-6)
        big = two_sample((x * 50).tolist(), (r * 50).tolist())
        assert big["method"] == "asymptotic"
        assert big["p_value"] == pytest.approx(stats.chi2_contingency(np.vstack([x * 50, r * 50]),
                                                                      correction=False).pvalue, rel=1e-6, abs=1e-300)
    assert simes([0.01, 0.5, 0.9]) == pytest.approx(0.03)
    assert fdr([0.001, 0.02, 0.03, 0.5], 0.05) == [True, True, True, False]


def test_accuracy_estimate_is_atc_with_an_interval(reference):
    rng = np.random.default_rng(5)
    logits, y = model(rng, 2000)
    w = sketch(reference, logits)
    est = estimate_accuracy(merge_windows([w]), reference)
    t = reference["accuracy"]["atc_threshold"]
    conf = np.exp((logits / reference["temperature"]).max(1)) / np.exp(logits / reference["temperature"]).sum(1)
    assert est["method"] == "atc" and est["estimate"] == pytest.approx((conf >= t).mean(), abs=1e-6)
    assert est["low"] <= (logits.argmax(1) == y).mean() <= est["high"]


def _run(monitor, ref, rng, looks, **shift):
    return [monitor.look(merge_windows([sketch(ref, model(rng, 1000, **shift)[0])]), ref)["state"]
            for _ in range(looks)]


def test_repeated_looks_alarm_once_then_recover(reference):
    rng = np.random.default_rng(6)
    monitor = Monitor(MonitorSettings(alpha=ALPHA, horizon=1000, draws=DRAWS))
    assert set(_run(monitor, reference, rng, 40)) == {"ok"}
    states = _run(monitor, reference, rng, 10, prior=[0.55, 0.15, 0.15, 0.15])
    assert states[:3].count("drift") >= 1 and states[-1] == "drift"   # detected within 3 looks, held
    states = _run(monitor, reference, rng, 15)
    assert "recovered" in states and states[-1] == "ok"
    assert monitor.state["status"] == "ok"
    insufficient = monitor.look(merge_windows([sketch(reference, model(rng, 3)[0])]), reference)
    assert insufficient["state"] == "insufficient" and monitor.state["status"] == "ok"


def test_policy_falls_back_on_drift_and_releases_on_recovery(reference, tmp_path):
    """The verdicts drive the policy's fallback ladder on a real SQLite store: a drift starts it (the
    artifact rung here), and a recovered verdict returns the cohort to its primary model."""
    from edgefleet.coordinator.policy import evaluate
    from edgefleet.coordinator.rules import parse_rules
    from edgefleet.coordinator.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    store.update_cohort("eu", {"baseline": {"version": "1", "digest": "d"}})
    rules = parse_rules("[drift]\nrecover_looks = 2\n[[fallback]]\nto_artifact = 'onnx-fp32'\n"
                        "[ladder]\nrungs = ['artifact']\neval_windows = 2\n")
    manifest = {"monitoring": reference, "artifacts": [{"target": "onnx-int8"}, {"target": "onnx-fp32"}]}
    rng = np.random.default_rng(7)
    seq = iter(range(10 ** 6))

    def step(**shift):
        ws = [{**sketch(reference, model(rng, 250, **shift)[0]), "report_id": f"w{next(seq)}"} for _ in range(2)]
        store.ingest_windows("dev-1", "eu", ws)
        time.sleep(0.002)  # windows of the next step arrive strictly later
        return [d["kind"] for d in evaluate(store, rules, lambda version: reference, lambda version: manifest)]

    kinds = [k for _ in range(3) for k in step()]
    assert kinds == [] and store.get_cohort("eu")[0].get("fallback_artifact") is None
    kinds = [k for _ in range(3) for k in step(prior=[0.7, 0.1, 0.1, 0.1])]
    assert kinds[:2] == ["drift_detected", "fallback"], kinds
    tried = store.list_decisions("eu")[1]["evidence"]
    assert tried["rung"] == "artifact" and tried["action"] == {"fallback_artifact": "onnx-fp32"}
    detected = store.list_decisions("eu")[0]["evidence"]
    assert {"p_value", "alpha_look", "samples", "effect", "accuracy", "start_ms"} <= set(detected["verdict"])
    kinds = [k for _ in range(8) for k in step()]
    assert "release" in kinds and store.get_cohort("eu")[0].get("fallback_artifact") is None, kinds
    scores = store.list_scores("eu")
    assert {s["stats"]["verdict"]["state"] for s in scores} >= {"ok", "drift", "recovered"}
    store.close()
