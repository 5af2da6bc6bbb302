"""Compress a PyTorch model and export a verified bundle.

The model is 'package.module:factory' (a callable returning an nn.Module, optionally with --weights,
a state_dict loaded with weights_only=True) or a .pt2 ExportedProgram. Data is a built-in name
(digits, breast_cancer, wine, iris, fashion_mnist) or an .npz with x and y (several named inputs as
x.<name>, in the order of the model's arguments; y optional for --task embedding). The task sets the
metric of the budget: classifier (accuracy points), embedding (cosine to the fp32 teacher) or
regression (MAE). Passes come from --recipe (a TOML file or a built-in name: default, small) or from
the flags --prune/--lowrank/--distill, which build the same recipe.
"""

from __future__ import annotations

import sys

from edgefleet.cli import add_json_argument, emit_json, human_out


def add_arguments(p) -> None:
    p.add_argument("--model", default="edgefleet.compress.zoo:digits_cnn", help="package.module:factory or a .pt2 file")
    p.add_argument("--weights", help="state_dict file for the factory's model")
    p.add_argument("--data", default="digits", help="built-in data set name or an .npz with x and y")
    p.add_argument("--task", default="classifier", choices=("classifier", "embedding", "regression"),
                   help="what the model is for; sets the budget's metric")
    p.add_argument("--recipe", help="recipe TOML file or built-in name (default, small)")
    p.add_argument("--prune", type=float, metavar="AMOUNT", help="structured pruning: fraction of channels to remove")
    p.add_argument("--unstructured", action="store_true", help="with --prune: magnitude (unstructured) pruning")
    p.add_argument("--lowrank", type=float, metavar="ENERGY", help="low-rank factorisation keeping this energy")
    p.add_argument("--distill", type=int, metavar="EPOCHS", help="distillation epochs after prune/lowrank")
    p.add_argument("--calibration", default="mse", choices=("minmax", "percentile", "mse"), help="activation calibration")
    p.add_argument("--weight-bits", type=int, default=7, choices=(7, 8), help="int8 weight grid (7 is exact on every CPU)")
    p.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning from the start")
    p.add_argument("--max-drop", type=float, help="budget: max drop vs the teacher on validation, in the task's metric "
                   "(default: 1.0 accuracy point; 0.01 cosine; 10%% of the teacher's MAE)")
    p.add_argument("--targets", help="comma-separated artifact targets (default: every registered exporter, plus "
                                     "teacher-fp32: the uncompressed teacher, the cloud fallback's model)")
    p.add_argument("--train-epochs", type=int, default=0, help="train the model on the data first (it becomes the teacher)")
    p.add_argument("--out", default="out/bundle", help="bundle directory to write")
    p.add_argument("--name", help="model name in the manifest (default: the output directory's name)")
    p.add_argument("--version", default="1", help="model version in the manifest")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (same seed, same bundle)")
    p.add_argument("--parity-lsb", type=float, default=2.0, help="parity gate: max |diff| of int8 outputs in LSB")
    p.add_argument("--sign-key", help="raw 32-byte ed25519 private key file (default: the project key made by "
                                      "`edgefleet keys init`)")
    p.add_argument("--no-latency", action="store_true", help="skip latency measurement")
    add_json_argument(p)


def config_from_args(args):
    from edgefleet._errors import ConfigError
    from edgefleet.compress.pipeline import ExportConfig
    from edgefleet.compress.recipe import Recipe, recipe_from_flags

    flags = any(v is not None for v in (args.prune, args.lowrank, args.distill))
    if args.recipe and flags:
        raise ConfigError("give either --recipe or the pass flags (--prune/--lowrank/--distill), not both")
    if args.recipe:
        recipe = Recipe.from_toml(args.recipe)
    else:
        recipe = recipe_from_flags(prune=args.prune, structured=not args.unstructured, lowrank=args.lowrank,
                                   distill=args.distill, method=args.calibration, weight_bits=args.weight_bits, qat=args.qat)
    from edgefleet.keys import signing_key
    key, key_path = signing_key(args.sign_key, "export")
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip()) if args.targets else None
    return ExportConfig(model=args.model, weights=args.weights, data=args.data, task=args.task, recipe=recipe, targets=targets,
                        max_drop=args.max_drop, out=args.out, name=args.name, version=args.version, seed=args.seed,
                        train_epochs=args.train_epochs, parity_lsb=args.parity_lsb,
                        measure_latency=not args.no_latency, progress=sys.stderr.isatty(), signing_key=key,
                        signing_key_path=str(key_path.resolve()))


def run(args) -> int:
    from edgefleet.compress.pipeline import run_export

    import json

    from edgefleet.compress.report import result_json

    result = run_export(config_from_args(args))
    print(result.table(), file=human_out(args))
    emit_json(args, json.loads(result_json(result)))
    return 0
