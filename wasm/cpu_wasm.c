/* Kernel-table choice for the wasm builds (replaces native/cpu.c there). The engine's SIMD support is
 * detected by the loader (efm.mjs), which instantiates the SIMD128 build where the engine validates
 * SIMD code and the portable build elsewhere; inside a build the choice is fixed at compile time. */
#include "kernels_wasm.h"

const efm_kernels *efm_kernels_named(int which) {
    switch (which) {
    case EFM_K_PORTABLE: return &efm_kernels_portable;
#if defined(__wasm_simd128__)
    case EFM_K_BEST:
    case EFM_K_WASM_SIMD128: return &efm_kernels_simd128;
#else
    case EFM_K_BEST: return &efm_kernels_portable;
#endif
    default: return 0;
    }
}
