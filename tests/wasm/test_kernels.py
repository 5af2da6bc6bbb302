"""The wasm runtime (native/'s C + wasm/'s SIMD128 table, run by Node through the ``wasm`` backend)
is bit-exact with ``native`` on every op test case of ``tests/native/test_ops.py`` and on the zoo
models, in each build and kernel table: the SIMD128 build with its SIMD128 table and with the
portable table, and the portable build.

The op cases are not copied here: the native op tests are run once with their bit-exactness check
replaced by a recorder, so every case they hold (and any added later) is a case here too."""

from __future__ import annotations

import functools
import inspect
import itertools

import numpy as np
import pytest

from edgefleet import _native, runtimes
from edgefleet.compress.ir.reference import run_int
from edgefleet.runtimes.exporters.efm_export import build_efm

from native import efm_cases, test_ops
from runtimes.parity_suite import MODELS, zoo_case

VARIANTS = [("simd128", "wasm-simd128"), ("simd128", "portable"), ("portable", "portable")]

pytestmark = pytest.mark.skipif(not runtimes.get("wasm").is_available(),
                                reason=str(runtimes.get("wasm").unavailable_reason()))


@functools.lru_cache(maxsize=None)
def op_cases() -> tuple:
    """(name, efm bytes, input, reference int8, allowed LSB) for every case of test_ops."""
    cases = []
    current = [""]

    def record(qgraph, x, kernels, max_lsb=0):
        ref = run_int(qgraph, x, raw=True)[qgraph.outputs[0]]
        cases.append((current[0], build_efm(qgraph), np.array(x, copy=True), ref, max_lsb))
        return ref, ref  # the test body's own checks on the reference still run

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(test_ops, "assert_bit_exact", record)
        for fname, fn in inspect.getmembers(test_ops, inspect.isfunction):
            if not fname.startswith("test_"):
                continue
            grids = []
            for mark in getattr(fn, "pytestmark", []):
                if mark.name != "parametrize":
                    continue
                names = [n.strip() for n in mark.args[0].split(",")]
                rows = [getattr(v, "values", v) for v in mark.args[1]]
                grids.append([dict(zip(names, v if len(names) > 1 else (v,))) for v in rows])
            for combo in itertools.product(*grids):
                kw = {k: v for d in combo for k, v in d.items()}
                current[0] = f"{fname}[{'-'.join(str(v) for v in kw.values())}]"
                fn(**kw, kernels="portable")
    assert len(cases) > 100  # the recorder saw the op tests' cases
    return tuple(cases)


def run_wasm(data: bytes, x, variant: str, kernels: str, path):
    path.write_bytes(data)
    rt = runtimes.load("wasm", path, variant=variant, kernels=kernels)
    try:
        assert rt.variant == variant and rt.kernel_path == kernels
        return rt.run_raw(x)[0]
    finally:
        rt.close()


def run_native(data: bytes, x):
    return _native.Model.from_bytes(data, kernels="portable").run([x], raw=True)[0]


@pytest.mark.parametrize("variant,kernels", VARIANTS)
def test_every_op_case_is_bit_exact_with_native(variant, kernels, tmp_path):
    failures = []
    for name, data, x, ref, max_lsb in op_cases():
        got = run_wasm(data, x, variant, kernels, tmp_path / "case.efm")
        want = run_native(data, x)
        if got.shape != want.shape or not np.array_equal(got, want):
            n = int((got != want).sum()) if got.shape == want.shape else -1
            failures.append(f"{name}: {n} outputs differ from native")
        elif np.abs(got.astype(np.int32) - ref.astype(np.int32)).max() > max_lsb:
            failures.append(f"{name}: more than {max_lsb} LSB from run_int")
    assert not failures, f"{len(failures)} of {len(op_cases())} cases:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize("variant,kernels", VARIANTS)
@pytest.mark.parametrize("model_name", MODELS)
def test_zoo_models_are_bit_exact_with_native(model_name, variant, kernels, tmp_path):
    _, qgraph, x = zoo_case(model_name)
    data = build_efm(qgraph)
    for batch in (x[:1], x):  # batch 1 (the browser's case) and a batch
        np.testing.assert_array_equal(run_wasm(data, batch, variant, kernels, tmp_path / "m.efm"), run_native(data, batch))


@pytest.mark.parametrize("case", ["small_cnn", "small_encoder"])
def test_small_models_with_every_op_kind(case, tmp_path):
    data, qgraph = getattr(efm_cases, case)()
    rng = np.random.default_rng(0)
    shape = qgraph.inputs[0].shape[1:]
    x = rng.integers(0, 20, (3, *shape)) if case == "small_encoder" else rng.standard_normal((3, *shape)).astype(np.float32)
    for variant, kernels in VARIANTS:
        np.testing.assert_array_equal(run_wasm(data, x, variant, kernels, tmp_path / "m.efm"), run_native(data, x))
