"""``prune``: structured channel pruning (a physically smaller model) or unstructured magnitude pruning."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from edgefleet._errors import ModelError

from ..state import count_nonzero, count_parameters
from ._channels import channel_groups, channel_scores, keep_indices, prune_groups
from ._sparsity import prunable_weights, set_mask, sparse_bytes
from .base import Param, Pass, register_pass


@register_pass
class Prune(Pass):
    """Remove the least important channels/neurons, or zero the smallest weights.

    ``structured=true`` captures the model, finds every channel group (a layer's output channels
    together with everything that depends on them: the next layers' inputs, folded batch norms,
    depthwise convs, and all branches of a residual add, which share one keep-set), ranks channels
    by the ``criterion`` norm of their weights and slices the torch modules: the exported model has
    fewer parameters and runs faster. Graph inputs and outputs are never pruned.

    ``structured=false`` zeroes the globally smallest ``amount`` of conv/linear weights. The dense
    parameter count does not change; only a sparse or compressed encoding shrinks, and the pass
    reports that size. Masks stay attached to the layers so that ``distill`` and QAT keep the
    zeros through fine-tuning.
    """

    name = "prune"
    params = (
        Param("amount", float, 0.5, "fraction of channels (or weights) to remove per prunable group",
              check=lambda v: 0.0 <= v <= 0.95, check_doc="in [0, 0.95]"),
        Param("structured", bool, True, "remove whole channels/neurons (true) or zero single weights (false)"),
        Param("criterion", str, "l1",
              "structured channel importance: l1 or l2 norm of its weights (unstructured ranks by |w|)",
              ("l1", "l2")),
        Param("min_channels", int, 4, "never prune a group below this many channels",
              check=lambda v: v >= 1, check_doc=">= 1"),
    )

    def _precondition(self, state) -> None:
        if self.structured:
            groups = [g for g in self._groups(state) if not g.blocked]
            if not groups:
                raise ModelError("no prunable channel group: every channel dimension feeds a graph output, "
                                 "a non-sliceable op or a non-standard layer")
        elif not prunable_weights(state.model):
            raise ModelError("the model has no nn.Conv2d or nn.Linear weights to prune")

    def _groups(self, state):
        # capture once per model object: _precondition and _run see the same model
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] is not state.model:
            self._cache = (state.model, channel_groups(state.capture(), state.model))
        return self._cache[1]

    def _run(self, state) -> dict:
        # work on a copy: a pipeline that backs off to a milder pass still holds the original model
        model = copy.deepcopy(state.model)
        changed = self._structured(state, model) if self.structured else self._unstructured(model)
        if self.structured:
            state.check_replacement(model, "the pruned model")  # before replacing: a failure leaves the state as it was
        state.model = model.eval()
        return changed

    def _structured(self, state, model: nn.Module) -> dict:
        groups = self._groups(state)
        self._cache = None
        before = _layer_params(model)
        plan, kept = [], {}
        for g in groups:
            if g.blocked:
                continue
            n_keep = max(min(g.size, self.min_channels), g.size - int(round(self.amount * g.size)))
            if n_keep < g.size:
                plan.append((g, keep_indices(channel_scores(g, self.criterion), n_keep)))
            kept[g.describe()] = [g.size, n_keep]
        prune_groups(model, plan)
        after = _layer_params(model)
        return {
            "params_before": count_parameters(state.model),
            "params_after": count_parameters(model),
            "channels": kept,  # group -> [before, after]
            "layers": {k: [before[k], after[k]] for k in before if before[k] != after[k]},
            "skipped_groups": {g.describe(): g.blocked for g in groups if g.blocked and g.producers},
        }

    @torch.no_grad()
    def _unstructured(self, model: nn.Module) -> dict:
        layers = prunable_weights(model)
        nonzero_before = count_nonzero(model)
        mags = torch.cat([m.weight.detach().abs().reshape(-1) for _, m in layers])
        k = int(math.floor(self.amount * mags.numel()))
        # k-th smallest magnitude is the global threshold; ties at it are broken by position so that
        # exactly k weights go (deterministic)
        order = torch.argsort(mags, stable=True)
        zero = torch.zeros(mags.numel(), dtype=torch.bool)
        zero[order[:k]] = True
        offset, per_layer = 0, {}
        for name, m in layers:
            n = m.weight.numel()
            mask = (~zero[offset:offset + n]).reshape(m.weight.shape)
            old = getattr(m, "_edgefleet_mask", None)
            set_mask(m, mask if old is None else mask & old)
            offset += n
            per_layer[name] = round(1.0 - float(m._edgefleet_mask.float().mean()), 4)
        total = count_parameters(model)
        return {
            "params_before": total,
            "params_after": total,  # dense count: zeros are still stored by a dense format
            "nonzero_before": nonzero_before,
            "nonzero_after": count_nonzero(model),
            "weight_sparsity": round(float(zero.float().mean()), 4),
            "layer_sparsity": per_layer,
            "dense_bytes": total * 4,
            "sparse_bytes": sparse_bytes(model),
        }

    def backoff(self) -> "Pass | None":
        milder = self.amount / 2
        if milder < 0.1:
            return None
        return Prune(**{**self.params_dict(), "amount": milder})


def _layer_params(model: nn.Module) -> dict[str, int]:
    return {name: sum(p.numel() for p in m.parameters(recurse=False))
            for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))}

