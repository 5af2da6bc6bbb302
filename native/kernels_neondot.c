/* The NEON dot-product table (ARMv8.2 "dotprod", e.g. Cortex-A55/A76 and later): one sdot per four
 * s8 x s8 products into int32, no intermediate rounding or saturation, so exact for any weights
 * (kernels_neon.h). Compiled for the extension per function; chosen at run time (native/cpu.c)
 * only where the CPU reports it (HWCAP_ASIMDDP). clang before 16 hides vdotq_s32 unless the whole
 * build targets dotprod, so there this table exists only in such builds (kernels.h). */
#include "kernels.h"
#if defined(EFM_HAVE_NEONDOT_BUILD)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif

#define KFN(name) name##_neondot
#define DOT4(acc, a, b) vdotq_s32((acc), (a), (b))
#include "kernels_neon.h"

const efm_kernels efm_kernels_neondot = {"neondot", gemm_s8_neondot, gemm_s8_neondot, conv_s8_neondot,
                                         conv_s8_neondot, mm16_neondot, dw_neondot, center_neondot, add_neondot,
                                         quantize_neondot, flinear_neondot};

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif
