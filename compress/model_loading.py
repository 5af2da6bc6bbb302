"""Load the user's model: ``package.module:factory`` (+ optional state_dict) or a ``.pt2`` program."""

from __future__ import annotations

import importlib
from pathlib import Path

from torch import nn

from edgefleet._errors import ModelError


class ExportedModule(nn.Module):
    """A ``.pt2`` program as a module. Its graph is fixed at export (batch norm and dropout in the
    mode they were exported in), so train()/eval() only flip the flag and never reach it."""

    def __init__(self, graph_module):
        super().__init__()
        self.program = graph_module

    def forward(self, x):
        return self.program(x)

    def train(self, mode: bool = True):
        self.training = mode
        return self


def load_factory(spec: str):
    if ":" not in spec:
        raise ModelError(f"model {spec!r}: expected 'package.module:factory' or a .pt2 file")
    module_name, attr = spec.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise ModelError(f"model {spec!r}: cannot import module {module_name!r}: {type(e).__name__}: {e}") from e
    try:
        return getattr(module, attr)
    except AttributeError as e:
        raise ModelError(f"model {spec!r}: module {module_name!r} has no attribute {attr!r}") from e


def load_model(spec: str, weights: str | None = None):
    """Return an ``nn.Module`` in eval mode."""
    import torch

    if spec.endswith(".pt2"):
        try:
            program = torch.export.load(spec)
        except Exception as e:
            raise ModelError(f"model {spec}: cannot load the ExportedProgram: {type(e).__name__}: {e}") from e
        model = ExportedModule(program.module())
    else:
        factory = load_factory(spec)
        try:
            model = factory()
        except Exception as e:
            raise ModelError(f"model factory {spec} raised {type(e).__name__}: {e}") from e
        if not isinstance(model, nn.Module):
            raise ModelError(f"model factory {spec} returned {type(model).__name__}, not a torch.nn.Module")
    if weights:
        path = Path(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ModelError(f"weights {path}: cannot load a state_dict with weights_only=True: {type(e).__name__}: {e}") from e
        if not isinstance(state, dict):
            raise ModelError(f"weights {path}: expected a state_dict, got {type(state).__name__}")
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ModelError(f"weights {path} do not fit the model: {str(e).splitlines()[0]}") from e
    return model.eval()
