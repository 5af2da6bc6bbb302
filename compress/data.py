"""Data sets for export: built-in (scikit-learn's bundled sets, Fashion-MNIST), or a user's ``.npz``.

A :class:`Dataset` holds train/val/test splits. ``x`` is one array, or a dict of named arrays for a
model with several inputs (see :mod:`edgefleet.compress.batch`); ``y`` holds class labels
(classifier), real-valued targets (regression) or nothing (embedding). ``val`` drives calibration,
the accuracy budget and the monitoring reference; ``test`` is held out for the final report.

>>> ds = load_dataset("digits")
>>> ds.x_train.shape[1:], len(ds.labels)
((1, 8, 8), 10)
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefleet._errors import DataError

from . import batch as B
from .tasks import get_task

BUILTIN = ("digits", "breast_cancer", "wine", "iris", "fashion_mnist")
#: where Debian's ``dataset-fashion-mnist`` puts the IDX files (``EDGEFLEET_FASHION_MNIST`` overrides)
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


@dataclass
class Dataset:
    name: str
    x_train: B.Batch
    y_train: np.ndarray | None
    x_val: B.Batch
    y_val: np.ndarray | None
    x_test: B.Batch
    y_test: np.ndarray | None
    labels: list[str] = field(default_factory=list)
    layout: str = "NCHW"
    task: str = "classifier"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the (first) input without the batch axis."""
        return self.input_specs[0].shape

    @property
    def input_specs(self) -> list[B.InputSpec]:
        return B.specs(self.x_train)

    @property
    def num_classes(self) -> int | None:
        return len(self.labels) if self.task == "classifier" else None

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            for arr in (B.as_dict(part).values() if part is not None else ()):
                h.update(np.ascontiguousarray(arr).data)  # the buffer itself: no copy of a large split
        return h.hexdigest()

    def check_against(self, input_shape: tuple[int, ...]) -> None:
        if self.input_shape != tuple(input_shape):
            raise DataError(f"data set {self.name!r}: samples have shape {list(self.input_shape)}, the model expects "
                            f"{list(input_shape)} (without the batch axis)")


def _split(x: B.Batch, y: np.ndarray | None, seed: int, stratify: bool, val: float = 0.2, test: float = 0.2):
    """Seeded split into train/val/test (stratified by class for a classifier)."""
    rng = np.random.default_rng(seed)
    n = B.size(x)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
    parts = {"train": [], "val": [], "test": []}
    for idx in groups:
        idx = rng.permutation(idx)
        n_test, n_val = int(round(len(idx) * test)), int(round(len(idx) * val))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    out = []
    for key in ("train", "val", "test"):
        idx = np.sort(np.concatenate(parts[key]))
        out += [B.take(x, idx), None if y is None else y[idx]]
    return out


def _validate_x(x: B.Batch, where: str) -> B.Batch:
    arrays = {}
    n = None
    for name, arr in B.as_dict(x).items():
        at = f"{where}: x" if name == B.SINGLE_INPUT and not isinstance(x, dict) else f"{where}: input {name!r}"
        if arr.dtype.kind not in "fiu":
            raise DataError(f"{at} has dtype {arr.dtype}; expected a numeric array")
        if arr.ndim < 2 or len(arr) == 0:
            raise DataError(f"{at} must be [samples, ...] with at least one sample, got shape {list(arr.shape)}")
        if n is not None and len(arr) != n:
            raise DataError(f"{at} has {len(arr)} samples, the other inputs {n}")
        n = len(arr)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
            if not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
                raise DataError(f"{at} holds NaN or infinite values in {bad} sample(s)")
        else:
            arr = arr.astype(np.int64)
        arrays[name] = arr
    return arrays if isinstance(x, dict) else arrays[B.SINGLE_INPUT]


def _validate(x: B.Batch, y: np.ndarray | None, where: str, task: str):
    x = _validate_x(x, where)
    if y is not None and len(y) != B.size(x):
        raise DataError(f"{where}: y has {len(y)} entries for {B.size(x)} samples")
    return x, get_task(task).check_labels(y, where)


def _fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    root = Path(os.environ.get("EDGEFLEET_FASHION_MNIST", FASHION_MNIST_DIR))

    def idx(stem: str) -> np.ndarray:
        path = next((p for p in (root / f"{stem}.gz", root / stem) if p.is_file()), None)
        if path is None:
            raise DataError(f"Fashion-MNIST: {root / stem}.gz not found; install the Debian package "
                            f"dataset-fashion-mnist (requirements/apt.txt) or set EDGEFLEET_FASHION_MNIST")
        try:
            raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
        except OSError as e:
            raise DataError(f"Fashion-MNIST: {path}: cannot read ({e})") from e
        ndim = raw[3] if len(raw) > 4 else 0
        dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim) if len(raw) >= 4 + 4 * ndim else np.empty(0, np.uint8)
        if raw[2:3] != b"\x08" or not dims or data.size != int(np.prod(dims)):
            raise DataError(f"Fashion-MNIST: {path}: not an unsigned-byte IDX file (dimensions {dims})")
        return data.reshape(dims)

    return (idx("train-images-idx3-ubyte"), idx("train-labels-idx1-ubyte"),
            idx("t10k-images-idx3-ubyte"), idx("t10k-labels-idx1-ubyte"))


def load_fashion_mnist(seed: int = 0, val: int = 5000) -> Dataset:
    """Fashion-MNIST (28x28 grey, 10 classes): 55k train / 5k val from the training file, the 10k test file."""
    xtr, ytr, xte, yte = _fashion_mnist()
    perm = np.random.default_rng(seed).permutation(len(xtr))
    to_x = lambda a: (a.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)  # noqa: E731
    tr, va = np.sort(perm[val:]), np.sort(perm[:val])
    return Dataset("fashion_mnist", to_x(xtr[tr]), ytr[tr].astype(np.int64), to_x(xtr[va]), ytr[va].astype(np.int64),
                   to_x(xte), yte.astype(np.int64), labels=list(FASHION_LABELS), layout="NCHW")


def load_builtin(name: str, seed: int = 0, task: str = "classifier") -> Dataset:
    from sklearn import datasets as skd

    if name == "fashion_mnist":
        return load_fashion_mnist(seed)
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
    return Dataset(name, *_split(x, y, seed, stratify=True), labels=labels, layout="NCHW" if x.ndim == 4 else "NC")


def _inputs(arrays: dict, key: str) -> B.Batch | None:
    """``key`` itself (one input) or ``key.<name>`` entries (named inputs, in file order)."""
    if key in arrays:
        return arrays[key]
    named = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(key + ".")}
    return named or None


def load_npz(path: str | Path, seed: int = 0, task: str = "classifier") -> Dataset:
    """A ``.npz`` with ``x`` and ``y`` (split here), or with ``x_train``/``y_train``/``x_val``/...
    already split. Several inputs are stored as ``x.<name>`` (``x_train.<name>``, ...) in the order
    of the model's arguments. ``y`` is optional for an embedding; ``labels`` names a classifier's classes."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    need_y = get_task(task).needs_labels
    x = _inputs(arrays, "x")
    if x is not None and ("y" in arrays or not need_y):
        x, y = _validate(x, arrays.get("y"), str(path), task)
        splits = _split(x, y, seed, stratify=task == "classifier")
    elif all(_inputs(arrays, f"x_{s}") is not None and (f"y_{s}" in arrays or not need_y)
             for s in ("train", "val", "test")):
        splits = []
        for s in ("train", "val", "test"):
            splits += list(_validate(_inputs(arrays, f"x_{s}"), arrays.get(f"y_{s}"), f"{path}[{s}]", task))
    else:
        want = "'x' and 'y'" if need_y else "'x'"
        raise DataError(f"{path}: expected arrays {want} (or x_train/y_train/x_val/y_val/x_test/y_test; named inputs "
                        f"as x.<name>), found {', '.join(sorted(arrays)) or 'none'}")
    labels: list[str] = []
    if task == "classifier":
        n_classes = int(max(splits[1].max(), splits[3].max(), splits[5].max())) + 1
        labels = [str(v) for v in arrays["labels"]] if "labels" in arrays else [str(i) for i in range(n_classes)]
    x0 = splits[0]
    layout = "NCHW" if not isinstance(x0, dict) and x0.ndim == 4 else "NC"
    return Dataset(path.stem, *splits, labels=labels, layout=layout, task=task)


def load_dataset(spec: str, seed: int = 0, task: str = "classifier") -> Dataset:
    """A built-in name (``digits``) or a path to a ``.npz``."""
    get_task(task)
    if spec in BUILTIN:
        if task != "classifier":
            raise DataError(f"built-in data set {spec!r} is a classification set; --task {task} needs an .npz")
        return load_builtin(spec, seed)
    if spec.endswith(".npz") or Path(spec).exists():
        return load_npz(spec, seed, task)
    raise DataError(f"data {spec!r} is neither a built-in data set ({', '.join(BUILTIN)}) nor an existing .npz file")


#: where Debian's ``weka`` package puts its example ARFF files (``EDGEFLEET_WEKA_EXAMPLES`` overrides;
#: ``apt-get download weka && dpkg -x weka_*.deb DIR`` gives them without installing Java)
WEKA_EXAMPLES = "/usr/share/doc/weka/examples"


def load_reuters(topic: str = "Grain") -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Reuters-21578 ModApte, one topic against the rest (``Grain`` or ``Corn``), from weka's ARFF
    examples: ``(train_texts, train_labels, test_texts, test_labels)``."""
    root = Path(os.environ.get("EDGEFLEET_WEKA_EXAMPLES", WEKA_EXAMPLES))

    def read(split: str):
        path = root / f"Reuters{topic}-{split}.arff"
        if not path.is_file():
            raise DataError(f"{path} not found: unpack Debian's weka package (apt-get download weka; dpkg -x "
                            f"weka_*.deb DIR) and set EDGEFLEET_WEKA_EXAMPLES=DIR/usr/share/doc/weka/examples")
        texts, labels = [], []
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("'"):
                text, label = line.rsplit(",", 1)
                texts.append(text[1:-1].replace("\\n", " ").replace("\\'", "'").replace('\\"', '"'))
                labels.append(int(label))
        return texts, np.asarray(labels, np.int64)

    return (*read("train"), *read("test"))
