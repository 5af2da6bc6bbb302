/* The whole-graph interpreter: one call quantizes the inputs, runs every op over a planned arena
 * (tensor offsets fixed at export, scaled by the batch size) and writes the outputs. The loader has
 * validated every shape, index and constant, so the kernels here only compute. */
#include "efm_util.h"
#include "kernels.h"

/* Optional cycle counters per phase (a development aid: build with -DEFM_PROF, never shipped). */
#ifdef EFM_PROF
#include <x86intrin.h>
extern unsigned long long prof_t[8];
#define EFM_PROF_BEGIN unsigned long long prof_last = __rdtsc()
#define EFM_PROF_MARK(i) do { unsigned long long now = __rdtsc(); prof_t[i] += now - prof_last; prof_last = now; } while (0)
#else
#define EFM_PROF_BEGIN do { } while (0)
#define EFM_PROF_MARK(i) do { } while (0)
#endif

typedef struct {
    const efm_model *m;
    const efm_kernels *k;
    int64_t batch;
    uint8_t *arena;
    uint8_t *scratch;
    const void *const *inputs;
} run_ctx;

void efm_memcpy(void *dst, const void *src, uint64_t n) {
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    for (uint64_t i = 0; i < n; i++) d[i] = s[i];
}

void efm_err(char *err, size_t errlen, const char *what, int64_t num, const char *tail) {
    if (!err || errlen == 0) return;
    size_t o = 0;
    for (const char *p = what; *p && o + 1 < errlen; p++) err[o++] = *p;
    if (o + 1 < errlen) err[o++] = ' ';
    char digits[24];
    int nd = 0;
    uint64_t u = num < 0 ? (uint64_t)(-(num + 1)) + 1 : (uint64_t)num;
    do { digits[nd++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (num < 0 && o + 1 < errlen) err[o++] = '-';
    while (nd && o + 1 < errlen) err[o++] = digits[--nd];
    for (const char *p = tail; *p && o + 1 < errlen; p++) err[o++] = *p;
    err[o] = 0;
}

static int8_t *act(const run_ctx *c, uint32_t id) { return (int8_t *)(c->arena + (uint64_t)c->batch * c->m->tensors[id].offset); }
static const efm_tensor *T(const run_ctx *c, uint32_t id) { return &c->m->tensors[id]; }
static uint32_t in_id(const run_ctx *c, const efm_op *op, uint32_t k) { return c->m->ids[op->in_ids + k]; }
static efm_clamp clamp_of(const efm_tensor *y, int32_t lo, int32_t hi) { efm_clamp r = {y->zero_point, lo, hi}; return r; }

/* ---- linear / conv ------------------------------------------------------------------------- */
static void op_linear(const run_ctx *c, const efm_op *op, uint32_t flags) {
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
        int full_rows = 1;
        for (int t = 0; t < 4; t++) {
            r[t] = 4 * cq + t < C ? x + (4 * cq + t) * P : 0;
            full_rows &= r[t] != 0;
        }
        (void)full_rows; /* used by the SSE2 path only */
        for (int64_t pb = 0; pb < pblk; pb++) {
            uint8_t *dst = Xp + (pb * kq + cq) * 32;
#if defined(__SSE2__)
            if (full_rows && pb * 8 + 8 <= P) {
                const __m128i flip = _mm_set1_epi8((char)0x80);
                __m128i a0 = _mm_loadl_epi64((const __m128i *)(r[0] + pb * 8)), a1 = _mm_loadl_epi64((const __m128i *)(r[1] + pb * 8));
                __m128i a2 = _mm_loadl_epi64((const __m128i *)(r[2] + pb * 8)), a3 = _mm_loadl_epi64((const __m128i *)(r[3] + pb * 8));
                __m128i t01 = _mm_unpacklo_epi8(a0, a1), t23 = _mm_unpacklo_epi8(a2, a3);
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

/* General im2col as rows: row k = (c, i, j) holds, for every output pixel, the input value under
 * that tap, so that pack_pointwise can pack it. The input is first copied into zero-point-padded
 * planes, which turns every row segment into a plain (strided for sw > 1) copy. */
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

static void op_conv(const run_ctx *c, const efm_op *op, uint32_t flags) {
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

static void op_dwconv(const run_ctx *c, const efm_op *op) {
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

/* ---- pooling and reductions ------------------------------------------------------------------ */
static int64_t rounded_div(int64_t num, int64_t den) {
    int64_t half = den / 2;
    return num >= 0 ? (num + half) / den : -((-num + half) / den);
}

static void op_pool(const run_ctx *c, const efm_op *op) {
    const int32_t *a = op->attr;
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi), *y = T(c, op->out);
    int32_t C = x->dims[1], H = x->dims[2], W = x->dims[3], Ho = y->dims[2], Wo = y->dims[3];
    int32_t kh = a[0], kw = a[1], sh = a[2], sw = a[3], ph = a[4], pw = a[5];
    int is_max = op->opcode == EFM_OP_MAXPOOL, include_pad = a[6];
    int64_t zp = x->zero_point;
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    if (is_max && ph == 0 && pw == 0 && kh == 2 && kw == 2 && sh == 2 && sw == 2) { /* the common 2x2/2 pool */
        for (int64_t nc = 0; nc < c->batch * C; nc++)
            for (int32_t oy = 0; oy < Ho; oy++) {
                const int8_t *x0 = xs + (nc * H + (int64_t)oy * 2) * W, *x1 = x0 + W;
                int8_t *yr = ys + (nc * Ho + oy) * Wo;
                for (int32_t ox = 0; ox < Wo; ox++) {
                    int8_t a = x0[2 * ox] > x0[2 * ox + 1] ? x0[2 * ox] : x0[2 * ox + 1];
                    int8_t b = x1[2 * ox] > x1[2 * ox + 1] ? x1[2 * ox] : x1[2 * ox + 1];
                    yr[ox] = a > b ? a : b;
                }
            }
        return;
    }
    if (is_max && ph == 0 && pw == 0) { /* no padding: a branch-free max over the window */
        for (int64_t nc = 0; nc < c->batch * C; nc++)
            for (int32_t oy = 0; oy < Ho; oy++) {
                int8_t *yr = ys + (nc * Ho + oy) * Wo;
                for (int32_t ox = 0; ox < Wo; ox++) yr[ox] = -128;
                for (int32_t i = 0; i < kh; i++) {
                    const int8_t *xr = xs + (nc * H + (int64_t)oy * sh + i) * W;
                    for (int32_t j = 0; j < kw; j++)
                        for (int32_t ox = 0; ox < Wo; ox++) {
                            int8_t v = xr[ox * sw + j];
                            yr[ox] = v > yr[ox] ? v : yr[ox];
                        }
                }
            }
        return;
    }
    for (int64_t nc = 0; nc < c->batch * C; nc++)
        for (int32_t oy = 0; oy < Ho; oy++)
            for (int32_t ox = 0; ox < Wo; ox++) {
                int64_t best = -128, sum = 0, real = 0;
                for (int32_t i = 0; i < kh; i++)
                    for (int32_t j = 0; j < kw; j++) {
                        int32_t iy = oy * sh + i - ph, ix = ox * sw + j - pw;
                        int inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                        int64_t v = inside ? xs[(nc * H + iy) * W + ix] : (is_max ? -128 : zp);
                        best = v > best ? v : best;
                        sum += v;
                        real += inside;
                    }
                int64_t r;
                if (is_max) r = best;
                else if (include_pad) r = rounded_div(sum, (int64_t)kh * kw);
                else r = rounded_div(sum - ((int64_t)kh * kw - real) * zp, real);
                ys[(nc * Ho + oy) * Wo + ox] = efm_sat8(r);
            }
}

static void outer_len_inner(const efm_tensor *t, int64_t batch, int32_t a0, int32_t a1, int64_t *outer, int64_t *len, int64_t *inner) {
    *outer = batch; *len = 1; *inner = 1;
    for (int32_t d = 1; d < a0; d++) *outer *= t->dims[d];
    for (int32_t d = a0; d <= a1; d++) *len *= t->dims[d];
    for (uint32_t d = (uint32_t)a1 + 1; d < t->rank; d++) *inner *= t->dims[d];
}

static void op_mean(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    int64_t outer, len, inner;
    outer_len_inner(T(c, xi), c->batch, op->attr[0], op->attr[1], &outer, &len, &inner);
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t s = 0;
            for (int64_t l = 0; l < len; l++) s += xs[(o * len + l) * inner + in];
            ys[o * inner + in] = efm_sat8(rounded_div(s, len));
        }
}

static void op_softmax(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    int64_t outer, len, inner;
    outer_len_inner(T(c, xi), c->batch, op->attr[0], op->attr[0], &outer, &len, &inner);
    const int32_t *tab = (const int32_t *)efm_blob_ptr(c->m, op->blob[0]);
    int32_t *e = (int32_t *)c->scratch;
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            const int8_t *xr = xs + o * len * inner + in;
            int8_t *yr = ys + o * len * inner + in;
            int32_t mx = -128;
            for (int64_t l = 0; l < len; l++) mx = xr[l * inner] > mx ? xr[l * inner] : mx;
            int64_t total = 0;
            for (int64_t l = 0; l < len; l++) { e[l] = tab[mx - xr[l * inner]]; total += e[l]; }
            for (int64_t l = 0; l < len; l++) yr[l * inner] = efm_sat8(((int64_t)e[l] * 512 + total) / (2 * total) - 128);
        }
}

/* run_int computes layer norm in float32 between dequantize and quantize; float summation order
 * differs between numpy and this loop, so results agree within 1 LSB (documented in FORMAT.md). */
static void op_layernorm(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi), *y = T(c, op->out);
    int64_t D = x->dims[x->rank - 1], rows = c->batch * (int64_t)(efm_numel_ps(x) / (uint64_t)D);
    union { int32_t i; float f; } eps = {op->attr[0]};
    const float *gamma = (const float *)efm_blob_ptr(c->m, op->blob[0]), *beta = (const float *)efm_blob_ptr(c->m, op->blob[1]);
    float *v = (float *)c->scratch;
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    for (int64_t r = 0; r < rows; r++) {
        double sum = 0, sq = 0;
        for (int64_t d = 0; d < D; d++) { v[d] = (float)(xs[r * D + d] - x->zero_point) * x->scale; sum += v[d]; }
        float mean = (float)(sum / (double)D);
        for (int64_t d = 0; d < D; d++) { float t = v[d] - mean; sq += (double)t * t; }
        float var = (float)(sq / (double)D);
        float inv_den = __builtin_sqrtf(var + eps.f);
        for (int64_t d = 0; d < D; d++) ys[r * D + d] = efm_quantize((v[d] - mean) / inv_den * gamma[d] + beta[d], y->scale, y->zero_point);
    }
}

static int same_dims(const efm_tensor *a, const efm_tensor *b) {
    if (a->rank != b->rank) return 0;
    for (uint32_t i = 1; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

/* ---- elementwise ------------------------------------------------------------------------------ */
typedef struct {
    int64_t dims[EFM_MAX_RANK], sa[EFM_MAX_RANK], sb[EFM_MAX_RANK];
} bcast;

/* Element strides of operand t broadcast to y (numpy rules; stride 0 on broadcast axes). */
static void operand_strides(const run_ctx *c, const efm_tensor *t, const efm_tensor *y, int64_t *st) {
    uint32_t off = y->rank - t->rank;
    int64_t s = 1;
    for (int32_t d = (int32_t)y->rank - 1; d >= 0; d--) {
        int32_t td = d - (int32_t)off;
        int64_t dim = td < 0 ? 1 : (d == 0 && t->kind == EFM_T_ACT) ? c->batch : t->dims[td];
        int64_t ydim = d == 0 ? c->batch : y->dims[d];
        st[d] = (dim == 1 && ydim != 1) || td < 0 ? 0 : s;
        s *= dim;
    }
}

static const int8_t *operand_ptr(const run_ctx *c, uint32_t id) {
    const efm_tensor *t = T(c, id);
    return t->kind == EFM_T_CONST ? (const int8_t *)efm_blob_ptr(c->m, (uint32_t)t->offset) : act(c, id);
}

static void op_binary(const run_ctx *c, const efm_op *op) {
    uint32_t ai = in_id(c, op, 0), bi = in_id(c, op, 1);
    const efm_tensor *ta = T(c, ai), *tb = T(c, bi), *y = T(c, op->out);
    const int8_t *A = operand_ptr(c, ai), *B = operand_ptr(c, bi);
    int8_t *Y = act(c, op->out);
    int64_t za = ta->zero_point, zb = tb->zero_point, zo = y->zero_point, lo = op->attr[0], hi = op->attr[1];
    int64_t ma = op->param[0], mb = op->param[1];
    int32_t mult = op->attr[2], shift = op->attr[3];
    int is_add = op->opcode == EFM_OP_ADD;
    bcast g;
    uint32_t R = y->rank;
    for (uint32_t d = 0; d < R; d++) g.dims[d] = d == 0 ? c->batch : y->dims[d];
    operand_strides(c, ta, y, g.sa);
    operand_strides(c, tb, y, g.sb);
    /* walk the output in order with an odometer over the leading axes; the last axis is the loop */
    int64_t idx[EFM_MAX_RANK] = {0}, oa = 0, ob = 0, total = 1;
    for (uint32_t d = 0; d < R; d++) total *= g.dims[d];
    int64_t inner = g.dims[R - 1], sa = g.sa[R - 1], sb = g.sb[R - 1];
    if (is_add && ta->kind == EFM_T_ACT && tb->kind == EFM_T_ACT && same_dims(ta, y) && same_dims(tb, y) &&
        ma < (1 << 22) && mb < (1 << 22)) {
        /* residual add of equal shapes with multipliers < 2^22: |a*ma + b*mb| < 2^31, so int32 lanes
         * give the same integers (and the loop vectorises) */
        efm_clamp cl = {(int32_t)zo, (int32_t)lo, (int32_t)hi};
        c->k->add(A, B, total, (int32_t)za, (int32_t)zb, (int32_t)ma, (int32_t)mb, cl, Y);
        return;
    }
    for (int64_t o = 0; o < total; o += inner) {
        for (int64_t k = 0; k < inner; k++) {
            int64_t av = A[oa + k * sa] - za, bv = B[ob + k * sb] - zb, v;
            if (is_add) v = (av * ma + bv * mb + (1 << 19)) >> 20;
            else {
                uint64_t p = (uint64_t)(av * bv) * (uint64_t)(int64_t)mult + ((uint64_t)1 << (shift - 1));
                v = (int64_t)p >> shift;
            }
            v += zo;
            Y[o + k] = (int8_t)(v < lo ? lo : v > hi ? hi : v);
        }
        for (int32_t d = (int32_t)R - 2; d >= 0; d--) {
            oa += g.sa[d]; ob += g.sb[d];
            if (++idx[d] < g.dims[d]) break;
            oa -= g.sa[d] * g.dims[d]; ob -= g.sb[d] * g.dims[d];
            idx[d] = 0;
        }
    }
}

static void op_lut(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const int8_t *tab = (const int8_t *)efm_blob_ptr(c->m, op->blob[0]);
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    int64_t n = c->batch * (int64_t)efm_numel_ps(T(c, xi));
    for (int64_t i = 0; i < n; i++) ys[i] = tab[xs[i] + 128];
}

/* ---- attention matmul ------------------------------------------------------------------------ */
static void op_matmul(const run_ctx *c, const efm_op *op) {
    uint32_t ai = in_id(c, op, 0), bi = in_id(c, op, 1);
    const efm_tensor *ta = T(c, ai), *tb = T(c, bi), *y = T(c, op->out);
    uint32_t r = ta->rank;
    int64_t M = ta->dims[r - 2], K = ta->dims[r - 1], N = tb->dims[r - 1], nb = c->batch;
    for (uint32_t d = 1; d + 2 < r; d++) nb *= ta->dims[d];
    int16_t *A16 = (int16_t *)c->scratch, *B16 = A16 + efm_round_up((uint64_t)(M * K), 32);
    const int8_t *As = act(c, ai), *Bs = act(c, bi);
    int8_t *Ys = act(c, op->out);
    efm_clamp cl = clamp_of(y, op->attr[2], op->attr[3]);
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *ab = As + b * M * K, *bb = Bs + b * K * N;
        for (int64_t i = 0; i < M * K; i++) A16[i] = (int16_t)(ab[i] - ta->zero_point);
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) B16[j * K + k] = (int16_t)(bb[k * N + j] - tb->zero_point);
        c->k->mm16((int)M, (int)N, (int)K, A16, B16, op->attr[0], op->attr[1], cl, Ys + b * M * N);
    }
}

/* ---- data movement --------------------------------------------------------------------------- */
static void op_transpose(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi);
    uint32_t R = x->rank;
    int64_t xs[EFM_MAX_RANK], dims[EFM_MAX_RANK], st[EFM_MAX_RANK], idx[EFM_MAX_RANK] = {0};
    int64_t s = 1;
    for (int32_t d = (int32_t)R - 1; d >= 0; d--) { xs[d] = s; s *= d == 0 ? c->batch : x->dims[d]; }
    for (uint32_t d = 0; d < R; d++) { dims[d] = op->attr[d] == 0 ? c->batch : x->dims[op->attr[d]]; st[d] = xs[op->attr[d]]; }
    const int8_t *X = act(c, xi);
    int8_t *Y = act(c, op->out);
    int64_t total = s, off = 0, inner = dims[R - 1], si = st[R - 1];
    for (int64_t o = 0; o < total; o += inner) {
        for (int64_t k = 0; k < inner; k++) Y[o + k] = X[off + k * si];
        for (int32_t d = (int32_t)R - 2; d >= 0; d--) {
            off += st[d];
            if (++idx[d] < dims[d]) break;
            off -= st[d] * dims[d];
            idx[d] = 0;
        }
    }
}

static void op_concat(const run_ctx *c, const efm_op *op) {
    const efm_tensor *y = T(c, op->out);
    int64_t outer, ylen, inner;
    outer_len_inner(y, c->batch, op->attr[0], op->attr[0], &outer, &ylen, &inner);
    const int64_t *mults = (const int64_t *)efm_blob_ptr(c->m, op->blob[0]);
    int8_t *Y = act(c, op->out);
    int64_t at = 0;
    for (uint32_t k = 0; k < op->n_in; k++) {
        uint32_t id = in_id(c, op, k);
        const efm_tensor *t = T(c, id);
        int64_t len = t->dims[op->attr[0]], zi = t->zero_point, zo = y->zero_point;
        int same = (op->attr[1 + k / 32] >> (k % 32)) & 1;
        const int8_t *X = act(c, id);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < len * inner; i++) {
                int8_t v = X[o * len * inner + i];
                Y[(o * ylen + at) * inner + i] = same ? v : efm_sat8(((((int64_t)v - zi) * mults[k] + (1 << 19)) >> 20) + zo);
            }
        at += len;
    }
}

static int op_embedding(const run_ctx *c, const efm_op *op, uint32_t graph_input, char *err, size_t errlen) {
    uint32_t xi = in_id(c, op, 0);
    int64_t V = op->attr[0], D = op->attr[1], n = c->batch * (int64_t)efm_numel_ps(T(c, xi));
    const int64_t *idx = (const int64_t *)c->inputs[graph_input];
    const int8_t *Wq = (const int8_t *)efm_blob_ptr(c->m, op->blob[0]);
    int8_t *Y = act(c, op->out);
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= V) {
            efm_err(err, errlen, "embedding index out of range [0, vocabulary):", idx[i], "");
            return EFM_E_INDEX;
        }
        efm_memcpy(Y + i * D, Wq + idx[i] * D, (uint64_t)D);
    }
    return EFM_OK;
}

int efm_run(const efm_model *m, int64_t batch, const void *const *inputs, float *const *outputs_f, int8_t *const *outputs_q,
            void *arena, uint64_t arena_len, char *err, size_t errlen) {
    return efm_run_hooked(m, batch, inputs, outputs_f, outputs_q, arena, arena_len, err, errlen, 0, 0);
}

int efm_run_hooked(const efm_model *m, int64_t batch, const void *const *inputs, float *const *outputs_f,
                   int8_t *const *outputs_q, void *arena, uint64_t arena_len, char *err, size_t errlen,
                   efm_op_hook hook, void *user) {
    uint64_t need = efm_arena_bytes(m, batch);
    if (!need) { efm_err(err, errlen, "batch size out of range:", batch, ""); return EFM_E_ARG; }
    if (arena_len < need || (uintptr_t)arena % EFM_ALIGN) {
        efm_err(err, errlen, "arena too small or misaligned; need bytes:", (int64_t)need, "");
        return EFM_E_ARENA;
    }
    run_ctx c = {m, (const efm_kernels *)m->kernels, batch, (uint8_t *)arena, 0, inputs};
    c.scratch = c.arena + (uint64_t)batch * m->arena_per_sample;
    const efm_header *h = m->h;
    for (uint32_t k = 0; k < h->n_inputs; k++) {
        const efm_tensor *t = &m->tensors[m->ids[k]];
        if (t->kind != EFM_T_ACT) continue; /* index inputs are read in place by embedding */
        c.k->quantize((const float *)inputs[k], batch * (int64_t)efm_numel_ps(t), t->scale, t->zero_point,
                      act(&c, m->ids[k]));
    }
    for (uint32_t i = 0; i < h->n_ops; i++) {
        const efm_op *op = &m->ops[i];
        uint32_t flags = m->info[i].flags;
        switch (op->opcode) {
        case EFM_OP_LINEAR: op_linear(&c, op, flags); break;
        case EFM_OP_CONV2D: op_conv(&c, op, flags); break;
        case EFM_OP_DWCONV: op_dwconv(&c, op); break;
        case EFM_OP_MAXPOOL:
        case EFM_OP_AVGPOOL: op_pool(&c, op); break;
        case EFM_OP_MEAN: op_mean(&c, op); break;
        case EFM_OP_ADD:
        case EFM_OP_MUL: op_binary(&c, op); break;
        case EFM_OP_LUT: op_lut(&c, op); break;
        case EFM_OP_SOFTMAX: op_softmax(&c, op); break;
        case EFM_OP_LAYERNORM: op_layernorm(&c, op); break;
        case EFM_OP_MATMUL: op_matmul(&c, op); break;
        case EFM_OP_RESHAPE: {
            uint32_t xi = in_id(&c, op, 0);
            efm_memcpy(act(&c, op->out), act(&c, xi), (uint64_t)batch * efm_numel_ps(T(&c, xi)));
            break;
        }
        case EFM_OP_TRANSPOSE: op_transpose(&c, op); break;
        case EFM_OP_CONCAT: op_concat(&c, op); break;
        case EFM_OP_EMBEDDING: {
            uint32_t g = 0;
            while (m->ids[g] != in_id(&c, op, 0)) g++; /* the loader proved it is a graph input */
            int rc = op_embedding(&c, op, g, err, errlen);
            if (rc) return rc;
            break;
        }
        }
        if (hook) hook(user, i);
    }
    for (uint32_t k = 0; k < h->n_outputs; k++) {
        uint32_t id = m->ids[h->n_inputs + k];
        const efm_tensor *t = &m->tensors[id];
        const int8_t *src = act(&c, id);
        int64_t n = batch * (int64_t)efm_numel_ps(t);
        if (outputs_q && outputs_q[k]) efm_memcpy(outputs_q[k], src, (uint64_t)n);
        if (outputs_f && outputs_f[k])
            for (int64_t i = 0; i < n; i++) outputs_f[k][i] = (float)(src[i] - t->zero_point) * t->scale;
    }
    return EFM_OK;
}
