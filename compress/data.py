"""Data sets for export: built-in (scikit-learn's bundled sets, offline) or a user's ``.npz``.

A :class:`Dataset` holds train/val/test splits as numpy arrays. ``val`` drives calibration, the
accuracy budget and the monitoring reference; ``test`` is held out for the final report.

>>> ds = load_dataset("digits")
>>> ds.x_train.shape[1:], len(ds.labels)
((1, 8, 8), 10)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefleet._errors import DataError

BUILTIN = ("digits", "breast_cancer", "wine", "iris")


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: list[str]
    layout: str = "NCHW"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for arr in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def check_against(self, input_shape: tuple[int, ...]) -> None:
        if self.input_shape != tuple(input_shape):
            raise DataError(f"data set {self.name!r}: samples have shape {list(self.input_shape)}, the model expects "
                            f"{list(input_shape)} (without the batch axis)")


def _split(x: np.ndarray, y: np.ndarray, seed: int, val: float = 0.2, test: float = 0.2):
    """Stratified, seeded split into train/val/test."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_test, n_val = int(round(len(idx) * test)), int(round(len(idx) * val))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    out = []
    for key in ("train", "val", "test"):
        idx = np.sort(np.concatenate(parts[key]))
        out += [x[idx], y[idx]]
    return out


def _validate(x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype.kind not in "fiu":
        raise DataError(f"{where}: x has dtype {x.dtype}; expected a numeric array")
    x = x.astype(np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"{where}: x must be [samples, ...] with at least one sample, got shape {list(x.shape)}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise DataError(f"{where}: x holds NaN or infinite values in {bad} sample(s)")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{where}: y must be a 1-D array of {len(x)} labels, got shape {list(y.shape)}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{where}: y has dtype {y.dtype}; expected integer class labels")
    if y.min() < 0:
        raise DataError(f"{where}: y holds negative class labels")
    return x, y.astype(np.int64)


def load_builtin(name: str, seed: int = 0) -> Dataset:
    from sklearn import datasets as skd

    if name == "digits":
        raw = skd.load_digits()
        x = (raw.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
        labels = [str(i) for i in range(10)]
    elif name in ("breast_cancer", "wine", "iris"):
        raw = getattr(skd, f"load_{name}")()
        x = raw.data.astype(np.float32)
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        labels = [str(n) for n in raw.target_names]
    else:
        raise DataError(f"unknown built-in data set {name!r}; built-in: {', '.join(BUILTIN)}")
    y = raw.target.astype(np.int64)
    return Dataset(name, *_split(x, y, seed), labels=labels, layout="NCHW" if x.ndim == 4 else "NC")


def load_npz(path: str | Path, seed: int = 0) -> Dataset:
    """A ``.npz`` with ``x`` and ``y`` (split here), or with ``x_train``/``y_train``/``x_val``/...
    already split; optional ``labels``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    if "x" in arrays and "y" in arrays:
        x, y = _validate(arrays["x"], arrays["y"], str(path))
        splits = _split(x, y, seed)
    elif all(f"{a}_{s}" in arrays for a in "xy" for s in ("train", "val", "test")):
        splits = []
        for s in ("train", "val", "test"):
            splits += list(_validate(arrays[f"x_{s}"], arrays[f"y_{s}"], f"{path}[{s}]"))
    else:
        raise DataError(f"{path}: expected arrays 'x' and 'y' (or x_train/y_train/x_val/y_val/x_test/y_test), "
                        f"found {', '.join(sorted(arrays)) or 'none'}")
    n_classes = int(max(splits[1].max(), splits[3].max(), splits[5].max())) + 1
    labels = [str(v) for v in arrays["labels"]] if "labels" in arrays else [str(i) for i in range(n_classes)]
    x0 = splits[0]
    return Dataset(path.stem, *splits, labels=labels, layout="NCHW" if x0.ndim == 4 else "NC")


def load_dataset(spec: str, seed: int = 0) -> Dataset:
    """A built-in name (``digits``) or a path to a ``.npz``."""
    if spec in BUILTIN:
        return load_builtin(spec, seed)
    if spec.endswith(".npz") or Path(spec).exists():
        return load_npz(spec, seed)
    raise DataError(f"data {spec!r} is neither a built-in data set ({', '.join(BUILTIN)}) nor an existing .npz file")


#: where Debian's ``dataset-fashion-mnist`` package (requirements/apt.txt) installs the IDX files
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def _idx(path: Path) -> np.ndarray:
    """One gzipped IDX file (big-endian header: magic with the rank, then one u32 per dimension)."""
    import gzip
    try:
        raw = gzip.decompress(path.read_bytes())
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e}); install the Debian package dataset-fashion-mnist") from e
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * rank)
    if raw[2] != 0x08 or data.size != int(np.prod(dims)):
        raise DataError(f"{path}: not an unsigned-byte IDX file of shape {dims}")
    return data.reshape(dims)


def load_fashion_mnist(root: str | Path = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as (x_train, y_train, x_test, y_test): 60,000 + 10,000 images (N, 1, 28, 28),
    float32 in [0, 1], int64 labels."""
    root = Path(root)
    out = []
    for split in ("train", "t10k"):
        x = _idx(root / f"{split}-images-idx3-ubyte.gz")
        y = _idx(root / f"{split}-labels-idx1-ubyte.gz")
        out += [(x[:, None] / 255.0).astype(np.float32), y.astype(np.int64)]
    return tuple(out)
