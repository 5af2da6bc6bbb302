/* Portable kernel bodies, included by kernels_portable.c and (compiled for AVX2) kernels_avx2.c.
 * KFN(name) gives each build its own symbol names. Plain integer C: whatever the compiler
 * vectorises it into computes the same integers. */
#include "kernels.h"
#include "efm_util.h"

#if defined(__GNUC__)
__attribute__((unused))
#endif
static void KFN(gemm)(int M, int N, int Kp, const int8_t *A, int64_t lda, const int8_t *Wp,
                      const int64_t *bias, const int32_t *mult, const int32_t *shift, efm_clamp c,
                      int8_t *out, int64_t ldm, int64_t ldn, uint32_t flags) {
    const int kq = Kp / 4;
    (void)flags;
    for (int m = 0; m < M; m++) {
        const int8_t *a = A + (int64_t)m * lda;
        for (int nb = 0; nb * 8 < N; nb++) {
            const int8_t *w = Wp + (int64_t)nb * kq * 32;
            int32_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int q = 0; q < kq; q++) {
                for (int j = 0; j < 8; j++) {
                    int32_t s = 0;
                    for (int t = 0; t < 4; t++)
                        s += (int32_t)((uint8_t)a[4 * q + t] ^ 0x80u) * (int32_t)w[q * 32 + j * 4 + t];
                    acc[j] += s;
                }
            }
            for (int j = 0; j < 8 && nb * 8 + j < N; j++) {
                int n = nb * 8 + j;
                out[m * ldm + n * ldn] = efm_requant((int64_t)acc[j] + bias[n], mult[n], shift[n], c.zo, c.lo, c.hi);
            }
        }
    }
}

#if defined(__GNUC__)
__attribute__((unused))
#endif
static void KFN(conv)(int O, int P, int Kp, const uint8_t *Xp, const int8_t *W, const int64_t *bias,
                      const int32_t *mult, const int32_t *shift, efm_clamp c, int8_t *out, uint32_t flags) {
    const int kq = Kp / 4;
    (void)flags;
    for (int o = 0; o < O; o++) {
        const int8_t *w = W + (int64_t)o * Kp;
        for (int pb = 0; pb * 8 < P; pb++) {
            const uint8_t *x = Xp + (int64_t)pb * kq * 32;
            int32_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int q = 0; q < kq; q++)
                for (int j = 0; j < 8; j++) {
                    int32_t s = 0;
                    for (int t = 0; t < 4; t++) s += (int32_t)x[q * 32 + j * 4 + t] * (int32_t)w[4 * q + t];
                    acc[j] += s;
                }
            for (int j = 0; j < 8 && pb * 8 + j < P; j++)
                out[(int64_t)o * P + pb * 8 + j] = efm_requant((int64_t)acc[j] + bias[o], mult[o], shift[o], c.zo, c.lo, c.hi);
        }
    }
}

static void KFN(mm16)(int M, int N, int K, const int16_t *A, const int16_t *B, int32_t mult, int32_t shift,
                      efm_clamp c, int8_t *out) {
    for (int i = 0; i < M; i++) {
        const int16_t *a = A + (int64_t)i * K;
        for (int j = 0; j < N; j++) {
            const int16_t *b = B + (int64_t)j * K;
            int32_t acc = 0;
            for (int k = 0; k < K; k++) acc += (int32_t)a[k] * (int32_t)b[k];
            out[(int64_t)i * N + j] = efm_requant(acc, mult, shift, c.zo, c.lo, c.hi);
        }
    }
}

#ifndef EFM_RQ_ROW_DEFINED
/* out[i] = requant(acc[i] + bias) for one channel's row (the AVX2 build replaces it). */
static void KFN(rq_row)(const int32_t *acc, int n, int64_t bias, int32_t mult, int32_t shift, efm_clamp c, int8_t *out,
                        uint32_t flags) {
    (void)flags;
    for (int i = 0; i < n; i++) out[i] = efm_requant((int64_t)acc[i] + bias, mult, shift, c.zo, c.lo, c.hi);
}
#endif

#ifndef EFM_ADD_DEFINED
static void KFN(add)(const int8_t *a, const int8_t *b, int64_t n, int32_t za, int32_t zb, int32_t ma, int32_t mb,
                     efm_clamp c, int8_t *y) {
    for (int64_t i = 0; i < n; i++) {
        int32_t v = ((((int32_t)a[i] - za) * ma + ((int32_t)b[i] - zb) * mb + (1 << 19)) >> 20) + c.zo;
        y[i] = (int8_t)(v < c.lo ? c.lo : v > c.hi ? c.hi : v);
    }
}
#endif

static void KFN(quantize)(const float *x, int64_t n, float scale, int32_t zp, int8_t *y) {
    for (int64_t i = 0; i < n; i++) y[i] = efm_quantize(x[i], scale, zp);
}

/* Store one 16-channel block of flinear accumulators: scale, bias, activation; columns past N dropped. */
static inline void KFN(flinear_store)(const float *acc, int nb, const float *scale, const float *bias, int act,
                                      float *y, int N) {
    for (int j = 0; j < EFM_FLINEAR_NBLK && nb + j < N; j++) {
        float v = acc[j] * scale[nb + j] + bias[nb + j];
        if (act) v = v > 0.0f ? v : 0.0f;
        if (act == 2) v = v < 6.0f ? v : 6.0f;
        y[nb + j] = v;
    }
}

#ifndef EFM_FLINEAR_DEFINED
/* Four rows x 16 channels at a time, one accumulator array per row (so the compiler keeps the
 * channel loop in vector registers): each weight is converted once per four rows. */
static void KFN(flinear)(int M, int n0, int n1, int K, int Np, const float *X, const int8_t *Wt, const float *scale,
                         const float *bias, int act, float *Y, int N) {
    for (int m0 = 0; m0 < M; m0 += 4) {
        int mr = M - m0 < 4 ? M - m0 : 4;
        const float *x0 = X + (int64_t)m0 * K, *x1 = mr > 1 ? x0 + K : x0, *x2 = mr > 2 ? x0 + 2 * K : x0;
        const float *x3 = mr > 3 ? x0 + 3 * (int64_t)K : x0;
        for (int nb = n0; nb < n1; nb += EFM_FLINEAR_NBLK) {
            float a0[EFM_FLINEAR_NBLK], a1[EFM_FLINEAR_NBLK], a2[EFM_FLINEAR_NBLK], a3[EFM_FLINEAR_NBLK];
            for (int j = 0; j < EFM_FLINEAR_NBLK; j++) a0[j] = a1[j] = a2[j] = a3[j] = 0.0f; /* no memset: freestanding */
            const int8_t *w = Wt + nb;
            for (int k = 0; k < K; k++, w += Np) {
                float v0 = x0[k], v1 = x1[k], v2 = x2[k], v3 = x3[k];
                for (int j = 0; j < EFM_FLINEAR_NBLK; j++) {
                    float wf = (float)w[j];
                    a0[j] += v0 * wf; a1[j] += v1 * wf; a2[j] += v2 * wf; a3[j] += v3 * wf;
                }
            }
            float *acc[4] = {a0, a1, a2, a3};
            for (int r = 0; r < mr; r++) KFN(flinear_store)(acc[r], nb, scale, bias, act, Y + (int64_t)(m0 + r) * N, N);
        }
    }
}
#endif

#ifndef EFM_CENTER_DEFINED
static void KFN(center)(const int8_t *x, int H, int W, int32_t zx, int16_t *plane, int Wp) {
    for (int iy = 0; iy < H; iy++)
        for (int ix = 0; ix < W; ix++) plane[(int64_t)iy * Wp + ix] = (int16_t)(x[(int64_t)iy * W + ix] - zx);
}
#endif

#ifndef EFM_DW_DEFINED
static void KFN(dw)(const int16_t *plane, int Wp, const int8_t *w, int kh, int kw, int sh, int sw, int dh,
                    int dw, int Ho, int Wo, int64_t bias, int32_t mult, int32_t shift, efm_clamp c,
                    int8_t *out, int32_t *accrow, uint32_t flags) {
    for (int oy = 0; oy < Ho; oy++) {
        for (int ox = 0; ox < Wo; ox++) accrow[ox] = 0;
        for (int i = 0; i < kh; i++) {
            for (int j = 0; j < kw; j++) {
                const int16_t *r = plane + (int64_t)(oy * sh + i * dh) * Wp + j * dw;
                int32_t wv = w[i * kw + j];
                if (sw == 1) {
                    for (int ox = 0; ox < Wo; ox++) accrow[ox] += (int32_t)r[ox] * wv;
                } else {
                    for (int ox = 0; ox < Wo; ox++) accrow[ox] += (int32_t)r[ox * sw] * wv;
                }
            }
        }
        KFN(rq_row)(accrow, Wo, bias, mult, shift, c, out + (int64_t)oy * Wo, flags);
    }
}
#endif
