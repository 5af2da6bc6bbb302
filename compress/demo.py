"""The export half of the main job: train the digits CNN teacher and export it with two recipes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

#: (recipe, accuracy budget in points, bundle directory name)
DEMO_EXPORTS = (("default", 1.0, "digits"), ("small", 2.0, "digits-small"))


def train_digits_teacher(out: Path, *, seed: int = 0, epochs: int = 30, progress: bool = False) -> Path:
    import torch

    from . import zoo
    from .data import load_dataset
    from .train import fit, seed_everything

    seed_everything(seed)
    data = load_dataset("digits", seed=seed)
    teacher = fit(zoo.digits_cnn(), data.x_train, data.y_train, epochs=epochs, seed=seed, progress=progress, desc="teacher")
    weights = out / "digits_cnn.pt"
    torch.save(copy.deepcopy(teacher).state_dict(), weights)
    return weights


def export_digits(out: Path, weights: Path, *, seed: int = 0, progress: bool = False,
                  say: Callable[[str], None] = print) -> dict:
    from .pipeline import ExportConfig, run_export

    results = {}
    for recipe, max_drop, name in DEMO_EXPORTS:
        say(f"export with recipe '{recipe}' (budget {max_drop} points) -> {out / name}")
        cfg = ExportConfig(model="edgefleet.compress.zoo:digits_cnn", weights=str(weights), data="digits", recipe=recipe,
                           max_drop=max_drop, out=str(out / name), seed=seed, progress=progress)
        results[name] = run_export(cfg)
        say(results[name].table())
    return results
