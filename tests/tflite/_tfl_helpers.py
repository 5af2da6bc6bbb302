"""Helpers of the TFLite tests: capture + quantize a model, export a graph and run it in LiteRT
through edgefleet's ``litert`` backend (the real runtime, with its default XNNPACK delegate)."""

from __future__ import annotations

import numpy as np


def calibration(shape, seed=0, batches=2, batch=4):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, *shape)).astype(np.float32) for _ in range(batches)]


class Built:
    """A captured float graph and its quantized copy, with test inputs from the calibration distribution."""

    def __init__(self, model, shape, seed=0):
        from edgefleet.compress.capture import capture
        from edgefleet.compress.ir import quantize_graph

        self.model = model.eval()
        self.graph = capture(self.model, shape)
        self.qgraph = quantize_graph(self.graph, calibration(shape, seed))
        self.x = np.random.default_rng(seed + 100).standard_normal((3, *shape)).astype(np.float32)

    def torch_output(self, x):
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(x)).numpy()

    @property
    def output(self) -> str:
        return self.graph.outputs[0]

    @property
    def lsb(self) -> float:
        return self.qgraph.qparams[self.output].scalar_scale


def export_and_run(graph, target: str, x, tmp_path):
    """Export ``graph`` to ``target`` and return (path, LiteRT outputs for ``x``)."""
    from edgefleet import runtimes
    from edgefleet.runtimes import exporters

    exporter = exporters.get(target)()
    path = exporter.export(graph, tmp_path / f"{graph.name}.{target}.tflite")
    rt = runtimes.load(exporter.runtime, path)
    return path, rt.run(x)[graph.outputs[0]]

