/* The AVX-VNNI kernel table (x86-64 CPUs with AVX-VNNI), chosen at run time (native/cpu.c).
 * vpdpbusd accumulates four u8 x s8 products straight into int32 without an int16 stage, so it is
 * exact for every int8 weight: both the 7-bit and the general entries use it. */
#if defined(__x86_64__) || defined(_M_X64)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,avxvnni"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,avxvnni")
#endif

#define KFN(name) name##_vnni
#define DOT4(acc, u8, s8) _mm256_dpbusd_avx_epi32((acc), (u8), (s8))
#include "kernels_x86.h"

const efm_kernels efm_kernels_avxvnni = {"avxvnni", gemm_w7_vnni, gemm_w7_vnni, conv_w7_vnni, conv_w7_vnni, mm16_vnni,
                                         dw_vnni, center_vnni, add_vnni, quantize_vnni, flinear_vnni};

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif
