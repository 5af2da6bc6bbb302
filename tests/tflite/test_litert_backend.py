"""The ``litert`` backend at its boundary: the tflite_runtime fallback, a clear reason when neither
library is installed, and LiteRT's errors translated into edgefleet's."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from edgefleet import BackendUnavailable, RuntimeBackendError
from edgefleet.runtimes import exporters, load
from edgefleet.runtimes.backends.litert import LiteRtRuntime


@pytest.fixture
def mlp_file(zoo_built, tmp_path):
    b = zoo_built("mlp")
    return b, exporters.get("tflite-int8")().export(b.qgraph, tmp_path / "mlp.int8.tflite")


def _hide_ai_edge_litert(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # None in sys.modules makes the import fail
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)


def test_falls_back_to_tflite_runtime_with_the_same_api(mlp_file, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    b, path = mlp_file
    used = []

    class RecordingInterpreter(Interpreter):
        def __init__(self, *args, **kwargs):
            used.append(kwargs.get("model_path"))
            super().__init__(*args, **kwargs)

    fake = types.ModuleType("tflite_runtime")
    fake.interpreter = types.ModuleType("tflite_runtime.interpreter")
    fake.interpreter.Interpreter = RecordingInterpreter
    _hide_ai_edge_litert(monkeypatch)
    monkeypatch.setitem(sys.modules, "tflite_runtime", fake)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake.interpreter)
    out = load("litert", path).run(b.x)["output"]
    assert used == [str(path)]
    from edgefleet.compress.ir import run_int
    assert np.abs(out - run_int(b.qgraph, b.x)["output"]).max() <= 1.0001 * b.lsb


def test_unavailable_names_the_extra(monkeypatch, tmp_path):
    _hide_ai_edge_litert(monkeypatch)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    assert not LiteRtRuntime.is_available()
    with pytest.raises(BackendUnavailable, match=r"edgefleet\[litert\]"):
        load("litert", tmp_path / "m.tflite")


def test_a_corrupt_file_is_a_backend_error(tmp_path):
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\xff" * 64)
    with pytest.raises(RuntimeBackendError, match="litert") as e:
        load("litert", path)
    assert e.value.__cause__ is not None


def test_specs_come_from_the_signature(mlp_file):
    _, path = mlp_file
    rt = load("litert", path)
    assert [(s.name, s.dtype, s.shape) for s in rt.input_specs] == [("input", "float32", (None, 784))]
    assert rt.output_names == ["output"]
