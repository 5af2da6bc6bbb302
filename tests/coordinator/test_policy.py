"""The policy engine with real devices: canary rollback when worse, promotion after healthy windows,
shadow evaluation; the rules file's validation."""

from __future__ import annotations

import numpy as np
import pytest

from edgefleet.coordinator import AdminClient, Server, ServerConfig, parse_rules
from edgefleet.coordinator.errors import PolicyError
from edgefleet.device import Device, GrpcTransport, in_canary

from bundle_factory import digits
from bundle_factory import ADMIN

RULES = """
[drift]
min_samples = 50
[[fallback]]
name = "drift"
min_accuracy_drop = 0.5
to_artifact = "onnx-fp32"
[canary]
promote_after_windows = 4
# (each device closes one window per round in these tests)
min_samples = 50
rollback_margin = 0.05
[shadow]
min_samples = 100
min_agreement = 0.9
"""


@pytest.fixture
def fleet(tmp_path, archives, bundles, public_key):
    srv = Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'f.db'}", admin_token=ADMIN, rules=parse_rules(RULES),
                              http_port=None, evaluate_interval_s=None, trusted_key=public_key)).start()
    admin = AdminClient(srv.grpc_target, ADMIN)
    for v in archives:
        admin.publish_bundle(archives[v])
    admin.set_baseline("eu", "1.0")
    token = admin.create_enrollment_token("eu", uses=8)
    devices = [Device(bundles["1.0"], tmp_path / f"d{i}", transport=GrpcTransport(srv.grpc_target),
                      enrollment_token=token, trusted_key=public_key, window_size=25) for i in range(8)]
    for d in devices:
        d.sync()
    yield srv, admin, devices
    for d in devices:
        d.close()
    admin.close()
    srv.stop(0)


def traffic(devices, rounds=2, labels=True):
    _, _, x, y = digits()
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        for d in devices:
            d.sync()  # pick up the policy first
            idx = rng.choice(len(x), 50, replace=False)
            for p, label in zip(d.predict(x[idx]), y[idx]):
                if labels:
                    d.feedback(p.prediction_id, int(label))
            d.sync(close_window=True)


def test_worse_canary_is_rolled_back_with_evidence(fleet):
    srv, admin, devices = fleet
    traffic(devices, rounds=1)  # the baseline's evidence
    admin.start_canary("eu", "2.0-bad", share=1.0)
    traffic(devices)
    assert {d.model_version for d in devices} == {"2.0-bad"}
    decisions = admin.evaluate()
    assert [d["kind"] for d in decisions] == ["canary_rollback"]
    ev = decisions[0]["evidence"]
    assert ev["canary"]["accuracy_source"].startswith("labels") and ev["canary"]["accuracy"] < ev["baseline"]["accuracy"] - 0.05
    for d in devices:
        d.sync()
    assert {d.model_version for d in devices} == {"1.0"}
    assert admin.list_decisions("eu")[-1]["kind"] == "canary_rollback"


def test_healthy_canary_is_promoted(fleet):
    srv, admin, devices = fleet
    traffic(devices, rounds=1)
    admin.start_canary("eu", "1.1", share=0.5)
    traffic(devices, rounds=2)
    canaried = [d for d in devices if d.model_version == "1.1"]
    assert len(canaried) == sum(in_canary(d.device_id, "1.1", 0.5) for d in devices)  # sticky by device id
    if len(canaried) < 2:  # the share is a hash of random device ids: widen it rather than flake
        admin.start_canary("eu", "1.1", share=1.0)
        traffic(devices, rounds=1)
    decisions = admin.evaluate()
    assert [d["kind"] for d in decisions] == ["canary_promote"]
    assert "healthy canary windows" in decisions[0]["evidence"]["why"]
    for d in devices:
        d.sync()
    assert {d.model_version for d in devices} == {"1.1"}


def test_shadow_agreement_is_reported(fleet):
    srv, admin, devices = fleet
    admin.start_shadow("eu", "1.1")
    traffic(devices[:4], rounds=1, labels=False)
    decisions = admin.evaluate()
    assert [d["kind"] for d in decisions] == ["shadow_report"]
    ev = decisions[0]["evidence"]
    assert ev["verdict"] == "pass" and ev["agreement"] > 0.99 and ev["inputs"] >= 100
    assert srv.store.get_cohort("eu")[0].get("shadow") is None  # evaluation finished


@pytest.mark.parametrize("text, message", [
    ("[drift]\nmin_samples = 0", "drift.min_samples: expected a positive integer"),
    ("[drift]\nalpha = 1.5", "drift.alpha: must be between 0 and 1"),
    ("[ladder]\nrungs = [\"artifact\", \"teleport\"]", "ladder.rungs: ['teleport']"),
    ("[[fallback]]\nto_artifact = 'x'\nrelease = 1", "fallback[0].release: expected true or false"),
    ("[[fallback]]\nto_artifact = 'x'\npsi = 1", "fallback[0].psi: unknown key"),
    ("[canary]\nrollback_margin = 'big'", "canary.rollback_margin: expected a number"),
    ("[alerts]", "unknown table(s) alerts"),
    ("[drift", "not valid TOML"),
])
def test_rules_errors_name_the_key(text, message):
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        parse_rules(text)


def test_the_monitor_reads_one_score_row_and_its_verdicts_are_unchanged(fleet, monkeypatch):
    """Each evaluation restores the drift monitor from the newest score of the serving version (one
    row by index), not from the cohort's whole score history: at every look the state it restores is
    the one the whole-history scan finds, so the verdicts are those of before (ok, then drift once the
    inputs shift), and the history is never listed while evaluating."""
    from edgefleet.coordinator import policy
    srv, admin, devices = fleet
    store = srv.store

    def whole_history_scan(cohort, version):   # what each evaluation used to read
        for score in reversed(store.list_scores(cohort)):
            if score["model_version"] == version and "monitor" in score["stats"]:
                return score["stats"]["monitor"]
        return None

    def not_while_evaluating(cohort):
        raise AssertionError("the evaluation listed the whole score history")

    _, _, x, _ = digits()
    rng = np.random.default_rng(1)
    verdicts = []
    for r in range(7):
        for d in devices[:4]:
            d.sync()
            rows = x[rng.choice(len(x), 50, replace=False)]
            d.predict(1.0 - rows if r >= 3 else rows)   # inverted digits from round 3 on
            d.sync(close_window=True)
        store.add_score("eu", "1.1", {"monitor": {"state": {"status": "another version's"}}})
        assert policy._last_monitor(store, "eu", "1.0") == whole_history_scan("eu", "1.0")
        with monkeypatch.context() as m:
            m.setattr(store, "list_scores", not_while_evaluating)
            admin.evaluate()
        verdicts.append(store.last_score("eu", "1.0")["stats"]["verdict"]["state"])
    assert policy._last_monitor(store, "eu", "1.0") == whole_history_scan("eu", "1.0")
    assert verdicts[:3] == ["ok"] * 3 and "drift" in verdicts[3:], verdicts
    assert store.last_score("eu", "nope") is None
