"""Build the Fashion-MNIST bundle the fallback-ladder benchmark runs on (no network: Debian's
``dataset-fashion-mnist`` package, listed in requirements/apt.txt).

    python benchmarks/fashion_bundle.py --out out/fashion
    edgefleet simulate out/fashion/bundle --scenario all --devices 28 --cohorts 7 --data out/fashion/fashion.npz \\
        --teacher-weights out/fashion/teacher.pt --sign-key out/fashion/sign.key --json bench-results/ladder_fashion.json

Writes ``fashion.npz`` (a seeded subset: 12,000 training images, 2,000 validation and 2,000 test from
the official test set, flattened to 784 values in [0, 1]), the trained MLP teacher ``teacher.pt``
(``edgefleet.compress.zoo:fashion_mlp``), a signing key and the exported, signed ``bundle`` (default recipe).
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

SOURCE = Path("/usr/share/datasets/fashion-mnist")
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def build_npz(out: Path, seed: int = 0, n_train: int = 12000, n_val: int = 2000, n_test: int = 2000) -> Path:
    if not SOURCE.is_dir():
        raise SystemExit(f"{SOURCE} not found: apt-get install dataset-fashion-mnist")
    rng = np.random.default_rng(seed)
    xtr, ytr = _idx(SOURCE / "train-images-idx3-ubyte.gz"), _idx(SOURCE / "train-labels-idx1-ubyte.gz")
    xte, yte = _idx(SOURCE / "t10k-images-idx3-ubyte.gz"), _idx(SOURCE / "t10k-labels-idx1-ubyte.gz")
    tr = rng.permutation(len(xtr))[:n_train]
    te = rng.permutation(len(xte))[:n_val + n_test]
    flat = lambda x: (x.reshape(len(x), -1) / 255.0).astype(np.float32)  # noqa: E731
    path = out / "fashion.npz"
    np.savez(path, x_train=flat(xtr[tr]), y_train=ytr[tr].astype(np.int64),
             x_val=flat(xte[te[:n_val]]), y_val=yte[te[:n_val]].astype(np.int64),
             x_test=flat(xte[te[n_val:]]), y_test=yte[te[n_val:]].astype(np.int64), labels=np.array(LABELS))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/fashion")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    from edgefleet._signing import generate_key
    from edgefleet.compress import zoo
    from edgefleet.compress.data import load_dataset
    from edgefleet.compress.pipeline import ExportConfig, run_export
    from edgefleet.compress.train import fit, seed_everything

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    npz = build_npz(out, args.seed)
    data = load_dataset(str(npz), seed=args.seed)
    seed_everything(args.seed)
    torch.set_num_threads(1)
    teacher = fit(zoo.fashion_mlp(), data.x_train, data.y_train, epochs=args.epochs, seed=args.seed)
    torch.save(teacher.state_dict(), out / "teacher.pt")
    key = generate_key()
    (out / "sign.key").write_bytes(key)
    result = run_export(ExportConfig(model="edgefleet.compress.zoo:fashion_mlp", weights=str(out / "teacher.pt"), data=str(npz),
                                     recipe="default", max_drop=1.0, out=str(out / "bundle"), name="fashion-mlp",
                                     seed=args.seed, measure_latency=False, signing_key=key))
    print(result.table())


if __name__ == "__main__":
    main()
