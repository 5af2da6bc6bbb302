"""The main job on embedded defaults: train a digits CNN, compress it two ways, export verified bundles.

1. train the teacher CNN on scikit-learn's digits (seeded; ~10 s on 2 cores);
2. export it with the default recipe (int8) to OUT/digits;
3. export it with the 'small' recipe (prune + lowrank + distill + int8) to OUT/digits-small;
4. print both report tables.
"""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("--out", default="out", help="directory for the bundles")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-epochs", type=int, default=30)


def run(args) -> int:
    import copy
    from pathlib import Path

    import torch

    from edgefleet.compress import zoo
    from edgefleet.compress.data import load_dataset
    from edgefleet.compress.pipeline import ExportConfig, run_export
    from edgefleet.compress.train import fit, seed_everything

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/3] training the digits CNN teacher ({args.train_epochs} epochs)", flush=True)
    seed_everything(args.seed)
    data = load_dataset("digits", seed=args.seed)
    teacher = fit(zoo.digits_cnn(), data.x_train, data.y_train, epochs=args.train_epochs, seed=args.seed,
                  progress=sys.stderr.isatty(), desc="teacher")
    weights = out / "digits_cnn.pt"
    torch.save(copy.deepcopy(teacher).state_dict(), weights)
    results = {}
    for step, (recipe, max_drop, name) in enumerate((("default", 1.0, "digits"), ("small", 2.0, "digits-small")), 2):
        print(f"\n[{step}/3] export with recipe '{recipe}' (budget {max_drop} points) -> {out / name}", flush=True)
        cfg = ExportConfig(model="edgefleet.compress.zoo:digits_cnn", weights=str(weights), data="digits", recipe=recipe,
                           max_drop=max_drop, out=str(out / name), seed=args.seed, progress=sys.stderr.isatty())
        results[name] = run_export(cfg)
        print(results[name].table(), flush=True)
    return 0
