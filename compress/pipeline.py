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
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefleet._errors import BudgetError, ConfigError, DataError, EdgefleetError, ModelError
from edgefleet.bundle import Bundle, BundleWriter

from . import batch as B
from . import report as report_mod
from .data import Dataset, load_dataset
from .ir import islands
from .model_loading import load_model
from .monitoring_ref import build_reference
from .passes import get_pass
from .recipe import Recipe
from .state import State, capture_model, count_nonzero, count_parameters
from .tasks import Task, get_task
from .train import accuracy, fit, predict_logits, seed_everything
from .verify import (INT8_MAX_LSB, Verdict, float_outputs, input_ranges, int8_outputs, machine_info, run_batched,
                     verify_artifact)

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
    task: str = "classifier"  # classifier, embedding or regression (see edgefleet.compress.tasks)
    recipe: Recipe | str = "default"
    targets: tuple[str, ...] | None = None  # None: every registered exporter
    max_drop: float | None = None  # in the task's metric; None: the task's default
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
    signing_key_path: str | None = None   # recorded in the manifest's provenance (the key stays outside the bundle)
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
    """One try at the budget; scores are the task's metric on the validation split."""

    number: int
    recipe: str
    passes: list[dict]
    params: int
    float_val_score: float
    int8_val_score: float
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
    #: wall seconds per pipeline step, in order (where the export's time went); a sub-step
    #: (``step > part``) follows its step and is part of its seconds
    timings: dict = field(default_factory=dict)
    #: the process's peak resident memory (MB) at the end of each step
    peak_rss_mb: dict = field(default_factory=dict)
    #: classifier: (mean calibrated confidence, accuracy, count) per confidence bin of the int8 model
    reliability: list = field(default_factory=list)

    @property
    def task(self) -> Task:
        return get_task(self.config.get("task", "classifier"))

    def table(self) -> str:
        return report_mod.text_table(self)


def _check_model_on_data(model, data: Dataset) -> None:
    import torch

    x = B.take(data.x_val, slice(0, 2))
    try:
        with torch.no_grad():
            out = model(*B.torch_args(x))
    except Exception as e:
        got = ", ".join(s.describe() for s in data.input_specs)
        raise DataError(f"data set {data.name!r} (inputs {got}) does not fit the model: "
                        f"{type(e).__name__}: {str(e).splitlines()[0]}") from e
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"the model must return one tensor, got {type(out).__name__} (wrap it to return the "
                         f"logits, embedding or values)")
    y = data.y_val
    get_task(data.task).check_output(tuple(out.shape), data.num_classes, None if y is None else y.shape)


SUB_STEP = report_mod.SUB_STEP


def _peak_rss_mb() -> float:
    """The process's peak resident memory so far (MB)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)  # bytes on macOS, KB on Linux


class _Steps:
    """Wall time and the peak resident memory so far per pipeline step; on a terminal
    (``progress``), one status line naming the running step and its elapsed time."""

    def __init__(self, progress: bool):
        self.timings: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}
        self.bar = None
        if progress:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=0, bar_format="edgefleet export: {desc} [{elapsed}]", leave=False)
            except ImportError:  # pragma: no cover
                pass

    @contextmanager
    def step(self, name: str):
        if self.bar is not None:
            self.bar.set_description_str(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)
            self.peak_rss_mb[name] = _peak_rss_mb()

    def rename(self, name: str, new: str) -> None:
        """Rename the last step (to say how it was done once that is known)."""
        self.timings[new] = self.timings.pop(name)
        self.peak_rss_mb[new] = self.peak_rss_mb.pop(name)

    def sub_steps(self, name: str, seconds: dict[str, float]) -> None:
        """Record the sub-steps a pass timed (``State.timed``) under its step ``name``."""
        for sub, sec in seconds.items():
            self.timings[f"{name}{SUB_STEP}{sub}"] = sec

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_input_ranges(data: Dataset, graph) -> None:
    """Every integer input of every split lies in the range its embedding table allows."""
    for name, (lo, hi) in input_ranges(graph).items():
        for split in ("train", "val", "test"):
            arr = B.as_dict(getattr(data, f"x_{split}")).get(name)
            if arr is None or not arr.size:
                continue
            bad = (arr < lo) | (arr > hi)
            if bad.any():
                where = [int(i) for i in np.argwhere(bad)[0]]
                raise DataError(f"data set {data.name!r} ({split}): input {name!r} holds {int(arr[tuple(where)])} at "
                                f"{where}, outside [{lo}, {hi}]: the model's vocabulary has {hi + 1} entries "
                                f"({int(bad.sum())} value(s) out of range)")


def _explain_misfit(model, data: Dataset) -> None:
    if not any(s.is_integer for s in data.input_specs):
        return
    try:
        graph = capture_model(model, data.input_specs)
    except EdgefleetError:
        return  # the original error stands
    check_input_ranges(data, graph)


def _attempt(cfg: ExportConfig, recipe: Recipe, teacher, data: Dataset, number: int, teacher_val: float,
             max_drop: float, steps: _Steps):
    from edgefleet.runtimes import exporters

    task = get_task(data.task)
    state = State.start(copy.deepcopy(teacher), data, seed=cfg.seed, progress=cfg.progress)
    state.teacher, state.max_drop = teacher, max_drop
    # an automatic island choice never costs a target (efm-int8 has float kernels for fewer op kinds)
    state.island_ops = exporters.island_ops(*[t for t in (cfg.targets or ()) if t != TEACHER_TARGET])
    stages = []
    for p in recipe.passes:
        seed_everything(cfg.seed + number)
        state.step_seconds = {}
        with steps.step(f"attempt {number}: {p.name}"):
            result = p.run(state)
        steps.sub_steps(f"attempt {number}: {p.name}", state.step_seconds)
        stage = {"stage": p.name, "params": count_parameters(state.model), "nonzero": count_nonzero(state.model),
                 "val_score": state.val_accuracy(), "changed": result.changed, "seconds": round(result.seconds, 2),
                 "config": result.params}
        stages.append(stage)
    with steps.step(f"attempt {number}: int8 reference outputs"):
        int8_out, how = int8_outputs(state.qgraph, data.x_val)
    int8_val = task.score(int8_out, data.y_val, state.teacher_val_outputs())
    stages.append({"stage": f"int8 ({how})", "params": count_parameters(state.model),
                   "nonzero": count_nonzero(state.model), "val_score": int8_val})
    drop = task.drop(teacher_val, int8_val)
    attempt = Attempt(number, recipe.describe(), recipe.to_dict()["passes"], count_parameters(state.model),
                      state.val_accuracy(), int8_val, drop, drop <= max_drop)
    return state, stages, attempt, int8_out


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
    steps = _Steps(cfg.progress)
    try:
        return _run_export(cfg, steps)
    finally:
        steps.close()


def _run_export(cfg: ExportConfig, steps: _Steps) -> ExportResult:
    from edgefleet.runtimes import exporters

    timings = steps.timings
    seed_everything(cfg.seed)
    recipe = cfg.resolved_recipe()
    task = get_task(cfg.task)
    with steps.step("load model and data"):
        data = load_dataset(cfg.data, seed=cfg.seed, task=cfg.task)
        model = load_model(cfg.model, cfg.weights)
        try:
            _check_model_on_data(model, data)
        except DataError:
            _explain_misfit(model, data)  # token ids outside the vocabulary: say so, not torch's IndexError
            raise
    with steps.step("capture"):
        # every unsupported op is named now, before training or calibration
        check_input_ranges(data, capture_model(model, data.input_specs))
    if cfg.train_epochs > 0:
        with steps.step("train teacher"):
            model = fit(model, data.x_train, data.y_train, epochs=cfg.train_epochs, seed=cfg.seed,
                        progress=cfg.progress, desc="teacher", task=cfg.task)
    with steps.step("teacher outputs"):
        teacher_model = model.eval()
        teacher_val_out = predict_logits(teacher_model, data.x_val)
        teacher_test_out = predict_logits(teacher_model, data.x_test)
    m = task.metric
    teacher = {"model": teacher_model, f"val_{m}": task.score(teacher_val_out, data.y_val, teacher_val_out),
               f"test_{m}": task.score(teacher_test_out, data.y_test, teacher_test_out),
               "params": count_parameters(teacher_model)}
    max_drop = cfg.max_drop if cfg.max_drop is not None else task.default_max_drop(teacher[f"val_{m}"])
    targets = [t for t in (cfg.targets or exporters.targets()) if t != TEACHER_TARGET]
    # the uncompressed teacher ships as the cloud fallback's model (single-input classifiers)
    ship_teacher = (cfg.teacher_artifact and (cfg.targets is None or TEACHER_TARGET in cfg.targets)
                    and cfg.task == "classifier" and len(data.input_specs) == 1)

    attempts: list[Attempt] = []
    current: Recipe | None = recipe
    state = stages = int8_out = None
    for number in range(1, cfg.max_attempts + 1):
        if current is None:
            break
        state, stages, attempt, int8_out = _attempt(cfg, current, teacher_model, data, number, teacher[f"val_{m}"],
                                                    max_drop, steps)
        attempts.append(attempt)
        if attempt.ok:
            break
        current = _backoff(current, number + 1)
    if not attempts[-1].ok:
        tried = "; ".join(f"#{a.number} [{a.recipe}] int8 val {m} {task.format(a.int8_val_score)} "
                          f"(drop {a.drop:.4g})" for a in attempts)
        raise BudgetError(f"budget --max-drop {max_drop:.4g} ({m}) not met (teacher val "
                          f"{task.format(teacher[f'val_{m}'])}); tried: {tried}")

    graph, qgraph = state.graph, state.qgraph
    # the reference outputs every artifact is held to, computed once
    with steps.step("fp32 reference outputs"):
        fp32_out, how = float_outputs(graph, data.x_val)
        references = {"int8": int8_out, "fp32": fp32_out}
    steps.rename("fp32 reference outputs", f"fp32 reference outputs ({how})")
    name = cfg.name or Path(cfg.out).name or "model"
    writer = BundleWriter(cfg.out)
    teacher_out = {"val": teacher_val_out, "test": teacher_test_out}
    try:
        with steps.step("teacher fp32 ONNX"):
            teacher_onnx_bytes = _teacher_onnx(teacher_model, data, teacher_val_out, writer if ship_teacher else None)
        verdicts = []
        for target in targets:
            verdicts.append(_export_target(target, graph, qgraph, data, teacher_out, teacher, cfg, writer,
                                           references, steps))
        shipped = [v.target for v in verdicts if v.shipped]
        if not shipped:
            raise EdgefleetError("no artifact passed verification: " + "; ".join(f"{v.target}: {v.reason}" for v in verdicts))
        result = ExportResult(None, {k: v for k, v in teacher.items() if k != "model"} | {"onnx_bytes": teacher_onnx_bytes},
                              stages, attempts, verdicts, machine_info(), _config_dict(cfg, recipe, max_drop), timings,
                              peak_rss_mb=steps.peak_rss_mb)
        with steps.step("monitoring reference + bundle"):
            monitoring = build_reference(data.x_val, references["int8"], data.y_val, len(data.labels), kind=task.kind)
            if task.kind == "classifier":
                result.reliability = _reliability(references["int8"], data.y_val, monitoring["temperature"])
            fields = _manifest_fields(cfg, name, data, graph, qgraph, _fallback_chain(verdicts), monitoring, result)
            writer.add_file("card.md", report_mod.model_card(result, fields))
            writer.add_file("report.html", report_mod.html_report(result, fields))
            result.bundle = writer.finish(fields, signing_key=cfg.signing_key)
    except BaseException:
        writer.abort()
        raise
    return result


def _reliability(logits: np.ndarray, y: np.ndarray, temperature: float) -> list:
    z = logits / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return report_mod.reliability_bins(p.max(axis=1).tolist(), (p.argmax(axis=1) == y).tolist())


def _teacher_onnx(model, data: Dataset, val_outputs: np.ndarray, writer: BundleWriter | None) -> int:
    """Size of the uncompressed teacher's fp32 ONNX (the yardstick of the size targets); with a
    ``writer``, also ship it as the ``teacher-fp32`` artifact, the cloud fallback's heavier model,
    once onnxruntime reproduces the torch teacher's ``val_outputs`` (max |Δ| <= 1e-3)."""
    import numpy as np

    from edgefleet import runtimes
    from edgefleet.runtimes import exporters

    with tempfile.TemporaryDirectory() as tmp:
        path = exporters.get("onnx-fp32")().export(capture_model(model, data.input_specs), Path(tmp) / "teacher.onnx")
        size = path.stat().st_size
        if writer is not None:
            runtime = runtimes.load("onnxruntime", path)
            run = lambda x: run_batched(runtime, np.asarray(x, np.float32))  # noqa: E731
            diff = float(np.abs(run(data.x_val) - val_outputs).max())
            if diff <= 1e-3:
                writer.add_artifact(TEACHER_TARGET, path, runtime="onnxruntime", precision="fp32", metrics={
                    "test_accuracy": accuracy(run(data.x_test), data.y_test),
                    "parity": {"max_abs_diff_vs_torch": diff, "tolerance": 1e-3}})
        return size


def _export_target(target, graph, qgraph, data, teacher_out, teacher, cfg, writer, references, steps) -> Verdict:
    from edgefleet.runtimes import exporters

    try:
        exporter = exporters.get(target)()
    except EdgefleetError as e:
        return Verdict(target, False, str(e))
    path = writer.stage / f".{target}.tmp"
    source = qgraph if exporter.precision == "int8" else graph
    try:
        with steps.step(f"export {target}"):
            exporter.export(source, path)
    except EdgefleetError as e:
        return Verdict(target, False, f"export failed: {e}")
    except ImportError as e:
        return Verdict(target, False, f"exporter unavailable: {e}")
    with steps.step(f"verify {target}"):
        verdict = _verify(target, exporter, path, graph, qgraph, data, teacher_out, teacher, cfg, references)
    if verdict.shipped:
        writer.add_artifact(target, path, runtime=exporter.runtime, precision=exporter.precision,
                            metrics=_json_safe(verdict.metrics))
    path.unlink(missing_ok=True)
    return verdict


def _verify(target, exporter, path, graph, qgraph, data, teacher_out, teacher, cfg, references) -> Verdict:
    m = get_task(data.task).metric
    return verify_artifact(target, exporter.runtime, exporter.precision, path, graph=graph, qgraph=qgraph, data=data,
                           teacher_outputs=teacher_out, teacher_test_score=teacher[f"test_{m}"],
                           int8_max_lsb=cfg.parity_lsb, measure_latency=cfg.measure_latency,
                           reference=references[exporter.precision])


def _json_safe(obj):
    return json.loads(json.dumps(obj, default=float))


def _config_dict(cfg: ExportConfig, recipe: Recipe, max_drop: float) -> dict:
    return {"model": cfg.model, "weights": cfg.weights, "data": cfg.data, "task": cfg.task, "recipe": recipe.to_dict(),
            "max_drop": max_drop, "seed": cfg.seed, "train_epochs": cfg.train_epochs, "parity_lsb": cfg.parity_lsb}


#: what the output of each task is called in the manifest
OUTPUT_KINDS = {"classifier": "logits", "embedding": "embedding", "regression": "values"}


def _input_fields(data: Dataset, graph) -> list[dict]:
    ranges = input_ranges(graph)
    fields = []
    for v in graph.inputs:
        spec = {"name": v.name, "dtype": v.dtype, "shape": [None, *v.shape[1:]]}
        if v.dtype.startswith("int"):
            spec["preprocessing"] = {"layout": "NS"}
            if v.name in ranges:
                spec["range"] = list(ranges[v.name])
        else:
            spec["preprocessing"] = {"layout": data.layout, "scale": 1.0, "mean": 0.0, "std": 1.0}
        fields.append(spec)
    return fields


def _manifest_fields(cfg, name, data, graph, qgraph, chain, monitoring, result) -> dict:
    import onnx
    import torch

    from edgefleet import __version__

    out_shape = graph.values[graph.outputs[0]].shape
    task = get_task(data.task)
    task_fields = {"kind": task.kind, "metric": task.metric}
    if task.kind == "classifier":
        task_fields["labels"] = list(data.labels)
    return {
        "model": {"name": name, "version": cfg.version},
        "task": task_fields,
        "inputs": _input_fields(data, qgraph),
        "outputs": [{"name": graph.outputs[0], "dtype": "float32", "shape": [None, *out_shape[1:]],
                     "kind": OUTPUT_KINDS[task.kind]}],
        "fallback_chain": chain,
        "monitoring": monitoring,
        "provenance": {
            "recipe": result.config["recipe"], "data": {"name": data.name, "sha256": data.digest,
                                                        "sizes": {"train": len(data.x_train), "val": len(data.x_val),
                                                                  "test": len(data.x_test)}},
            "model": cfg.model, "seed": cfg.seed, "max_drop": result.config["max_drop"],
            "tools": {"edgefleet": __version__, "torch": torch.__version__.split("+")[0], "onnx": onnx.__version__,
                      "numpy": np.__version__},
            "attempts": [a.__dict__ for a in result.attempts],
            "precision_islands": islands.summary(qgraph),
            **({"signing_key": {"path": cfg.signing_key_path}} if cfg.signing_key_path else {}),
        },
    }
