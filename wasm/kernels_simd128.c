/* The wasm SIMD128 kernel table: explicit wasm_simd128.h intrinsics, the same integers as the
 * portable table (native/kernels_impl.h) for every input.
 *
 * The int8 dot products use i32x4.dot_i16x8_s: activations (u8, already offset by 128) and weights
 * (s8) are widened to int16 and multiplied in pairs into int32 lanes. Unlike x86's vpmaddubsw there is
 * no int16 intermediate, so it is exact for any 8-bit weight: one GEMM serves gemm and gemm_w7.
 * Requantization runs in i64x2 lanes with the scalar formula of efm_requant (wrapping 64-bit product,
 * arithmetic shift), so it needs none of the loader's int32-range proofs. Only compiled with
 * -msimd128 (wasm/build.sh); an engine without SIMD loads the portable build instead. */
#include <wasm_simd128.h>

#include "kernels.h"
#include "efm_util.h"
#include "kernels_wasm.h"

/* ---- exact requantization in i64x2 lanes --------------------------------------------------- */
typedef struct {
    v128_t b[4], m[4]; /* bias and multiplier of lanes 0-1, 2-3, 4-5, 6-7 (int64) */
    v128_t rnd, zo, lo, hi;
    uint32_t shift;
} rq8c;

static inline void rq_common(rq8c *r, int32_t shift, efm_clamp c) {
    r->rnd = wasm_i64x2_splat((int64_t)((uint64_t)1 << (shift - 1)));
    r->zo = wasm_i64x2_splat(c.zo);
    r->lo = wasm_i64x2_splat(c.lo);
    r->hi = wasm_i64x2_splat(c.hi);
    r->shift = (uint32_t)shift;
}

/* one channel's constants for 8 outputs (convolution pixels, a depthwise row) */
static inline rq8c rq_bcast(int64_t bias, int32_t mult, int32_t shift, efm_clamp c) {
    rq8c r;
    for (int i = 0; i < 4; i++) {
        r.b[i] = wasm_i64x2_splat(bias);
        r.m[i] = wasm_i64x2_splat((int64_t)mult);
    }
    rq_common(&r, shift, c);
    return r;
}

/* 8 channels' constants (a linear layer's outputs); the caller checks that their shifts are equal */
static inline rq8c rq_lanes(const int64_t *bias, const int32_t *mult, int32_t shift, efm_clamp c) {
    rq8c r;
    for (int i = 0; i < 4; i++) {
        r.b[i] = wasm_v128_load(bias + 2 * i);
        r.m[i] = wasm_i64x2_extend_low_i32x4(wasm_v128_load64_zero(mult + 2 * i));
    }
    rq_common(&r, shift, c);
    return r;
}

/* requant of two lanes: ((S * M + 2^(s-1)) >> s) + zo, clamped; S = acc + bias in int64 */
static inline v128_t rq2(v128_t acc64, v128_t b, v128_t m, const rq8c *r) {
    v128_t p = wasm_i64x2_add(wasm_i64x2_mul(wasm_i64x2_add(acc64, b), m), r->rnd);
    v128_t v = wasm_i64x2_add(wasm_i64x2_shr(p, r->shift), r->zo);
    v = wasm_v128_bitselect(r->lo, v, wasm_i64x2_gt(r->lo, v));
    return wasm_v128_bitselect(r->hi, v, wasm_i64x2_gt(v, r->hi));
}

/* 8 int32 accumulators (lo: outputs 0-3, hi: 4-7) -> 8 int8 stored at out */
static inline void rq8_store(v128_t lo, v128_t hi, const rq8c *r, int8_t *out) {
    v128_t a = rq2(wasm_i64x2_extend_low_i32x4(lo), r->b[0], r->m[0], r);
    v128_t b = rq2(wasm_i64x2_extend_high_i32x4(lo), r->b[1], r->m[1], r);
    v128_t d = rq2(wasm_i64x2_extend_low_i32x4(hi), r->b[2], r->m[2], r);
    v128_t e = rq2(wasm_i64x2_extend_high_i32x4(hi), r->b[3], r->m[3], r);
    v128_t q0 = wasm_i32x4_shuffle(a, b, 0, 2, 4, 6), q1 = wasm_i32x4_shuffle(d, e, 0, 2, 4, 6);
    v128_t w = wasm_i16x8_narrow_i32x4(q0, q1); /* values are in [-128, 127]: narrowing is exact */
    wasm_v128_store64_lane(out, wasm_i8x16_narrow_i16x8(w, w), 0);
}

/* pair partial sums -> per-output sums: x = [o0 a, o0 b, o1 a, o1 b], y likewise for o2, o3 */
static inline v128_t hadd_pairs(v128_t x, v128_t y) {
    return wasm_i32x4_add(wasm_i32x4_shuffle(x, y, 0, 2, 4, 6), wasm_i32x4_shuffle(x, y, 1, 3, 5, 7));
}

/* ---- GEMM (linear): A rows x packed weights ------------------------------------------------- */
/* R rows x one block of 8 output channels. acc[r][i] holds channels 2i, 2i+1 as pair partial sums. */
static inline __attribute__((always_inline)) void gemm_block(int R, int kq, const int8_t *A, int64_t lda,
                                                             const int8_t *W, v128_t acc[2][4]) {
    const v128_t flip = wasm_i8x16_splat((int8_t)0x80);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < 4; i++) acc[r][i] = wasm_i32x4_splat(0);
    for (int q = 0; q < kq; q++) {
        v128_t w01 = wasm_v128_load(W + q * 32), w23 = wasm_v128_load(W + q * 32 + 16);
        v128_t wv0 = wasm_i16x8_extend_low_i8x16(w01), wv1 = wasm_i16x8_extend_high_i8x16(w01);
        v128_t wv2 = wasm_i16x8_extend_low_i8x16(w23), wv3 = wasm_i16x8_extend_high_i8x16(w23);
        for (int r = 0; r < R; r++) {
            /* 4 activations, offset to unsigned, repeated: [a0 a1 a2 a3 a0 a1 a2 a3] as int16 */
            v128_t a = wasm_u16x8_extend_low_u8x16(wasm_v128_xor(wasm_v128_load32_splat(A + r * lda + 4 * q), flip));
            acc[r][0] = wasm_i32x4_add(acc[r][0], wasm_i32x4_dot_i16x8(a, wv0));
            acc[r][1] = wasm_i32x4_add(acc[r][1], wasm_i32x4_dot_i16x8(a, wv1));
            acc[r][2] = wasm_i32x4_add(acc[r][2], wasm_i32x4_dot_i16x8(a, wv2));
            acc[r][3] = wasm_i32x4_add(acc[r][3], wasm_i32x4_dot_i16x8(a, wv3));
        }
    }
}

static inline __attribute__((always_inline)) void gemm_store(int R, int m, int n0, int N, v128_t acc[2][4],
                                                             const int64_t *bias, const int32_t *mult,
                                                             const int32_t *shift, efm_clamp c, int8_t *out,
                                                             int64_t ldm, int64_t ldn) {
    int same = ldn == 1 && n0 + 8 <= N;
    for (int j = 1; same && j < 8; j++) same = shift[n0 + j] == shift[n0];
    rq8c rv;
    if (same) rv = rq_lanes(bias + n0, mult + n0, shift[n0], c);
    for (int r = 0; r < R; r++) {
        v128_t lo = hadd_pairs(acc[r][0], acc[r][1]), hi = hadd_pairs(acc[r][2], acc[r][3]);
        if (same) {
            rq8_store(lo, hi, &rv, out + (m + r) * ldm + n0);
            continue;
        }
        int32_t tmp[8];
        wasm_v128_store(tmp, lo);
        wasm_v128_store(tmp + 4, hi);
        for (int j = 0; j < 8 && n0 + j < N; j++) {
            int n = n0 + j;
            out[(m + r) * ldm + n * ldn] = efm_requant((int64_t)tmp[j] + bias[n], mult[n], shift[n], c.zo, c.lo, c.hi);
        }
    }
}

static void gemm_simd128(int M, int N, int Kp, const int8_t *A, int64_t lda, const int8_t *Wp, const int64_t *bias,
                         const int32_t *mult, const int32_t *shift, efm_clamp c, int8_t *out, int64_t ldm, int64_t ldn,
                         uint32_t flags) {
    const int kq = Kp / 4, nblk = (N + 7) / 8;
    const int64_t ws = (int64_t)kq * 32;
    v128_t acc[2][4];
    (void)flags;
    int m = 0;
    for (; m + 2 <= M; m += 2)
        for (int nb = 0; nb < nblk; nb++) {
            gemm_block(2, kq, A + m * lda, lda, Wp + nb * ws, acc);
            gemm_store(2, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn);
        }
    for (; m < M; m++)
        for (int nb = 0; nb < nblk; nb++) {
            gemm_block(1, kq, A + m * lda, lda, Wp + nb * ws, acc);
            gemm_store(1, m, nb * 8, N, acc, bias, mult, shift, c, out, ldm, ldn);
        }
}

/* ---- convolution on packed activations ------------------------------------------------------ */
/* R output channels x one block of 8 pixels; acc[r][i] holds pixels 2i, 2i+1 as pair partial sums. */
static inline __attribute__((always_inline)) void conv_block(int R, int kq, const uint8_t *X, const int8_t *W,
                                                             int64_t Kp, v128_t acc[4][4]) {
    for (int r = 0; r < R; r++)
        for (int i = 0; i < 4; i++) acc[r][i] = wasm_i32x4_splat(0);
    for (int q = 0; q < kq; q++) {
        v128_t x01 = wasm_v128_load(X + q * 32), x23 = wasm_v128_load(X + q * 32 + 16);
        v128_t xv0 = wasm_u16x8_extend_low_u8x16(x01), xv1 = wasm_u16x8_extend_high_u8x16(x01);
        v128_t xv2 = wasm_u16x8_extend_low_u8x16(x23), xv3 = wasm_u16x8_extend_high_u8x16(x23);
        for (int r = 0; r < R; r++) {
            v128_t w = wasm_i16x8_extend_low_i8x16(wasm_v128_load32_splat(W + r * Kp + 4 * q));
            acc[r][0] = wasm_i32x4_add(acc[r][0], wasm_i32x4_dot_i16x8(xv0, w));
            acc[r][1] = wasm_i32x4_add(acc[r][1], wasm_i32x4_dot_i16x8(xv1, w));
            acc[r][2] = wasm_i32x4_add(acc[r][2], wasm_i32x4_dot_i16x8(xv2, w));
            acc[r][3] = wasm_i32x4_add(acc[r][3], wasm_i32x4_dot_i16x8(xv3, w));
        }
    }
}

static inline __attribute__((always_inline)) void conv_store(int R, int o, int p0, int P, v128_t acc[4][4],
                                                             const int64_t *bias, const int32_t *mult,
                                                             const int32_t *shift, efm_clamp c, int8_t *out) {
    for (int r = 0; r < R; r++) {
        v128_t lo = hadd_pairs(acc[r][0], acc[r][1]), hi = hadd_pairs(acc[r][2], acc[r][3]);
        int8_t *dst = out + (int64_t)(o + r) * P + p0;
        if (p0 + 8 <= P) {
            rq8c rv = rq_bcast(bias[o + r], mult[o + r], shift[o + r], c);
            rq8_store(lo, hi, &rv, dst);
            continue;
        }
        int32_t tmp[8];
        wasm_v128_store(tmp, lo);
        wasm_v128_store(tmp + 4, hi);
        for (int j = 0; j < 8 && p0 + j < P; j++)
            dst[j] = efm_requant((int64_t)tmp[j] + bias[o + r], mult[o + r], shift[o + r], c.zo, c.lo, c.hi);
    }
}

static void conv_simd128(int O, int P, int Kp, const uint8_t *Xp, const int8_t *W, const int64_t *bias,
                         const int32_t *mult, const int32_t *shift, efm_clamp c, int8_t *out, uint32_t flags) {
    const int kq = Kp / 4, pblk = (P + 7) / 8;
    const int64_t xs = (int64_t)kq * 32;
    v128_t acc[4][4];
    (void)flags;
    int o = 0;
    for (; o + 4 <= O; o += 4)
        for (int pb = 0; pb < pblk; pb++) {
            conv_block(4, kq, Xp + pb * xs, W + (int64_t)o * Kp, Kp, acc);
            conv_store(4, o, pb * 8, P, acc, bias, mult, shift, c, out);
        }
    for (; o + 2 <= O; o += 2)
        for (int pb = 0; pb < pblk; pb++) {
            conv_block(2, kq, Xp + pb * xs, W + (int64_t)o * Kp, Kp, acc);
            conv_store(2, o, pb * 8, P, acc, bias, mult, shift, c, out);
        }
    for (; o < O; o++)
        for (int pb = 0; pb < pblk; pb++) {
            conv_block(1, kq, Xp + pb * xs, W + (int64_t)o * Kp, Kp, acc);
            conv_store(1, o, pb * 8, P, acc, bias, mult, shift, c, out);
        }
}

/* ---- attention matmul on centred int16 panels ----------------------------------------------- */
static void mm16_simd128(int M, int N, int K, const int16_t *A, const int16_t *B, int32_t mult, int32_t shift,
                         efm_clamp c, int8_t *out) {
    for (int i = 0; i < M; i++) {
        const int16_t *a = A + (int64_t)i * K;
        for (int j = 0; j < N; j++) {
            const int16_t *b = B + (int64_t)j * K;
            v128_t acc = wasm_i32x4_splat(0);
            int k = 0;
            for (; k + 8 <= K; k += 8) acc = wasm_i32x4_add(acc, wasm_i32x4_dot_i16x8(wasm_v128_load(a + k), wasm_v128_load(b + k)));
            /* int32 wrapping sums: the same integers as the scalar loop in any order */
            int32_t s = (int32_t)((uint32_t)wasm_i32x4_extract_lane(acc, 0) + (uint32_t)wasm_i32x4_extract_lane(acc, 1) +
                                  (uint32_t)wasm_i32x4_extract_lane(acc, 2) + (uint32_t)wasm_i32x4_extract_lane(acc, 3));
            for (; k < K; k++) s += (int32_t)a[k] * (int32_t)b[k];
            out[(int64_t)i * N + j] = efm_requant(s, mult, shift, c.zo, c.lo, c.hi);
        }
    }
}

/* ---- depthwise ------------------------------------------------------------------------------ */
static void rq_row_simd128(const int32_t *acc, int n, int64_t bias, int32_t mult, int32_t shift, efm_clamp c,
                           int8_t *out) {
    int i = 0;
    if (n >= 8) {
        rq8c r = rq_bcast(bias, mult, shift, c);
        for (; i + 8 <= n; i += 8) rq8_store(wasm_v128_load(acc + i), wasm_v128_load(acc + i + 4), &r, out + i);
    }
    for (; i < n; i++) out[i] = efm_requant((int64_t)acc[i] + bias, mult, shift, c.zo, c.lo, c.hi);
}

/* Stride 1: 8 int16 activations times a splatted weight, widened products (extmul) into two i32x4.
 * Stride 2: 8 int16 activations dotted with [w, 0, w, 0, ...] give the 4 even positions' products.
 * Vector chunks stop at the last whole 8 outputs; the stride-2 load reads one int16 past the last
 * even position used (multiplied by the zero lane), inside the plane or its slack. */
static void dw_simd128(const int16_t *plane, int Wp, const int8_t *w, int kh, int kw, int sh, int sw, int dh, int dw,
                       int Ho, int Wo, int64_t bias, int32_t mult, int32_t shift, efm_clamp c, int8_t *out,
                       int32_t *accrow, uint32_t flags) {
    (void)flags;
    for (int oy = 0; oy < Ho; oy++) {
        int ox = 0;
        if (sw == 1 || sw == 2) {
            for (; ox + 8 <= Wo; ox += 8) {
                v128_t lo = wasm_i32x4_splat(0), hi = wasm_i32x4_splat(0);
                for (int i = 0; i < kh; i++) {
                    const int16_t *r = plane + (int64_t)(oy * sh + i * dh) * Wp + ox * sw;
                    for (int j = 0; j < kw; j++) {
                        int16_t wt = w[i * kw + j];
                        if (sw == 1) {
                            v128_t x = wasm_v128_load(r + j * dw), wv = wasm_i16x8_splat(wt);
                            lo = wasm_i32x4_add(lo, wasm_i32x4_extmul_low_i16x8(x, wv));
                            hi = wasm_i32x4_add(hi, wasm_i32x4_extmul_high_i16x8(x, wv));
                        } else {
                            v128_t wv = wasm_i32x4_splat((int32_t)(uint16_t)wt);
                            lo = wasm_i32x4_add(lo, wasm_i32x4_dot_i16x8(wasm_v128_load(r + j * dw), wv));
                            hi = wasm_i32x4_add(hi, wasm_i32x4_dot_i16x8(wasm_v128_load(r + j * dw + 8), wv));
                        }
                    }
                }
                wasm_v128_store(accrow + ox, lo);
                wasm_v128_store(accrow + ox + 4, hi);
            }
        }
        for (; ox < Wo; ox++) {
            int32_t a = 0;
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++)
                    a += (int32_t)plane[(int64_t)(oy * sh + i * dh) * Wp + ox * sw + j * dw] * w[i * kw + j];
            accrow[ox] = a;
        }
        rq_row_simd128(accrow, Wo, bias, mult, shift, c, out + (int64_t)oy * Wo);
    }
}

static void center_simd128(const int8_t *x, int H, int W, int32_t zx, int16_t *plane, int Wp) {
    const v128_t z = wasm_i16x8_splat((int16_t)zx);
    for (int iy = 0; iy < H; iy++) {
        const int8_t *s = x + (int64_t)iy * W;
        int16_t *d = plane + (int64_t)iy * Wp;
        int ix = 0;
        for (; ix + 16 <= W; ix += 16) {
            v128_t v = wasm_v128_load(s + ix);
            wasm_v128_store(d + ix, wasm_i16x8_sub(wasm_i16x8_extend_low_i8x16(v), z));
            wasm_v128_store(d + ix + 8, wasm_i16x8_sub(wasm_i16x8_extend_high_i8x16(v), z));
        }
        for (; ix < W; ix++) d[ix] = (int16_t)(s[ix] - zx);
    }
}

/* ---- elementwise ---------------------------------------------------------------------------- */
static void add_simd128(const int8_t *a, const int8_t *b, int64_t n, int32_t za, int32_t zb, int32_t ma, int32_t mb,
                        efm_clamp c, int8_t *y) {
    const v128_t vza = wasm_i32x4_splat(za), vzb = wasm_i32x4_splat(zb), vma = wasm_i32x4_splat(ma);
    const v128_t vmb = wasm_i32x4_splat(mb), rnd = wasm_i32x4_splat(1 << 19), vzo = wasm_i32x4_splat(c.zo);
    const v128_t vlo = wasm_i32x4_splat(c.lo), vhi = wasm_i32x4_splat(c.hi);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v128_t a16 = wasm_i16x8_extend_low_i8x16(wasm_v128_load64_zero(a + i));
        v128_t b16 = wasm_i16x8_extend_low_i8x16(wasm_v128_load64_zero(b + i));
        v128_t q[2];
        for (int h = 0; h < 2; h++) {
            v128_t va = wasm_i32x4_sub(h ? wasm_i32x4_extend_high_i16x8(a16) : wasm_i32x4_extend_low_i16x8(a16), vza);
            v128_t vb = wasm_i32x4_sub(h ? wasm_i32x4_extend_high_i16x8(b16) : wasm_i32x4_extend_low_i16x8(b16), vzb);
            v128_t v = wasm_i32x4_add(wasm_i32x4_mul(va, vma), wasm_i32x4_mul(vb, vmb));
            v = wasm_i32x4_add(wasm_i32x4_shr(wasm_i32x4_add(v, rnd), 20), vzo);
            q[h] = wasm_i32x4_min(wasm_i32x4_max(v, vlo), vhi);
        }
        v128_t w = wasm_i16x8_narrow_i32x4(q[0], q[1]);
        wasm_v128_store64_lane(y + i, wasm_i8x16_narrow_i16x8(w, w), 0);
    }
    for (; i < n; i++) {
        int32_t v = ((((int32_t)a[i] - za) * ma + ((int32_t)b[i] - zb) * mb + (1 << 19)) >> 20) + c.zo;
        y[i] = (int8_t)(v < c.lo ? c.lo : v > c.hi ? c.hi : v);
    }
}

/* efm_quantize on 4 lanes: the same IEEE float32 division, clamp (NaN to the low end) and
 * round-half-even by adding and removing 1.5 * 2^23. */
static void quantize_simd128(const float *x, int64_t n, float scale, int32_t zp, int8_t *y) {
    const v128_t vs = wasm_f32x4_splat(scale), magic = wasm_f32x4_splat(12582912.0f);
    const v128_t lo = wasm_f32x4_splat(-1048576.0f), hi = wasm_f32x4_splat(1048576.0f);
    const v128_t vzp = wasm_i32x4_splat(zp), qlo = wasm_i32x4_splat(-128), qhi = wasm_i32x4_splat(127);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v128_t v = wasm_f32x4_div(wasm_v128_load(x + i), vs);
        v = wasm_v128_bitselect(v, lo, wasm_f32x4_ge(v, lo));
        v = wasm_v128_bitselect(v, hi, wasm_f32x4_le(v, hi));
        v = wasm_f32x4_sub(wasm_f32x4_add(v, magic), magic);
        v128_t q = wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(v), vzp);
        q = wasm_i32x4_min(wasm_i32x4_max(q, qlo), qhi);
        v128_t w = wasm_i16x8_narrow_i32x4(q, q);
        wasm_v128_store32_lane(y + i, wasm_i8x16_narrow_i16x8(w, w), 0);
    }
    for (; i < n; i++) y[i] = efm_quantize(x[i], scale, zp);
}

const efm_kernels efm_kernels_simd128 = {"wasm-simd128", gemm_simd128, gemm_simd128, conv_simd128, conv_simd128,
                                         mm16_simd128, dw_simd128, center_simd128, add_simd128, quantize_simd128,
                                         efm_flinear_c};
