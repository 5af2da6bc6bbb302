"""The device SDK on its own: predictions, the local fallback chain, feedback, restart, pure Python."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgefleet import DataError, Device, RuntimeBackendError
from edgefleet.device._engine import default_runner_factory

from bundle_factory import digits


def test_predicts_and_summarises(bundles, tmp_path):
    _, _, x, y = digits()
    dev = Device(bundles["1.0"], tmp_path, window_size=50, allow_unsigned=True)
    preds = dev.predict(x[:200])
    assert np.mean([p.label for p in preds] == y[:200]) > 0.85
    assert {p.artifact for p in preds} == {"onnx-int8"} and len({p.prediction_id for p in preds}) == 200
    assert len(dev.queue) == 1  # one window closed at >= 50 predictions (the batch of 200 went into one)
    w = dev.queue.windows()[0]
    assert w["count"] == 200 and sum(w["class_counts"]) == 200 and len(w["projections"]) == 4
    assert dev.sync() == {"online": False, "reason": "no transport"}


def _factory_failing(failing: str, mode: str):
    def factory(target, path):
        run = default_runner_factory(target, path)
        if target != failing:
            return run
        if mode == "load":
            raise RuntimeError("cannot load")

        def broken(rows):
            out = run(rows)
            if mode == "raise":
                raise RuntimeError("kernel crashed")
            if mode == "nan":
                out = out.copy()
                out[0, 0] = np.nan
            if mode == "slow":
                import time
                time.sleep(0.05)
            return out
        return broken
    return factory


@pytest.mark.parametrize("mode, kind", [("raise", "runtime_error"), ("nan", "non_finite"), ("load", None),
                                        ("slow", "latency_budget")])
def test_local_fallback_chain(bundles, tmp_path, mode, kind):
    _, _, x, _ = digits()
    dev = Device(bundles["1.0"], tmp_path, runner_factory=_factory_failing("onnx-int8", mode), allow_unsigned=True,
                 latency_budget_ms=20 if mode == "slow" else None, window_size=1000)
    first = dev.predict(x[:10])
    second = dev.predict(x[10:20])
    assert second[0].artifact == "onnx-fp32" and dev.artifact == "onnx-fp32"
    if mode == "slow":
        assert first[0].artifact == "onnx-int8"  # the slow answer still counts; the next call falls back
    else:
        assert first[0].artifact == "onnx-fp32"
    dev.flush_window()
    errors = {}
    for w in dev.queue.windows():
        for k, n in w["errors"].items():
            errors[k] = errors.get(k, 0) + n
    assert errors == ({kind: 1} if kind else {})


def test_every_artifact_failing_is_a_clear_error(bundles, tmp_path):
    def factory(target, path):
        def run(rows):
            raise RuntimeError("broken")
        return run
    dev = Device(bundles["1.0"], tmp_path, runner_factory=factory, allow_unsigned=True)
    with pytest.raises(RuntimeBackendError, match="every artifact"):
        dev.predict(digits()[2][:3])


def test_feedback_needs_a_known_prediction(bundles, tmp_path):
    dev = Device(bundles["1.0"], tmp_path, allow_unsigned=True)
    p = dev.predict(digits()[2][:1])[0]
    dev.feedback(p.prediction_id, 3)
    with pytest.raises(DataError, match="unknown or expired prediction id"):
        dev.feedback("nope", 1)
    assert (tmp_path / "feedback.json").read_text().count(p.prediction_id) == 1


def test_unsigned_or_untrusted_bundle_is_refused_at_load(bundles, tmp_path):
    from edgefleet._signing import generate_key, public_key
    from edgefleet import BundleError
    with pytest.raises(BundleError, match="untrusted key"):
        Device(bundles["1.0"], tmp_path, trusted_key=public_key(generate_key()))


def test_core_runs_without_numpy(bundles, tmp_path):
    """The SDK core is pure Python: with numpy blocked, a pure-Python runner serves plain lists."""
    from edgefleet.bundle import Bundle
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(Bundle.open(bundles["1.0"]).artifact_path("onnx-fp32")))
    w = {t.name: numpy_helper.to_array(t).tolist() for t in model.graph.initializer}
    x = digits()[2][:5].tolist()
    script = textwrap.dedent(f"""
        import sys, json
        sys.modules["numpy"] = None   # any numpy import now fails
        from edgefleet import Device
        W, B = {w["W"]!r}, {w["B"]!r}
        def factory(target, path):
            return lambda rows: [[sum(r[i] * W[i][j] for i in range(64)) + B[j] for j in range(10)] for r in rows]
        dev = Device({str(bundles["1.0"])!r}, {str(tmp_path)!r}, runner_factory=factory, window_size=5,
                     allow_unsigned=True)
        preds = dev.predict({x!r})
        print(json.dumps([p.label for p in preds], separators=(",", ":")), len(dev.queue))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    labels, queued = out.stdout.split()
    expected = (np.asarray(x) @ np.asarray(w["W"]) + np.asarray(w["B"])).argmax(1).tolist()
    assert labels == str(expected).replace(" ", "") and queued == "1"
