"""Adaptation from labelled examples: fine-tune a copy of a teacher on new examples plus the original
training data. The coordinator's adaptation jobs call it, then run the normal export pipeline (with
its accuracy budget on the original validation data) on the result.

``layers="all"`` trains every layer: a covariate shift such as a rotation changes what the features
must detect, which the last linear layer alone cannot undo. ``layers="head"`` trains only the last
linear layer (batch-norm statistics frozen), the cheaper choice for a shift that only moves the
decision boundary. ``augment`` adds jittered copies of each example (small rotations and one-pixel
translations of image-shaped inputs), so a few hundred examples go further.

>>> model, report = fine_tune(teacher, data, x_ex, y_ex, layers="all", augment=5)  # doctest: +SKIP
>>> report["examples_after"] > report["examples_before"]                          # doctest: +SKIP
True
"""

from __future__ import annotations

from pathlib import Path

from edgefleet._errors import ConfigError, ModelError

__all__ = ["fine_tune", "jitter", "save_weights", "LAYERS"]

#: which parameters :func:`fine_tune` trains
LAYERS = ("all", "head")


def fine_tune(teacher, data, x_ex, y_ex, *, layers: str = "all", epochs: int = 15, example_weight: int = 5,
              augment: int = 0, seed: int = 0):
    """Train a copy of ``teacher`` on the original training data plus the examples (each counted
    ``example_weight`` times, plus ``augment`` jittered copies); return (model, accuracies before and
    after on the original validation split and on the examples)."""
    import copy

    import numpy as np
    import torch

    from edgefleet.compress.train import accuracy, fit, predict_logits

    if layers not in LAYERS:
        raise ConfigError(f"fine_tune: layers={layers!r}; expected one of {', '.join(LAYERS)}")
    model = copy.deepcopy(teacher).eval()
    before = {"val_before": accuracy(predict_logits(model, data.x_val), data.y_val),
              "examples_before": accuracy(predict_logits(model, x_ex), y_ex)}
    rng = np.random.default_rng(seed)
    extra_x = [x_ex] * example_weight + [jitter(x_ex, rng) for _ in range(augment)]
    x = np.concatenate([data.x_train] + extra_x).astype(np.float32)
    y = np.concatenate([data.y_train] + [y_ex] * (example_weight + augment))
    if layers == "head":
        model = _fit_head(model, x, y, epochs, seed)
    else:
        model = fit(model, x, y, epochs=epochs, seed=seed).eval()
    return model, {**before, "layers": layers, "augmented_copies": augment,
                   "val_after": accuracy(predict_logits(model, data.x_val), data.y_val),
                   "examples_after": accuracy(predict_logits(model, x_ex), y_ex)}


def _fit_head(model, x, y, epochs: int, seed: int):
    """Train only the last linear layer; the body stays in eval mode (batch-norm statistics frozen)."""
    import torch

    from edgefleet.compress.train import fit

    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not heads:
        raise ModelError("the teacher has no linear layer to fine-tune")
    head = heads[-1]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    frozen = [m for m in model.modules() if m is not head and m is not model]

    def train(mode: bool = True):
        torch.nn.Module.train(model, mode)
        for m in frozen:
            m.train(False)
        return model
    model.train = train
    model = fit(model, x, y, epochs=epochs, seed=seed)
    del model.train
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval()


def jitter(x, rng, degrees: float = 15.0, pixels: int = 1):
    """A copy of a batch of images, each rotated by up to ``degrees`` and shifted by up to ``pixels``;
    inputs that are not images (rows of ``side * side`` values or ``(C, H, W)``) come back unchanged."""
    import numpy as np
    from scipy import ndimage

    shape = x.shape[1:]
    if len(shape) == 1 and round(shape[0] ** 0.5) ** 2 == shape[0] and shape[0] >= 16:
        side = round(shape[0] ** 0.5)
        images = x.reshape(len(x), 1, side, side)
    elif len(shape) == 3 and shape[1] == shape[2]:
        images = x
    else:
        return x.copy()
    out = np.empty_like(images)
    for i, image in enumerate(images):
        turned = ndimage.rotate(image, rng.uniform(-degrees, degrees), axes=(1, 2), reshape=False, order=1)
        out[i] = ndimage.shift(turned, (0, *rng.integers(-pixels, pixels + 1, 2)), order=0)
    return out.reshape(x.shape).astype(x.dtype)


def save_weights(model, path: Path) -> Path:
    import torch
    torch.save(model.state_dict(), path)
    return path
