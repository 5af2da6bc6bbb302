"""``prune_heads``: remove whole attention heads and feed-forward neurons from a BERT-layout encoder."""

from __future__ import annotations

import copy

import numpy as np

from edgefleet._errors import ConfigError, ModelError

from .. import batch as B
from ..state import count_parameters
from . import _bert
from .base import Param, Pass, register_pass


@register_pass
class PruneHeads(Pass):
    """Score every attention head and feed-forward neuron on ``samples`` training inputs, then slice
    the weakest out of the torch modules: ``heads`` heads per layer (their query/key/value rows and
    output-projection columns) and ``ffn`` of each layer's intermediate neurons. A head scores the
    mean norm of its contribution to the attention output; a neuron its mean absolute activation
    times the norm of its output weights. The result is a smaller real model (follow with
    ``distill_hidden`` to recover). Needs the BERT layout of ``compress/zoo/minilm.py``.
    """

    name = "prune_heads"
    params = (
        Param("heads", int, 2, "attention heads to remove from every layer",
              check=lambda v: v >= 0, check_doc=">= 0"),
        Param("ffn", float, 0.5, "fraction of each layer's feed-forward neurons to remove",
              check=lambda v: 0.0 <= v <= 0.95, check_doc="in [0, 0.95]"),
        Param("samples", int, 128, "training inputs scored for importance",
              check=lambda v: v >= 1, check_doc=">= 1"),
    )

    def _check_params(self) -> None:
        if self.heads == 0 and self.ffn == 0.0:
            raise ConfigError("pass prune_heads: nothing to remove (set heads and/or ffn)")

    def _precondition(self, state) -> None:
        for i, layer in enumerate(_bert.layers(state.model)):
            if self.heads >= layer.attention.heads:
                raise ModelError(f"cannot remove {self.heads} of the {layer.attention.heads} heads of layers.{i} "
                                 f"(at least one must stay)")
        if state.data is None or B.size(state.data.x_train) == 0:
            raise ModelError("no training inputs to score heads and neurons on")

    def _run(self, state) -> dict:
        model = copy.deepcopy(state.model)  # a backed-off retry still holds the original
        x = B.take(state.data.x_train, slice(0, self.samples))
        scores = _bert.importance(model, x)
        before = count_parameters(model)
        kept = {}
        for i, (layer, (head_score, ffn_score)) in enumerate(zip(_bert.layers(model), scores)):
            n_heads, n_ffn = layer.attention.heads, layer.intermediate.out_features
            heads = sorted(np.argsort(-head_score, kind="stable")[:n_heads - self.heads].tolist())
            neurons = np.argsort(-ffn_score, kind="stable")[:max(1, n_ffn - int(round(self.ffn * n_ffn)))].tolist()
            if len(heads) < n_heads:
                _bert.keep_heads(layer, heads)
            if len(neurons) < n_ffn:
                _bert.keep_neurons(layer, neurons)
            kept[f"layers.{i}"] = {"heads": heads, "heads_before": n_heads, "ffn": [n_ffn, len(neurons)]}
        state.check_replacement(model, "the pruned model")
        state.model = model.eval()
        return {"params_before": before, "params_after": count_parameters(model), "layers": kept,
                "val_score_after": state.val_accuracy()}

    def backoff(self) -> "Pass | None":
        heads, ffn = self.heads // 2, self.ffn / 2
        if heads == 0 and ffn < 0.1:
            return None
        return PruneHeads(**{**self.params_dict(), "heads": heads, "ffn": ffn if ffn >= 0.1 else 0.0})
