"""``lowrank``: SVD factorisation of linear and convolution layers into two thinner layers."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from edgefleet._errors import ModelError

from ..state import count_parameters
from .base import Param, Pass, register_pass

_LAYERS = ("linear", "conv", "all", "embedding")


class Factorized(nn.Sequential):
    """Two layers standing in for one: ``W ~= U_r @ V_r``. A plain Sequential to capture and export;
    the type only marks it so that ``lowrank`` never factorises its own output again."""


@register_pass
class LowRank(Pass):
    """Replace each large layer ``W`` (out x in) by its truncated SVD ``U_r S_r V_r``.

    ``nn.Linear`` becomes ``Linear(in -> r, no bias)`` then ``Linear(r -> out)``; a ``k x k``
    ``nn.Conv2d`` becomes ``Conv2d(k x k, r, same stride/padding/dilation, no bias)`` then a
    ``1 x 1`` ``Conv2d(r -> out)`` with the original bias. The rank keeps ``energy`` of the squared
    singular values, or — with ``param_budget`` — the largest rank within that fraction of the
    layer's weights. A layer is changed only when this saves parameters; grouped convs and layers
    under ``min_params`` weights are left alone.

    ``layers="embedding"`` factorises ``nn.Embedding`` tables instead (ALBERT's factorised
    embedding): ``Embedding(vocab, r)`` then ``Linear(r -> dim, no bias)``. Token ids, the vocabulary
    and the tokenizer stay exactly as they were; only the table's rank shrinks.
    """

    name = "lowrank"
    params = (
        Param("energy", float, 0.9, "fraction of the squared singular values to keep",
              check=lambda v: 0.0 < v <= 1.0, check_doc="in (0, 1]"),
        Param("param_budget", (float, type(None)), None,
              "keep at most this fraction of each layer's weights (overrides energy)",
              check=lambda v: v is None or 0.0 < v < 1.0, check_doc="in (0, 1)"),
        Param("layers", str, "all", "which layers to factorise: linear, conv, all (both) or embedding", _LAYERS),
        Param("min_params", int, 4096, "skip layers with fewer weights than this",
              check=lambda v: v >= 0, check_doc=">= 0"),
    )

    def _candidates(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        kinds = {"linear": (nn.Linear,), "conv": (nn.Conv2d,), "all": (nn.Linear, nn.Conv2d),
                 "embedding": (nn.Embedding,)}[self.layers]
        inside = {n for n, m in model.named_modules() if isinstance(m, Factorized)}
        out = []
        for name, m in model.named_modules():
            # the root cannot be swapped in place; a layer inside a Factorized is already factorised
            if not name or type(m) not in kinds or any(name.startswith(f + ".") for f in inside):
                continue
            if isinstance(m, nn.Conv2d) and (m.groups != 1 or isinstance(m.padding, str)):
                continue
            if m.weight.numel() >= self.min_params and min(m.weight.shape[0], m.weight[0].numel()) > 1:
                out.append((name, m))
        return out

    def _precondition(self, state) -> None:
        if not self._candidates(state.model):
            raise ModelError(f"no {'' if self.layers == 'all' else self.layers + ' '}layer with at least "
                             f"{self.min_params} weights to factorise (grouped convs are skipped)")

    def rank(self, s: np.ndarray, n_out: int, n_in: int) -> int:
        if self.param_budget is not None:
            return max(1, int(self.param_budget * n_out * n_in // (n_out + n_in)))
        energy = np.cumsum(s.astype(np.float64) ** 2)
        total = energy[-1]
        if total == 0:
            return 1
        # the 1e-9 slack lets energy=1.0 stop at the numerical rank instead of float noise
        return int(np.searchsorted(energy, (self.energy - 1e-9) * total) + 1)

    @torch.no_grad()
    def _run(self, state) -> dict:
        model = copy.deepcopy(state.model)  # the original stays intact for a backed-off retry
        before = count_parameters(model)
        layers, skipped = {}, {}
        for name, m in self._candidates(model):
            w = m.weight.detach().double()
            n_out = w.shape[0]
            mat = w.reshape(n_out, -1)
            n_in = mat.shape[1]
            u, s, vt = torch.linalg.svd(mat, full_matrices=False)
            r = min(self.rank(s.numpy(), n_out, n_in), len(s))
            if r * (n_out + n_in) >= n_out * n_in:
                skipped[name] = f"rank {r} of {len(s)} would not save parameters"
                continue
            root = s[:r].sqrt()
            first = (root[:, None] * vt[:r]).float()          # r x in
            second = (u[:, :r] * root[None, :]).float()        # out x r
            new = _factorize(m, first, second, r)
            _replace(model, name, new)
            layers[name] = {"rank": r, "full_rank": len(s), "params_before": sum(p.numel() for p in m.parameters()),
                            "params_after": sum(p.numel() for p in new.parameters())}
        # nothing saved is an honest no-op (a backed-off energy may keep full rank), not an error
        state.model = model.eval()
        return {"params_before": before, "params_after": count_parameters(model), "layers": layers,
                "skipped": skipped}

    def backoff(self) -> "Pass | None":
        # move halfway to "keep everything": 0.9 -> 0.95 -> 0.975 -> 0.9875 -> stop
        key = "param_budget" if self.param_budget is not None else "energy"
        milder = (getattr(self, key) + 1.0) / 2
        if milder > 0.99:
            return None
        return LowRank(**{**self.params_dict(), key: milder})


def _factorize(m: nn.Module, first: torch.Tensor, second: torch.Tensor, r: int) -> Factorized:
    if isinstance(m, nn.Embedding):  # rows are tokens: table (vocab x r), then (r -> dim)
        table, up = nn.Embedding(m.num_embeddings, r, padding_idx=m.padding_idx), nn.Linear(r, m.embedding_dim, bias=False)
        table.weight.copy_(second)
        up.weight.copy_(first.T)
        return Factorized(table, up).train(m.training)
    bias = m.bias is not None
    if isinstance(m, nn.Linear):
        a = nn.Linear(m.in_features, r, bias=False)
        b = nn.Linear(r, m.out_features, bias=bias)
        a.weight.copy_(first)
    else:
        a = nn.Conv2d(m.in_channels, r, m.kernel_size, m.stride, m.padding, m.dilation, bias=False,
                      padding_mode=m.padding_mode)
        b = nn.Conv2d(r, m.out_channels, 1, bias=bias)
        a.weight.copy_(first.reshape(r, *m.weight.shape[1:]))
        second = second.reshape(m.out_channels, r, 1, 1)
    b.weight.copy_(second)
    if bias:
        b.bias.copy_(m.bias.detach())
    return Factorized(a, b).train(m.training)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    holder = model.get_submodule(parent) if parent else model
    setattr(holder, leaf, new)
