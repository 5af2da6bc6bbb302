"""The ``torch`` reference backend: runs a saved ``torch.export`` program (``.pt2``) in fp32.

It is the export-time reference (devices carry no torch); bundles do not ship ``.pt2`` files.
"""

from __future__ import annotations

from pathlib import Path

from ..base import Runtime, TensorSpec


class TorchRuntime(Runtime):
    name = "torch"
    extra = "export"
    targets = ("pt2",)

    @classmethod
    def _available(cls):
        import torch  # noqa: F401
        return None

    def _load(self, path: Path):
        import torch

        program = torch.export.load(str(path))
        self._module = program.module()
        specs = []
        for node in program.graph.nodes:
            if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
                val = node.meta["val"]
                shape = tuple(None if i == 0 else int(d) for i, d in enumerate(val.shape))
                specs.append(TensorSpec(node.name, str(val.dtype).replace("torch.", ""), shape))
        outputs = [f"output_{i}" for i in range(len(program.graph_signature.user_outputs))]
        return specs, outputs

    def _run(self, feeds):
        import torch

        with torch.no_grad():
            out = self._module(*(torch.from_numpy(feeds[s.name]) for s in self.input_specs))
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [o.numpy() for o in out]
