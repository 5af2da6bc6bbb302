"""Adaptation from labelled examples: fine-tune a teacher's head (its last linear layer) on new
examples plus the original training data. The coordinator's adaptation jobs call it, then run the
normal export pipeline on the result."""

from __future__ import annotations

from pathlib import Path

from edgefleet._errors import ModelError

__all__ = ["fine_tune_head", "save_weights"]


def fine_tune_head(teacher, data, x_ex, y_ex, *, epochs: int = 15, example_weight: int = 5):
    """Train only the last linear layer of a copy of ``teacher`` on the original training data plus the
    examples (each counted ``example_weight`` times); return (model, accuracies before and after on
    the original validation split and on the examples)."""
    import copy

    import numpy as np
    import torch

    from edgefleet.compress.train import accuracy, fit, predict_logits

    model = copy.deepcopy(teacher).eval()
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not heads:
        raise ModelError("the teacher has no linear layer to fine-tune")
    head = heads[-1]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    frozen = [m for m in model.modules() if m is not head and m is not model]

    def train(mode: bool = True):  # the body stays in eval mode: batch norm statistics do not move
        torch.nn.Module.train(model, mode)
        for m in frozen:
            m.train(False)
        return model
    model.train = train
    before = {"val_before": accuracy(predict_logits(model, data.x_val), data.y_val),
              "examples_before": accuracy(predict_logits(model, x_ex), y_ex)}
    x = np.concatenate([data.x_train] + [x_ex] * example_weight).astype(np.float32)
    y = np.concatenate([data.y_train] + [y_ex] * example_weight)
    model = fit(model, x, y, epochs=epochs, seed=0)
    del model.train
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return model, {**before, "val_after": accuracy(predict_logits(model, data.x_val), data.y_val),
                   "examples_after": accuracy(predict_logits(model, x_ex), y_ex)}


def save_weights(model, path: Path) -> Path:
    import torch
    torch.save(model.state_dict(), path)
    return path
