"""The export pipeline end to end on real data, and its refusals."""

import numpy as np
import pytest

from edgefleet import Bundle, BudgetError, ConfigError, DataError, ModelError, UnsupportedOpError
from edgefleet.compress.pipeline import ExportConfig, run_export


def _cfg(tmp_path, **kw):
    base = dict(model="edgefleet.compress.zoo:digits_cnn", data="digits", out=str(tmp_path / "b"), measure_latency=False,
                targets=("onnx-fp32", "onnx-int8"))
    base.update(kw)
    return ExportConfig(**base)


def test_default_recipe_meets_the_int8_acceptance(digits_export):
    """int8 artifact <= 30% of the fp32 artifact's bytes, accuracy drop <= 1 point vs the teacher (test split)."""
    r = digits_export
    v = {x.target: x for x in r.verdicts}
    assert v["onnx-int8"].shipped and v["onnx-fp32"].shipped
    assert v["onnx-int8"].metrics["bytes"] <= 0.30 * v["onnx-fp32"].metrics["bytes"]
    assert r.teacher["test_accuracy"] - v["onnx-int8"].metrics["test_accuracy"] <= 1.0
    assert r.teacher["test_accuracy"] > 95.0
    assert v["onnx-int8"].metrics["parity"]["max_lsb"] <= 2.0
    assert "onnx-int8" in r.table() and "teacher" in r.table()


def test_export_is_reproducible(tmp_path, digits_teacher_weights):
    a = run_export(_cfg(tmp_path / "1", weights=str(digits_teacher_weights)))
    b = run_export(_cfg(tmp_path / "2", weights=str(digits_teacher_weights)))
    for target in ("onnx-fp32", "onnx-int8"):
        assert a.bundle.artifact(target).sha256 == b.bundle.artifact(target).sha256
    assert a.bundle.manifest["monitoring"] == b.bundle.manifest["monitoring"]


def test_impossible_budget_fails_listing_every_attempt(tmp_path, digits_teacher_weights):
    from edgefleet.compress.recipe import Recipe
    recipe = Recipe.from_dict({"passes": [{"name": "quantize", "qat_epochs": 1}]})
    with pytest.raises(BudgetError) as e:
        run_export(_cfg(tmp_path, weights=str(digits_teacher_weights), recipe=recipe, max_drop=-5.0, max_attempts=2))
    msg = str(e.value)
    assert "#1" in msg and "#2" in msg and "qat=True" in msg
    assert not (tmp_path / "b").exists()  # nothing half-written


def test_factory_that_raises(tmp_path):
    with pytest.raises(ModelError, match="tests.fixtures.models:raises raised ValueError: cannot build"):
        run_export(_cfg(tmp_path, model="tests.fixtures.models:raises"))


def test_factory_that_returns_something_else(tmp_path):
    with pytest.raises(ModelError, match="returned dict, not a torch.nn.Module"):
        run_export(_cfg(tmp_path, model="tests.fixtures.models:not_a_module"))


def test_unknown_module(tmp_path):
    with pytest.raises(ModelError, match="cannot import module 'no_such_pkg.models': ModuleNotFoundError"):
        run_export(_cfg(tmp_path, model="no_such_pkg.models:net"))


def test_unsupported_op_names_op_and_line(tmp_path):
    with pytest.raises(UnsupportedOpError, match=r"aten.sort at .*tests/fixtures/models.py:\d+"):
        run_export(_cfg(tmp_path, model="tests.fixtures.models:sorts"))


def test_data_of_the_wrong_shape(tmp_path):
    with pytest.raises(DataError, match=r"inputs input float32\[N, 30\]\) does not fit the model"):
        run_export(_cfg(tmp_path, data="breast_cancer"))


def test_data_with_nan(tmp_path):
    x = np.random.default_rng(0).standard_normal((60, 30)).astype(np.float32)
    x[3, 4] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(60) % 2)
    with pytest.raises(DataError, match="NaN or infinite values in 1 sample"):
        run_export(_cfg(tmp_path, model="tests.fixtures.models:tabular", data=str(tmp_path / "d.npz")))


def test_data_with_wrong_dtype_and_keys(tmp_path):
    np.savez(tmp_path / "s.npz", x=np.array(["a"] * 10), y=np.zeros(10))
    with pytest.raises(DataError, match="dtype <U1"):
        run_export(_cfg(tmp_path, data=str(tmp_path / "s.npz")))
    np.savez(tmp_path / "k.npz", inputs=np.zeros((10, 3)))
    with pytest.raises(DataError, match="expected arrays 'x' and 'y'"):
        run_export(_cfg(tmp_path, data=str(tmp_path / "k.npz")))


def test_npz_tabular_model_exports(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 30)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    r = run_export(_cfg(tmp_path, model="tests.fixtures.models:tabular", data=str(tmp_path / "d.npz"),
                        train_epochs=20, max_drop=3.0))
    assert Bundle.open(r.bundle.path).manifest["inputs"][0]["shape"] == [None, 30]


def test_unknown_target_is_reported_not_shipped(tmp_path, digits_teacher_weights):
    r = run_export(_cfg(tmp_path, weights=str(digits_teacher_weights), targets=("onnx-int8", "coreml")))
    v = {x.target: x for x in r.verdicts}
    assert v["onnx-int8"].shipped and not v["coreml"].shipped and "unknown export target" in v["coreml"].reason


def test_quantize_must_be_last(tmp_path):
    from edgefleet.compress.recipe import Recipe
    recipe = Recipe.from_dict({"passes": [{"name": "quantize"}, {"name": "distill", "epochs": 1}]})
    with pytest.raises(ConfigError, match="'quantize' must be the last pass"):
        run_export(_cfg(tmp_path, recipe=recipe))


def test_pt2_exported_program_as_the_model(tmp_path, digits_teacher_weights):
    import torch

    from edgefleet.compress.capture import export_program
    from edgefleet.compress.model_loading import load_model

    model = load_model("edgefleet.compress.zoo:digits_cnn", str(digits_teacher_weights))
    torch.export.save(export_program(model, (1, 8, 8)), tmp_path / "digits.pt2")
    r = run_export(_cfg(tmp_path, model=str(tmp_path / "digits.pt2"), targets=("onnx-int8",)))
    assert r.verdicts[0].shipped and r.verdicts[0].metrics["test_accuracy"] > 95


def test_weights_that_do_not_fit(tmp_path):
    import torch

    torch.save({"features.0.weight": torch.zeros(3, 3)}, tmp_path / "w.pt")
    with pytest.raises(ModelError, match="do not fit the model"):
        run_export(_cfg(tmp_path, weights=str(tmp_path / "w.pt")))


def test_report_says_where_time_and_memory_went(digits_export):
    """Calibration, each target's export and its verification, the reference outputs: separate lines,
    each with the peak resident memory so far."""
    from edgefleet.compress.report import SUB_STEP, timing_rows

    r = digits_export
    steps = list(r.timings)
    for name in ("capture", "calibration", "qparams"):
        assert f"attempt 1: quantize{SUB_STEP}{name}" in steps
    assert "fp32 reference outputs (onnxruntime)" in steps  # the vectorised engine, held to run_float
    for target in ("onnx-int8", "efm-int8", "tflite-fp32"):
        assert steps.index(f"export {target}") + 1 == steps.index(f"verify {target}")
    parts = [v for k, v in r.timings.items() if SUB_STEP in k]
    assert sum(parts) <= r.timings["attempt 1: quantize"] + 1e-3
    assert set(r.peak_rss_mb) == {k for k in steps if SUB_STEP not in k}
    assert all(v > 0 for v in r.peak_rss_mb.values())
    rows = timing_rows(r)
    assert ("  calibration", f"{r.timings[f'attempt 1: quantize{SUB_STEP}calibration']:.2f}") == rows[steps.index(
        f"attempt 1: quantize{SUB_STEP}calibration")][:2]
    assert "peak RSS MB" in r.table()
