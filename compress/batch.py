"""Model inputs as data: one array, or several named arrays sharing the batch axis.

A single-input model takes an ``np.ndarray`` (its input is named ``input``); a model with several
inputs (token ids and an attention mask, say) takes a ``dict`` of name -> array, in the order of the
model's ``forward`` arguments. Every place that slices, counts or feeds samples goes through these
helpers, so both forms flow through the pipeline the same way.

>>> x = {"input_ids": np.zeros((4, 8), np.int64), "attention_mask": np.ones((4, 8), np.int64)}
>>> size(x), size(take(x, slice(0, 2)))
(4, 2)
>>> [s.describe() for s in specs(x)]
['input_ids int64[N, 8]', 'attention_mask int64[N, 8]']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Union

import numpy as np

Batch = Union[np.ndarray, dict]
#: the name of the input of a single-input model
SINGLE_INPUT = "input"
#: input dtypes the pipeline and every runtime accept
INPUT_DTYPES = ("float32", "int64", "int32")
#: input elements per chunk when the numpy reference interpreters run many samples: bounds their
#: memory (a 224 x 224 RGB image is 150k elements: 6 per chunk; an 8 x 8 digit: 128)
CHUNK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class InputSpec:
    """One model input: name, dtype and shape without the batch axis; ``value_range`` bounds an
    integer input (``(0, vocab - 1)`` for token ids), ``None`` when it is free."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    value_range: tuple[int, int] | None = None

    def describe(self) -> str:
        return f"{self.name} {self.dtype}[N, {', '.join(map(str, self.shape))}]"

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith("int")


def as_dict(x: Batch) -> dict[str, np.ndarray]:
    return dict(x) if isinstance(x, Mapping) else {SINGLE_INPUT: x}


def size(x: Batch) -> int:
    """Number of samples."""
    if isinstance(x, Mapping):
        return len(next(iter(x.values())))
    return len(x)


def take(x: Batch, index: Any) -> Batch:
    """Samples ``index`` (a slice or an index array) of every input."""
    if isinstance(x, Mapping):
        return {k: v[index] for k, v in x.items()}
    return x[index]


def concat(parts: list[Batch]) -> Batch:
    if parts and isinstance(parts[0], Mapping):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def resize(x: Batch, n: int) -> Batch:
    """``n`` samples, repeating ``x`` cyclically (a benchmark batch of any size)."""
    idx = np.arange(n) % size(x)
    return {k: np.ascontiguousarray(v) for k, v in as_dict(take(x, idx)).items()} if isinstance(x, Mapping) \
        else np.ascontiguousarray(take(x, idx))


def chunk_size(x: Batch, most: int = 128) -> int:
    per_sample = sum(int(np.prod(a.shape[1:])) for a in as_dict(x).values()) or 1
    return max(1, min(most, CHUNK_ELEMENTS // per_sample))


def map_chunks(fn, x: Batch) -> np.ndarray:
    """``fn`` over ``x`` in chunks of :func:`chunk_size` samples, outputs concatenated."""
    step = chunk_size(x)
    return np.concatenate([fn(take(x, slice(i, i + step))) for i in range(0, size(x), step)])


def specs(x: Batch) -> list[InputSpec]:
    return [InputSpec(name, str(arr.dtype), tuple(arr.shape[1:])) for name, arr in as_dict(x).items()]


def torch_args(x: Batch) -> tuple:
    """Positional arguments for ``model(*args)``, in input order."""
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in as_dict(x).values())


def float_part(x: Batch) -> np.ndarray | None:
    """The one float input of ``x`` flattened per sample, or ``None`` when the model takes several
    inputs or an integer one (the monitoring reference then projects the outputs instead)."""
    if isinstance(x, Mapping) or x.dtype.kind != "f":
        return None
    return x.reshape(len(x), -1)


def example_inputs(input_specs: list[InputSpec], batch: int = 2) -> tuple:
    """torch tensors to trace a model with: zeros for float inputs, ones for integer ones (a valid
    token id and an 'attend' mask)."""
    import torch

    out = []
    for s in input_specs:
        if s.is_integer:
            out.append(torch.ones((batch, *s.shape), dtype=getattr(torch, s.dtype)))
        else:
            out.append(torch.zeros((batch, *s.shape), dtype=torch.float32))
    return tuple(out)
