"""The kernels are one source of truth for native and browser: the same C must build for wasm32 as
freestanding code (no libc, no OS) and link with no undefined symbol. Needs clang + wasm-ld
(``apt-get install clang lld``); skipped where they are missing."""

import shutil
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[2] / "native"
SOURCES = ["efm_load.c", "efm_run.c", "efm_ops.c", "efm_ops_conv.c", "efm_ops_misc.c", "cpu.c", "kernels_portable.c", "kernels_avx2.c",
           "kernels_vnni.c", "kernels_avx512.c"]


@pytest.mark.skipif(not (shutil.which("clang") and shutil.which("wasm-ld")), reason="clang/wasm-ld not installed")
def test_kernels_build_for_wasm32_freestanding(tmp_path):
    objs = []
    for src in SOURCES:
        obj = tmp_path / f"{src}.o"
        proc = subprocess.run(["clang", "--target=wasm32", "-O2", "-std=c11", "-ffreestanding", "-fno-math-errno",
                               "-nostdlib", "-Wall", "-Werror", "-c", str(NATIVE / src), "-o", str(obj)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{src}: {proc.stderr}"
        objs.append(str(obj))
    exports = [f"-Wl,--export={name}" for name in ("efm_peek", "efm_load", "efm_run", "efm_arena_bytes")]
    out = tmp_path / "efm.wasm"
    proc = subprocess.run(["clang", "--target=wasm32", "-nostdlib", "-Wl,--no-entry", *exports, "-o", str(out), *objs],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # an undefined symbol (libc, OS) fails the link
    assert out.read_bytes()[:4] == b"\0asm"
