/* The AVX-512 VNNI kernel table (x86-64 with AVX512F/BW/VL/VNNI), chosen at run time (native/cpu.c).
 * The convolution runs on 512-bit vectors (16 pixels per accumulator, vpdpbusd: exact for every
 * int8 weight) and so does the float32 island linear (flinear); everything else is the AVX-VNNI body on
 * 256-bit vectors (EVEX-encoded vpdpbusd). */
#if defined(__x86_64__) || defined(_M_X64)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

#define KFN(name) name##_avx512
#define DOT4(acc, u8, s8) _mm256_dpbusd_epi32((acc), (u8), (s8))
#define EFM_FLINEAR_ZMM 1 /* the float32 island linear on 512-bit vectors, 8 rows at a time */
#include "kernels_x86.h"

/* rqf8's sequence on 16 lanes (see kernels_x86.h): exact when EFM_KF_RQF holds */
typedef struct {
    __m512i bias, mult, c1, k32, lo, hi, zo;
    __m128i cnt;
} rqf16;

static inline rqf16 rqf16_bcast(int64_t bias, int32_t mult, int32_t shift, efm_clamp c) {
    rqf16 r;
    r.bias = _mm512_set1_epi32((int32_t)bias);
    r.mult = _mm512_set1_epi32(mult);
    r.c1 = _mm512_set1_epi64((long long)(((uint64_t)1 << (shift - 1)) + ((uint64_t)1 << 62)));
    r.k32 = _mm512_set1_epi32((int32_t)(uint32_t)((uint64_t)1 << (62 - shift)));
    r.cnt = _mm_cvtsi32_si128(shift);
    r.lo = _mm512_set1_epi32(c.lo - c.zo);
    r.hi = _mm512_set1_epi32(c.hi - c.zo);
    r.zo = _mm512_set1_epi32(c.zo);
    return r;
}

static inline __m128i rqf16_apply(__m512i acc, const rqf16 *r) {
    __m512i S = _mm512_add_epi32(acc, r->bias);
    __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(S, r->mult), r->c1);
    __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(S, 32), r->mult), r->c1);
    pe = _mm512_srl_epi64(pe, r->cnt);
    po = _mm512_slli_epi64(_mm512_srl_epi64(po, r->cnt), 32);
    __m512i v = _mm512_sub_epi32(_mm512_mask_blend_epi32(0xAAAA, pe, po), r->k32);
    v = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v, r->lo), r->hi), r->zo);
    return _mm512_cvtsepi32_epi8(v);
}

/* two consecutive 8-pixel blocks of the packed activations (see efm_conv_fn) as one vector */
static inline __m512i load16(const uint8_t *X, int64_t xs, int q) {
    __m256i lo = _mm256_load_si256((const __m256i *)(X + q * 32));
    __m256i hi = _mm256_load_si256((const __m256i *)(X + xs + q * 32));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

static void conv512(int O, int P, int Kp, const uint8_t *Xp, const int8_t *W, const int64_t *bias, const int32_t *mult,
                    const int32_t *shift, efm_clamp c, int8_t *out, uint32_t flags) {
    const int kq = Kp / 4, pblk = (P + 7) / 8;
    const int64_t xs = (int64_t)kq * 32;
    if (!(flags & EFM_KF_RQF) || O % 4) { /* the general requantization: the 256-bit kernel */
        conv_w7_avx512(O, P, Kp, Xp, W, bias, mult, shift, c, out, flags);
        return;
    }
    /* 16 pixels x 4 channels per step; an odd last block reads one block past the packed data (the
     * loader reserves it in the scratch) and its extra lanes are never stored */
    for (int pb = 0; pb < pblk; pb += 2) {
        const uint8_t *X = Xp + pb * xs;
        int p0 = pb * 8, n = P - p0 < 16 ? P - p0 : 16;
        for (int o = 0; o < O; o += 4) {
            const int8_t *w = W + (int64_t)o * Kp;
            __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
            for (int q = 0; q < kq; q++) {
                __m512i xv = load16(X, xs, q);
                int32_t w0, w1, w2, w3;
                memcpy(&w0, w + 4 * q, 4);
                memcpy(&w1, w + Kp + 4 * q, 4);
                memcpy(&w2, w + 2 * Kp + 4 * q, 4);
                memcpy(&w3, w + 3 * Kp + 4 * q, 4);
                acc0 = _mm512_dpbusd_epi32(acc0, xv, _mm512_set1_epi32(w0));
                acc1 = _mm512_dpbusd_epi32(acc1, xv, _mm512_set1_epi32(w1));
                acc2 = _mm512_dpbusd_epi32(acc2, xv, _mm512_set1_epi32(w2));
                acc3 = _mm512_dpbusd_epi32(acc3, xv, _mm512_set1_epi32(w3));
            }
            __m512i accs[4] = {acc0, acc1, acc2, acc3};
            for (int r = 0; r < 4; r++) {
                rqf16 rf = rqf16_bcast(bias[o + r], mult[o + r], shift[o + r], c);
                __m128i y = rqf16_apply(accs[r], &rf);
                int8_t *dst = out + (int64_t)(o + r) * P + p0;
                if (n == 16) _mm_storeu_si128((__m128i *)dst, y);
                else _mm_mask_storeu_epi8(dst, (__mmask16)((1u << n) - 1), y);
            }
        }
    }
}

/* Depthwise 3x3 (dilation 1, stride 1 or 2) on 16 outputs per vector; as dw in kernels_x86.h, each
 * weight sits in the low half of a 32-bit lane with a zero high half so vpmaddwd gives x*w exactly.
 * A last chunk may run past Wo: its lanes read at most 66 bytes past a row (the scratch has 256 bytes
 * of slack after the plane) and land in accrow's 16 spare entries. */
static void dw512(const int16_t *plane, int Wp, const int8_t *w, int kh, int kw, int sh, int sw, int dh, int dw, int Ho,
                  int Wo, int64_t bias, int32_t mult, int32_t shift, efm_clamp c, int8_t *out, int32_t *accrow,
                  uint32_t flags) {
    if (!(kh == 3 && kw == 3 && dh == 1 && dw == 1 && (sw == 1 || sw == 2) && (flags & EFM_KF_RQF))) {
        dw_avx512(plane, Wp, w, kh, kw, sh, sw, dh, dw, Ho, Wo, bias, mult, shift, c, out, accrow, flags);
        return;
    }
    __m512i wv[9];
    for (int t = 0; t < 9; t++) wv[t] = _mm512_set1_epi32((int32_t)(uint16_t)(int16_t)w[t]);
    rqf16 rf = rqf16_bcast(bias, mult, shift, c);
    for (int oy = 0; oy < Ho; oy++) {
        const int16_t *r0 = plane + (int64_t)(oy * sh) * Wp, *r1 = r0 + Wp, *r2 = r1 + Wp;
        int8_t *dst = out + (int64_t)oy * Wo;
        for (int ox = 0; ox < Wo; ox += 16) {
            __m512i acc;
            if (sw == 2) {
                const int16_t *a = r0 + 2 * ox, *b = r1 + 2 * ox, *d = r2 + 2 * ox;
#define DW_TAP(p, t) _mm512_madd_epi16(_mm512_loadu_si512((const void *)(p)), wv[t])
                acc = _mm512_add_epi32(_mm512_add_epi32(DW_TAP(a, 0), DW_TAP(a + 1, 1)), DW_TAP(a + 2, 2));
                acc = _mm512_add_epi32(acc, _mm512_add_epi32(_mm512_add_epi32(DW_TAP(b, 3), DW_TAP(b + 1, 4)), DW_TAP(b + 2, 5)));
                acc = _mm512_add_epi32(acc, _mm512_add_epi32(_mm512_add_epi32(DW_TAP(d, 6), DW_TAP(d + 1, 7)), DW_TAP(d + 2, 8)));
#undef DW_TAP
            } else {
                const int16_t *a = r0 + ox, *b = r1 + ox, *d = r2 + ox;
#define DW_TAP(p, t) _mm512_madd_epi16(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(p))), wv[t])
                acc = _mm512_add_epi32(_mm512_add_epi32(DW_TAP(a, 0), DW_TAP(a + 1, 1)), DW_TAP(a + 2, 2));
                acc = _mm512_add_epi32(acc, _mm512_add_epi32(_mm512_add_epi32(DW_TAP(b, 3), DW_TAP(b + 1, 4)), DW_TAP(b + 2, 5)));
                acc = _mm512_add_epi32(acc, _mm512_add_epi32(_mm512_add_epi32(DW_TAP(d, 6), DW_TAP(d + 1, 7)), DW_TAP(d + 2, 8)));
#undef DW_TAP
            }
            int n = Wo - ox < 16 ? Wo - ox : 16;
            __m128i y = rqf16_apply(acc, &rf);
            if (n == 16) _mm_storeu_si128((__m128i *)(dst + ox), y);
            else _mm_mask_storeu_epi8(dst + ox, (__mmask16)((1u << n) - 1), y);
        }
    }
    (void)accrow;
}

static void center512(const int8_t *x, int H, int W, int32_t zx, int16_t *plane, int Wp) {
    const __m512i z = _mm512_set1_epi16((int16_t)zx);
    for (int iy = 0; iy < H; iy++) {
        const int8_t *src = x + (int64_t)iy * W;
        int16_t *dst = plane + (int64_t)iy * Wp;
        for (int ix = 0; ix < W; ix += 32) {
            int n = W - ix < 32 ? W - ix : 32;
            __mmask32 k = n == 32 ? 0xFFFFFFFFu : (__mmask32)((1u << n) - 1);
            __m512i v = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(k, src + ix)), z);
            _mm512_mask_storeu_epi16(dst + ix, k, v);
        }
    }
}

/* Linear layers on 512-bit vectors: G groups of 16 output channels (two packed 8-channel blocks
 * each) x R rows per step, so that R*G independent accumulators hide the vpdpbusd latency.
 * Per-lane requantization constants (the short sequence, EFM_KF_RQF); otherwise the 256-bit kernel. */
typedef struct {
    __m512i b32, mv, mo, se, so, c1e, c1o, k32;
    __mmask16 k;
    int two;
} lane_rq;

static inline lane_rq lane_rq_load(int n0, int N, int nblk, int nb, const int64_t *bias, const int32_t *mult,
                                   const int32_t *shift) {
    const __m512i one = _mm512_set1_epi64(1), low32 = _mm512_set1_epi64(0xFFFFFFFFLL);
    const __m512i two62 = _mm512_set1_epi64((long long)((uint64_t)1 << 62));
    lane_rq r;
    int n = N - n0 < 16 ? N - n0 : 16;
    r.k = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    r.two = nb + 1 < nblk;
    __m512i b64a = _mm512_maskz_loadu_epi64((__mmask8)(r.k & 0xFF), bias + n0);
    __m512i b64b = _mm512_maskz_loadu_epi64((__mmask8)(r.k >> 8), bias + n0 + 8);
    r.b32 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(b64a)), _mm512_cvtepi64_epi32(b64b), 1);
    r.mv = _mm512_maskz_loadu_epi32(r.k, mult + n0);
    r.mo = _mm512_srli_epi64(r.mv, 32);
    __m512i sv = _mm512_mask_loadu_epi32(_mm512_set1_epi32(31), r.k, shift + n0);
    r.se = _mm512_and_si512(sv, low32);
    r.so = _mm512_srli_epi64(sv, 32);
    r.c1e = _mm512_add_epi64(_mm512_sllv_epi64(one, _mm512_sub_epi64(r.se, one)), two62);
    r.c1o = _mm512_add_epi64(_mm512_sllv_epi64(one, _mm512_sub_epi64(r.so, one)), two62);
    r.k32 = _mm512_mask_blend_epi32(0xAAAA, _mm512_srlv_epi64(two62, r.se), _mm512_slli_epi64(_mm512_srlv_epi64(two62, r.so), 32));
    return r;
}

static inline __attribute__((always_inline)) void gemm512_tile(int R, int G, int kq, const int8_t *a, int64_t lda,
                                                               const int8_t *W, int64_t ws, const lane_rq *rq,
                                                               efm_clamp c, int8_t *out, int64_t ldm) {
    __m512i acc[4][4];
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) acc[r][g] = _mm512_setzero_si512();
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int q = 0; q < kq; q++) {
        __m512i wv[4];
        for (int g = 0; g < G; g++) {
            const int8_t *w0 = W + 2 * g * ws + q * 32;
            __m256i hi8 = rq[g].two ? _mm256_load_si256((const __m256i *)(w0 + ws)) : _mm256_setzero_si256();
            wv[g] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256((const __m256i *)w0)), hi8, 1);
        }
        for (int r = 0; r < R; r++) {
            int32_t a4;
            memcpy(&a4, a + r * lda + 4 * q, 4);
            __m512i av = _mm512_xor_si512(_mm512_set1_epi32(a4), flip);
            for (int g = 0; g < G; g++) acc[r][g] = _mm512_dpbusd_epi32(acc[r][g], av, wv[g]);
        }
    }
    const __m512i lo = _mm512_set1_epi32(c.lo - c.zo), hi = _mm512_set1_epi32(c.hi - c.zo), zo = _mm512_set1_epi32(c.zo);
    for (int r = 0; r < R; r++)
        for (int g = 0; g < G; g++) {
            const lane_rq *q = &rq[g];
            __m512i S = _mm512_add_epi32(acc[r][g], q->b32);
            __m512i pe = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epi32(S, q->mv), q->c1e), q->se);
            __m512i po = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(S, 32), q->mo), q->c1o), q->so);
            __m512i v = _mm512_sub_epi32(_mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32)), q->k32);
            v = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v, lo), hi), zo);
            _mm_mask_storeu_epi8(out + r * ldm + g * 16, q->k, _mm512_cvtsepi32_epi8(v));
        }
}

static void gemm512(int M, int N, int Kp, const int8_t *A, int64_t lda, const int8_t *Wp, const int64_t *bias,
                    const int32_t *mult, const int32_t *shift, efm_clamp c, int8_t *out, int64_t ldm, int64_t ldn,
                    uint32_t flags) {
    if (!(flags & EFM_KF_RQF) || ldn != 1) {
        gemm_w7_avx512(M, N, Kp, A, lda, Wp, bias, mult, shift, c, out, ldm, ldn, flags);
        return;
    }
    const int kq = Kp / 4, nblk = (N + 7) / 8, ngrp = (N + 15) / 16;
    const int64_t ws = (int64_t)kq * 32;
    lane_rq rq[4];
    if (M < 4) { /* few rows (batch 1 of an MLP): 4 channel groups per step */
        for (int g0 = 0; g0 < ngrp; g0 += 4) {
            int G = ngrp - g0 < 4 ? ngrp - g0 : 4;
            for (int g = 0; g < G; g++) rq[g] = lane_rq_load((g0 + g) * 16, N, nblk, 2 * (g0 + g), bias, mult, shift);
            for (int m = 0; m < M; m++) {
                const int8_t *a = A + m * lda;
                int8_t *o = out + m * ldm + g0 * 16;
                const int8_t *W = Wp + 2 * g0 * ws;
                if (G == 4) gemm512_tile(1, 4, kq, a, lda, W, ws, rq, c, o, ldm);
                else if (G == 3) gemm512_tile(1, 3, kq, a, lda, W, ws, rq, c, o, ldm);
                else if (G == 2) gemm512_tile(1, 2, kq, a, lda, W, ws, rq, c, o, ldm);
                else gemm512_tile(1, 1, kq, a, lda, W, ws, rq, c, o, ldm);
            }
        }
        return;
    }
    for (int g0 = 0; g0 < ngrp; g0 += 2) {
        int G = ngrp - g0 < 2 ? 1 : 2;
        for (int g = 0; g < G; g++) rq[g] = lane_rq_load((g0 + g) * 16, N, nblk, 2 * (g0 + g), bias, mult, shift);
        const int8_t *W = Wp + 2 * g0 * ws;
        int m = 0;
        for (; m + 4 <= M; m += 4) {
            if (G == 2) gemm512_tile(4, 2, kq, A + m * lda, lda, W, ws, rq, c, out + m * ldm + g0 * 16, ldm);
            else gemm512_tile(4, 1, kq, A + m * lda, lda, W, ws, rq, c, out + m * ldm + g0 * 16, ldm);
        }
        for (; m < M; m++) {
            if (G == 2) gemm512_tile(1, 2, kq, A + m * lda, lda, W, ws, rq, c, out + m * ldm + g0 * 16, ldm);
            else gemm512_tile(1, 1, kq, A + m * lda, lda, W, ws, rq, c, out + m * ldm + g0 * 16, ldm);
        }
    }
}

const efm_kernels efm_kernels_avx512vnni = {"avx512vnni", gemm512, gemm512, conv512, conv512,
                                            mm16_avx512, dw512, center512, add_avx512, quantize_avx512, flinear_avx512};

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif
