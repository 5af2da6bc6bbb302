"""Builds the native runtime extension ``edgefleet._native`` (everything else is in pyproject.toml).

The C kernels are compiled for the baseline x86-64 / target ISA; AVX2, AVX-VNNI and AVX-512 VNNI code is
enabled per function (native/kernels_avx2.c, kernels_vnni.c, kernels_avx512.c) and chosen at run time by
CPU detection (native/cpu.c).
Never add -march=native here.
"""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

SOURCES = ["native/_native.pyx", "native/efm_load.c", "native/efm_run.c", "native/cpu.c", "native/kernels_portable.c",
           "native/kernels_avx2.c", "native/kernels_vnni.c", "native/kernels_avx512.c"]

ext = Extension(
    "edgefleet._native",
    sources=SOURCES,
    include_dirs=["native", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O3", "-std=c11", "-fno-strict-aliasing", "-fno-math-errno", "-fvisibility=hidden"],
)

# generated C goes to build/ so native/*.c holds only our sources (scripts/setup.sh hashes them)
setup(ext_modules=cythonize([ext], language_level=3, quiet=True, build_dir="build/cython"))
