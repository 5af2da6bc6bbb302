"""``distill``: train a student on the teacher's soft targets (also the recovery step after pruning)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgefleet._errors import ConfigError, ModelError

from .. import batch as B
from ..model_loading import load_model
from ..train import fit, seed_everything
from ._channels import channel_groups, channel_scores, keep_indices, prune_groups
from ._sparsity import keep_sparsity
from .base import Param, Pass, register_pass


@register_pass
class Distill(Pass):
    """Knowledge distillation from ``state.teacher`` (Hinton: KL on temperature-softened logits).

    The student is, in order: the model built by ``student`` (``package.module:factory``); the
    current model shrunk to ``width`` of its channels in every prunable group (the strongest
    channels by l1 norm are kept, so training starts from the teacher's weights); or, with
    neither, the current model itself — fine-tuning it back towards the teacher after ``prune``
    or ``lowrank``. Unstructured sparsity masks are kept through training. ``use_labels=false``
    trains on the teacher's outputs alone (unlabelled data; ``alpha`` is then moot).
    """

    name = "distill"
    params = (
        Param("epochs", int, 30, "training epochs", check=lambda v: v >= 1, check_doc=">= 1"),
        Param("temperature", float, 4.0, "softmax temperature of the KD term", check=lambda v: v > 0,
              check_doc="> 0"),
        Param("alpha", float, 0.7, "weight of the KD term (1 - alpha weighs the label loss)",
              check=lambda v: 0.0 <= v <= 1.0, check_doc="in [0, 1]"),
        Param("lr", float, 3e-3, "peak learning rate (one-cycle AdamW)", check=lambda v: v > 0, check_doc="> 0"),
        Param("use_labels", bool, True, "mix in the label loss (false: teacher targets only)"),
        Param("student", (str, type(None)), None, "package.module:factory building the student",
              check=lambda v: v is None or (v.count(":") == 1 and all(v.split(":"))),
              check_doc="'package.module:factory'"),
        Param("width", (float, type(None)), None, "derive the student: keep this fraction of every prunable group",
              check=lambda v: v is None or 0.0 < v <= 1.0, check_doc="in (0, 1]"),
    )

    def _check_params(self) -> None:
        if self.student is not None and self.width is not None:
            raise ConfigError("pass distill: give student or width, not both")

    def _precondition(self, state) -> None:
        if state.data is None or B.size(state.data.x_train) == 0:
            raise ModelError("no training data to distill on")
        if self.student is None and not any(p.requires_grad for p in state.model.parameters()):
            raise ModelError("the model has no trainable parameters")

    def _build_student(self, state) -> tuple[nn.Module, dict]:
        if self.student is not None:
            return _from_factory(self.student, state), {"student": self.student}
        model = copy.deepcopy(state.model)
        if self.width is None:
            return model, {}
        groups = [g for g in channel_groups(state.capture(), model) if not g.blocked]
        if not groups:
            raise ModelError("width: the model has no prunable channel group to shrink")
        plan = [(g, keep_indices(channel_scores(g, "l1"), max(1, int(round(self.width * g.size))))) for g in groups]
        prune_groups(model, [(g, k) for g, k in plan if len(k) < g.size])
        return model, {"channels": {g.describe(): [g.size, len(k)] for g, k in plan}}

    def _run(self, state) -> dict:
        seed_everything(state.seed)
        student, info = self._build_student(state)
        state.check_replacement(student, "the student")
        for p in student.parameters():
            p.requires_grad_(True)
        before = state.val_accuracy(student)
        params_before = sum(p.numel() for p in state.model.parameters())
        d = state.data
        with keep_sparsity(student) as before_step:
            fit(student, d.x_train, d.y_train if self.use_labels else None, teacher=state.teacher,
                epochs=self.epochs, lr=self.lr, temperature=self.temperature, alpha=self.alpha, seed=state.seed,
                progress=state.progress, desc="distill", before_step=before_step, task=d.task)
        state.model = student.eval()
        return {**info, "val_accuracy_before": before, "val_accuracy_after": state.val_accuracy(),
                "teacher_val_accuracy": state.val_accuracy(state.teacher),
                "params_before": params_before, "params_after": sum(p.numel() for p in student.parameters())}


def _from_factory(spec: str, state) -> nn.Module:
    torch.manual_seed(state.seed)  # the student's initial weights are part of the recipe's determinism
    try:
        return load_model(spec)
    except ModelError as e:
        raise ModelError(f"student: {e}") from e

