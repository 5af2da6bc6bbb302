"""Tasks other than classification, integer and named inputs, end to end through the pipeline."""

import numpy as np
import pytest

from edgefleet import Bundle, DataError, runtimes
from edgefleet.compress.pipeline import ExportConfig, run_export
from edgefleet.compress.tasks import cosine_rows, get_task, recall_at_k

TARGETS = ("onnx-fp32", "onnx-int8", "efm-int8")
VOCAB = 40


def _cfg(tmp_path, **kw):
    base = dict(out=str(tmp_path / "b"), measure_latency=False, targets=TARGETS)
    base.update(kw)
    return ExportConfig(**base)


@pytest.fixture(scope="module")
def token_data(tmp_path_factory):
    """Token ids whose distribution differs per 'topic', so embeddings have neighbours to find."""
    rng = np.random.default_rng(0)
    n, seq = 600, 12
    topic = rng.integers(0, 4, n)
    ids = (topic[:, None] * 10 + rng.integers(0, 10, (n, seq))).astype(np.int64)
    path = tmp_path_factory.mktemp("tok") / "tokens.npz"
    np.savez(path, x=ids)
    return path


def test_embedding_task_end_to_end(tmp_path, token_data):
    r = run_export(_cfg(tmp_path, model="tests.fixtures.models:token_encoder", data=str(token_data), task="embedding"))
    m = r.bundle.manifest
    assert m["task"] == {"kind": "embedding", "metric": "cosine"}
    assert m["inputs"][0]["dtype"] == "int64" and m["inputs"][0]["range"] == [0, VOCAB - 1]
    assert m["outputs"][0]["kind"] == "embedding"
    assert m["monitoring"]["kind"] == "embedding" and m["monitoring"]["projection"]["space"] == "output"
    assert r.config["max_drop"] == 0.01  # the task's default budget, in cosine
    assert m["provenance"]["precision_islands"] == []  # pure int8 meets it: no float islands
    v = {x.target: x for x in r.verdicts}
    for t in TARGETS:
        assert v[t].shipped, v[t].reason
    int8 = v["onnx-int8"].metrics
    assert int8["test_cosine"] >= 0.99 and int8["p1_cosine"] > 0.95 and int8["recall@10"] > 0.6
    assert v["onnx-fp32"].metrics["test_cosine"] > 0.9999
    assert "cos mean" in r.table() and "recall@10" in r.table()


def test_forced_precision_islands_are_recorded_and_lowered(tmp_path, token_data):
    from edgefleet.compress.passes import get_pass
    from edgefleet.compress.recipe import Recipe

    recipe = Recipe("islands", [get_pass("quantize")(keep_float="linear")])
    r = run_export(_cfg(tmp_path, model="tests.fixtures.models:token_encoder", data=str(token_data), task="embedding",
                        recipe=recipe))
    rows = r.bundle.manifest["provenance"]["precision_islands"]
    assert [(x["group"], x["reason"]) for x in rows] == [("linear", "forced by quantize.keep_float")]
    v = {x.target: x for x in r.verdicts}
    assert v["onnx-int8"].shipped, v["onnx-int8"].reason  # parity gate against the reference's islands
    assert v["efm-int8"].shipped, v["efm-int8"].reason  # .efm version 2: float32 island kernels
    assert "precision islands (run in float32" in r.table() and "linear: 1 node(s)" in r.table()
    assert "<h2>Precision islands</h2>" in (r.bundle.path / "report.html").read_text()


def test_embedding_bundle_rejects_wrong_dtype_and_out_of_vocabulary_ids(tmp_path, token_data):
    r = run_export(_cfg(tmp_path, model="tests.fixtures.models:token_encoder", data=str(token_data), task="embedding",
                        targets=("onnx-int8", "efm-int8")))
    bundle = Bundle.open(r.bundle.path)
    for target in ("onnx-int8", "efm-int8"):
        _, rt = runtimes.open_artifact(bundle, target=target)
        ok = rt.run(np.ones((2, 12), np.int64))
        assert next(iter(ok.values())).shape == (2, 16)
        assert rt.run(np.ones((2, 12), np.int32)) is not None  # int32 ids widen safely
        with pytest.raises(DataError, match=r"input 'input': expected dtype int64, got float32 \(token ids"):
            rt.run(np.ones((2, 12), np.float32))
        bad = np.ones((2, 12), np.int64)
        bad[1, 3] = VOCAB
        with pytest.raises(DataError, match=rf"value {VOCAB} at index \[1, 3\] is outside the valid range \[0, {VOCAB - 1}\]"):
            rt.run(bad)
        with pytest.raises(DataError, match=r"value -1 at index \[0, 0\]"):
            rt.run(-np.ones((2, 12), np.int64))


def test_two_named_inputs_of_two_dtypes(tmp_path):
    rng = np.random.default_rng(1)
    n = 500
    y = rng.integers(0, 3, n)
    ids = (y[:, None] * 12 + rng.integers(0, 12, (n, 10))).astype(np.int64)
    feats = (rng.standard_normal((n, 6)) + 2 * y[:, None]).astype(np.float32)
    np.savez(tmp_path / "d.npz", **{"x.input_ids": ids, "x.features": feats, "y": y})
    r = run_export(_cfg(tmp_path, model="tests.fixtures.models:ids_and_features", data=str(tmp_path / "d.npz"),
                        train_epochs=8))
    m = r.bundle.manifest
    assert [(s["name"], s["dtype"]) for s in m["inputs"]] == [("input_ids", "int64"), ("features", "float32")]
    assert m["monitoring"]["projection"]["space"] == "logits"  # a classifier projects its logits, whatever its inputs
    v = {x.target: x for x in r.verdicts}
    assert all(v[t].shipped for t in TARGETS), [(t, v[t].reason) for t in TARGETS]
    assert v["onnx-int8"].metrics["test_accuracy"] > 90
    _, rt = runtimes.open_artifact(Bundle.open(r.bundle.path), target="efm-int8")
    with pytest.raises(DataError, match=r"inputs \['features'\] do not match the model's \['features', 'input_ids'\]"):
        rt.run({"features": feats[:2]})


def test_regression_task_end_to_end(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((800, 8)).astype(np.float32)
    y = np.stack([x[:, 0] * 2 - x[:, 1], np.tanh(x[:, 2] + x[:, 3])], axis=1).astype(np.float32)
    np.savez(tmp_path / "r.npz", x=x, y=y)
    r = run_export(_cfg(tmp_path, model="tests.fixtures.models:regressor", data=str(tmp_path / "r.npz"),
                        task="regression", train_epochs=60))
    m = r.bundle.manifest
    assert m["task"] == {"kind": "regression", "metric": "mae"} and m["outputs"][0]["kind"] == "values"
    assert m["monitoring"]["kind"] == "regression" and len(m["monitoring"]["quantiles"]) > 2
    v = {x.target: x for x in r.verdicts}
    assert all(v[t].shipped for t in TARGETS)
    teacher_mae = r.teacher["test_mae"]
    assert teacher_mae < 0.5
    assert v["onnx-int8"].metrics["mae_drop"] <= r.config["max_drop"] * 1.5 + 1e-3
    assert abs(r.config["max_drop"] - 0.1 * r.teacher["val_mae"]) < 1e-9


def test_a_classifier_needs_integer_labels(tmp_path):
    np.savez(tmp_path / "r.npz", x=np.zeros((50, 8), np.float32), y=np.linspace(0, 1, 50).astype(np.float32))
    with pytest.raises(DataError, match="expected integer class labels \\(use --task regression"):
        run_export(_cfg(tmp_path, model="tests.fixtures.models:regressor", data=str(tmp_path / "r.npz")))


def test_a_classifier_refuses_a_non_2d_output_and_names_the_other_tasks(tmp_path):
    from edgefleet import ModelError
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", x=rng.standard_normal((60, 4, 8)), y=rng.integers(0, 3, 60))
    with pytest.raises(ModelError, match=r"shape \[2, 4, 3\] \(choose --task embedding or --task regression"):
        run_export(_cfg(tmp_path, model="tests.fixtures.models:per_position", data=str(tmp_path / "t.npz")))


def test_task_metrics_can_fail():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert cosine_rows(a, a).min() == pytest.approx(1.0)
    assert cosine_rows(a, -a).max() == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    e = rng.standard_normal((50, 8))
    assert recall_at_k(e, e) == 1.0
    assert recall_at_k(rng.standard_normal((50, 8)), e) < 0.5
    assert get_task("regression").drop(1.0, 1.5) == 0.5 and get_task("classifier").drop(99.0, 98.0) == 1.0


def test_token_ids_outside_the_vocabulary_are_named_before_any_work(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, (100, 12))
    ids[7, 5] = VOCAB + 3
    np.savez(tmp_path / "t.npz", x=ids)
    with pytest.raises(DataError, match=rf"input 'input' holds {VOCAB + 3} at \[\d+, 5\], outside \[0, {VOCAB - 1}\]"):
        run_export(_cfg(tmp_path, model="tests.fixtures.models:token_encoder", data=str(tmp_path / "t.npz"),
                        task="embedding"))


def test_device_summarises_embedding_and_regression_bundles(tmp_path, token_data):
    """The device SDK on the other tasks: signed bundles, token ids in (named or not), the task's
    class and confidence per prediction, windows that fit the reference, shadow agreement by class."""
    from edgefleet import Device, telemetry
    from edgefleet.keys import project_private_key, project_public_key

    key, _ = project_private_key()
    trusted = project_public_key()
    r = run_export(_cfg(tmp_path / "e", model="tests.fixtures.models:token_encoder", data=str(token_data),
                        task="embedding", targets=("onnx-int8", "efm-int8"), signing_key=key))
    ids = np.load(token_data)["x"][:40]
    dev = Device(r.bundle.path, tmp_path / "dev-e", trusted_key=trusted, window_size=1000)
    ref = dev.bundle.manifest["monitoring"]
    preds = dev.predict(ids)
    assert len(preds) == 40 and len(preds[0].output) == 16
    for p in preds[:5]:
        cls, conf, _ = telemetry.summarize(ref, p.output)
        assert (p.label, p.confidence) == (cls, conf) and 0.0 <= conf <= 1.0
    assert dev.predict({"input": ids[0]})[0].label == preds[0].label  # one named row
    with pytest.raises(DataError, match="expects int64 values, got float"):
        dev.predict(ids.astype(np.float32))
    with pytest.raises(DataError, match="missing \\['input'\\], unknown \\['ids'\\]"):
        dev.predict({"ids": ids})
    dev.flush_window()
    (w,) = dev.queue.windows()
    telemetry.validate(w, ref)
    assert w["count"] == 41 and len(w["class_counts"]) == len(ref["centroids"])

    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    y = np.stack([x[:, 0] * 2 - x[:, 1], np.tanh(x[:, 2] + x[:, 3])], axis=1).astype(np.float32)
    np.savez(tmp_path / "r.npz", x=x, y=y)
    r = run_export(_cfg(tmp_path / "r", model="tests.fixtures.models:regressor", data=str(tmp_path / "r.npz"),
                        task="regression", train_epochs=5, targets=("onnx-fp32", "onnx-int8"), signing_key=key))
    dev = Device(r.bundle.path, tmp_path / "dev-r", trusted_key=trusted, window_size=1000)
    dev.shadow_engine = dev._engine(dev.bundle)  # what a shadow policy installs; the same model agrees
    preds = dev.predict(x[:50])
    ref = dev.bundle.manifest["monitoring"]
    assert all(p.label == telemetry.summarize(ref, p.output)[0] for p in preds)
    assert all(0 <= p.label <= len(ref["quantiles"]) for p in preds)
    dev.flush_window()
    (w,) = dev.queue.windows()
    telemetry.validate(w, ref)
    assert w["count"] == 50 and w["class_confidence"] == [] and w["shadow_agree"] == w["shadow_count"] == 50
