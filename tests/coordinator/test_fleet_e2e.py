"""Acceptance: a real server on 127.0.0.1 and 20 simulated devices on real data; one cohort's inputs
are shifted; the coordinator decides a fallback for that cohort only, its devices switch, and the
decision is listed (over gRPC) with its evidence."""

from __future__ import annotations

from edgefleet.coordinator.simulate import format_summary, run_fleet_demo


def test_shifted_cohort_falls_back_and_only_it(bundles, tmp_path, public_key):
    summary = run_fleet_demo(bundles["1.0"], tmp_path, devices=20, seed=0, rounds=10, trusted_key=public_key)
    shifted = summary["shifted_cohort"]
    assert {d["cohort"] for d in summary["decisions"]} == {shifted}
    detected = summary["decisions"][0]
    assert detected["kind"] == "drift_detected" and detected["evidence"]["rule"] == "drift-fallback"
    verdict = detected["evidence"]["verdict"]
    assert verdict["state"] == "drift" and verdict["p_value"] <= verdict["alpha_look"] <= 0.05 / 1000
    assert verdict["samples"] >= 10 and 0 < verdict["effect"] <= 1
    # then the first rung: the bundle's fp32 artifact, measured against the accuracy before it
    tried = [d for d in summary["decisions"] if d["kind"] == "fallback"]
    assert tried and tried[0]["evidence"]["rung"] == "artifact"
    assert tried[0]["evidence"]["action"] == {"fallback_artifact": "onnx-fp32"}
    assert tried[0]["evidence"]["before"]["labels"] >= 60
    for name, cohort in summary["cohorts"].items():
        if name != shifted:
            assert cohort["serving"] == ["onnx-int8"] and cohort["fallback"] == ""
            assert cohort["last_stats"]["status"] == "ok"
    assert sum(c["devices"] for c in summary["cohorts"].values()) == 20
    assert summary["windows_stored"] >= 20 * 10 * 2
    text = format_summary(summary)
    assert shifted in text and "drift_detected" in text


def test_the_export_pipelines_bundle_drops_in(digits_bundle, tmp_path, public_key):
    """The same acceptance on the real exported digits bundle (every target it shipped)."""
    summary = run_fleet_demo(digits_bundle, tmp_path, devices=20, seed=1, trusted_key=public_key)
    detected = [d["cohort"] for d in summary["decisions"] if d["kind"] == "drift_detected"]
    assert detected == [summary["shifted_cohort"]], format_summary(summary)
