"""The float IR on onnxruntime: what :func:`~edgefleet.compress.ir.run_float` computes, up to float
rounding, from one vectorised call per batch instead of numpy op by op.

Calibration (every tensor observed) and the fp32 reference outputs of a large model use it: a
224 x 224 CNN runs in tens of milliseconds per image here, against a quarter of a second in the
numpy reference. Where onnxruntime is missing or the ONNX exporter cannot express the graph,
:func:`float_runner` returns ``None`` and callers use ``run_float``.

>>> run = float_runner(graph, every_tensor=True) or run_float          # doctest: +SKIP
>>> outputs = run(graph, x, observe=lambda name, arr: ...)               # doctest: +SKIP

An observer that also has ``needs_values(name) -> bool`` and ``observe_range(name, lo, hi)`` gets
only the minimum and maximum (computed inside onnxruntime) of the tensors whose values it no longer
needs: the same numbers, without copying every activation out.
"""

from __future__ import annotations

import math
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
                names = {o: (o, None, None) for o in graph.outputs}
            session = runtimes.load("onnxruntime", path, threads=threads)
        except Exception:  # noqa: BLE001 - any graph the ONNX writer or onnxruntime cannot take: the
            return None    # numpy reference runs every graph, and gives the same tensors
    inputs = [v.name for v in graph.inputs]
    tapped = [n.outputs[0] for n in graph.nodes if n.outputs[0] in names and n.outputs[0] not in inputs]

    def run(g: Graph, batch, *, observe: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
        if g is not graph:
            raise ValueError("this runner was built for another graph")
        feeds = _feeds(graph, batch)
        if observe is None:
            fetch = {names[o][0] for o in graph.outputs}
        else:
            ranged = getattr(observe, "needs_values", None)
            only_range = {t for t in tapped if ranged is not None and names[t][1] and not ranged(t)}
            fetch = {names[o][0] for o in graph.outputs}
            fetch |= {names[t][0] for t in tapped if t not in only_range}
            fetch |= {r for t in only_range for r in names[t][1:]}
        order = sorted(fetch)
        env = {**feeds, **dict(zip(order, session.run_outputs(order, feeds)))}
        if observe is not None:
            for name, arr in feeds.items():
                observe(name, arr)
            for t in tapped:
                if t in only_range:
                    lo, hi = float(env[names[t][1]]), float(env[names[t][2]])
                    if not (math.isfinite(lo) and math.isfinite(hi)):  # the values say which ones to skip
                        env[names[t][0]] = session.run_outputs([names[t][0]], feeds)[0]
                        observe(t, env[names[t][0]])
                    else:
                        observe.observe_range(t, lo, hi)
                else:
                    observe(t, env[names[t][0]])
        return {name: env[names[name][0]] for name in graph.outputs}

    return run
