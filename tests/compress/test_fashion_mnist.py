"""The Fashion-MNIST loader reads Debian's dataset-fashion-mnist IDX files (requirements/apt.txt)."""

import gzip

import numpy as np
import pytest

from edgefleet._errors import DataError
from edgefleet.compress.data import FASHION_MNIST_DIR, load_fashion_mnist


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_loads():
    x_tr, y_tr, x_te, y_te = load_fashion_mnist()
    assert x_tr.shape == (60000, 1, 28, 28) and x_te.shape == (10000, 1, 28, 28)
    assert x_tr.dtype == np.float32 and 0 <= x_te.min() and x_te.max() <= 1
    assert sorted(set(y_te.tolist())) == list(range(10)) and np.bincount(y_te).min() == 1000


def test_a_broken_file_is_a_clear_error(tmp_path):
    for split in ("train", "t10k"):
        (tmp_path / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 12))
        (tmp_path / f"{split}-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="labels-idx1-ubyte.gz: cannot read"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(DataError, match="cannot read"):
        load_fashion_mnist(tmp_path / "missing")
