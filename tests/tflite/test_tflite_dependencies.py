"""The TFLite target needs neither TensorFlow nor jax: not in edgefleet's requirements for it, not
anywhere in the installed dependency tree of those requirements, and not imported by an export."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

FORBIDDEN = {"tensorflow", "tensorflow-cpu", "tf-nightly", "tensorflow-intel", "tf-keras", "keras", "jax", "jaxlib",
             "litert-torch", "ai-edge-torch", "onnx2tf"}
EXTRAS = ("tflite", "litert")


def _wanted(req: Requirement, extras) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in extras)


def _tree(name: str, extras=()) -> set[str]:
    """Installed distributions reached from ``name`` with ``extras`` (markers evaluated here)."""
    seen, todo = set(), [(name, tuple(extras))]
    while todo:
        dist, ext = todo.pop()
        key = canonicalize_name(dist)
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = md.requires(dist) or []
        except md.PackageNotFoundError:
            continue  # not installed here: its own requirements cannot be read (its name is still checked)
        for line in requires:
            req = Requirement(line)
            if _wanted(req, ext or ("",)):
                todo.append((req.name, tuple(req.extras)))
    return seen


def test_edgefleet_requirements_for_the_tflite_target():
    direct = {canonicalize_name(Requirement(r).name) for r in md.requires("edgefleet") or []
              if _wanted(Requirement(r), EXTRAS)}
    assert {"flatbuffers", "tflite", "ai-edge-litert"} <= direct
    assert not direct & FORBIDDEN


def test_installed_dependency_tree_has_no_tensorflow_or_jax():
    tree = _tree("edgefleet", EXTRAS)
    assert "ai-edge-litert" in tree and "tflite" in tree
    assert not tree & FORBIDDEN, sorted(tree & FORBIDDEN)


def test_exporting_and_running_imports_neither(tmp_path):
    code = f"""
import sys, numpy as np
from edgefleet.compress.ir import Graph, Node, Value
from edgefleet.runtimes import exporters, load
g = Graph([Value("input", (None, 4))], [Node("linear", "fc", ["input"], ["output"], {{"act": "relu"}},
          {{"weight": np.eye(4, dtype=np.float32)}})], ["output"], {{"input": Value("input", (None, 4)),
          "output": Value("output", (None, 4))}})
p = exporters.get("tflite-fp32")().export(g, {str(tmp_path / 'm.tflite')!r})
out = load("litert", p).run(np.array([[1, -2, 3, -4]], np.float32))["output"]
assert out.tolist() == [[1, 0, 3, 0]], out
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "jax", "jaxlib", "torch", "keras"))
print("BAD", bad)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "BAD []" in out.stdout, out.stdout
