/* ARM NEON kernel bodies shared by the "neon" (every AArch64 CPU) and "neondot" (ARMv8.2 dot product,
 * sdot) tables. The including file sets KFN and DOT4(acc, a, b): acc (int32x4) += per lane the sum of
 * four s8 x s8 products of the lane's four bytes. neon: vmull_s8 (int16 products, |q*w| <= 2^14, exact)
 * then two pairwise widening adds; neondot: one sdot.
 *
 * Both operands are signed here: the activations enter as q = u - 128 (the packed unsigned bytes with
 * their top bit flipped, or the raw int8 rows of a linear layer), so sum u*w = sum q*w + 128 * sum w;
 * the weight sums are computed with the same dot instruction against ones. All integer, exact for any
 * int8 weights (both the general and the 7-bit entries use these bodies). The other kernels (depthwise,
 * attention matmul, add, quantize) are the portable C bodies, which the compiler vectorises for NEON. */
#include <arm_neon.h>
#include <string.h>

#include "kernels.h"
#include "kernels_impl.h"

static inline int8x16_t KFN(bcast4)(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

static inline void KFN(rq_store)(int32x4_t acc, const int64_t *bias, const int32_t *mult, const int32_t *shift, int n,
                                 int stride_c, efm_clamp c, int8_t *out, int64_t ostride) {
    int32_t t[4];
    vst1q_s32(t, acc);
    for (int j = 0; j < n; j++)
        out[j * ostride] = efm_requant((int64_t)t[j] + bias[j * stride_c], mult[j * stride_c], shift[j * stride_c], c.zo,
                                       c.lo, c.hi);
}

/* Linear: blocks of 8 output channels (two int32x4 accumulators) x up to 4 rows; weights [8][4] per k-group. */
static void KFN(gemm_s8)(int M, int N, int Kp, const int8_t *A, int64_t lda, const int8_t *Wp, const int64_t *bias,
                         const int32_t *mult, const int32_t *shift, efm_clamp c, int8_t *out, int64_t ldm, int64_t ldn,
                         uint32_t flags) {
    const int kq = Kp / 4;
    const int8x16_t ones = vdupq_n_s8(1);
    (void)flags;
    for (int nb = 0; nb * 8 < N; nb++) {
        const int8_t *w = Wp + (int64_t)nb * kq * 32;
        int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
        for (int q = 0; q < kq; q++) {
            s0 = DOT4(s0, vld1q_s8(w + q * 32), ones);
            s1 = DOT4(s1, vld1q_s8(w + q * 32 + 16), ones);
        }
        s0 = vshlq_n_s32(s0, 7); /* 128 * sum w: the unsigned offset of the activations */
        s1 = vshlq_n_s32(s1, 7);
        int n0 = nb * 8, nlo = N - n0 < 4 ? N - n0 : 4, nhi = N - n0 - 4 < 4 ? N - n0 - 4 : 4;
        for (int m = 0; m < M; m += 4) {
            int R = M - m < 4 ? M - m : 4;
            int32x4_t a0[4], a1[4];
            for (int r = 0; r < 4; r++) a0[r] = a1[r] = vdupq_n_s32(0);
            for (int q = 0; q < kq; q++) {
                int8x16_t w0 = vld1q_s8(w + q * 32), w1 = vld1q_s8(w + q * 32 + 16);
                for (int r = 0; r < R; r++) {
                    int8x16_t av = KFN(bcast4)(A + (int64_t)(m + r) * lda + 4 * q);
                    a0[r] = DOT4(a0[r], w0, av);
                    a1[r] = DOT4(a1[r], w1, av);
                }
            }
            for (int r = 0; r < R; r++) {
                int8_t *o = out + (int64_t)(m + r) * ldm + (int64_t)n0 * ldn;
                KFN(rq_store)(vaddq_s32(a0[r], s0), bias + n0, mult + n0, shift + n0, nlo, 1, c, o, ldn);
                if (nhi > 0)
                    KFN(rq_store)(vaddq_s32(a1[r], s1), bias + n0 + 4, mult + n0 + 4, shift + n0 + 4, nhi, 1, c,
                                  o + 4 * ldn, ldn);
            }
        }
    }
}

/* Convolution: per output channel, blocks of 8 pixels [8][4] (unsigned, flipped to signed here). */
static void KFN(conv_s8)(int O, int P, int Kp, const uint8_t *Xp, const int8_t *W, const int64_t *bias,
                         const int32_t *mult, const int32_t *shift, efm_clamp c, int8_t *out, uint32_t flags) {
    const int kq = Kp / 4;
    const uint8x16_t flip = vdupq_n_u8(0x80);
    (void)flags;
    for (int o = 0; o < O; o++) {
        const int8_t *w = W + (int64_t)o * Kp;
        int32_t wsum = 0;
        for (int k = 0; k < Kp; k++) wsum += w[k];
        int32x4_t corr = vdupq_n_s32(wsum * 128);
        for (int pb = 0; pb * 8 < P; pb++) {
            const uint8_t *x = Xp + (int64_t)pb * kq * 32;
            int32x4_t a0 = corr, a1 = corr;
            for (int q = 0; q < kq; q++) {
                int8x16_t wv = KFN(bcast4)(w + 4 * q);
                int8x16_t x0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(x + q * 32), flip));
                int8x16_t x1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(x + q * 32 + 16), flip));
                a0 = DOT4(a0, x0, wv);
                a1 = DOT4(a1, x1, wv);
            }
            int p0 = pb * 8, nlo = P - p0 < 4 ? P - p0 : 4, nhi = P - p0 - 4 < 4 ? P - p0 - 4 : 4;
            int8_t *dst = out + (int64_t)o * P + p0;
            KFN(rq_store)(a0, bias + o, mult + o, shift + o, nlo, 0, c, dst, 1);
            if (nhi > 0) KFN(rq_store)(a1, bias + o, mult + o, shift + o, nhi, 0, c, dst + 4, 1);
        }
    }
}
