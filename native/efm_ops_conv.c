/* Linear and convolution ops: activation packing (im2col) and the calls into the kernel table. */
#include "efm_ops.h"

/* ---- linear / conv ------------------------------------------------------------------------- */
void op_linear(const run_ctx *c, const efm_op *op, uint32_t flags) {
    const efm_model *m = c->m;
    uint32_t xi = in_id(c, op, 0);
    int32_t K = op->attr[0], N = op->attr[1];
    int64_t rows = c->batch * (int64_t)(efm_numel_ps(T(c, xi)) / (uint64_t)K);
    efm_gemm_fn f = (flags & EFM_OPF_W7) ? c->k->gemm_w7 : c->k->gemm;
    f((int)rows, N, (int)efm_round_up(K, EFM_KPAD), act(c, xi), K, (const int8_t *)efm_blob_ptr(m, op->blob[0]),
      (const int64_t *)efm_blob_ptr(m, op->blob[1]), (const int32_t *)efm_blob_ptr(m, op->blob[2]),
      (const int32_t *)efm_blob_ptr(m, op->blob[3]), clamp_of(T(c, op->out), op->attr[2], op->attr[3]), act(c, op->out),
      N, 1, flags & (EFM_OPF_RQ32 | EFM_OPF_RQF));
}

/* Packed activations (see efm_conv_fn): element (p, k) of the im2col matrix, offset to unsigned, lives
 * at ((p/8)*(Kp/4) + k/4)*32 + (p%8)*4 + k%4. */

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* 1x1 stride-1 convolution input [C][P] -> packed, 4 channels x 8 pixels at a time. */
static void pack_pointwise(const int8_t *x, int64_t C, int64_t P, int64_t Kp, uint8_t *Xp) {
    int64_t kq = Kp / 4, pblk = (P + 7) / 8;
    for (int64_t cq = 0; cq < kq; cq++) {
        const int8_t *r[4];
        for (int t = 0; t < 4; t++) r[t] = 4 * cq + t < C ? x + (4 * cq + t) * P : 0; /* 0: a padding row */
        for (int64_t pb = 0; pb < pblk; pb++) {
            uint8_t *dst = Xp + (pb * kq + cq) * 32;
#if defined(__SSE2__)
            if (pb * 8 + 8 <= P) {
                const __m128i flip = _mm_set1_epi8((char)0x80);
                __m128i a[4];
                for (int t = 0; t < 4; t++)
                    a[t] = r[t] ? _mm_loadl_epi64((const __m128i *)(r[t] + pb * 8)) : flip; /* flip ^ flip = 0 */
                __m128i t01 = _mm_unpacklo_epi8(a[0], a[1]), t23 = _mm_unpacklo_epi8(a[2], a[3]);
                _mm_storeu_si128((__m128i *)dst, _mm_xor_si128(_mm_unpacklo_epi16(t01, t23), flip));
                _mm_storeu_si128((__m128i *)(dst + 16), _mm_xor_si128(_mm_unpackhi_epi16(t01, t23), flip));
                continue;
            }
#endif
            for (int j = 0; j < 8; j++)
                for (int t = 0; t < 4; t++) {
                    int64_t p = pb * 8 + j;
                    dst[j * 4 + t] = (r[t] && p < P) ? (uint8_t)((uint8_t)r[t][p] ^ 0x80u) : 0;
                }
        }
    }
}

static void pad_planes(const int8_t *x, int32_t cg, int32_t H, int32_t W, int32_t ph, int32_t pw, int8_t zx, int8_t *padded) {
    int64_t Hp = H + 2 * ph, Wp = W + 2 * pw;
    for (int64_t i = 0; i < cg * Hp * Wp; i++) padded[i] = zx;
    for (int32_t ci = 0; ci < cg; ci++)
        for (int32_t iy = 0; iy < H; iy++)
            efm_memcpy(padded + (ci * Hp + iy + ph) * Wp + pw, x + ((int64_t)ci * H + iy) * W, (uint64_t)W);
}

static void im2col_rows(int32_t cg, int32_t H, int32_t W, int32_t kh, int32_t kw, int32_t sh, int32_t sw, int32_t ph,
                        int32_t pw, int32_t dh, int32_t dw, int32_t Ho, int32_t Wo, int8_t *rows, const int8_t *padded) {
    int64_t P = (int64_t)Ho * Wo, Hp = H + 2 * ph, Wp = W + 2 * pw;
    int8_t *dst = rows;
    for (int32_t ci = 0; ci < cg; ci++)
        for (int32_t i = 0; i < kh; i++)
            for (int32_t j = 0; j < kw; j++, dst += P)
                for (int32_t oy = 0; oy < Ho; oy++) {
                    const int8_t *src = padded + (ci * Hp + (int64_t)oy * sh + i * dh) * Wp + j * dw;
                    int8_t *d = dst + (int64_t)oy * Wo;
                    if (sw == 1) {
                        int32_t ox = 0;
                        for (; ox + 8 <= Wo; ox += 8) __builtin_memcpy(d + ox, src + ox, 8);
                        for (; ox < Wo; ox++) d[ox] = src[ox];
                    } else if (sw == 2) {
                        int32_t ox = 0;
#if defined(__SSE2__)
                        /* even bytes of 32 inputs: mask each 16-bit lane to its low byte, pack back */
                        const __m128i lowbyte = _mm_set1_epi16(0x00FF);
                        for (; ox + 16 <= Wo && 2 * ox + 32 <= W + 2 * pw - j * dw; ox += 16) {
                            __m128i lo = _mm_and_si128(_mm_loadu_si128((const __m128i *)(src + 2 * ox)), lowbyte);
                            __m128i hi = _mm_and_si128(_mm_loadu_si128((const __m128i *)(src + 2 * ox + 16)), lowbyte);
                            _mm_storeu_si128((__m128i *)(d + ox), _mm_packus_epi16(lo, hi));
                        }
#endif
                        for (; ox < Wo; ox++) d[ox] = src[2 * ox];
                    } else {
                        for (int32_t ox = 0; ox < Wo; ox++) d[ox] = src[ox * sw];
                    }
                }
}

/* For stride-1 convolutions whose output rows are whole 8-pixel blocks: pack straight from the
 * padded planes (no im2col rows), 4 taps x 8 pixels at a time. */
static void pack_from_padded(const int8_t *padded, int64_t Hp, int64_t Wp, int32_t kh, int32_t kw, int32_t sh, int32_t dh,
                             int32_t dw, int32_t Ho, int32_t Wo, int64_t K, int64_t Kp, uint8_t *Xp) {
    int64_t kq = Kp / 4, pblk = (int64_t)Ho * Wo / 8;
    for (int64_t cq = 0; cq < kq; cq++) {
        int64_t koff[4];
        int full = 1;
        for (int t = 0; t < 4; t++) {
            int64_t k = 4 * cq + t;
            if (k >= K) { koff[t] = -1; full = 0; continue; }
            int64_t ci = k / (kh * kw), i = (k / kw) % kh, j = k % kw;
            koff[t] = (ci * Hp + i * dh) * Wp + j * dw;
        }
        (void)full; /* used by the SSE2 path only */
        for (int64_t pb = 0; pb < pblk; pb++) {
            int64_t oy = pb * 8 / Wo, ox0 = pb * 8 - oy * Wo, rowoff = oy * sh * Wp + ox0;
            uint8_t *dst = Xp + (pb * kq + cq) * 32;
#if defined(__SSE2__)
            if (full) {
                const __m128i flip = _mm_set1_epi8((char)0x80);
                __m128i a0 = _mm_loadl_epi64((const __m128i *)(padded + koff[0] + rowoff));
                __m128i a1 = _mm_loadl_epi64((const __m128i *)(padded + koff[1] + rowoff));
                __m128i a2 = _mm_loadl_epi64((const __m128i *)(padded + koff[2] + rowoff));
                __m128i a3 = _mm_loadl_epi64((const __m128i *)(padded + koff[3] + rowoff));
                __m128i t01 = _mm_unpacklo_epi8(a0, a1), t23 = _mm_unpacklo_epi8(a2, a3);
                _mm_storeu_si128((__m128i *)dst, _mm_xor_si128(_mm_unpacklo_epi16(t01, t23), flip));
                _mm_storeu_si128((__m128i *)(dst + 16), _mm_xor_si128(_mm_unpackhi_epi16(t01, t23), flip));
                continue;
            }
#endif
            for (int j = 0; j < 8; j++)
                for (int t = 0; t < 4; t++)
                    dst[j * 4 + t] = koff[t] < 0 ? 0 : (uint8_t)((uint8_t)padded[koff[t] + rowoff + j] ^ 0x80u);
        }
    }
}

void op_conv(const run_ctx *c, const efm_op *op, uint32_t flags) {
    const efm_model *m = c->m;
    const int32_t *a = op->attr;
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi), *y = T(c, op->out);
    int32_t C = x->dims[1], H = x->dims[2], W = x->dims[3], O = a[1], kh = a[2], kw = a[3], sh = a[4], sw = a[5];
    int32_t ph = a[6], pw = a[7], dh = a[8], dw = a[9], g = a[10], Ho = y->dims[2], Wo = y->dims[3];
    int32_t cg = C / g, og = O / g;
    int64_t K = (int64_t)cg * kh * kw, Kp = (int64_t)efm_round_up((uint64_t)K, EFM_KPAD), P = (int64_t)Ho * Wo;
    uint8_t *col = c->scratch;
    const int8_t *Wq = (const int8_t *)efm_blob_ptr(m, op->blob[0]);
    const int64_t *bias = (const int64_t *)efm_blob_ptr(m, op->blob[1]);
    const int32_t *mult = (const int32_t *)efm_blob_ptr(m, op->blob[2]), *shift = (const int32_t *)efm_blob_ptr(m, op->blob[3]);
    efm_conv_fn f = (flags & EFM_OPF_W7) ? c->k->conv_w7 : c->k->conv;
    efm_clamp cl = clamp_of(y, a[11], a[12]);
    int pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    for (int64_t n = 0; n < c->batch; n++) {
        const int8_t *xn = act(c, xi) + n * (int64_t)C * H * W;
        int8_t *yn = act(c, op->out) + n * (int64_t)O * P;
        for (int32_t gi = 0; gi < g; gi++) {
            const int8_t *xg = xn + (int64_t)gi * cg * H * W;
            EFM_PROF_BEGIN;
            if (pointwise) pack_pointwise(xg, cg, P, Kp, col);
            else {
                int8_t *rows = (int8_t *)col + efm_round_up((efm_round_up((uint64_t)P, 8) + 8) * (uint64_t)Kp, 64);
                int8_t *padded = rows + efm_round_up((uint64_t)K * P, 64);
                pad_planes(xg, cg, H, W, ph, pw, (int8_t)x->zero_point, padded);
                if (sw == 1 && Wo % 8 == 0) {
                    EFM_PROF_MARK(pointwise ? 0 : 1);
                    pack_from_padded(padded, H + 2 * ph, W + 2 * pw, kh, kw, sh, dh, dw, Ho, Wo, K, Kp, col);
                } else {
                    im2col_rows(cg, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, rows, padded);
                    EFM_PROF_MARK(pointwise ? 0 : 1);
                    pack_pointwise(rows, K, P, Kp, col);
                }
            }
            EFM_PROF_MARK(pointwise ? 2 : 3);
            f(og, (int)P, (int)Kp, col, Wq + (int64_t)gi * og * Kp, bias + gi * og, mult + gi * og, shift + gi * og, cl,
              yn + (int64_t)gi * og * P, flags & (EFM_OPF_RQ32 | EFM_OPF_RQF));
            EFM_PROF_MARK(pointwise ? 4 : 5);
        }
    }
}

void op_dwconv(const run_ctx *c, const efm_op *op) {
    const efm_model *m = c->m;
    const int32_t *a = op->attr;
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi), *y = T(c, op->out);
    int32_t C = x->dims[1], H = x->dims[2], W = x->dims[3], kh = a[2], kw = a[3], sh = a[4], sw = a[5];
    int32_t ph = a[6], pw = a[7], dh = a[8], dw = a[9], Ho = y->dims[2], Wo = y->dims[3];
    int32_t Hp = H + 2 * ph, Wp = W + 2 * pw;
    int16_t *plane = (int16_t *)c->scratch;
    int32_t *accrow = (int32_t *)(c->scratch + efm_round_up((uint64_t)Hp * Wp * 2, 64) + 256);
    const int8_t *Wq = (const int8_t *)efm_blob_ptr(m, op->blob[0]);
    const int64_t *bias = (const int64_t *)efm_blob_ptr(m, op->blob[1]);
    const int32_t *mult = (const int32_t *)efm_blob_ptr(m, op->blob[2]), *shift = (const int32_t *)efm_blob_ptr(m, op->blob[3]);
    efm_clamp cl = clamp_of(y, a[11], a[12]);
    int32_t zx = x->zero_point;
    for (int64_t i = 0; i < (int64_t)Hp * Wp; i++) plane[i] = 0; /* the border stays 0 = centred padding */
    for (int64_t n = 0; n < c->batch; n++)
        for (int32_t ch = 0; ch < C; ch++) {
            const int8_t *xc = act(c, xi) + (n * C + ch) * (int64_t)H * W;
            EFM_PROF_BEGIN;
            c->k->center(xc, H, W, zx, plane + (int64_t)ph * Wp + pw, Wp);
            EFM_PROF_MARK(6);
            c->k->dw(plane, Wp, Wq + (int64_t)ch * kh * kw, kh, kw, sh, sw, dh, dw, Ho, Wo, bias[ch], mult[ch], shift[ch], cl,
                     act(c, op->out) + (n * C + ch) * (int64_t)Ho * Wo, accrow, m->info[op - m->ops].flags);
            EFM_PROF_MARK(7);
        }
}
