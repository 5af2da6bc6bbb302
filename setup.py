"""Builds the native runtime extension ``edgefleet._native`` (everything else is in pyproject.toml).

The C kernels (native/*.c) are compiled for the baseline x86-64 / target ISA into a static library;
AVX2, AVX-VNNI and AVX-512 VNNI code is enabled per function (native/kernels_avx2.c, kernels_vnni.c,
kernels_avx512.c) and chosen at run time by CPU detection (native/cpu.c). Never build for the host CPU only.
The library gets its own flags: Python's -fwrapv (which keeps the compiler from vectorising some
integer loops, ~25% slower here) is not needed, as the C never relies on signed overflow.
"""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

C_SOURCES = ["native/efm_load.c", "native/efm_run.c", "native/efm_ops.c", "native/efm_ops_conv.c", "native/efm_ops_misc.c",
             "native/cpu.c",
             "native/kernels_portable.c", "native/kernels_avx2.c", "native/kernels_vnni.c", "native/kernels_avx512.c"]
C_FLAGS = ["-O3", "-std=c11", "-fPIC", "-fno-wrapv", "-fno-strict-aliasing", "-fno-math-errno", "-fvisibility=hidden"]

HEADERS = ["native/efm.h", "native/efm_format.h", "native/efm_ops.h", "native/efm_util.h", "native/kernels.h", "native/kernels_impl.h",
           "native/kernels_x86.h"]
efm = ("efm", {"sources": C_SOURCES, "include_dirs": ["native"], "cflags": C_FLAGS, "obj_deps": {"": HEADERS}})

ext = Extension(
    "edgefleet._native",
    sources=["native/_native.pyx"],
    include_dirs=["native", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O3", "-fvisibility=hidden"],
    depends=C_SOURCES + HEADERS,
)

# generated C goes to build/ so native/*.c holds only our sources (scripts/setup.sh hashes them)
setup(libraries=[efm], ext_modules=cythonize([ext], language_level=3, quiet=True, build_dir="build/cython"))
