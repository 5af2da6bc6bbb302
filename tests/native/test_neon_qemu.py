"""The NEON kernel tables (plain NEON and the sdot dot-product table) on AArch64, without ARM hardware:
the runtime's C and a small driver (efm_driver.c) cross-compiled with Debian's gcc-aarch64-linux-gnu and
run under qemu-user, on every op test case of test_ops.py and on the digits CNN, the MLP, the MobileNetV2
stack and the BERT-like encoder, each against the integer reference (run_int): both tables with one
thread and the dot-product table with three.

qemu checks the integers, not the speed: it translates instructions, so timings under it say nothing
about a real ARM core (native/README.md gives an instruction count per kernel step instead).
Needs ``apt-get install gcc-aarch64-linux-gnu qemu-user`` (requirements/apt.txt); skipped without them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefleet.compress.ir import run_int
from edgefleet.runtimes.exporters.efm_export import build_efm

from .conftest import record_case

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"
SOURCES = sorted(p.name for p in NATIVE.glob("*.c"))  # every C file of the runtime (other ISAs compile to nothing)
CC, QEMU, SYSROOT = "aarch64-linux-gnu-gcc", "qemu-aarch64", "/usr/aarch64-linux-gnu"

pytestmark = pytest.mark.skipif(not (shutil.which(CC) and shutil.which(QEMU)),
                                reason="gcc-aarch64-linux-gnu / qemu-user not installed")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    out = tmp_path_factory.mktemp("aarch64") / "efm_driver"
    proc = subprocess.run([CC, "-O2", "-std=c11", "-fno-math-errno", "-Wall", "-Werror", "-pthread", "-DEFM_THREADS",
                           f"-I{NATIVE}", "-o", str(out), str(Path(__file__).with_name("efm_driver.c")),
                           *[str(NATIVE / s) for s in SOURCES], "-lm"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def run_driver(driver, case_dir):
    proc = subprocess.run([QEMU, "-L", SYSROOT, str(driver), str(case_dir)], capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_driver_reports_a_wrong_output(driver, tmp_path):
    """The driver can fail: one flipped byte of an expected output is caught on every table."""
    from .test_batch_threads import conv_graph, CONVS

    qg, rng = conv_graph(CONVS[2])
    x = rng.standard_normal((2, 6, 10, 16)).astype(np.float32)
    ref = run_int(qg, x, raw=True)["y"].copy()
    ref.reshape(-1)[5] ^= 1
    record_case(tmp_path, build_efm(qg), x, ref)
    rc, out = run_driver(driver, tmp_path)
    assert rc == 1 and "tables: neon neondot (3 threads on neondot)" in out and "3 runs, 3 failed" in out, out


def test_every_op_case_is_bit_exact_on_neon_under_qemu(driver, tmp_path):
    env = {**os.environ, "EFM_CASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           str(Path(__file__).with_name("test_ops.py")), "-k", "portable"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    n_cases = len((tmp_path / "cases.txt").read_text().splitlines())
    assert n_cases > 100
    rc, out = run_driver(driver, tmp_path)
    assert rc == 0 and f"{n_cases} cases, {n_cases * 3} runs, 0 failed" in out, out[-3000:]


def test_models_are_exact_on_neon_under_qemu(driver, tmp_path):
    from .test_models import captured

    for name, batch, max_lsb, max_ppm in (("digits_cnn", 9, 0, 0), ("mlp", 3, 0, 0), ("mobilenet_v2_stack", 2, 0, 0),
                                          ("bert_encoder", 1, 1, 1000)):
        _, _, qg, rng = captured(name)
        x = rng.standard_normal((batch, *qg.inputs[0].shape[1:])).astype(np.float32)
        record_case(tmp_path, build_efm(qg), x, run_int(qg, x, raw=True)[qg.outputs[0]], max_lsb, max_ppm)
    rc, out = run_driver(driver, tmp_path)
    assert rc == 0 and "4 cases, 12 runs, 0 failed" in out, out[-3000:]
