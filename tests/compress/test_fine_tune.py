"""Fine-tuning a teacher on labelled examples (edgefleet.compress.adapt): which layers move, the
jittered copies of image examples, and the accuracies it reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgefleet._errors import ConfigError
from edgefleet.compress.adapt import fine_tune, jitter
from edgefleet.compress.data import load_dataset
from edgefleet.compress.train import fit
from edgefleet.compress.zoo import mlp


@pytest.fixture(scope="module")
def setting():
    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    teacher = fit(torch.nn.Sequential(torch.nn.Flatten(), mlp((64, 32, 10))), data.x_train, data.y_train, epochs=3,
                  seed=0)
    x = np.concatenate([data.x_val, data.x_test])[:60]
    y = np.concatenate([data.y_val, data.y_test])[:60]
    return data, teacher, x[..., ::-1].copy(), y  # the examples: mirrored images, a shift the teacher never saw


def _moved(a, b):
    return [name for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()) if not torch.equal(p, q)]


def test_head_only_moves_the_last_linear_layer_and_all_moves_every_layer(setting):
    data, teacher, x, y = setting
    head, report = fine_tune(teacher, data, x, y, layers="head", epochs=1)
    assert _moved(teacher, head) == ["1.2.weight", "1.2.bias"]
    every, report = fine_tune(teacher, data, x, y, layers="all", epochs=2, augment=2)
    assert _moved(teacher, every) == ["1.0.weight", "1.0.bias", "1.2.weight", "1.2.bias"]
    assert report["layers"] == "all" and report["augmented_copies"] == 2
    assert report["examples_after"] > report["examples_before"]
    assert all(p.requires_grad for p in head.parameters())  # the copy comes back trainable, in eval mode
    assert not head.training and not every.training
    with pytest.raises(ConfigError, match="layers='body'; expected one of all, head"):
        fine_tune(teacher, data, x, y, layers="body")


def test_jitter_turns_and_shifts_images_and_leaves_other_inputs_alone():
    rng = np.random.default_rng(0)
    images = rng.random((5, 64), dtype=np.float32)
    out = jitter(images, rng)
    assert out.shape == images.shape and out.dtype == images.dtype and not np.array_equal(out, images)
    chw = rng.random((3, 1, 8, 8), dtype=np.float32)
    assert jitter(chw, rng).shape == chw.shape
    rows = rng.random((4, 10), dtype=np.float32)  # not square: not an image
    assert np.array_equal(jitter(rows, rng), rows)
