"""The float IR on onnxruntime: what :func:`~edgefleet.compress.ir.run_float` computes, up to float
rounding, from one vectorised call per batch instead of numpy op by op.

Calibration (every tensor observed) and the fp32 reference outputs of a large model use it: a
224 x 224 CNN runs in milliseconds per image here, against seconds in the numpy reference. Where
onnxruntime is missing or the ONNX exporter cannot express the graph, :func:`float_runner` returns
``None`` and callers use ``run_float``.

>>> run = float_runner(graph, every_tensor=True) or run_float          # doctest: +SKIP
>>> outputs = run(graph, x, observe=lambda name, arr: ...)               # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .graph import Graph
from .reference import _feeds

FloatRun = Callable[..., dict]


def float_runner(graph: Graph, *, every_tensor: bool = False, threads: int | None = None) -> FloatRun | None:
    """A function with ``run_float``'s signature, ``run(graph, inputs, observe=None)``, computing
    ``graph`` (the same graph it was built for) on onnxruntime. With ``every_tensor`` each float
    tensor is an output of the one call, and ``observe`` sees them in ``run_float``'s order (inputs,
    then node outputs in graph order). ``None`` when onnxruntime or the ONNX lowering is missing."""
    from edgefleet import runtimes

    if not runtimes.get("onnxruntime").is_available():
        return None
    from edgefleet.runtimes.exporters import get
    from edgefleet.runtimes.exporters.onnx_export import export_fp32_every_tensor

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "float.onnx"
        try:
            if every_tensor:
                names = export_fp32_every_tensor(graph, path)
            else:
                get("onnx-fp32")().export(graph, path)
                names = {o: o for o in graph.outputs}
            rt = runtimes.load("onnxruntime", path, threads=threads)
        except Exception:  # noqa: BLE001 - any graph the ONNX writer or onnxruntime cannot take: the
            return None    # numpy reference runs every graph, and gives the same tensors

    def run(g: Graph, inputs, *, observe: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
        if g is not graph:
            raise ValueError("this runner was built for another graph")
        feeds = _feeds(graph, inputs)
        env = {**feeds, **rt.run(feeds)}
        if observe:
            for name, arr in feeds.items():
                observe(name, arr)
            for node in graph.nodes:
                out = node.outputs[0]
                if out in names:
                    observe(out, env[names[out]])
        return {name: env[names[name]] for name in graph.outputs}

    return run
