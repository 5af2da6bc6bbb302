"""The telemetry window, defined once: fields, accumulation, merge, validation and wire/JSON mapping.

Pure Python (it runs on devices, under Pyodide, and in the coordinator). ``docs/telemetry.md`` is the
language-neutral specification; ``tests/telemetry/vectors/*.json`` are its conformance vectors.

A window summarises a stretch of predictions of one model version and artifact as counts over the
bins of the bundle's monitoring reference (``manifest["monitoring"]``), so windows merge by adding:

- ``class_counts``: predicted class (top-1 of the logits), one bin per label;
- ``confidence``: calibrated top-1 confidence ``max softmax(logits / T)`` on the reference's bins;
- ``class_confidence`` (schema 2): for every class ``c``, ``ln softmax(logits / T)[c]`` on that class's
  reference bins (the softmax vector, one histogram per class);
- ``projections``: ``k`` projections ``components @ (v - mean)`` on the reference's bins, where ``v``
  is the model's logits (reference ``projection.space == "logits"``, schema 2) or the flattened model
  input (``"input"``, schema 1 bundles);
- ``latency`` on fixed log-spaced bins, ``errors`` by kind, ``confidence_sum``, shadow agreement.

Schema versions: 1 (no ``class_confidence``, no ``schema_version`` field) and 2 (this one). A
version-1 window is still accepted everywhere (:func:`upgrade`); a signal that a window lacks simply
contributes nothing to the merged sketch.

>>> ref = {"class_counts": [1, 1], "confidence": {"edges": [0.5, 0.75, 1.0], "counts": [1, 1]},
...        "projection": {"space": "input", "mean": [], "components": [], "histograms": []}, "temperature": 1.0}
>>> w = new_window(ref, "1.0", "onnx-fp32", now_ms=0, report_id="r1")
>>> observe(w, ref, [2.0, 0.0], None, 1.5)
(0, 0.8807970779778823)
>>> w["class_counts"], w["confidence"]
([1, 0], [0, 1])
"""

from __future__ import annotations

import bisect
import math
import time
import uuid

__all__ = ["SCHEMA_VERSION", "ACCEPTED_VERSIONS", "LATENCY_EDGES_MS", "RETRYABLE_CODES", "FIELDS",
           "TelemetryError", "is_retryable", "bin_index", "softmax", "log_softmax", "argmax", "project",
           "Window", "new_window", "observe", "merge", "merge_into", "empty_merged", "upgrade", "validate",
           "to_json", "from_json", "to_message", "from_message", "latency_quantile"]

SCHEMA_VERSION = 2
ACCEPTED_VERSIONS = (1, 2)

#: 48 log-spaced latency bins from 10 µs to 100 s (6 bins per decade)
LATENCY_EDGES_MS = [round(0.01 * 10 ** (i / 6), 6) for i in range(49)]

#: status codes after which a call may be retried with the same data (gRPC names; Connect's are the
#: same in lower case). Everything else is a refusal: do not resend as is.
RETRYABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED",
                             "UNKNOWN", "INTERNAL"})

#: (field, kind, protobuf field number); kinds: str, int, float, counts (repeated int), hist (one
#: histogram), hists (repeated histograms), map (string -> int). The proto ``Window`` mirrors this.
FIELDS = (
    ("report_id", "str", 1), ("model_version", "str", 2), ("artifact", "str", 3), ("start_ms", "int", 4),
    ("end_ms", "int", 5), ("count", "int", 6), ("class_counts", "counts", 7), ("confidence", "hist", 8),
    ("projections", "hists", 9), ("latency", "hist", 10), ("errors", "map", 11), ("confidence_sum", "float", 12),
    ("merged", "int", 13), ("shadow_version", "str", 14), ("shadow_count", "int", 15),
    ("shadow_agree", "int", 16), ("schema_version", "int", 17), ("class_confidence", "hists", 18),
)
_DEFAULTS = {"str": "", "int": 0, "float": 0.0, "counts": [], "hist": [], "hists": [], "map": {}}
_MAX_ID = 128
_MAX_COUNT = 10 ** 9
_MAX_ERROR_KINDS = 16


class TelemetryError(ValueError):
    """A window that breaks the schema; the message names the field (``windows[3].confidence: ...``)."""


def is_retryable(code: str) -> bool:
    """Whether a gRPC (``"UNAVAILABLE"``) or Connect (``"unavailable"``) status code may be retried."""
    return code.upper() in RETRYABLE_CODES


# -- the arithmetic (shared by export-time reference building and devices) ------------------------
def bin_index(edges, value: float) -> int:
    """Bin of ``value``: ``i`` with ``edges[i] <= value < edges[i+1]``; below the first edge counts in
    the first bin, at or above the last edge in the last bin (nothing is dropped)."""
    i = bisect.bisect_right(edges, value) - 1
    return min(max(i, 0), len(edges) - 2)


def log_softmax(logits, temperature: float = 1.0) -> list[float]:
    scaled = [v / temperature for v in logits]
    top = max(scaled)
    lse = top + math.log(sum(math.exp(v - top) for v in scaled))
    return [v - lse for v in scaled]


def softmax(logits, temperature: float = 1.0) -> list[float]:
    return [math.exp(v) for v in log_softmax(logits, temperature)]


def argmax(values) -> int:
    """Index of the largest value; the first one on ties."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def project(values, mean, components) -> list[float]:
    centred = [a - b for a, b in zip(values, mean)]
    return [sum(c * v for c, v in zip(row, centred)) for row in components]


def projection_space(reference: dict) -> str:
    return reference["projection"].get("space", "input")


# -- one window ---------------------------------------------------------------------------------
def new_window(reference: dict, model_version: str, artifact: str, *, now_ms: int | None = None,
               shadow_version: str = "", report_id: str | None = None) -> dict:
    """An empty schema-2 window on ``reference``'s bins."""
    return {
        "schema_version": SCHEMA_VERSION, "report_id": report_id or uuid.uuid4().hex,
        "model_version": model_version, "artifact": artifact,
        "start_ms": now_ms if now_ms is not None else int(time.time() * 1000), "end_ms": 0, "count": 0,
        "class_counts": [0] * len(reference["class_counts"]),
        "confidence": [0] * (len(reference["confidence"]["edges"]) - 1),
        "class_confidence": [[0] * (len(h["edges"]) - 1) for h in reference.get("class_confidence") or []],
        "projections": [[0] * (len(h["edges"]) - 1) for h in reference["projection"]["histograms"]],
        "latency": [0] * (len(LATENCY_EDGES_MS) - 1), "errors": {}, "confidence_sum": 0.0, "merged": 1,
        "shadow_version": shadow_version, "shadow_count": 0, "shadow_agree": 0,
    }


def observe(window: dict, reference: dict, logits, input_projections, latency_ms: float) -> tuple[int, float]:
    """Count one prediction (finite logits); return (predicted class, calibrated confidence).

    ``input_projections`` are used only for a reference whose projection space is ``"input"`` (pass
    None otherwise). Non-finite logits are not observed: they count as ``errors["non_finite"]`` and
    (-1, nan) is returned."""
    if not all(math.isfinite(v) for v in logits):
        window["errors"]["non_finite"] = window["errors"].get("non_finite", 0) + 1
        return -1, math.nan
    logp = log_softmax(logits, reference["temperature"])
    cls = argmax(logits)
    conf = math.exp(logp[cls])
    window["count"] += 1
    window["class_counts"][cls] += 1
    window["confidence"][bin_index(reference["confidence"]["edges"], conf)] += 1
    window["confidence_sum"] += conf
    for counts, hist, v in zip(window.get("class_confidence") or [], reference.get("class_confidence") or [], logp):
        counts[bin_index(hist["edges"], v)] += 1
    proj = reference["projection"]
    if projection_space(reference) == "logits":
        z = project(logits, proj["mean"], proj["components"])
    else:
        z = input_projections if input_projections is not None else []
    for counts, hist, v in zip(window["projections"], proj["histograms"], z):
        counts[bin_index(hist["edges"], v)] += 1
    window["latency"][bin_index(LATENCY_EDGES_MS, latency_ms)] += 1
    return cls, conf


class Window:
    """An open window as an object (the device's accumulator): ``observe`` each prediction, then
    ``close``. ``data`` is the window dict."""

    def __init__(self, reference: dict, model_version: str, artifact: str, *, now_ms: int | None = None,
                 shadow_version: str = ""):
        self.ref = reference
        self.data = new_window(reference, model_version, artifact, now_ms=now_ms, shadow_version=shadow_version)

    @property
    def count(self) -> int:
        return self.data["count"]

    def observe(self, logits, input_projections, latency_ms: float) -> tuple[int, float]:
        return observe(self.data, self.ref, logits, input_projections, latency_ms)

    def error(self, kind: str, n: int = 1) -> None:
        self.data["errors"][kind] = self.data["errors"].get(kind, 0) + n

    def shadow(self, agree: bool) -> None:
        self.data["shadow_count"] += 1
        self.data["shadow_agree"] += int(agree)

    def close(self, now_ms: int | None = None) -> dict:
        self.data["end_ms"] = max(now_ms if now_ms is not None else int(time.time() * 1000), self.data["start_ms"])
        return self.data


def upgrade(window: dict) -> dict:
    """A window of any accepted schema version as a schema-2 dict (missing fields take their
    defaults; a version-1 window has no ``class_confidence``). Raises TelemetryError on an unknown
    version."""
    version = window.get("schema_version") or 1
    if version not in ACCEPTED_VERSIONS:
        raise TelemetryError(f"schema_version: {version} is not one of {ACCEPTED_VERSIONS}")
    out = {name: _copy(window.get(name, _DEFAULTS[kind])) for name, kind, _ in FIELDS}
    out["merged"] = window.get("merged", 1)
    out["schema_version"] = version
    for key in ("absorbed",):  # the device queue's bookkeeping travels with a merged window
        if key in window:
            out[key] = list(window[key])
    return out


def _copy(value):
    if isinstance(value, list):
        return [list(v) if isinstance(v, list) else v for v in value]
    return dict(value) if isinstance(value, dict) else value


def _add(a: list, b: list, where: str) -> list:
    if not a:
        return list(b)
    if not b:
        return list(a)
    if len(a) != len(b):
        raise TelemetryError(f"{where}: cannot merge histograms of {len(a)} and {len(b)} bins")
    return [x + y for x, y in zip(a, b)]


def _add_many(a: list, b: list, where: str) -> list:
    if not a:
        return [list(h) for h in b]
    if not b:
        return [list(h) for h in a]
    if len(a) != len(b):
        raise TelemetryError(f"{where}: cannot merge {len(a)} and {len(b)} histograms")
    return [_add(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b))]


def merge(a: dict, b: dict) -> dict:
    """Merge two closed windows of the same model version and artifact into a new window (new id):
    every count adds bin by bin, the span covers both, ``merged`` adds. Shadow counts survive only
    when both windows shadowed the same candidate."""
    if (a["model_version"], a["artifact"]) != (b["model_version"], b["artifact"]):
        raise TelemetryError("only windows of the same model version and artifact merge")
    a, b = upgrade(a), upgrade(b)
    same_shadow = a["shadow_version"] == b["shadow_version"]
    out = {
        "schema_version": max(a["schema_version"], b["schema_version"]), "report_id": uuid.uuid4().hex,
        "model_version": a["model_version"], "artifact": a["artifact"],
        "start_ms": min(a["start_ms"], b["start_ms"]), "end_ms": max(a["end_ms"], b["end_ms"]),
        "count": a["count"] + b["count"],
        "class_counts": _add(a["class_counts"], b["class_counts"], "class_counts"),
        "confidence": _add(a["confidence"], b["confidence"], "confidence"),
        "class_confidence": _add_many(a["class_confidence"], b["class_confidence"], "class_confidence"),
        "projections": _add_many(a["projections"], b["projections"], "projections"),
        "latency": _add(a["latency"], b["latency"], "latency"),
        "errors": _add_map(a["errors"], b["errors"]), "confidence_sum": a["confidence_sum"] + b["confidence_sum"],
        "merged": a["merged"] + b["merged"],
        "shadow_version": a["shadow_version"] if same_shadow else "",
        "shadow_count": a["shadow_count"] + b["shadow_count"] if same_shadow else 0,
        "shadow_agree": a["shadow_agree"] + b["shadow_agree"] if same_shadow else 0,
    }
    return out


def _add_map(a: dict, b: dict) -> dict:
    out = dict(a)
    for kind, n in b.items():
        out[kind] = out.get(kind, 0) + n
    return out


def empty_merged() -> dict:
    """The accumulator of :func:`merge_into`: a pooled sketch over windows of one model version (any
    artifact, any device). Each histogram's own total is its sample size: a signal some windows lack
    (schema 1) is pooled over the windows that have it."""
    return {"windows": 0, "count": 0, "class_counts": [], "confidence": [], "class_confidence": [],
            "projections": [], "latency": [], "errors": {}, "confidence_sum": 0.0, "shadow_count": 0,
            "shadow_agree": 0, "devices": set(), "artifacts": {}, "start_ms": None, "end_ms": None}


def merge_into(acc: dict, window: dict) -> dict:
    """Add one stored window (any accepted version) into a pooled sketch from :func:`empty_merged`."""
    w = upgrade(window)
    acc["windows"] += 1
    acc["count"] += w["count"]
    acc["confidence_sum"] += w["confidence_sum"]
    acc["shadow_count"] += w["shadow_count"]
    acc["shadow_agree"] += w["shadow_agree"]
    if "device_id" in window:
        acc["devices"].add(window["device_id"])
    acc["artifacts"][w["artifact"]] = acc["artifacts"].get(w["artifact"], 0) + w["count"]
    for name in ("class_counts", "confidence", "latency"):
        acc[name] = _add(acc[name], w[name], name)
    for name in ("class_confidence", "projections"):
        acc[name] = _add_many(acc[name], w[name], name)
    acc["errors"] = _add_map(acc["errors"], w["errors"])
    acc["start_ms"] = w["start_ms"] if acc["start_ms"] is None else min(acc["start_ms"], w["start_ms"])
    acc["end_ms"] = w["end_ms"] if acc["end_ms"] is None else max(acc["end_ms"], w["end_ms"])
    return acc


# -- validation -----------------------------------------------------------------------------------
def _ident(where: str, value, *, empty_ok: bool = False) -> None:
    if not isinstance(value, str) or (not value and not empty_ok) or len(value) > _MAX_ID or not value.isprintable():
        raise TelemetryError(f"{where}: expected a printable id of 1..{_MAX_ID} characters, got {str(value)[:40]!r}")


def _int(where: str, value, lo: int = 0, hi: int = _MAX_COUNT) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise TelemetryError(f"{where}: {value!r} is not an integer in {lo}..{hi}")


def _counts(where: str, counts, bins: int, total: int, what: str) -> None:
    if not isinstance(counts, list) or len(counts) != bins:
        raise TelemetryError(f"{where}: expected {bins} bins ({what}), got "
                             f"{len(counts) if isinstance(counts, list) else type(counts).__name__}")
    for c in counts:
        _int(where, c)
    if sum(counts) != total:
        raise TelemetryError(f"{where}: counts sum to {sum(counts)}, but the window holds {total} predictions")


def _hists(where: str, value, reference_hists: list, total: int, noun: str) -> None:
    if len(value) != len(reference_hists):
        raise TelemetryError(f"{where}: expected {len(reference_hists)} {noun}, got {len(value)}")
    for j, (counts, hist) in enumerate(zip(value, reference_hists)):
        _counts(f"{where}[{j}]", counts, len(hist["edges"]) - 1, total, "the reference's bins")


def validate(window: dict, reference: dict, where: str = "window") -> None:
    """Raise TelemetryError naming ``where.field`` unless ``window`` (any accepted version) fits
    ``reference`` (the bundle's ``manifest["monitoring"]``): every histogram on the reference's bins
    and summing to ``count``, ids printable, no negative or absurd counts, times ordered."""
    version = window.get("schema_version") or 1
    if version not in ACCEPTED_VERSIONS:
        raise TelemetryError(f"{where}.schema_version: {version!r} is not one of {ACCEPTED_VERSIONS}")
    for name in ("report_id", "model_version", "artifact"):
        _ident(f"{where}.{name}", window.get(name))
    n = window.get("count")
    _int(f"{where}.count", n)
    _int(f"{where}.start_ms", window.get("start_ms"), 0, 2 ** 62)
    _int(f"{where}.end_ms", window.get("end_ms"), 0, 2 ** 62)
    if window["end_ms"] < window["start_ms"]:
        raise TelemetryError(f"{where}: end_ms {window['end_ms']} before start_ms {window['start_ms']}")
    _counts(f"{where}.class_counts", window.get("class_counts"), len(reference["class_counts"]), n,
            f"one per label of model {window['model_version']}")
    _counts(f"{where}.confidence", window.get("confidence"), len(reference["confidence"]["edges"]) - 1, n,
            "the reference's bins")
    _hists(f"{where}.projections", window.get("projections") or [], reference["projection"]["histograms"], n, "projections")
    cc = window.get("class_confidence") or []
    if cc:  # optional: schema 1 windows and references without it have none
        _hists(f"{where}.class_confidence", cc, reference.get("class_confidence") or [], n, "class histograms")
    if window.get("latency"):
        _counts(f"{where}.latency", window["latency"], len(LATENCY_EDGES_MS) - 1, n, "fixed latency bins")
    errors = window.get("errors") or {}
    if not isinstance(errors, dict) or len(errors) > _MAX_ERROR_KINDS:
        raise TelemetryError(f"{where}.errors: expected at most {_MAX_ERROR_KINDS} kinds")
    for kind, count in errors.items():
        _ident(f"{where}.errors key", kind)
        _int(f"{where}.errors[{kind!r}]", count)
    cs = window.get("confidence_sum", 0.0)
    if isinstance(cs, bool) or not isinstance(cs, (int, float)) or not math.isfinite(cs) \
            or not 0 <= cs <= n + 1e-6 * max(n, 1):
        raise TelemetryError(f"{where}.confidence_sum: {cs} is outside 0..count ({n})")
    _int(f"{where}.merged", window.get("merged", 1))
    _ident(f"{where}.shadow_version", window.get("shadow_version", ""), empty_ok=True)
    sc, sa = window.get("shadow_count", 0), window.get("shadow_agree", 0)
    _int(f"{where}.shadow_count", sc)
    _int(f"{where}.shadow_agree", sa)
    if sa > sc:
        raise TelemetryError(f"{where}: shadow_agree {sa} and shadow_count {sc} must satisfy 0 <= agree <= count")


# -- wire mappings --------------------------------------------------------------------------------
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def to_json(window: dict) -> dict:
    """The protobuf JSON form of a window (what a Connect client POSTs): histograms are
    ``{"counts": [...]}`` objects, field names as in ``fleet.proto``."""
    w = upgrade(window)
    out = {}
    for name, kind, _ in FIELDS:
        v = w[name]
        if kind == "hist":
            v = {"counts": list(v)}
        elif kind == "hists":
            v = [{"counts": list(h)} for h in v]
        out[name] = v
    return out


def _int_of(v, where):
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            raise TelemetryError(f"{where}: {v!r} is not an integer") from None
    return v


def from_json(d: dict, where: str = "window") -> dict:
    """A window dict from its protobuf JSON form (field names in snake or lowerCamel case, 64-bit
    integers as numbers or strings, absent fields take their defaults). Shape errors name the field;
    values are checked by :func:`validate`."""
    if not isinstance(d, dict):
        raise TelemetryError(f"{where}: expected an object")
    out = {}
    for name, kind, _ in FIELDS:
        v = d.get(name, d.get(_camel(name)))
        at = f"{where}.{name}"
        try:
            if v is None:
                v = _copy(_DEFAULTS[kind])
            elif kind == "int":
                v = _int_of(v, at)
            elif kind == "float":
                v = float(v)
            elif kind == "counts":
                v = [_int_of(c, at) for c in v]
            elif kind == "hist":
                v = [_int_of(c, at) for c in v.get("counts", [])]
            elif kind == "hists":
                v = [[_int_of(c, at) for c in h.get("counts", [])] for h in v]
            elif kind == "map":
                v = {str(k): _int_of(c, at) for k, c in v.items()}
        except (AttributeError, TypeError, ValueError) as e:
            raise TelemetryError(f"{at}: malformed ({e})") from None
        out[name] = v
    out["merged"] = out["merged"] or 1
    out["schema_version"] = out["schema_version"] or 1
    return out


def to_message(window: dict, message_class):
    """A protobuf message (``fleet_pb2.Window``) from a window dict."""
    return message_class(**to_json(window))


def from_message(m) -> dict:
    """A window dict from a protobuf ``Window`` message (duck-typed: any object with its fields)."""
    out = {}
    for name, kind, _ in FIELDS:
        v = getattr(m, name)
        if kind in ("counts",):
            v = list(v)
        elif kind == "hist":
            v = list(v.counts)
        elif kind == "hists":
            v = [list(h.counts) for h in v]
        elif kind == "map":
            v = dict(v)
        out[name] = v
    out["merged"] = out["merged"] or 1
    out["schema_version"] = out["schema_version"] or 1
    return out


def latency_quantile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a latency histogram, as its bin's upper edge in ms."""
    total = sum(counts)
    if total == 0:
        return None
    target, seen = q * total, 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= target:
            return LATENCY_EDGES_MS[i + 1]
    return LATENCY_EDGES_MS[-1]
