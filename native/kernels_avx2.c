/* The AVX2 kernel table (x86-64 only), chosen at run time by CPU detection.
 *
 * This file is compiled for the baseline ISA like every other; the target pragma below lets the
 * compiler use AVX2 in these functions only, so the extension still loads on any x86-64 CPU and
 * efm_select_kernels() decides. Never build with -march=native.
 *
 * gemm_w7 uses vpmaddubsw (u8 x s8 -> saturating int16 pair sums). With activations offset to u8
 * (0..255) and weights |w| <= 63, a pair sum is at most 2*255*63 = 32130 < 32767: no saturation,
 * so the result is exactly the integer dot product. Full 8-bit weights take the compiler-vectorised
 * portable body instead (exact, slower). */
#if defined(__x86_64__) || defined(_M_X64)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#include <immintrin.h>
#include <string.h>

#define KFN(name) name##_avx2
#include "kernels_impl.h"

/* R rows x NB blocks of 8 output channels. R, NB are compile-time constants at each call site. */
static inline __attribute__((always_inline)) void w7_block(int R, int NB, int kq, const int8_t *A, int64_t lda,
                                                           const int8_t *W, int64_t wstride, __m256i acc[4][4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) acc[r][b] = _mm256_setzero_si256();
    for (int q = 0; q < kq; q++) {
        __m256i wv[4];
        for (int b = 0; b < NB; b++) wv[b] = _mm256_load_si256((const __m256i *)(W + b * wstride + q * 32));
        for (int r = 0; r < R; r++) {
            int32_t a4;
            memcpy(&a4, A + r * lda + 4 * q, 4);
            __m256i av = _mm256_xor_si256(_mm256_set1_epi32(a4), flip);
            for (int b = 0; b < NB; b++)
                acc[r][b] = _mm256_add_epi32(acc[r][b], _mm256_madd_epi16(_mm256_maddubs_epi16(av, wv[b]), ones));
        }
    }
}

static inline __attribute__((always_inline)) void w7_store(int R, int NB, int m, int n0, int N, __m256i acc[4][4],
                                                           const int64_t *bias, const int32_t *mult,
                                                           const int32_t *shift, efm_clamp c, int8_t *out,
                                                           int64_t ldm, int64_t ldn) {
    int32_t tmp[8];
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) {
            _mm256_storeu_si256((__m256i *)tmp, acc[r][b]);
            for (int j = 0; j < 8; j++) {
                int n = n0 + b * 8 + j;
                if (n < N)
                    out[(m + r) * ldm + n * ldn] =
                        efm_requant((int64_t)tmp[j] + bias[n], mult[n], shift[n], c.zo, c.lo, c.hi);
            }
        }
}

static void gemm_w7_avx2(int M, int N, int Kp, const int8_t *A, int64_t lda, const int8_t *Wp,
                         const int64_t *bias, const int32_t *mult, const int32_t *shift, efm_clamp c,
                         int8_t *out, int64_t ldm, int64_t ldn) {
    const int kq = Kp / 4, nblk = (N + 7) / 8;
    const int64_t ws = (int64_t)kq * 32;
    __m256i acc[4][4];
    int m = 0;
    for (; m + 4 <= M; m += 4) {
        const int8_t *a = A + m * lda;
        int nb = 0;
        for (; nb + 2 <= nblk; nb += 2) {
            w7_block(4, 2, kq, a, lda, Wp + nb * ws, ws, acc);
            w7_store(4, 2, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn);
        }
        for (; nb < nblk; nb++) {
            w7_block(4, 1, kq, a, lda, Wp + nb * ws, ws, acc);
            w7_store(4, 1, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn);
        }
    }
    for (; m < M; m++) {
        const int8_t *a = A + m * lda;
        int nb = 0;
        for (; nb + 4 <= nblk; nb += 4) {
            w7_block(1, 4, kq, a, lda, Wp + nb * ws, ws, acc);
            w7_store(1, 4, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn);
        }
        for (; nb < nblk; nb++) {
            w7_block(1, 1, kq, a, lda, Wp + nb * ws, ws, acc);
            w7_store(1, 1, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn);
        }
    }
}

const efm_kernels efm_kernels_avx2 = {"avx2", gemm_avx2, gemm_w7_avx2, mm16_avx2, dw_avx2};

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

const efm_kernels *efm_select_kernels(int force_portable) {
    if (!force_portable) {
#if defined(__GNUC__) || defined(__clang__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2")) return &efm_kernels_avx2;
#endif
    }
    return &efm_kernels_portable;
}

#endif
