"""Unstructured sparsity masks that survive fine-tuning, and the honest size of a sparse encoding.

``prune structured=false`` stores a boolean mask on each layer as the plain attribute
``_edgefleet_mask`` (not a buffer: the exported model and its state dict stay unchanged, and
``copy.deepcopy`` carries it). Training code wraps its loop in :func:`keep_sparsity`, which zeroes
the masked gradients before every optimizer step (so Adam's moments stay zero there too) and
re-applies the masks before every forward; the hooks are removed on exit so ``torch.export`` sees
a plain module.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn

MASK = "_edgefleet_mask"


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def set_mask(module: nn.Module, mask: torch.Tensor) -> None:
    setattr(module, MASK, mask.to(torch.bool))
    module.weight.mul_(getattr(module, MASK))


def masked(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if getattr(m, MASK, None) is not None]


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    for m in masked(model):
        m.weight.mul_(getattr(m, MASK))


def mask_gradients(model: nn.Module) -> None:
    """A ``before_step`` for :func:`edgefleet.compress.train.fit`: pruned weights get no update."""
    for m in masked(model):
        if m.weight.grad is not None:
            m.weight.grad.mul_(getattr(m, MASK))


@contextmanager
def keep_sparsity(model: nn.Module):
    """Yield a ``before_step`` callback; pruned weights stay exactly zero through training."""
    handles = [m.register_forward_pre_hook(lambda mod, args: apply_masks(mod)) for m in masked(model)]
    try:
        yield mask_gradients
    finally:
        for h in handles:
            h.remove()
        apply_masks(model)


def sparse_bytes(model: nn.Module, value_bytes: int = 4) -> int:
    """Bytes of the parameters with each masked weight in the smaller of a bitmap encoding
    (values + one bit per position) and CSR (values + int32 column index + int32 row pointers);
    every other parameter dense."""
    total = 0
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            mask = getattr(m, MASK, None) if name == "weight" else None
            if mask is None:
                total += p.numel() * value_bytes
                continue
            nnz, n, rows = int(mask.sum()), mask.numel(), mask.shape[0]
            bitmap = nnz * value_bytes + math.ceil(n / 8)
            csr = nnz * (value_bytes + 4) + (rows + 1) * 4
            total += min(bitmap, csr)
    return total
