import numpy as np
import pytest

from edgefleet import _native  # the native tests need the built extension: fail loudly if it is missing
from edgefleet.compress.ir.reference import run_int
from edgefleet.runtimes.exporters.efm_export import build_efm

#: every kernel table this CPU runs (portable everywhere; avx2, avxvnni where the CPU has them)
PATHS = tuple(_native.kernel_tables())


@pytest.fixture(params=PATHS)
def kernels(request):
    return request.param


def run_native(qgraph, x, kernels="best", raw=True):
    model = _native.Model.from_bytes(build_efm(qgraph), kernels=kernels)
    return model.run([x], raw=raw)[0]


def assert_bit_exact(qgraph, x, kernels, max_lsb=0):
    ref = run_int(qgraph, x, raw=True)[qgraph.outputs[0]]
    got = run_native(qgraph, x, kernels)
    assert got.shape == ref.shape and got.dtype == np.int8
    diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
    assert diff.max() <= max_lsb, f"{(diff > 0).sum()} of {diff.size} outputs differ, max {diff.max()} LSB"
    return ref, got
