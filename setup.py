"""Builds the native runtime extension ``edgefleet._native`` (everything else is in pyproject.toml).

The C kernels (native/*.c) are compiled for the baseline x86-64 / target ISA into a static library;
AVX2, AVX-VNNI and AVX-512 VNNI code (x86-64) and NEON / NEON dot-product code (AArch64) is enabled per function
(native/kernels_avx2.c, kernels_vnni.c, kernels_avx512.c, kernels_neon.c, kernels_neondot.c) and chosen at run
time by CPU detection (native/cpu.c). Never build for the host CPU only.
EDGEFLEET_PURE=1 builds a pure-Python wheel without the extension (for Pyodide: see wasm/README.md).
The library gets its own flags: Python's -fwrapv (which keeps the compiler from vectorising some
integer loops, ~25% slower here) is not needed, as the C never relies on signed overflow.
"""

import os

from setuptools import Extension, setup

if os.environ.get("EDGEFLEET_PURE") == "1":
    # The pure-Python wheel (py3-none-any) for Pyodide and other hosts without a C toolchain: the same
    # sources without the extension; the runtime there is wasm (wasm/) or another backend.
    setup()
    raise SystemExit(0)

import numpy  # noqa: E402
from Cython.Build import cythonize  # noqa: E402

def native_sources() -> list[str]:
    """Every C source of the runtime, from native/sources.txt (the list wasm/build.sh and the tests read too)."""
    with open("native/sources.txt") as f:
        return ["native/" + line.split()[0] for line in f if line.strip() and not line.startswith("#")]


C_SOURCES = native_sources()
C_FLAGS = ["-O3", "-std=c11", "-fPIC", "-fno-wrapv", "-fno-strict-aliasing", "-fno-math-errno", "-fvisibility=hidden",
           "-pthread", "-DEFM_THREADS"]  # intra-op threads (native/efm_pool.c); the wasm32 build has none

HEADERS = ["native/efm.h", "native/efm_format.h", "native/efm_ops.h", "native/efm_util.h", "native/kernels.h", "native/kernels_impl.h",
           "native/kernels_x86.h", "native/kernels_neon.h"]
efm = ("efm", {"sources": C_SOURCES, "include_dirs": ["native"], "cflags": C_FLAGS, "obj_deps": {"": HEADERS}})

ext = Extension(
    "edgefleet._native",
    sources=["native/_native.pyx"],
    include_dirs=["native", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O3", "-fvisibility=hidden"],
    extra_link_args=["-pthread"],
    depends=C_SOURCES + HEADERS,
)

# generated C goes to build/ so native/*.c holds only our sources (scripts/setup.sh hashes them)
setup(libraries=[efm], ext_modules=cythonize([ext], language_level=3, quiet=True, build_dir="build/cython"))
