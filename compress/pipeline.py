"""The export pipeline: model + data + recipe -> compressed, verified bundle.

>>> from edgefleet.compress.pipeline import ExportConfig, run_export
>>> result = run_export(ExportConfig(model="edgefleet.compress.zoo:digits_cnn", data="digits",
...                                  train_epochs=30, out="out/digits"))          # doctest: +SKIP
>>> print(result.table())                                                          # doctest: +SKIP

Steps: load and check the model and data; optionally train the teacher; run the recipe's passes; if
the int8 model misses the accuracy budget (``max_drop`` points on the validation split against the
teacher), back off — QAT first, then milder structural passes — and try again, recording every
attempt; export every target from the one quantized IR; verify each artifact (accuracy, fidelity,
bytes, latency, parity gate); write the bundle with its manifest, model card and report.
"""

from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefleet._errors import BudgetError, ConfigError, DataError, EdgefleetError, ModelError
from edgefleet.bundle import Bundle, BundleWriter

from . import report as report_mod
from .data import Dataset, load_dataset
from .ir import run_float, run_int
from .model_loading import load_model
from .monitoring_ref import build_reference
from .passes import get_pass
from .recipe import Recipe
from .state import State, count_nonzero, count_parameters
from .train import accuracy, fit, predict_logits, seed_everything
from .verify import INT8_MAX_LSB, Verdict, machine_info, verify_artifact

#: fallback-chain order when no latency was measured; with latency, each precision group is
#: ordered by measured batch-1 p50 (int8 first, fp32 last: the safest fallback)
CHAIN_ORDER = ("efm-int8", "tflite-int8", "onnx-int8", "tflite-fp32", "onnx-fp32")


#: the uncompressed teacher as its own fp32 ONNX artifact (never in the fallback chain)
TEACHER_TARGET = "teacher-fp32"


@dataclass
class ExportConfig:
    model: str = "edgefleet.compress.zoo:digits_cnn"
    weights: str | None = None
    data: str = "digits"
    recipe: Recipe | str = "default"
    targets: tuple[str, ...] | None = None  # None: every registered exporter
    max_drop: float = 1.0
    out: str = "out/bundle"
    name: str | None = None
    version: str = "1"
    seed: int = 0
    train_epochs: int = 0  # > 0: train the model on the data first (it becomes the teacher)
    max_attempts: int = 4
    parity_lsb: float = INT8_MAX_LSB
    measure_latency: bool = True
    progress: bool = False
    signing_key: bytes | None = None
    # ship the uncompressed teacher as ``teacher-fp32`` (the cloud fallback's model) unless ``targets``
    # lists targets without it
    teacher_artifact: bool = True

    def resolved_recipe(self) -> Recipe:
        recipe = self.recipe if isinstance(self.recipe, Recipe) else Recipe.from_toml(self.recipe)
        if not recipe.has("quantize"):
            recipe = Recipe(recipe.name, [*recipe.passes, get_pass("quantize")()])
        if [p.name for p in recipe.passes][-1] != "quantize":
            raise ConfigError(f"recipe {recipe.name}: 'quantize' must be the last pass")
        return recipe


@dataclass
class Attempt:
    number: int
    recipe: str
    passes: list[dict]
    params: int
    float_val_accuracy: float
    int8_val_accuracy: float
    drop: float
    ok: bool


@dataclass
class ExportResult:
    bundle: Bundle | None
    teacher: dict
    stages: list[dict]
    attempts: list[Attempt]
    verdicts: list[Verdict]
    machine: dict
    config: dict = field(default_factory=dict)

    def table(self) -> str:
        return report_mod.text_table(self)


def _check_model_on_data(model, data: Dataset) -> None:
    import torch

    x = torch.from_numpy(data.x_val[:2])
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as e:
        raise DataError(f"data set {data.name!r} (samples of shape {list(data.input_shape)}) does not fit the "
                        f"model: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ModelError(f"the model must return one [batch, classes] tensor, got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    n_classes = int(max(data.y_train.max(), data.y_val.max(), data.y_test.max())) + 1
    if out.shape[1] < n_classes:
        raise DataError(f"the model has {out.shape[1]} outputs but the data has {n_classes} classes")


def _attempt(cfg: ExportConfig, recipe: Recipe, teacher, data: Dataset, number: int, teacher_val: float):
    state = State.start(copy.deepcopy(teacher), data, seed=cfg.seed, progress=cfg.progress)
    state.teacher = teacher
    stages = []
    for p in recipe.passes:
        seed_everything(cfg.seed + number)
        result = p.run(state)
        stage = {"stage": p.name, "params": count_parameters(state.model), "nonzero": count_nonzero(state.model),
                 "val_accuracy": state.val_accuracy(), "changed": result.changed, "seconds": round(result.seconds, 2),
                 "config": result.params}
        stages.append(stage)
    int8_logits = run_int(state.qgraph, data.x_val)["output"]
    int8_val = accuracy(int8_logits, data.y_val)
    stages.append({"stage": "int8 (reference)", "params": count_parameters(state.model),
                   "nonzero": count_nonzero(state.model), "val_accuracy": int8_val})
    drop = teacher_val - int8_val
    attempt = Attempt(number, recipe.describe(), recipe.to_dict()["passes"], count_parameters(state.model),
                      state.val_accuracy(), int8_val, drop, drop <= cfg.max_drop)
    return state, stages, attempt, int8_logits


def _backoff(recipe: Recipe, number: int) -> Recipe | None:
    """Attempt 2 turns on QAT; later attempts also soften every structural pass one step."""
    passes = []
    changed = False
    for p in recipe.passes:
        milder = None
        if p.name == "quantize" or number >= 2:
            milder = p.backoff()
        if milder is not None:
            changed = True
        passes.append(milder or p)
    return Recipe(recipe.name, passes) if changed else None


def _fallback_chain(verdicts: list[Verdict]) -> list[str]:
    def key(v: Verdict):
        static = CHAIN_ORDER.index(v.target) if v.target in CHAIN_ORDER else len(CHAIN_ORDER)
        lat = v.metrics.get("latency", {}).get("batch1", {}).get("p50_ms", float("inf"))
        return (v.target.endswith("fp32"), lat, static)
    return [v.target for v in sorted((v for v in verdicts if v.shipped), key=key)]


def run_export(cfg: ExportConfig) -> ExportResult:
    from edgefleet.runtimes import exporters

    seed_everything(cfg.seed)
    recipe = cfg.resolved_recipe()
    data = load_dataset(cfg.data, seed=cfg.seed)
    model = load_model(cfg.model, cfg.weights)
    _check_model_on_data(model, data)
    if cfg.train_epochs > 0:
        model = fit(model, data.x_train, data.y_train, epochs=cfg.train_epochs, seed=cfg.seed,
                    progress=cfg.progress, desc="teacher")
    teacher = model.eval()
    teacher_test_logits = predict_logits(teacher, data.x_test)
    teacher = {"model": teacher, "val_accuracy": accuracy(predict_logits(teacher, data.x_val), data.y_val),
               "test_accuracy": accuracy(teacher_test_logits, data.y_test), "params": count_parameters(teacher)}
    targets = [t for t in (cfg.targets or exporters.targets()) if t != TEACHER_TARGET]
    ship_teacher = cfg.teacher_artifact and (cfg.targets is None or TEACHER_TARGET in cfg.targets)

    attempts: list[Attempt] = []
    current: Recipe | None = recipe
    state = stages = int8_logits = None
    for number in range(1, cfg.max_attempts + 1):
        if current is None:
            break
        state, stages, attempt, int8_logits = _attempt(cfg, current, teacher["model"], data, number, teacher["val_accuracy"])
        attempts.append(attempt)
        if attempt.ok:
            break
        current = _backoff(current, number + 1)
    if not attempts[-1].ok:
        tried = "; ".join(f"#{a.number} [{a.recipe}] int8 val {a.int8_val_accuracy:.2f}% (drop {a.drop:.2f})"
                          for a in attempts)
        raise BudgetError(f"accuracy budget --max-drop {cfg.max_drop} not met (teacher val "
                          f"{teacher['val_accuracy']:.2f}%); tried: {tried}")

    graph, qgraph = state.graph, state.qgraph
    # the reference outputs every artifact is held to, computed once
    references = {"int8": int8_logits, "fp32": run_float(graph, data.x_val)["output"]}
    name = cfg.name or Path(cfg.out).name or "model"
    writer = BundleWriter(cfg.out)
    try:
        teacher_onnx_bytes = _teacher_onnx(teacher["model"], data, writer if ship_teacher else None)
        verdicts = [_export_target(target, graph, qgraph, data, teacher_test_logits, teacher, cfg, writer, references)
                    for target in targets]
        shipped = [v.target for v in verdicts if v.shipped]
        if not shipped:
            raise EdgefleetError("no artifact passed verification: " + "; ".join(f"{v.target}: {v.reason}" for v in verdicts))
        result = ExportResult(None, {k: v for k, v in teacher.items() if k != "model"} | {"onnx_bytes": teacher_onnx_bytes},
                              stages, attempts, verdicts, machine_info(), _config_dict(cfg, recipe))
        monitoring = build_reference(data.x_val, references["int8"], data.y_val, len(data.labels))
        fields = _manifest_fields(cfg, name, data, graph, _fallback_chain(verdicts), monitoring, result)
        writer.add_file("card.md", report_mod.model_card(result, fields))
        writer.add_file("report.html", report_mod.html_report(result, fields))
        result.bundle = writer.finish(fields, signing_key=cfg.signing_key)
    except BaseException:
        writer.abort()
        raise
    return result


def _teacher_onnx(model, data: Dataset, writer: BundleWriter | None) -> int:
    """Size of the uncompressed teacher's fp32 ONNX (the yardstick of the size targets); with a
    ``writer``, also ship it as the ``teacher-fp32`` artifact, the cloud fallback's heavier model,
    once onnxruntime reproduces the torch teacher on the validation split (max |Δ| <= 1e-3)."""
    import numpy as np

    from edgefleet import runtimes
    from edgefleet.runtimes import exporters

    from .capture import capture

    with tempfile.TemporaryDirectory() as tmp:
        path = exporters.get("onnx-fp32")().export(capture(model, data.input_shape), Path(tmp) / "teacher.onnx")
        size = path.stat().st_size
        if writer is not None:
            runtime = runtimes.load("onnxruntime", path)
            run = lambda x: runtime.run(np.asarray(x, np.float32))[runtime.output_names[0]]  # noqa: E731
            diff = float(np.abs(run(data.x_val) - predict_logits(model, data.x_val)).max())
            if diff <= 1e-3:
                writer.add_artifact(TEACHER_TARGET, path, runtime="onnxruntime", precision="fp32", metrics={
                    "test_accuracy": accuracy(run(data.x_test), data.y_test),
                    "parity": {"max_abs_diff_vs_torch": diff, "tolerance": 1e-3}})
        return size


def _export_target(target, graph, qgraph, data, teacher_test_logits, teacher, cfg, writer, references) -> Verdict:
    from edgefleet.runtimes import exporters

    try:
        exporter = exporters.get(target)()
    except EdgefleetError as e:
        return Verdict(target, False, str(e))
    path = writer.stage / f".{target}.tmp"
    source = qgraph if exporter.precision == "int8" else graph
    try:
        exporter.export(source, path)
    except EdgefleetError as e:
        return Verdict(target, False, f"export failed: {e}")
    except ImportError as e:
        return Verdict(target, False, f"exporter unavailable: {e}")
    verdict = verify_artifact(target, exporter.runtime, exporter.precision, path, graph=graph, qgraph=qgraph, data=data,
                              teacher_test_logits=teacher_test_logits, teacher_test_acc=teacher["test_accuracy"],
                              int8_max_lsb=cfg.parity_lsb, measure_latency=cfg.measure_latency,
                              reference=references[exporter.precision])
    if verdict.shipped:
        writer.add_artifact(target, path, runtime=exporter.runtime, precision=exporter.precision,
                            metrics=_json_safe(verdict.metrics))
    path.unlink(missing_ok=True)
    return verdict


def _json_safe(obj):
    return json.loads(json.dumps(obj, default=float))


def _config_dict(cfg: ExportConfig, recipe: Recipe) -> dict:
    return {"model": cfg.model, "weights": cfg.weights, "data": cfg.data, "recipe": recipe.to_dict(),
            "max_drop": cfg.max_drop, "seed": cfg.seed, "train_epochs": cfg.train_epochs, "parity_lsb": cfg.parity_lsb}


def _manifest_fields(cfg, name, data, graph, chain, monitoring, result) -> dict:
    import onnx
    import torch

    from edgefleet import __version__

    spec_in = graph.inputs[0]
    out_shape = graph.values[graph.outputs[0]].shape
    return {
        "model": {"name": name, "version": cfg.version},
        "task": {"kind": "classifier", "labels": list(data.labels)},
        "inputs": [{"name": spec_in.name, "dtype": "float32", "shape": [None, *spec_in.shape[1:]],
                    "preprocessing": {"layout": data.layout, "scale": 1.0, "mean": 0.0, "std": 1.0}}],
        "outputs": [{"name": graph.outputs[0], "dtype": "float32", "shape": [None, *out_shape[1:]], "kind": "logits"}],
        "fallback_chain": chain,
        "monitoring": monitoring,
        "provenance": {
            "recipe": result.config["recipe"], "data": {"name": data.name, "sha256": data.digest,
                                                        "sizes": {"train": len(data.x_train), "val": len(data.x_val),
                                                                  "test": len(data.x_test)}},
            "model": cfg.model, "seed": cfg.seed, "max_drop": cfg.max_drop,
            "tools": {"edgefleet": __version__, "torch": torch.__version__.split("+")[0], "onnx": onnx.__version__,
                      "numpy": np.__version__},
            "attempts": [a.__dict__ for a in result.attempts],
        },
    }
