/* x86 kernel bodies shared by the AVX2 and AVX-VNNI tables. The including file sets the target
 * pragma, KFN (symbol suffix) and DOT4(acc, u8, s8): acc += four-way u8 x s8 dot products per int32
 * lane. AVX2: vpmaddubsw + vpmaddwd (int16 pair sums: exact only for |w| <= 63); AVX-VNNI:
 * vpdpbusd (no intermediate saturation: exact for any int8 weights). */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"

/* ---- exact vector requantization ------------------------------------------------------------
 * Valid when every S = acc + bias fits int32 (EFM_KF_RQ32, checked at load): then vpmuldq gives
 * the exact 64-bit S*M (|S*M| < 2^62, plus the rounding term < 2^63), and the arithmetic shift
 * AVX2 lacks is done exactly as a logical shift of S*M + 2^63 minus 2^(63-s). */
static inline __m256i rq4(__m256i S, __m256i M, __m256i sh, __m256i zo, __m256i lo, __m256i hi) {
    const __m256i one = _mm256_set1_epi64x(1), sign = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    __m256i p = _mm256_mul_epi32(S, M);
    p = _mm256_add_epi64(p, _mm256_sllv_epi64(one, _mm256_sub_epi64(sh, one)));
    __m256i q = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_xor_si256(p, sign), sh), _mm256_srlv_epi64(sign, sh));
    q = _mm256_add_epi64(q, zo);
    q = _mm256_blendv_epi8(q, lo, _mm256_cmpgt_epi64(lo, q));
    return _mm256_blendv_epi8(q, hi, _mm256_cmpgt_epi64(q, hi));
}

/* two int64x4 in [-128, 127] -> 8 int8 in the low half */
static inline __m128i pack8(__m256i q0, __m256i q1) {
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    __m128i a = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(q0, idx));
    __m128i b = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(q1, idx));
    __m128i w = _mm_packs_epi32(a, b);
    return _mm_packs_epi16(w, w);
}

typedef struct {
    __m256i b0, b1, m0, m1, s0, s1, zo, lo, hi;
} rqv;

static inline rqv rq_bcast(int64_t bias, int32_t mult, int32_t shift, efm_clamp c) {
    rqv r;
    r.b0 = r.b1 = _mm256_set1_epi64x(bias);
    r.m0 = r.m1 = _mm256_set1_epi64x(mult);
    r.s0 = r.s1 = _mm256_set1_epi64x(shift);
    r.zo = _mm256_set1_epi64x(c.zo); r.lo = _mm256_set1_epi64x(c.lo); r.hi = _mm256_set1_epi64x(c.hi);
    return r;
}

/* per-channel constants of channels n..n+7 */
static inline rqv rq_lanes(const int64_t *bias, const int32_t *mult, const int32_t *shift, efm_clamp c) {
    rqv r;
    r.b0 = _mm256_loadu_si256((const __m256i *)bias);
    r.b1 = _mm256_loadu_si256((const __m256i *)(bias + 4));
    r.m0 = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)mult));
    r.m1 = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(mult + 4)));
    r.s0 = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)shift));
    r.s1 = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(shift + 4)));
    r.zo = _mm256_set1_epi64x(c.zo); r.lo = _mm256_set1_epi64x(c.lo); r.hi = _mm256_set1_epi64x(c.hi);
    return r;
}

static inline __m128i rq8(__m256i acc, const rqv *r) {
    __m256i S0 = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc)), r->b0);
    __m256i S1 = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc, 1)), r->b1);
    return pack8(rq4(S0, r->m0, r->s0, r->zo, r->lo, r->hi), rq4(S1, r->m1, r->s1, r->zo, r->lo, r->hi));
}

/* The short sequence (EFM_KF_RQF): S = acc + bias in int32 lanes, even and odd lanes multiplied
 * by M in 64 bits (vpmuldq), 2^62 added so the logical shift acts as an arithmetic one, and 2^(62-s)
 * taken off again in wrapping int32 arithmetic (the result fits int32 since M * 2^-s < 1). */
typedef struct {
    __m256i bias, mult, c1, k32, lo, hi, zo;
    __m128i cnt;
} rqf;

static inline rqf rqf_bcast(int64_t bias, int32_t mult, int32_t shift, efm_clamp c) {
    rqf r;
    r.bias = _mm256_set1_epi32((int32_t)bias);
    r.mult = _mm256_set1_epi32(mult);
    r.c1 = _mm256_set1_epi64x((long long)(((uint64_t)1 << (shift - 1)) + ((uint64_t)1 << 62)));
    r.k32 = _mm256_set1_epi32((int32_t)(uint32_t)((uint64_t)1 << (62 - shift)));
    r.cnt = _mm_cvtsi32_si128(shift);
    r.lo = _mm256_set1_epi32(c.lo - c.zo);
    r.hi = _mm256_set1_epi32(c.hi - c.zo);
    r.zo = _mm256_set1_epi32(c.zo);
    return r;
}

static inline __m128i rqf8(__m256i acc, const rqf *r) {
    __m256i S = _mm256_add_epi32(acc, r->bias);
    __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(S, r->mult), r->c1);
    __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(S, 32), r->mult), r->c1);
    pe = _mm256_srl_epi64(pe, r->cnt);
    po = _mm256_slli_epi64(_mm256_srl_epi64(po, r->cnt), 32);
    __m256i v = _mm256_sub_epi32(_mm256_blend_epi32(pe, po, 0xAA), r->k32);
    v = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(v, r->lo), r->hi), r->zo);
    __m256i p16 = _mm256_packs_epi32(v, v);
    __m256i p8 = _mm256_packs_epi16(p16, p16);
    return _mm_unpacklo_epi32(_mm256_castsi256_si128(p8), _mm256_extracti128_si256(p8, 1));
}

#define EFM_RQ_ROW_DEFINED
/* out[i] = requant(acc[i] + bias), i < n; acc must have 8 readable entries past n. */
static void KFN(rq_row)(const int32_t *acc, int n, int64_t bias, int32_t mult, int32_t shift, efm_clamp c, int8_t *out,
                        uint32_t flags) {
    int i = 0;
    if (flags & EFM_KF_RQF) {
        rqf r = rqf_bcast(bias, mult, shift, c);
        for (; i + 8 <= n; i += 8)
            _mm_storel_epi64((__m128i *)(out + i), rqf8(_mm256_loadu_si256((const __m256i *)(acc + i)), &r));
        if (i < n) { /* the tail on a whole vector: acc has 8 spare entries past n (see dw) */
            int8_t tmp[16];
            _mm_storel_epi64((__m128i *)tmp, rqf8(_mm256_loadu_si256((const __m256i *)(acc + i)), &r));
            for (int j = 0; i + j < n; j++) out[i + j] = tmp[j];
            return;
        }
    } else if (flags & EFM_KF_RQ32) {
        rqv r = rq_bcast(bias, mult, shift, c);
        for (; i + 8 <= n; i += 8)
            _mm_storel_epi64((__m128i *)(out + i), rq8(_mm256_loadu_si256((const __m256i *)(acc + i)), &r));
    }
    for (; i < n; i++) out[i] = efm_requant((int64_t)acc[i] + bias, mult, shift, c.zo, c.lo, c.hi);
}

/* Depthwise plane. Each tap multiplies int16 activations by a weight placed in the low half of a
 * 32-bit lane with a zero high half, so vpmaddwd gives exactly x*w per lane: for stride 2 the
 * lane's low half already is x[2*ox] (the odd neighbour meets the zero); for stride 1 the
 * activations are sign-extended first. Other strides take the scalar loop. A chunk of 8 outputs may
 * run past Wo: those lanes read up to 32 int16 past a row (the plane is followed by 256 bytes of
 * slack in the scratch buffer) and are written to accrow's 8 spare entries, never to the output. */
#define EFM_DW_DEFINED
static void KFN(dw)(const int16_t *plane, int Wp, const int8_t *w, int kh, int kw, int sh, int sw, int dh, int dw,
                    int Ho, int Wo, int64_t bias, int32_t mult, int32_t shift, efm_clamp c, int8_t *out,
                    int32_t *accrow, uint32_t flags) {
    __m256i wv[64];
    int taps = kh * kw <= 64 ? kh * kw : 0;
    for (int t = 0; t < taps; t++) wv[t] = _mm256_set1_epi32((int32_t)(uint16_t)(int16_t)w[t]);
    if (kh == 3 && kw == 3 && dh == 1 && dw == 1 && (sw == 1 || sw == 2)) {
        /* The common 3x3 case with two taps per vpmaddwd: a 32-bit lane holding the neighbours
         * (x[i], x[i+1]) times the pair (w0, w1) gives x[i]*w0 + x[i+1]*w1, and (x[i+2], .) times (w2, 0)
         * adds the third tap: two multiply-adds per kernel row instead of three. Stride 2: the lanes
         * already start at the even inputs (8 outputs per vector). Stride 1: one vector gives the even
         * outputs, one shifted by an element the odd ones (16 outputs per pair), interleaved back. */
        __m256i wp[3], wz[3];
        for (int i = 0; i < 3; i++) {
            wp[i] = _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)(int16_t)w[3 * i] |
                                                ((uint32_t)(uint16_t)(int16_t)w[3 * i + 1] << 16)));
            wz[i] = _mm256_set1_epi32((int32_t)(uint16_t)(int16_t)w[3 * i + 2]);
        }
#define DW_ROW(p) _mm256_add_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(p)), wp[i]), \
                                   _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)((p) + 2)), wz[i]))
        if (flags & EFM_KF_RQF) { /* requantized straight from the registers, no accumulator row */
            rqf rf = rqf_bcast(bias, mult, shift, c);
            int8_t tmp[16];
            for (int oy = 0; oy < Ho; oy++) {
                const int16_t *r0 = plane + (int64_t)(oy * sh) * Wp;
                int8_t *o = out + (int64_t)oy * Wo;
                if (sw == 2) {
                    for (int ox = 0; ox < Wo; ox += 8) {
                        __m256i acc = _mm256_setzero_si256();
                        for (int i = 0; i < 3; i++) acc = _mm256_add_epi32(acc, DW_ROW(r0 + (int64_t)i * Wp + 2 * ox));
                        __m128i q = rqf8(acc, &rf);
                        if (ox + 8 <= Wo) _mm_storel_epi64((__m128i *)(o + ox), q);
                        else {
                            _mm_storel_epi64((__m128i *)tmp, q);
                            for (int j = 0; ox + j < Wo; j++) o[ox + j] = tmp[j];
                        }
                    }
                } else {
                    for (int ox = 0; ox < Wo; ox += 16) {
                        __m256i ev = _mm256_setzero_si256(), od = _mm256_setzero_si256();
                        for (int i = 0; i < 3; i++) {
                            const int16_t *p = r0 + (int64_t)i * Wp + ox;
                            ev = _mm256_add_epi32(ev, DW_ROW(p));
                            od = _mm256_add_epi32(od, DW_ROW(p + 1));
                        }
                        __m256i lo = _mm256_unpacklo_epi32(ev, od), hi = _mm256_unpackhi_epi32(ev, od);
                        __m128i q = _mm_unpacklo_epi64(rqf8(_mm256_permute2x128_si256(lo, hi, 0x20), &rf),
                                                       rqf8(_mm256_permute2x128_si256(lo, hi, 0x31), &rf));
                        if (ox + 16 <= Wo) _mm_storeu_si128((__m128i *)(o + ox), q);
                        else {
                            _mm_storeu_si128((__m128i *)tmp, q);
                            for (int j = 0; ox + j < Wo; j++) o[ox + j] = tmp[j];
                        }
                    }
                }
            }
            return;
        }
        for (int oy = 0; oy < Ho; oy++) {
            const int16_t *r0 = plane + (int64_t)(oy * sh) * Wp;
            if (sw == 2) {
                for (int ox = 0; ox < Wo; ox += 8) {
                    __m256i acc = _mm256_setzero_si256();
                    for (int i = 0; i < 3; i++) acc = _mm256_add_epi32(acc, DW_ROW(r0 + (int64_t)i * Wp + 2 * ox));
                    _mm256_storeu_si256((__m256i *)(accrow + ox), acc);
                }
            } else {
                for (int ox = 0; ox < Wo; ox += 16) {
                    __m256i ev = _mm256_setzero_si256(), od = _mm256_setzero_si256();
                    for (int i = 0; i < 3; i++) {
                        const int16_t *p = r0 + (int64_t)i * Wp + ox;
                        ev = _mm256_add_epi32(ev, DW_ROW(p));
                        od = _mm256_add_epi32(od, DW_ROW(p + 1));
                    }
                    __m256i lo = _mm256_unpacklo_epi32(ev, od), hi = _mm256_unpackhi_epi32(ev, od);
                    _mm256_storeu_si256((__m256i *)(accrow + ox), _mm256_permute2x128_si256(lo, hi, 0x20));
                    _mm256_storeu_si256((__m256i *)(accrow + ox + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
                }
            }
            KFN(rq_row)(accrow, Wo, bias, mult, shift, c, out + (int64_t)oy * Wo, flags);
        }
#undef DW_ROW
        return;
    }
    for (int oy = 0; oy < Ho; oy++) {
        int ox = 0;
        if (taps && (sw == 1 || sw == 2)) {
            /* the last chunk may run past Wo: its extra lanes read padding/slack and are not used */
            for (; ox < Wo; ox += 8) {
                __m256i acc = _mm256_setzero_si256();
                for (int i = 0; i < kh; i++) {
                    const int16_t *r = plane + (int64_t)(oy * sh + i * dh) * Wp + ox * sw;
                    for (int j = 0; j < kw; j++) {
                        __m256i xv = sw == 2 ? _mm256_loadu_si256((const __m256i *)(r + j * dw))
                                             : _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(r + j * dw)));
                        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv, wv[i * kw + j]));
                    }
                }
                _mm256_storeu_si256((__m256i *)(accrow + ox), acc);
            }
            ox = Wo;
        }
        for (; ox < Wo; ox++) {
            int32_t a = 0;
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++)
                    a += (int32_t)plane[(int64_t)(oy * sh + i * dh) * Wp + ox * sw + j * dw] * w[i * kw + j];
            accrow[ox] = a;
        }
        KFN(rq_row)(accrow, Wo, bias, mult, shift, c, out + (int64_t)oy * Wo, flags);
    }
}

#define EFM_ADD_DEFINED
static void KFN(add)(const int8_t *a, const int8_t *b, int64_t n, int32_t za, int32_t zb, int32_t ma, int32_t mb,
                     efm_clamp c, int8_t *y) {
    const __m256i vza = _mm256_set1_epi32(za), vzb = _mm256_set1_epi32(zb), vma = _mm256_set1_epi32(ma);
    const __m256i vmb = _mm256_set1_epi32(mb), rnd = _mm256_set1_epi32(1 << 19), vzo = _mm256_set1_epi32(c.zo);
    const __m256i vlo = _mm256_set1_epi32(c.lo), vhi = _mm256_set1_epi32(c.hi);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i va = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(a + i))), vza);
        __m256i vb = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + i))), vzb);
        __m256i v = _mm256_add_epi32(_mm256_mullo_epi32(va, vma), _mm256_mullo_epi32(vb, vmb));
        v = _mm256_add_epi32(_mm256_srai_epi32(_mm256_add_epi32(v, rnd), 20), vzo);
        v = _mm256_min_epi32(_mm256_max_epi32(v, vlo), vhi);
        __m256i p16 = _mm256_packs_epi32(v, v), p8 = _mm256_packs_epi16(p16, p16);
        _mm_storel_epi64((__m128i *)(y + i),
                         _mm_unpacklo_epi32(_mm256_castsi256_si128(p8), _mm256_extracti128_si256(p8, 1)));
    }
    for (; i < n; i++) {
        int32_t v = ((((int32_t)a[i] - za) * ma + ((int32_t)b[i] - zb) * mb + (1 << 19)) >> 20) + c.zo;
        y[i] = (int8_t)(v < c.lo ? c.lo : v > c.hi ? c.hi : v);
    }
}

/* flinear with FMA: 4 rows x 16 channels in eight accumulators; each 16 weights are widened to
 * float once per k and shared by the four rows. Rows past M repeat row 0 and are not stored. */
#define EFM_FLINEAR_DEFINED
static void KFN(flinear_store)(const float *acc, int nb, const float *scale, const float *bias, int act, float *y,
                               int N);
#if defined(EFM_FLINEAR_ZMM)
/* 8 rows x 16 channels: one 512-bit accumulator per row, the 16 weights widened once per k. */
static void KFN(flinear)(int M, int n0, int n1, int K, int Np, const float *X, const int8_t *Wt, const float *scale,
                         const float *bias, int act, float *Y, int N) {
    for (int m0 = 0; m0 < M; m0 += 8) {
        int mr = M - m0 < 8 ? M - m0 : 8;
        const float *x[8];
        for (int r = 0; r < 8; r++) x[r] = X + (int64_t)(m0 + (r < mr ? r : 0)) * K;
        for (int nb = n0; nb < n1; nb += EFM_FLINEAR_NBLK) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            const int8_t *w = Wt + nb;
            for (int k = 0; k < K; k++, w += Np) {
                __m512 wf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)w)));
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[0][k]), wf, a0);
                a1 = _mm512_fmadd_ps(_mm512_set1_ps(x[1][k]), wf, a1);
                a2 = _mm512_fmadd_ps(_mm512_set1_ps(x[2][k]), wf, a2);
                a3 = _mm512_fmadd_ps(_mm512_set1_ps(x[3][k]), wf, a3);
                a4 = _mm512_fmadd_ps(_mm512_set1_ps(x[4][k]), wf, a4);
                a5 = _mm512_fmadd_ps(_mm512_set1_ps(x[5][k]), wf, a5);
                a6 = _mm512_fmadd_ps(_mm512_set1_ps(x[6][k]), wf, a6);
                a7 = _mm512_fmadd_ps(_mm512_set1_ps(x[7][k]), wf, a7);
            }
            float acc[8][EFM_FLINEAR_NBLK];
            _mm512_storeu_ps(acc[0], a0); _mm512_storeu_ps(acc[1], a1); _mm512_storeu_ps(acc[2], a2);
            _mm512_storeu_ps(acc[3], a3); _mm512_storeu_ps(acc[4], a4); _mm512_storeu_ps(acc[5], a5);
            _mm512_storeu_ps(acc[6], a6); _mm512_storeu_ps(acc[7], a7);
            for (int r = 0; r < mr; r++) KFN(flinear_store)(acc[r], nb, scale, bias, act, Y + (int64_t)(m0 + r) * N, N);
        }
    }
}
#else
static void KFN(flinear)(int M, int n0, int n1, int K, int Np, const float *X, const int8_t *Wt, const float *scale,
                         const float *bias, int act, float *Y, int N) {
    for (int m0 = 0; m0 < M; m0 += 4) {
        int mr = M - m0 < 4 ? M - m0 : 4;
        const float *x0 = X + (int64_t)m0 * K, *x1 = mr > 1 ? x0 + K : x0, *x2 = mr > 2 ? x0 + 2 * K : x0;
        const float *x3 = mr > 3 ? x0 + 3 * (int64_t)K : x0;
        for (int nb = n0; nb < n1; nb += EFM_FLINEAR_NBLK) {
            __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
            const int8_t *w = Wt + nb;
            for (int k = 0; k < K; k++, w += Np) {
                __m128i wb = _mm_loadu_si128((const __m128i *)w);
                __m256 wl = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(wb));
                __m256 wh = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(wb, 8)));
                __m256 v = _mm256_broadcast_ss(x0 + k);
                a0 = _mm256_fmadd_ps(v, wl, a0); b0 = _mm256_fmadd_ps(v, wh, b0);
                v = _mm256_broadcast_ss(x1 + k);
                a1 = _mm256_fmadd_ps(v, wl, a1); b1 = _mm256_fmadd_ps(v, wh, b1);
                v = _mm256_broadcast_ss(x2 + k);
                a2 = _mm256_fmadd_ps(v, wl, a2); b2 = _mm256_fmadd_ps(v, wh, b2);
                v = _mm256_broadcast_ss(x3 + k);
                a3 = _mm256_fmadd_ps(v, wl, a3); b3 = _mm256_fmadd_ps(v, wh, b3);
            }
            float acc[4][EFM_FLINEAR_NBLK];
            _mm256_storeu_ps(acc[0], a0); _mm256_storeu_ps(acc[0] + 8, b0);
            _mm256_storeu_ps(acc[1], a1); _mm256_storeu_ps(acc[1] + 8, b1);
            _mm256_storeu_ps(acc[2], a2); _mm256_storeu_ps(acc[2] + 8, b2);
            _mm256_storeu_ps(acc[3], a3); _mm256_storeu_ps(acc[3] + 8, b3);
            for (int r = 0; r < mr; r++) KFN(flinear_store)(acc[r], nb, scale, bias, act, Y + (int64_t)(m0 + r) * N, N);
        }
    }
}
#endif

#include "kernels_impl.h"

/* R rows x NB blocks of 8 output channels. R, NB are compile-time constants at each call site. */
static inline __attribute__((always_inline)) void w7_block(int R, int NB, int kq, const int8_t *A, int64_t lda,
                                                           const int8_t *W, int64_t wstride, __m256i acc[4][4]) {
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
                acc[r][b] = DOT4(acc[r][b], av, wv[b]);
        }
    }
}

static inline __attribute__((always_inline)) void w7_store(int R, int NB, int m, int n0, int N, __m256i acc[4][4],
                                                           const int64_t *bias, const int32_t *mult,
                                                           const int32_t *shift, efm_clamp c, int8_t *out,
                                                           int64_t ldm, int64_t ldn, uint32_t flags) {
    int32_t tmp[8];
    for (int b = 0; b < NB; b++) {
        int nb0 = n0 + b * 8;
        if ((flags & EFM_KF_RQ32) && ldn == 1 && nb0 + 8 <= N) {
            rqv rv = rq_lanes(bias + nb0, mult + nb0, shift + nb0, c);
            for (int r = 0; r < R; r++) _mm_storel_epi64((__m128i *)(out + (m + r) * ldm + nb0), rq8(acc[r][b], &rv));
            continue;
        }
        for (int r = 0; r < R; r++) {
            _mm256_storeu_si256((__m256i *)tmp, acc[r][b]);
            for (int j = 0; j < 8; j++) {
                int n = n0 + b * 8 + j;
                if (n < N)
                    out[(m + r) * ldm + n * ldn] =
                        efm_requant((int64_t)tmp[j] + bias[n], mult[n], shift[n], c.zo, c.lo, c.hi);
            }
        }
    }
}

static void KFN(gemm_w7)(int M, int N, int Kp, const int8_t *A, int64_t lda, const int8_t *Wp,
                         const int64_t *bias, const int32_t *mult, const int32_t *shift, efm_clamp c,
                         int8_t *out, int64_t ldm, int64_t ldn, uint32_t flags) {
    const int kq = Kp / 4, nblk = (N + 7) / 8;
    const int64_t ws = (int64_t)kq * 32;
    __m256i acc[4][4];
    int m = 0;
    for (; m + 4 <= M; m += 4) {
        const int8_t *a = A + m * lda;
        int nb = 0;
        for (; nb + 2 <= nblk; nb += 2) {
            w7_block(4, 2, kq, a, lda, Wp + nb * ws, ws, acc);
            w7_store(4, 2, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn, flags);
        }
        for (; nb < nblk; nb++) {
            w7_block(4, 1, kq, a, lda, Wp + nb * ws, ws, acc);
            w7_store(4, 1, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn, flags);
        }
    }
    for (; m < M; m++) {
        const int8_t *a = A + m * lda;
        int nb = 0;
        for (; nb + 4 <= nblk; nb += 4) {
            w7_block(1, 4, kq, a, lda, Wp + nb * ws, ws, acc);
            w7_store(1, 4, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn, flags);
        }
        for (; nb < nblk; nb++) {
            w7_block(1, 1, kq, a, lda, Wp + nb * ws, ws, acc);
            w7_store(1, 1, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn, flags);
        }
    }
}

/* R output channels x NB blocks of 8 pixels; the activations are the vector operand (u8), each
 * channel's 4 weights the broadcast one (s8). */
static inline __attribute__((always_inline)) void conv_block(int R, int NB, int kq, const uint8_t *X, int64_t xs,
                                                             const int8_t *W, int64_t Kp, __m256i acc[4][2]) {
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++) acc[r][b] = _mm256_setzero_si256();
    for (int q = 0; q < kq; q++) {
        __m256i xv[2];
        for (int b = 0; b < NB; b++) xv[b] = _mm256_load_si256((const __m256i *)(X + b * xs + q * 32));
        for (int r = 0; r < R; r++) {
            int32_t w4;
            memcpy(&w4, W + r * Kp + 4 * q, 4);
            __m256i wv = _mm256_set1_epi32(w4);
            for (int b = 0; b < NB; b++)
                acc[r][b] = DOT4(acc[r][b], xv[b], wv);
        }
    }
}

static inline __attribute__((always_inline)) void conv_store(int R, int NB, int o, int p0, int P, __m256i acc[4][2],
                                                             const int64_t *bias, const int32_t *mult,
                                                             const int32_t *shift, efm_clamp c, int8_t *out,
                                                             uint32_t flags, const rqf *rf) {
    int32_t tmp[8];
    for (int r = 0; r < R; r++) {
        rqv rv = rq_bcast(bias[o + r], mult[o + r], shift[o + r], c);
        for (int b = 0; b < NB; b++) {
            int pb = p0 + b * 8;
            int8_t *dst = out + (int64_t)(o + r) * P + pb;
            if ((flags & EFM_KF_RQF) && pb + 8 <= P) {
                _mm_storel_epi64((__m128i *)dst, rqf8(acc[r][b], &rf[r]));
                continue;
            }
            if ((flags & EFM_KF_RQ32) && pb + 8 <= P) {
                _mm_storel_epi64((__m128i *)dst, rq8(acc[r][b], &rv));
                continue;
            }
            _mm256_storeu_si256((__m256i *)tmp, acc[r][b]);
            for (int j = 0; j < 8 && pb + j < P; j++)
                dst[j] = efm_requant((int64_t)tmp[j] + bias[o + r], mult[o + r], shift[o + r], c.zo, c.lo, c.hi);
        }
    }
}

static void KFN(conv_w7)(int O, int P, int Kp, const uint8_t *Xp, const int8_t *W, const int64_t *bias,
                         const int32_t *mult, const int32_t *shift, efm_clamp c, int8_t *out, uint32_t flags) {
    const int kq = Kp / 4, pblk = (P + 7) / 8;
    const int64_t xs = (int64_t)kq * 32;
    __m256i acc[4][2];
    rqf rf[4];
    int o = 0;
    for (; o + 4 <= O; o += 4) {
        const int8_t *w = W + (int64_t)o * Kp;
        for (int r = 0; r < 4; r++) rf[r] = rqf_bcast(bias[o + r], mult[o + r], shift[o + r], c);
        int pb = 0;
        for (; pb + 2 <= pblk; pb += 2) {
            conv_block(4, 2, kq, Xp + pb * xs, xs, w, Kp, acc);
            conv_store(4, 2, o, pb * 8, P, acc, bias, mult, shift, c, out, flags, rf);
        }
        for (; pb < pblk; pb++) {
            conv_block(4, 1, kq, Xp + pb * xs, xs, w, Kp, acc);
            conv_store(4, 1, o, pb * 8, P, acc, bias, mult, shift, c, out, flags, rf);
        }
    }
    for (; o < O; o++) {
        const int8_t *w = W + (int64_t)o * Kp;
        rf[0] = rqf_bcast(bias[o], mult[o], shift[o], c);
        int pb = 0;
        for (; pb + 2 <= pblk; pb += 2) {
            conv_block(1, 2, kq, Xp + pb * xs, xs, w, Kp, acc);
            conv_store(1, 2, o, pb * 8, P, acc, bias, mult, shift, c, out, flags, rf);
        }
        for (; pb < pblk; pb++) {
            conv_block(1, 1, kq, Xp + pb * xs, xs, w, Kp, acc);
            conv_store(1, 1, o, pb * 8, P, acc, bias, mult, shift, c, out, flags, rf);
        }
    }
}

