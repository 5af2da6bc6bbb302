"""The wasm build as a loader sees it: two modules (SIMD128 and portable), the exports a loader needs
(__heap_base, the allocator, the record sizes), the portable one free of SIMD instructions, and an
allocator that gives every byte back when models are closed, in Node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "wasm" / "web"

pytestmark = pytest.mark.skipif(not (shutil.which("node") and (WEB / "efm-simd128.wasm").exists()),
                                reason="needs node and the built wasm (bash scripts/setup.sh)")


def node(script: str) -> dict:
    proc = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("variant", ["simd128", "portable"])
def test_exports_and_simd_content(variant):
    out = node(f"""
        import {{ readFileSync }} from "node:fs";
        const m = new WebAssembly.Module(readFileSync("wasm/web/efm-{variant}.wasm"));
        console.log(JSON.stringify(WebAssembly.Module.exports(m).map((e) => e.name)));""")
    for name in ("memory", "__heap_base", "efw_alloc", "efw_free", "efw_model_bytes", "efw_opinfo_bytes", "efw_load",
                 "efw_run", "efw_arena_bytes"):
        assert name in out
    objdump = shutil.which("llvm-objdump") or shutil.which("llvm-objdump-14")
    if objdump:
        text = subprocess.run([objdump, "-d", str(WEB / f"efm-{variant}.wasm")], capture_output=True, text=True).stdout
        simd = sum(text.count(p) for p in ("i8x16.", "i16x8.", "i32x4.", "i64x2.", "v128."))
        assert (simd > 500) if variant == "simd128" else (simd == 0)


def test_allocator_returns_every_byte_and_reports_bad_files(tmp_path):
    import sys
    sys.path.insert(0, str(REPO / "tests"))
    from native.efm_cases import small_cnn

    (tmp_path / "m.efm").write_bytes(small_cnn()[0])
    out = node(f"""
        import {{ readFileSync }} from "node:fs";
        import {{ loadRuntime }} from "./wasm/web/efm.mjs";
        const rt = await loadRuntime();
        const data = new Uint8Array(readFileSync({json.dumps(str(tmp_path / "m.efm"))}));
        const base = rt.heapUsed, x = new Float32Array(32 * 7).fill(0.5);
        for (let i = 0; i < 50; i++) {{ const m = rt.open(data); m.run([x]); m.run([x.subarray(0, 32)]); m.close(); }}
        const bad = data.slice(); bad[9] ^= 1;
        let err = "";
        try {{ rt.open(bad); }} catch (e) {{ err = e.message; }}
        console.log(JSON.stringify({{ base, after: rt.heapUsed, err, heapBase: rt.heapBase, modelBytes: rt.modelBytes }}));""")
    assert out["after"] == out["base"]  # open/run/close 50 times: nothing leaks, a refused file neither
    assert "invalid .efm file" in out["err"]
    assert out["heapBase"] > 0 and out["modelBytes"] > 0
