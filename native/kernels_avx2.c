/* The AVX2 kernel table (x86-64 only), chosen at run time by CPU detection (native/cpu.c).
 *
 * This file is compiled for the baseline ISA like every other; the target pragma lets the compiler
 * use AVX2 in these functions only, so the extension still loads on any x86-64 CPU. Never build
 * with -march=native.
 *
 * vpmaddubsw multiplies u8 x s8 and adds pairs into saturating int16. With activations offset to
 * u8 (0..255) and weights |w| <= 63, a pair sum is at most 2*255*63 = 32130 < 32767: no saturation,
 * so gemm_w7/conv_w7 are exact. Full 8-bit weights take the compiler-vectorised portable body
 * (exact, slower). */
#if defined(__x86_64__) || defined(_M_X64)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#define KFN(name) name##_avx2
#define DOT4(acc, u8, s8) \
    _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u8), (s8)), _mm256_set1_epi16(1)))
#include "kernels_x86.h"

const efm_kernels efm_kernels_avx2 = {"avx2", gemm_avx2, gemm_w7_avx2, conv_avx2, conv_w7_avx2, mm16_avx2, dw_avx2, center_avx2,
                                      add_avx2, quantize_avx2, flinear_avx2};

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif
