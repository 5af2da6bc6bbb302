"""The BERT layout the transformer passes edit, and the surgery they share.

A model follows the layout when it has, like :class:`edgefleet.compress.zoo.minilm.MiniLM`: ``word``
(an ``nn.Embedding``, or a factorised one from ``lowrank``), ``layers`` (an ``nn.ModuleList``) whose
every layer has ``attention`` with ``query``/``key``/``value``/``output`` ``nn.Linear`` and integer
``heads``/``head_dim`` (the context is ``heads * head_dim`` wide), and the feed-forward
``intermediate``/``out`` ``nn.Linear``. The model takes ``(input_ids, attention_mask)``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from edgefleet._errors import ModelError

from .. import batch as B

LAYOUT = ("word (nn.Embedding), layers (nn.ModuleList) of layers with attention.{query,key,value,output} "
          "(nn.Linear) and attention.heads/head_dim, intermediate and out (nn.Linear), as "
          "edgefleet.compress.zoo.minilm.MiniLM")


def layers(model: nn.Module) -> nn.ModuleList:
    """The encoder layers of a BERT-layout model; ModelError naming what is missing otherwise."""
    what = type(model).__name__
    if not isinstance(getattr(model, "word", None), (nn.Embedding, nn.Sequential)):
        raise ModelError(f"{what} is not a BERT-layout encoder: no word embedding 'word' (needs {LAYOUT})")
    stack = getattr(model, "layers", None)
    if not isinstance(stack, nn.ModuleList) or not len(stack):
        raise ModelError(f"{what} is not a BERT-layout encoder: no 'layers' ModuleList (needs {LAYOUT})")
    for i, layer in enumerate(stack):
        att = getattr(layer, "attention", None)
        parts = [getattr(att, p, None) for p in ("query", "key", "value", "output")] + \
                [getattr(layer, p, None) for p in ("intermediate", "out")]
        if not all(isinstance(p, nn.Linear) for p in parts) or not isinstance(getattr(att, "heads", None), int):
            raise ModelError(f"{what}: layers.{i} is not a BERT layer with plain nn.Linear projections "
                             f"(needs {LAYOUT}; run transformer passes before lowrank)")
    return stack


def _rows(linear: nn.Linear, keep: torch.Tensor) -> None:
    linear.weight = nn.Parameter(linear.weight.detach()[keep].clone())
    if linear.bias is not None:
        linear.bias = nn.Parameter(linear.bias.detach()[keep].clone())
    linear.out_features = len(keep)


def _columns(linear: nn.Linear, keep: torch.Tensor) -> None:
    linear.weight = nn.Parameter(linear.weight.detach()[:, keep].clone())
    linear.in_features = len(keep)


def keep_heads(layer: nn.Module, heads: list[int]) -> None:
    """Slice ``layer``'s attention down to ``heads`` (q/k/v rows and the output's columns)."""
    att = layer.attention
    idx = torch.tensor([h * att.head_dim + d for h in heads for d in range(att.head_dim)])
    for proj in (att.query, att.key, att.value):
        _rows(proj, idx)
    _columns(att.output, idx)
    att.heads = len(heads)


def keep_neurons(layer: nn.Module, neurons: list[int]) -> None:
    """Slice ``layer``'s feed-forward block down to ``neurons`` of its intermediate width."""
    idx = torch.tensor(sorted(neurons))
    _rows(layer.intermediate, idx)
    _columns(layer.out, idx)


@torch.no_grad()
def importance(model: nn.Module, x: B.Batch, batch: int = 32) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer, (head scores, FFN neuron scores) on samples ``x``: the mean norm of each head's
    contribution to the attention output (its context through its columns of the output projection)
    and of each neuron's (its mean absolute activation times the norm of its output weights)."""
    stack = layers(model)
    sums = [[0.0, 0.0] for _ in stack]
    hooks = []

    def on_context(i, att):
        def hook(_, args):
            ctx = args[0].reshape(*args[0].shape[:-1], att.heads, att.head_dim)          # [b, s, h, d]
            w = att.output.weight.reshape(att.output.out_features, att.heads, att.head_dim)  # [o, h, d]
            sums[i][0] = sums[i][0] + torch.einsum("bshd,ohd->bsho", ctx, w).norm(dim=-1).mean(dim=(0, 1))
        return hook

    def on_neurons(i, out):
        def hook(_, args):
            sums[i][1] = sums[i][1] + args[0].abs().mean(dim=(0, 1)) * out.weight.norm(dim=0)
        return hook

    for i, layer in enumerate(stack):
        hooks.append(layer.attention.output.register_forward_pre_hook(on_context(i, layer.attention)))
        hooks.append(layer.out.register_forward_pre_hook(on_neurons(i, layer.out)))
    try:
        model.eval()
        for start in range(0, B.size(x), batch):
            model(*B.torch_args(B.take(x, slice(start, start + batch))))
    finally:
        for h in hooks:
            h.remove()
    return [(np.asarray(h), np.asarray(f)) for h, f in sums]


@contextlib.contextmanager
def hidden_states(model: nn.Module, which: list[int]):
    """Collect, per forward call, the embeddings (the first layer's input) and the outputs of layers
    ``which``: yields a list that holds ``[embeddings, hidden_which[0], ...]`` after each call."""
    stack = layers(model)
    seen: list[torch.Tensor] = []
    hooks = [stack[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))]
    hooks += [stack[i].register_forward_hook(lambda _, args, out: seen.append(out)) for i in which]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()
