"""What flows through the compression pipeline: the model being compressed, its teacher, the data."""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from . import batch as B
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
    max_drop: float | None = None  # the accuracy budget (task's metric), set by the pipeline for the passes
    #: op kinds every int8 target of the export can run as float32 precision islands (set by the pipeline)
    island_ops: tuple[str, ...] | None = None
    #: seconds of the sub-steps of the running pass (``timed``), read by the pipeline's timings
    step_seconds: dict[str, float] = field(default_factory=dict)
    _teacher_val: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def start(cls, model: nn.Module, data: Dataset, *, seed: int = 0, progress: bool = False) -> "State":
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return cls(model=model.eval(), teacher=teacher, data=data, seed=seed, progress=progress)

    @contextmanager
    def timed(self, name: str):
        """Time a sub-step of a pass into ``step_seconds[name]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.step_seconds[name] = round(self.step_seconds.get(name, 0.0) + time.perf_counter() - start, 3)

    def capture(self, model: nn.Module | None = None) -> Graph:
        return capture_model(model or self.model, self.data.input_specs)

    def val_accuracy(self, model: nn.Module | None = None) -> float:
        """The task's metric on the validation split (accuracy %, cosine to the teacher, or MAE)."""
        from .tasks import get_task
        from .train import predict_logits

        teacher_out = self.teacher_val_outputs()
        return get_task(self.data.task).score(predict_logits(model or self.model, self.data.x_val), self.data.y_val,
                                              teacher_out)

    def teacher_val_outputs(self) -> np.ndarray | None:
        if self.data.task != "embedding":
            return None  # only the embedding task scores against the teacher
        if self._teacher_val is None:
            from .train import predict_logits
            self._teacher_val = predict_logits(self.teacher, self.data.x_val)
        return self._teacher_val

    def check_replacement(self, model: nn.Module, what: str) -> None:
        """Raise ModelError unless ``model`` runs on the data with the teacher's output shape."""
        import torch

        from edgefleet._errors import ModelError

        x = B.torch_args(B.take(self.data.x_val, slice(0, 2)))
        with torch.no_grad():
            want = self.teacher.eval()(*x).shape
            try:
                got = model.eval()(*x).shape
            except Exception as e:
                raise ModelError(f"{what} does not run on the data ({type(e).__name__}: {e})") from e
        if got != want:
            raise ModelError(f"{what} outputs {list(got)}, the teacher {list(want)}")

    def calibration_batches(self, samples: int, batch: int = 128) -> Iterator[B.Batch]:
        """``samples`` training samples drawn with the run's seed, in batches, each copied out only
        when it is reached (bounded memory for large inputs)."""
        rng = np.random.default_rng(self.seed)
        x = self.data.x_train
        n = B.size(x)
        batch = min(batch, B.chunk_size(x))
        idx = np.sort(rng.choice(n, min(samples, n), replace=False))
        return (B.take(x, idx[i:i + batch]) for i in range(0, len(idx), batch))


def capture_model(model: nn.Module, input_specs: list[B.InputSpec]) -> Graph:
    """Capture a model into the IR from the data's input specs (one float input, or several named
    float/integer inputs in the order of the model's arguments)."""
    from .capture import capture

    if len(input_specs) == 1 and not input_specs[0].is_integer:
        return capture(model, input_specs[0].shape)
    return capture(model, [s.shape for s in input_specs], input_dtype=[s.dtype for s in input_specs])


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_nonzero(model: nn.Module) -> int:
    return int(sum(int((p != 0).sum()) for p in model.parameters()))
