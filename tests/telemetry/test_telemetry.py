"""The telemetry window is defined once: conformance vectors, export-time binning = device binning,
wire mappings, old-version windows, validation, one retry rule, imports one way."""

from __future__ import annotations

import ast
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgefleet import telemetry
from edgefleet.telemetry import TelemetryError
from tests.conftest import REPO

VECTORS = sorted((Path(__file__).parent / "vectors").glob("*.json"))


def _same_window(got: dict, expected: dict) -> None:
    assert math.isclose(got["confidence_sum"], expected["confidence_sum"], rel_tol=1e-12, abs_tol=1e-12)
    strip = lambda w: {k: v for k, v in w.items() if k not in ("confidence_sum", "report_id")}  # noqa: E731
    assert strip(got) == strip(expected)


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_conformance_vector(path):
    v = json.loads(path.read_text())
    if v["kind"] == "observe":
        w = telemetry.Window(v["reference"], v["model_version"], v["artifact"], now_ms=v["start_ms"])
        for item in v["inputs"]:
            w.observe([float(x) for x in item["logits"]], item["input_projections"], item["latency_ms"])
        got = w.close(v["end_ms"])
        assert got["report_id"]
        _same_window(got, v["expected"])
        telemetry.validate(got, v["reference"])
    else:
        _same_window(telemetry.merge(*v["windows"]), v["expected"])


def test_vectors_are_what_the_generator_writes():
    from tests.telemetry.make_vectors import vectors
    for name, vector in vectors().items():
        assert json.loads((Path(__file__).parent / "vectors" / f"{name}.json").read_text()) == \
            json.loads(json.dumps(vector))


def test_export_time_numpy_binning_equals_bin_index():
    from edgefleet.compress.monitoring_ref import _edges, _histogram
    rng = np.random.default_rng(0)
    for trial in range(20):
        values = rng.normal(size=300) * (1 + trial)
        edges = _edges(values[:200])
        probe = np.concatenate([values, np.asarray(edges), np.asarray(edges) - 1e-9, [edges[0] - 5, edges[-1] + 5]])
        device = [0] * (len(edges) - 1)
        for v in probe.tolist():
            device[telemetry.bin_index(edges, v)] += 1
        assert _histogram(probe, edges) == device


def test_export_reference_and_device_window_agree_on_the_validation_data():
    """The reference's own counts are what a device observing the validation logits would send."""
    from edgefleet.compress.monitoring_ref import build_reference
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + 3 * np.eye(4)[y]
    ref = build_reference(None, logits, y, 4)
    w = telemetry.Window(ref, "1.0", "onnx-fp32", now_ms=0)
    for row in logits.tolist():
        w.observe(row, None, 1.0)
    assert w.data["class_counts"] == ref["class_counts"]
    assert w.data["confidence"] == ref["confidence"]["counts"]
    assert w.data["class_confidence"] == [h["counts"] for h in ref["class_confidence"]]
    assert w.data["projections"] == [h["counts"] for h in ref["projection"]["histograms"]]
    assert ref["accuracy"]["atc_threshold"] in ref["confidence"]["edges"]
    assert len(json.dumps(ref)) < 8000  # no input-sized rows


def _window():
    v = json.loads((Path(__file__).parent / "vectors" / "observe_schema2_logits_space.json").read_text())
    return v["expected"], v["reference"]


def test_json_and_protobuf_mappings_round_trip():
    from edgefleet.proto import fleet_pb2 as pb
    w, _ = _window()
    w = {**w, "errors": {"runtime_error": 3}, "shadow_version": "2.0", "shadow_count": 4, "shadow_agree": 3}
    assert telemetry.from_json(telemetry.to_json(w)) == w
    assert telemetry.from_message(telemetry.to_message(w, pb.Window)) == w
    from google.protobuf import json_format
    as_proto_json = json_format.MessageToDict(telemetry.to_message(w, pb.Window))  # camelCase, int64 as strings
    assert telemetry.from_json(as_proto_json) == w


def test_old_version_window_is_accepted_and_merges():
    w, ref = _window()
    old = {k: v for k, v in w.items() if k not in ("schema_version", "class_confidence")}
    telemetry.validate(old, ref)
    assert telemetry.upgrade(old)["schema_version"] == 1
    merged = telemetry.merge_into(telemetry.merge_into(telemetry.empty_merged(), old), w)
    assert merged["count"] == 2 * w["count"]
    assert sum(merged["class_confidence"][0]) == w["count"]  # only the schema-2 window carries it
    from edgefleet.proto import fleet_pb2 as pb
    assert telemetry.from_message(pb.Window(**telemetry.to_json(old)))["schema_version"] == 1
    with pytest.raises(TelemetryError, match="schema_version"):
        telemetry.validate({**w, "schema_version": 7}, ref)


@pytest.mark.parametrize("change, field", [
    (lambda w: w["confidence"].append(0), "confidence"),
    (lambda w: w["class_counts"].__setitem__(0, -1), "class_counts"),
    (lambda w: w["class_confidence"][1].__setitem__(0, w["class_confidence"][1][0] + 1), "class_confidence[1]"),
    (lambda w: w["projections"].pop(), "projections"),
    (lambda w: w.update(confidence_sum=float("nan")), "confidence_sum"),
    (lambda w: w.update(end_ms=0), "end_ms"),
    (lambda w: w.update(report_id=""), "report_id"),
    (lambda w: w.update(shadow_agree=1), "shadow_agree"),
])
def test_validation_names_the_field(change, field):
    w, ref = _window()
    w = copy.deepcopy(w)
    change(w)
    with pytest.raises(TelemetryError, match=r"windows\[2\]" + r".*" + field.split("[")[0]):
        telemetry.validate(w, ref, "windows[2]")


def test_one_retry_rule_for_both_transports():
    assert telemetry.is_retryable("CANCELLED") and telemetry.is_retryable("cancelled")
    assert not telemetry.is_retryable("INVALID_ARGUMENT")
    from edgefleet.device._connect import ConnectTransport
    from edgefleet.device._transport import Offline, Rejected
    assert isinstance(ConnectTransport._error("Report", {"code": "cancelled"}), Offline)
    assert isinstance(ConnectTransport._error("Report", {"code": "invalid_argument"}), Rejected)
    for path in (REPO / "toolkit" / "device").glob("*.py"):
        assert "_RETRYABLE" not in path.read_text(), path


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, inside functions too, relative imports resolved."""
    package = ".".join(["edgefleet", *path.relative_to(REPO / "toolkit").parent.parts]) \
        if path.is_relative_to(REPO / "toolkit") else "edgefleet.coordinator"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                out.add(".".join(base + ([node.module] if node.module else [])))
            else:
                out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if node.module and not node.level}
    return out


def test_imports_point_one_way():
    """The device SDK (and the telemetry schema it shares) never imports the coordinator; the
    coordinator uses the toolkit's public modules only, never a private ``edgefleet.device._x``."""
    shared = [*(REPO / "toolkit" / "device").glob("*.py"), REPO / "toolkit" / "telemetry.py",
              REPO / "toolkit" / "monitoring.py", *(REPO / "toolkit" / "proto").glob("*.py")]
    for path in shared:
        bad = {m for m in _imported_modules(path) if m.startswith("edgefleet.coordinator")}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"
    for path in (REPO / "coordinator").glob("*.py"):
        bad = {m for m in _imported_modules(path) if m.startswith("edgefleet.device._")}
        assert not bad, f"{path.relative_to(REPO)} imports private {bad}"


def test_telemetry_is_pure_python():
    import subprocess
    import sys
    code = ("import sys; sys.modules['numpy'] = None; import edgefleet.telemetry, edgefleet.device; "
            "print('ok')")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


def test_public_names_exist():
    for name in telemetry.__all__:
        assert hasattr(telemetry, name), name
