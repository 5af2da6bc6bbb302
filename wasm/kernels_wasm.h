/* wasm32 kernel tables: the portable one (native/kernels_portable.c) and, in the SIMD128 build,
 * the one written with wasm_simd128.h intrinsics (kernels_simd128.c). cpu_wasm.c takes the place of
 * native/cpu.c in the wasm builds. */
#ifndef EFM_KERNELS_WASM_H
#define EFM_KERNELS_WASM_H

#include "kernels.h"

/* efm_kernels_named / efm_use_kernels index of the SIMD128 table (after native's x86 ones) */
#define EFM_K_WASM_SIMD128 5

#if defined(__wasm_simd128__)
extern const efm_kernels efm_kernels_simd128;
#endif

#endif
