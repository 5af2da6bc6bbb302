import hashlib
import os
from pathlib import Path

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


def native_sources(*kinds: str) -> list[str]:
    """File names of native/sources.txt (the one list of the runtime's C files), of the given kinds or all."""
    lines = (Path(__file__).resolve().parents[2] / "native" / "sources.txt").read_text().splitlines()
    rows = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return [name for name, kind in rows if not kinds or kind in kinds]


def run_native(qgraph, x, kernels="best", raw=True):
    model = _native.Model.from_bytes(build_efm(qgraph), kernels=kernels)
    return model.run([x], raw=raw)[0]


def record_case(directory, efm: bytes, x, ref, max_lsb=0, max_ppm=0):
    """Write one case for the C test driver (efm_driver.c): model, input bytes, expected int8 output."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(x)
    name = hashlib.sha256(efm + x.tobytes()).hexdigest()[:16]
    (d / f"{name}.efm").write_bytes(efm)
    (d / f"{name}.in").write_bytes(x.tobytes())
    (d / f"{name}.ref").write_bytes(np.ascontiguousarray(ref, np.int8).tobytes())
    with open(d / "cases.txt", "a") as f:
        f.write(f"{name} {x.shape[0]} {max_lsb} {max_ppm}\n")


def assert_bit_exact(qgraph, x, kernels, max_lsb=0):
    ref = run_int(qgraph, x, raw=True)[qgraph.outputs[0]]
    if os.environ.get("EFM_CASE_DIR"):  # set by test_neon_qemu.py: the op cases for the cross-built driver
        record_case(os.environ["EFM_CASE_DIR"], build_efm(qgraph), x, ref, max_lsb, 1000000 if max_lsb else 0)
    got = run_native(qgraph, x, kernels)
    assert got.shape == ref.shape and got.dtype == np.int8
    diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
    assert diff.max() <= max_lsb, f"{(diff > 0).sum()} of {diff.size} outputs differ, max {diff.max()} LSB"
    return ref, got
