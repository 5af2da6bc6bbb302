"""The public surface: __all__ lists real names, every registry entry imports, import rules hold."""

import ast
import importlib
from pathlib import Path

import edgefleet
from tests.conftest import REPO


def test_all_names_exist():
    for module in ("edgefleet", "edgefleet.runtimes", "edgefleet.compress.ir", "edgefleet.compress.passes",
                   "edgefleet.runtimes.exporters"):
        mod = importlib.import_module(module)
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.{name}"


def test_every_registry_entry_imports():
    from edgefleet import runtimes
    from edgefleet.compress.passes import get_pass, pass_names
    from edgefleet.runtimes import exporters

    for name in runtimes.names():
        cls = runtimes.get(name)
        assert cls.name == name and cls.targets
    for target in exporters.targets():
        cls = exporters.get(target)
        assert cls.target == target and cls.precision in ("fp32", "int8")
        assert cls.runtime in runtimes.names()
    for name in pass_names():
        assert get_pass(name).name == name


def test_core_import_is_light():
    import subprocess
    import sys

    code = "import sys, edgefleet, edgefleet.bundle, edgefleet.monitoring; print(sorted(m for m in ('torch','onnx','onnxruntime','numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_heavy_imports_stay_in_their_folders():
    """Only runtimes/ imports onnxruntime or LiteRT; only compress/ and the exporters import torch."""
    for path in REPO.glob("*/**/*.py"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith((".venv", "tests/", "benchmarks/", "bench-venv", "build/")):
            continue
        used = _imports(path)
        if used & {"onnxruntime", "ai_edge_litert", "tflite_runtime"}:
            assert rel.startswith("runtimes/"), rel
        if "torch" in used:
            assert rel.startswith(("compress/", "runtimes/exporters/", "runtimes/backends/torch_ref.py")), rel
