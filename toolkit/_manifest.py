"""The bundle manifest: schema version 1, and its validation.

The manifest is plain JSON so that a device (or a browser, under Pyodide) can read it with the
standard library alone. ``validate_manifest`` checks every field a consumer relies on and names the
offending field path in its error, e.g. ``manifest.artifacts[1].sha256: expected a 64-character hex
string``. The full field reference lives in ``docs/bundle.md``.
"""

from __future__ import annotations

import re
from typing import Any

from ._errors import BundleError

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)

TASK_KINDS = ("classifier", "embedding", "regression")
DTYPES = ("float32", "int8", "uint8", "int32", "int64")
PRECISIONS = ("fp32", "int8")
#: Artifact targets and the file name each is written to inside a bundle.
TARGET_FILES = {
    "onnx-fp32": "model.onnx",
    "onnx-int8": "model.int8.onnx",
    "tflite-fp32": "model.tflite",
    "tflite-int8": "model.int8.tflite",
    "efm-int8": "model.int8.efm",
    "teacher-fp32": "teacher.onnx",  # the uncompressed teacher (ONNX fp32): the cloud fallback's model
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _fail(path: str, msg: str) -> BundleError:
    return BundleError(f"manifest.{path}: {msg}")


def _require(obj: dict, key: str, kind: type | tuple, path: str) -> Any:
    if not isinstance(obj, dict):
        raise _fail(path, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise _fail(f"{path}.{key}".lstrip("."), "missing")
    value = obj[key]
    # bool is an int subclass; never accept it where a number is asked for.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _fail(f"{path}.{key}".lstrip("."), f"expected {_kind_name(kind)}, got bool")
    if not isinstance(value, kind):
        raise _fail(f"{path}.{key}".lstrip("."), f"expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({dict: "an object", list: "a list", str: "a string", int: "an integer",
                        float: "a number", bool: "a boolean", type(None): "null"}.get(k, k.__name__) for k in kinds)


def _check_tensor_spec(spec: Any, path: str) -> None:
    name = _require(spec, "name", str, path)
    if not name:
        raise _fail(f"{path}.name", "must not be empty")
    dtype = _require(spec, "dtype", str, path)
    if dtype not in DTYPES:
        raise _fail(f"{path}.dtype", f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    shape = _require(spec, "shape", list, path)
    if not shape or shape[0] is not None:
        raise _fail(f"{path}.shape", "the first axis must be the dynamic batch axis (null)")
    for i, dim in enumerate(shape[1:], start=1):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise _fail(f"{path}.shape[{i}]", f"expected a positive integer, got {dim!r}")
    if "range" in spec:
        rng = spec["range"]
        if not dtype.startswith("int"):
            raise _fail(f"{path}.range", f"only an integer input has a value range, this one is {dtype}")
        if (not isinstance(rng, list) or len(rng) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in rng)
                or rng[0] > rng[1]):
            raise _fail(f"{path}.range", f"expected [low, high] integers with low <= high, got {rng!r}")


def _check_histogram(hist: Any, path: str) -> None:
    edges = _require(hist, "edges", list, path)
    counts = _require(hist, "counts", list, path)
    if len(edges) < 2 or len(counts) != len(edges) - 1:
        raise _fail(path, f"{len(edges)} edges need {max(len(edges) - 1, 1)} counts, got {len(counts)}")
    if any(not isinstance(e, (int, float)) or isinstance(e, bool) for e in edges):
        raise _fail(f"{path}.edges", "expected numbers")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise _fail(f"{path}.edges", "must be strictly increasing")
    if any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in counts):
        raise _fail(f"{path}.counts", "expected non-negative integers")


def _check_monitoring(mon: Any, path: str, kind: str, num_outputs: int | None) -> None:
    """``num_outputs``: the length of the model's output row (the labels of a classifier), when known."""
    if isinstance(mon, dict) and mon.get("kind", "classifier") != kind:
        raise _fail(f"{path}.kind", f"is {mon.get('kind')!r} but the task is {kind!r}")
    if kind == "embedding":
        centroids = _require(mon, "centroids", list, path)
        if not centroids or any(not isinstance(r, list) or len(r) != len(centroids[0]) for r in centroids):
            raise _fail(f"{path}.centroids", "expected a non-empty list of equal-length vectors")
    if kind == "regression":
        q = _require(mon, "quantiles", list, path)
        if len(q) < 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in q) \
                or any(b < a for a, b in zip(q, q[1:])):
            raise _fail(f"{path}.quantiles", "expected at least two non-decreasing numbers")
    class_counts = _require(mon, "class_counts", list, path)
    if any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in class_counts):
        raise _fail(f"{path}.class_counts", "expected non-negative integers")
    _check_histogram(_require(mon, "confidence", dict, path), f"{path}.confidence")
    proj = _require(mon, "projection", dict, path)
    mean = _require(proj, "mean", list, f"{path}.projection")
    components = _require(proj, "components", list, f"{path}.projection")
    hists = _require(proj, "histograms", list, f"{path}.projection")
    if len(components) != len(hists):
        raise _fail(f"{path}.projection", f"{len(components)} components but {len(hists)} histograms")
    for i, row in enumerate(components):
        if not isinstance(row, list) or len(row) != len(mean):
            raise _fail(f"{path}.projection.components[{i}]", f"expected {len(mean)} numbers")
    for i, hist in enumerate(hists):
        _check_histogram(hist, f"{path}.projection.histograms[{i}]")
    space = proj.get("space", "input")
    if space not in ("input", "logits", "output"):
        raise _fail(f"{path}.projection.space", f"expected 'input', 'logits' or 'output', got {space!r}")
    if space != "input" and num_outputs is not None and len(mean) != num_outputs:
        raise _fail(f"{path}.projection.mean", f"a {space} projection needs {num_outputs} numbers, got {len(mean)}")
    class_conf = mon.get("class_confidence", [])
    classes = num_outputs if kind == "classifier" and num_outputs is not None else len(class_counts)
    if not isinstance(class_conf, list) or (class_conf and len(class_conf) != classes):
        raise _fail(f"{path}.class_confidence", f"expected one histogram per class ({classes})")
    for i, hist in enumerate(class_conf):
        _check_histogram(hist, f"{path}.class_confidence[{i}]")
    temperature = _require(mon, "temperature", (int, float), path)
    if not temperature > 0:
        raise _fail(f"{path}.temperature", f"must be positive, got {temperature}")
    _require(mon, "reference_size", int, path)
    if "confusion" in mon:  # optional: validation confusion counts [predicted][true] (label-shift correction)
        rows = mon["confusion"]
        n = num_outputs if num_outputs is not None else len(class_counts)
        if (not isinstance(rows, list) or len(rows) != n
                or any(not isinstance(r, list) or len(r) != n for r in rows)
                or any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for r in rows for c in r)):
            raise _fail(f"{path}.confusion", f"expected {n} rows of {n} non-negative integers ([predicted][true])")


def _output_width(manifest: dict, kind: str) -> int | None:
    """The length of one output row: the labels of a classifier, else the product of the first
    output's non-batch dimensions (None when the manifest does not say)."""
    if kind == "classifier":
        return len(manifest["task"]["labels"])
    outputs = manifest.get("outputs") or []
    shape = outputs[0].get("shape") if outputs and isinstance(outputs[0], dict) else None
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape[1:]):
        return None
    width = 1
    for d in shape[1:]:
        width *= d
    return width


def validate_manifest(manifest: Any) -> dict:
    """Check a parsed manifest against schema version 1; return it unchanged or raise BundleError."""
    if not isinstance(manifest, dict):
        raise BundleError(f"manifest: expected a JSON object, got {type(manifest).__name__}")
    version = _require(manifest, "schema_version", int, "")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise BundleError(
            f"manifest.schema_version: unknown schema version {version}; this edgefleet reads "
            f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))} (upgrade edgefleet to read newer bundles)")
    model = _require(manifest, "model", dict, "")
    _require(model, "name", str, "model")
    _require(model, "version", str, "model")
    task = _require(manifest, "task", dict, "")
    kind = _require(task, "kind", str, "task")
    if kind not in TASK_KINDS:
        raise _fail("task.kind", f"unknown task kind {kind!r}; expected one of {', '.join(TASK_KINDS)}")
    if kind == "classifier":
        labels = _require(task, "labels", list, "task")
        if not labels or not all(isinstance(label, str) for label in labels):
            raise _fail("task.labels", "a classifier needs a non-empty list of label names")
    for section in ("inputs", "outputs"):
        specs = _require(manifest, section, list, "")
        if not specs:
            raise _fail(section, "must list at least one tensor")
        for i, spec in enumerate(specs):
            _check_tensor_spec(spec, f"{section}[{i}]")
    pre = _require(manifest["inputs"][0], "preprocessing", dict, "inputs[0]")
    _require(pre, "layout", str, "inputs[0].preprocessing")
    artifacts = _require(manifest, "artifacts", list, "")
    targets = []
    for i, art in enumerate(artifacts):
        path = f"artifacts[{i}]"
        target = _require(art, "target", str, path)
        if target not in TARGET_FILES:
            raise _fail(f"{path}.target", f"unknown target {target!r}; expected one of {', '.join(TARGET_FILES)}")
        if target in targets:
            raise _fail(f"{path}.target", f"duplicate target {target!r}")
        targets.append(target)
        file = _require(art, "file", str, path)
        if "/" in file or "\\" in file or file.startswith("."):
            raise _fail(f"{path}.file", f"must be a plain file name inside the bundle, got {file!r}")
        if not _HEX64.match(_require(art, "sha256", str, path)):
            raise _fail(f"{path}.sha256", "expected a 64-character lowercase hex string")
        if _require(art, "bytes", int, path) < 0:
            raise _fail(f"{path}.bytes", "must be non-negative")
        _require(art, "runtime", str, path)
        if _require(art, "precision", str, path) not in PRECISIONS:
            raise _fail(f"{path}.precision", f"expected one of {', '.join(PRECISIONS)}")
        _require(art, "metrics", dict, path)
    chain = _require(manifest, "fallback_chain", list, "")
    for i, target in enumerate(chain):
        if target not in targets:
            raise _fail(f"fallback_chain[{i}]", f"names {target!r}, which is not an artifact of this bundle")
    if kind == "classifier" or "monitoring" in manifest:
        _check_monitoring(_require(manifest, "monitoring", dict, ""), "monitoring", kind, _output_width(manifest, kind))
    if kind == "classifier":
        if len(manifest["monitoring"]["class_counts"]) != len(task["labels"]):
            raise _fail("monitoring.class_counts", f"expected {len(task['labels'])} counts, one per label")
    _require(manifest, "provenance", dict, "")
    sig = manifest.get("signature")
    if sig is not None:
        for key in ("algorithm", "public_key", "value"):
            _require(sig, key, str, "signature")
    return manifest
