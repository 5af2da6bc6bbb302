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


def demo_key(out: Path) -> tuple[bytes, Path]:
    """The demo's own signing key (``<out>/demo-key/``), made on first use: the demo signs its bundles
    and its fleet trusts this key, like a real project with its ``edgefleet keys init`` key."""
    from edgefleet.keys import PRIVATE, init_key, load_private
    directory = Path(out) / "demo-key"
    if not (directory / PRIVATE).exists():
        init_key(directory)
    return load_private(directory / PRIVATE), directory / PRIVATE


def export_digits(out: Path, weights: Path, *, seed: int = 0, progress: bool = False,
                  say: Callable[[str], None] = print) -> dict:
    from .pipeline import ExportConfig, run_export

    key, key_path = demo_key(out)
    results = {}
    for recipe, max_drop, name in DEMO_EXPORTS:
        say(f"export with recipe '{recipe}' (budget {max_drop} points) -> {out / name}")
        cfg = ExportConfig(model="edgefleet.compress.zoo:digits_cnn", weights=str(weights), data="digits", recipe=recipe,
                           max_drop=max_drop, out=str(out / name), seed=seed, progress=progress,
                           signing_key=key, signing_key_path=str(key_path.resolve()))
        results[name] = run_export(cfg)
        say(results[name].table())
    return results
