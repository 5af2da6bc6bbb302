"""The fallback ladder end to end: a real coordinator on 127.0.0.1, real devices (SDK, onnxruntime,
gRPC) on real digits, one shifted cohort beside an untouched control cohort (short scenarios).

Each test asserts the decisions the coordinator made and what they measured: the rung that should
win is kept with a measured gain, rungs that do not help are reverted, the cohort returns to the
primary model when a shift ends, and the control cohort gets no decision at all."""

from __future__ import annotations

import pytest

from edgefleet.coordinator.scenarios import SCENARIO_RULES, run_scenarios

FAST = SCENARIO_RULES.replace("eval_labels = 60", "eval_labels = 50")


@pytest.fixture(scope="module")
def teacher_bundle(tmp_path_factory, signing_key):
    from bundle_factory import make_bundle
    return make_bundle(tmp_path_factory.mktemp("teacher") / "b", version="1.0", signing_key=signing_key, teacher=True)


def _run(bundle, tmp_path, scenario, **kw):
    from edgefleet.keys import project_public_key  # the session key the bundles are signed with
    kw = {"devices_per_cohort": 4, "controls": 1, "rounds": 16, "label_share": 0.5, "rules_text": FAST,
          "trusted_key": project_public_key(), **kw}
    result = run_scenarios(bundle, tmp_path, [scenario], **kw)
    assert result["decisions_in_controls"] == 0
    return result["scenarios"][scenario]


def kinds(m):
    return m["decisions"]


def test_quantization_shift_is_fixed_by_the_fp32_artifact(teacher_bundle, tmp_path):
    """Video-range inputs saturate the int8 input range (a blank image, one class answered); the fp32
    artifact still reads them. The label-shift rung is skipped: the primary's accuracy is below every
    class's recall, which no change of class priors can cause."""
    m = _run(teacher_bundle, tmp_path, "quantization", rounds=12)
    assert kinds(m)[:4] == ["drift_detected:", "fallback:artifact", "rung_kept:artifact", "settle:artifact"]
    assert m["rung"] == "artifact" and m["acc_shifted"] < m["acc_before"] - 0.2
    assert m["acc_recovered"] > m["acc_shifted"] + 0.15
    # 80 % of the drop back (a 3-round mean) within 50 windows
    assert m["windows_to_recover"] is not None and m["windows_to_recover"] <= 50
    assert m["raw_bytes_off_device"] == 0


def test_label_shift_rung_is_skipped_only_when_accuracy_rules_out_a_label_shift():
    from edgefleet.coordinator.ladder import Skip, _require_label_shift_possible
    confusion = [[45, 5], [5, 45]]  # validation recall 0.9 per class (50 each): 95 % from 0.786
    low = {"source": "labels", "accuracy": 0.1, "interval": [0.05, 0.2]}
    with pytest.raises(Skip, match="not a pure label shift"):
        _require_label_shift_possible(low, confusion)
    # an interval reaching the recall floor, or no labels yet, could still be a label shift
    _require_label_shift_possible({"source": "labels", "accuracy": 0.7, "interval": [0.6, 0.8]}, confusion)
    _require_label_shift_possible({"source": "estimate", "accuracy": 0.1, "interval": [0.0, 1.0]}, confusion)
    _require_label_shift_possible(None, confusion)


def test_covariate_shift_reverts_rungs_that_do_not_help_then_cloud_wins(teacher_bundle, tmp_path):
    m = _run(teacher_bundle, tmp_path, "covariate", rounds=20)
    assert "rung_reverted:artifact" in kinds(m) and "rung_kept:cloud" in kinds(m), kinds(m)
    assert m["rung"] == "cloud" and m["acc_recovered"] > m["acc_shifted"] + 0.2
    # the cohort opted in: what left its devices is what the coordinator's audit log recorded
    assert m["raw_bytes_off_device"] > 0 and m["raw_bytes_off_device"] == m["audited_bytes"]
    # the dashboard shows the accuracy timeline with the decisions marked, their measured effect, the audit
    from edgefleet.coordinator.dashboard import Dashboard
    from edgefleet.coordinator.store_sqlite import SqliteStore
    store = SqliteStore(next(tmp_path.glob("scenarios-*.db")))
    page = Dashboard(store).cohort("scenario-covariate")
    assert "accuracy timeline" in page and "rung_kept cloud" in page and "measured effect of decisions" in page
    assert f"{m['audited_bytes']} bytes in all" in page
    store.close()


def test_label_shift_gets_a_logit_bias_and_no_raw_data_moves(teacher_bundle, tmp_path):
    m = _run(teacher_bundle, tmp_path, "label", rounds=14, label_share=0.8)
    assert "fallback:label_shift" in kinds(m), kinds(m)
    tried = kinds(m).index("fallback:label_shift")
    assert kinds(m)[tried + 1] in ("rung_kept:label_shift", "rung_reverted:label_shift")
    assert m["raw_bytes_off_device"] == 0 and m["audited_bytes"] == 0


def test_a_shift_that_ends_returns_the_cohort_to_the_primary(teacher_bundle, tmp_path):
    m = _run(teacher_bundle, tmp_path, "ends", rounds=22, end_at=12)
    assert m["returned_to_primary"], kinds(m)
    assert kinds(m)[-2:] == ["release:", "release_measured:"] or kinds(m)[-1] == "release:"
    assert m["acc_after_release"] > 0.85


def test_previous_known_good_version_wins_and_an_offline_device_catches_up(teacher_bundle, tmp_path, signing_key):
    """Version 0.9 was robust to this cohort's sensor; 1.0 is not. The ladder reverts the fp32
    artifact (no help) and returns the cohort to 0.9. One device is offline while that happens: it
    keeps serving, and on reconnect delivers its queue and follows the cohort."""
    from bundle_factory import make_bundle
    previous = make_bundle(tmp_path / "v0.9", version="0.9", signing_key=signing_key, quality="robust")
    rules = FAST.replace('rungs = ["artifact", "previous_version", "label_shift", "cloud", "adapt"]',
                         'rungs = ["artifact", "previous_version"]')
    assert rules != FAST
    m = _run(teacher_bundle, tmp_path, "covariate", rounds=16, previous_bundle=previous, rules_text=rules,
             offline_rounds=(6, 12))
    assert "rung_reverted:artifact" in kinds(m) and "rung_kept:previous_version" in kinds(m), kinds(m)
    assert m["rung"] == "previous_version" and m["acc_recovered"] > m["acc_shifted"] + 0.2
    assert m["serving"] == ["0.9/onnx-int8"], m["serving"]   # every device, the one that was offline too
    assert m["undelivered_windows"] == 0 and m["raw_bytes_off_device"] == 0


def test_a_fallback_to_the_previous_version_is_released_when_the_shift_ends(teacher_bundle, tmp_path, signing_key):
    """The previous version's monitor inherits the primary's alarm while the cohort falls back to it,
    so the end of the shift is seen on its windows: the cohort returns to 1.0."""
    from bundle_factory import make_bundle
    previous = make_bundle(tmp_path / "v0.9", version="0.9", signing_key=signing_key, quality="robust")
    rules = FAST.replace('rungs = ["artifact", "previous_version", "label_shift", "cloud", "adapt"]',
                         'rungs = ["previous_version"]')
    m = _run(teacher_bundle, tmp_path, "ends", rounds=22, end_at=11, previous_bundle=previous, rules_text=rules)
    assert "rung_kept:previous_version" in kinds(m), kinds(m)
    assert kinds(m).index("release:") > kinds(m).index("rung_kept:previous_version"), kinds(m)
    assert m["returned_to_primary"] and m["serving"] == ["1.0/onnx-int8"], m["serving"]
    assert m["acc_after_release"] > 0.85


def test_rotation_climbs_to_adaptation_and_the_adapted_canary_is_measured_then_promoted(
        digits_bundle, digits_teacher_weights, tmp_path):
    """The adapt rung inside the ladder: the cohort opted in to labelled examples; a worker fine-tunes
    the teacher on examples labelled after the detection, exports and publishes it as a canary; the
    ladder measures the canary's labels against *before* and promotes it."""
    from edgefleet.coordinator.adapt import WorkerConfig
    from edgefleet.coordinator.store_sqlite import SqliteStore
    from edgefleet.keys import project_private_key
    rules = FAST.replace('rungs = ["artifact", "previous_version", "label_shift", "cloud", "adapt"]',
                         'rungs = ["adapt"]')
    worker = WorkerConfig(store="", weights=str(digits_teacher_weights), signing_key=project_private_key()[0], epochs=5)
    m = _run(digits_bundle, tmp_path, "rotation", rounds=10, rules_text=rules, worker=worker)
    k = kinds(m)
    assert k[:4] == ["drift_detected:", "fallback:adapt", "adaptation_canary:adapt", "rung_kept:adapt"], k
    assert m["rung"] == "adapt" and m["acc_recovered"] > m["acc_shifted"] + 0.3, m
    assert len(m["serving"]) == 1 and "+adapt." in m["serving"][0], m["serving"]
    assert m["raw_bytes_off_device"] > 0 and m["raw_bytes_off_device"] == m["audited_bytes"]  # the examples
    store = SqliteStore(next(tmp_path.glob("scenarios-*.db")))
    try:
        kept = next(d for d in store.list_decisions("scenario-rotation") if d["kind"] == "rung_kept")
        assert kept["evidence"]["after"]["source"] == "labels" and kept["evidence"]["gain"] > 0.3, kept["evidence"]
        detected = next(d for d in store.list_decisions("scenario-rotation") if d["kind"] == "drift_detected")
        assert detected["evidence"].get("examples_deleted", 0) > 0  # examples from before the shift are not used
    finally:
        store.close()


def test_scenarios_refuse_a_bundle_not_signed_by_the_trusted_key(teacher_bundle, tmp_path):
    from edgefleet._errors import BundleError
    from edgefleet._signing import generate_key, public_key
    with pytest.raises(BundleError, match="simulate: bundle .* refused: SIGNED BY AN UNTRUSTED KEY"):
        run_scenarios(teacher_bundle, tmp_path, ["label"], rounds=1, trusted_key=public_key(generate_key()))
    with pytest.raises(BundleError, match="refused"):
        run_scenarios(teacher_bundle, tmp_path, ["label"], rounds=1, trusted_key=None)
    assert not list(tmp_path.glob("scenarios-*.db"))  # refused before a coordinator started
