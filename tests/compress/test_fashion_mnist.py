"""The Fashion-MNIST loader reads Debian's dataset-fashion-mnist IDX files (requirements/apt.txt)."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from edgefleet._errors import DataError
from edgefleet.compress.data import FASHION_MNIST_DIR, load_fashion_mnist


@pytest.mark.skipif(not (Path(FASHION_MNIST_DIR) / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_loads():
    ds = load_fashion_mnist()
    assert ds.x_train.shape == (55000, 1, 28, 28) and ds.x_val.shape == (5000, 1, 28, 28)
    assert ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and 0 <= ds.x_test.min() and ds.x_test.max() <= 1
    assert sorted(set(ds.y_test.tolist())) == list(range(10)) and np.bincount(ds.y_test).min() == 1000


def test_a_broken_file_is_a_clear_error(tmp_path, monkeypatch):
    for split in ("train", "t10k"):
        (tmp_path / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 12))
        (tmp_path / f"{split}-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    monkeypatch.setenv("EDGEFLEET_FASHION_MNIST", str(tmp_path))
    with pytest.raises(DataError, match="labels-idx1-ubyte.gz: cannot read"):
        load_fashion_mnist()
    monkeypatch.setenv("EDGEFLEET_FASHION_MNIST", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="not found"):
        load_fashion_mnist()
