"""What flows through the compression pipeline: the model being compressed, its teacher, the data."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from .data import Dataset
from .ir.graph import Graph


@dataclass
class State:
    """Passes read and replace ``model`` (a torch module, eval mode); ``quantize`` sets ``qgraph``."""

    model: nn.Module
    teacher: nn.Module
    data: Dataset
    seed: int = 0
    progress: bool = False
    graph: Graph | None = None   # float IR of ``model``, captured by ``quantize``
    qgraph: Graph | None = None  # the quantized IR: the one set of int8 parameters every exporter writes
    notes: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, model: nn.Module, data: Dataset, *, seed: int = 0, progress: bool = False) -> "State":
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return cls(model=model.eval(), teacher=teacher, data=data, seed=seed, progress=progress)

    def capture(self) -> Graph:
        from .capture import capture
        return capture(self.model, self.data.input_shape)

    def val_accuracy(self, model: nn.Module | None = None) -> float:
        from .train import accuracy, predict_logits
        return accuracy(predict_logits(model or self.model, self.data.x_val), self.data.y_val)

    def check_replacement(self, model: nn.Module, what: str) -> None:
        """Raise ModelError unless ``model`` runs on the data with the teacher's output shape."""
        import torch

        from edgefleet._errors import ModelError

        x = torch.from_numpy(np.ascontiguousarray(self.data.x_val[:2]))
        with torch.no_grad():
            want = self.teacher.eval()(x).shape
            try:
                got = model.eval()(x).shape
            except Exception as e:
                raise ModelError(f"{what} does not run on the data ({type(e).__name__}: {e})") from e
        if got != want:
            raise ModelError(f"{what} outputs {list(got)}, the teacher {list(want)}")

    def calibration_batches(self, samples: int, batch: int = 128) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        x = self.data.x_train
        idx = np.sort(rng.choice(len(x), min(samples, len(x)), replace=False))
        return [x[idx[i:i + batch]] for i in range(0, len(idx), batch)]


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_nonzero(model: nn.Module) -> int:
    return int(sum(int((p != 0).sum()) for p in model.parameters()))
