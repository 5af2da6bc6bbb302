"""``distill_hidden``: a shallower (or pruned) BERT-layout student trained on the teacher's hidden states."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from edgefleet._errors import ModelError

from .. import batch as B
from ..state import count_parameters
from ..train import seed_everything
from . import _bert
from .base import Param, Pass, register_pass


def kept_layers(depth: int, total: int) -> list[int]:
    """The teacher layers a ``depth``-layer student keeps, evenly spaced and ending with the last
    (3 of 6: 1, 3, 5 — every other layer)."""
    return [round((i + 1) * total / depth) - 1 for i in range(depth)]


@register_pass
class DistillHidden(Pass):
    """Distil the current model towards ``state.teacher`` on unlabelled training inputs, matching
    hidden states: the student keeps ``layers`` of its layers (evenly spaced, weights kept), and
    each kept layer's output is pulled to the teacher layer it came from, the embeddings to the
    teacher's embeddings (mean squared error relative to the teacher's mean square, over attended
    tokens), and the model output to the teacher's (1 - cosine plus relative MSE). Without
    ``layers`` the depth stays: the recovery step after ``prune_heads`` or ``lowrank``. Needs the
    BERT layout of ``compress/zoo/minilm.py`` in both the model and the teacher (hidden size equal).
    """

    name = "distill_hidden"
    params = (
        Param("layers", (int, type(None)), None, "student depth (layers kept, evenly spaced); none keeps every layer",
              check=lambda v: v is None or v >= 1, check_doc=">= 1"),
        Param("epochs", int, 2, "passes over the training inputs", check=lambda v: v >= 1, check_doc=">= 1"),
        Param("lr", float, 2e-4, "peak learning rate (AdamW, linear warm-up and decay)", check=lambda v: v > 0, check_doc="> 0"),
        Param("batch", int, 16, "inputs per step", check=lambda v: v >= 1, check_doc=">= 1"),
        Param("samples", (int, type(None)), None, "train on at most this many inputs (none: all)",
              check=lambda v: v is None or v >= 1, check_doc=">= 1"),
        Param("hidden_weight", float, 1.0, "weight of the hidden-state terms against the output terms",
              check=lambda v: v >= 0, check_doc=">= 0"),
    )

    def _precondition(self, state) -> None:
        student, teacher = _bert.layers(state.model), _bert.layers(state.teacher)
        if self.layers is not None and self.layers > len(student):
            raise ModelError(f"layers={self.layers}: the model has only {len(student)} layers")
        if len(student) != len(teacher) and self.layers is None:
            raise ModelError(f"the model has {len(student)} layers and the teacher {len(teacher)}: "
                             f"give layers= to map them")
        if state.data is None or B.size(state.data.x_train) == 0:
            raise ModelError("no training inputs to distil on")

    def _student(self, state) -> tuple[nn.Module, list[int]]:
        model = copy.deepcopy(state.model)
        stack = _bert.layers(model)
        keep = kept_layers(self.layers or len(stack), len(stack))
        model.layers = nn.ModuleList(stack[i] for i in keep)
        teacher_depth = len(_bert.layers(state.teacher))
        # the teacher layer each kept layer came from (the student may already be shallower)
        return model, [round((k + 1) * teacher_depth / len(stack)) - 1 for k in keep]

    def _run(self, state) -> dict:
        seed_everything(state.seed)
        student, targets = self._student(state)
        before = count_parameters(state.model)
        score_before = state.val_accuracy(student)
        x = state.data.x_train
        n = min(B.size(x), self.samples or B.size(x))
        args = B.torch_args(B.take(x, slice(0, n)))
        teacher = state.teacher.eval()
        for p in student.parameters():
            p.requires_grad_(True)
        opt = torch.optim.AdamW(student.parameters(), lr=self.lr, weight_decay=0.01)
        steps = self.epochs * -(-n // self.batch)
        warm = max(1, steps // 10)  # linear warm-up over a tenth of the steps, then linear decay
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (t + 1) / warm) * max(0.0, 1 - t / steps))
        gen = torch.Generator().manual_seed(state.seed)
        losses = []
        with _bert.hidden_states(student, list(range(len(targets)))) as s_seen, \
                _bert.hidden_states(teacher, targets) as t_seen:
            for _ in range(self.epochs):
                student.train()
                for idx in torch.randperm(n, generator=gen).split(self.batch):
                    batch = [a[idx] for a in args]
                    s_seen.clear(), t_seen.clear()
                    with torch.no_grad():
                        t_out = teacher(*batch)
                    s_out = student(*batch)
                    mask = batch[1].to(s_out.dtype) if len(batch) > 1 else None
                    hidden = sum(_relative_mse(s, t, mask) for s, t in zip(s_seen, t_seen)) / len(t_seen)
                    out = (1 - F.cosine_similarity(s_out, t_out, dim=-1)).mean() + _relative_mse(s_out, t_out, None)
                    loss = out + self.hidden_weight * hidden
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    losses.append(float(loss.detach()))
        state.model = student.eval()
        return {"params_before": before, "params_after": count_parameters(student),
                "teacher_layers_kept": targets, "val_score_before": score_before,
                "val_score_after": state.val_accuracy(), "loss_first_last": [losses[0], losses[-1]]}


def _relative_mse(s: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over the attended tokens, relative to the teacher's mean square there."""
    err, power = (s - t).pow(2).mean(dim=-1), t.pow(2).mean(dim=-1)
    if mask is None or err.dim() != mask.dim():
        return err.mean() / power.mean().clamp_min(1e-12)
    return (err * mask).sum() / (power * mask).sum().clamp_min(1e-12)
