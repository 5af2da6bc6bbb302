/* Linear and convolution ops: activation packing (im2col) and the calls into the kernel table. */
#include "efm_ops.h"

/* ---- linear ------------------------------------------------------------------------------- */
/* Threads split the rows (4 at a time, the kernels' row block) or, for few rows, the output channels
 * (whole 8-channel weight blocks); each task writes its own outputs with the same arithmetic. */
typedef struct {
    efm_gemm_fn f;
    int M, N, Kp, T, by_rows;
    const int8_t *A, *Wp;
    int64_t lda;
    const int64_t *bias;
    const int32_t *mult, *shift;
    efm_clamp cl;
    int8_t *out;
    uint32_t flags;
} linear_job;

static void linear_task(void *ctx, int t, int thread) {
    (void)thread;
    const linear_job *j = (const linear_job *)ctx;
    if (j->by_rows) {
        int per = (int)efm_round_up((uint64_t)(j->M + j->T - 1) / (uint64_t)j->T, 4);
        int m0 = t * per, m1 = m0 + per < j->M ? m0 + per : j->M;
        if (m0 >= m1) return;
        j->f(m1 - m0, j->N, j->Kp, j->A + (int64_t)m0 * j->lda, j->lda, j->Wp, j->bias, j->mult, j->shift, j->cl,
             j->out + (int64_t)m0 * j->N, j->N, 1, j->flags);
    } else {
        int nblk = (j->N + 7) / 8, per = (nblk + j->T - 1) / j->T;
        int b0 = t * per, b1 = b0 + per < nblk ? b0 + per : nblk;
        if (b0 >= b1) return;
        int n0 = b0 * 8, n1 = b1 * 8 < j->N ? b1 * 8 : j->N;
        j->f(j->M, n1 - n0, j->Kp, j->A, j->lda, j->Wp + (int64_t)b0 * (j->Kp / 4) * 32, j->bias + n0, j->mult + n0,
             j->shift + n0, j->cl, j->out + n0, j->N, 1, j->flags);
    }
}

void op_linear(const run_ctx *c, const efm_op *op, uint32_t flags) {
    const efm_model *m = c->m;
    uint32_t xi = in_id(c, op, 0);
    int32_t K = op->attr[0], N = op->attr[1];
    int64_t rows = c->batch * (int64_t)(efm_numel_ps(T(c, xi)) / (uint64_t)K);
    linear_job j = {(flags & EFM_OPF_W7) ? c->k->gemm_w7 : c->k->gemm, (int)rows, N, (int)efm_round_up(K, EFM_KPAD), 1, 1,
                    act(c, xi), (const int8_t *)efm_blob_ptr(m, op->blob[0]), K,
                    (const int64_t *)efm_blob_ptr(m, op->blob[1]), (const int32_t *)efm_blob_ptr(m, op->blob[2]),
                    (const int32_t *)efm_blob_ptr(m, op->blob[3]), clamp_of(T(c, op->out), op->attr[2], op->attr[3]),
                    act(c, op->out), flags & (EFM_OPF_RQ32 | EFM_OPF_RQF)};
    int T = c->nthreads;
    if (T > 1 && (uint64_t)rows * (uint64_t)N * (uint64_t)j.Kp >= EFM_PAR_MIN_WORK) {
        j.by_rows = rows >= 8 * T;
        int units = j.by_rows ? (int)((rows + 3) / 4) : (N + 7) / 8;
        j.T = units < EFM_PAR_TASKS * T ? units : EFM_PAR_TASKS * T;
        efm_parallel(c->pool, j.T, linear_task, &j);
    } else {
        linear_task(&j, 0, 0);
    }
}

/* Packed activations (see efm_conv_fn): element (p, k) of the im2col matrix, offset to unsigned, lives
 * at ((p/8)*(Kp/4) + k/4)*32 + (p%8)*4 + k%4. */

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Rows [C][P] (row stride ldx) -> packed, 4 channels x 8 pixels at a time. */
static void pack_pointwise(const int8_t *x, int64_t C, int64_t P, int64_t ldx, int64_t Kp, uint8_t *Xp) {
    int64_t kq = Kp / 4, pblk = (P + 7) / 8;
    for (int64_t cq = 0; cq < kq; cq++) {
        const int8_t *r[4];
        for (int t = 0; t < 4; t++) r[t] = 4 * cq + t < C ? x + (4 * cq + t) * ldx : 0; /* 0: a padding row */
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

/* im2col rows [K][P] with row stride ldr. */
static void im2col_rows(int32_t cg, int32_t H, int32_t W, int32_t kh, int32_t kw, int32_t sh, int32_t sw, int32_t ph,
                        int32_t pw, int32_t dh, int32_t dw, int32_t Ho, int32_t Wo, int8_t *rows, int64_t ldr,
                        const int8_t *padded) {
    int64_t Hp = H + 2 * ph, Wp = W + 2 * pw;
    int8_t *dst = rows;
    for (int32_t ci = 0; ci < cg; ci++)
        for (int32_t i = 0; i < kh; i++)
            for (int32_t j = 0; j < kw; j++, dst += ldr)
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

/* Convolution. Batches run as one GEMM over a chunk of images (as many as keep the packed panel near
 * the cache size and fit the scratch): their im2col columns side by side, so the weights are read
 * once per chunk; threads split the output channels. The GEMM of a chunk writes [O][images * P],
 * scattered to NCHW afterwards. Chunks, blocks and threads only regroup the same dot products. */
typedef struct {
    efm_conv_fn f;
    int O, P, Kp, T;
    const uint8_t *col;
    const int8_t *W;
    const int64_t *bias;
    const int32_t *mult, *shift;
    efm_clamp cl;
    int8_t *out;
    uint32_t flags;
} conv_job;

static void conv_task(void *ctx, int t, int thread) {
    (void)thread;
    const conv_job *j = (const conv_job *)ctx;
    int per = (int)efm_round_up((uint64_t)(j->O + j->T - 1) / (uint64_t)j->T, 4);
    int o0 = t * per, o1 = o0 + per < j->O ? o0 + per : j->O;
    if (o0 >= o1) return;
    j->f(o1 - o0, j->P, j->Kp, j->col, j->W + (int64_t)o0 * j->Kp, j->bias + o0, j->mult + o0, j->shift + o0, j->cl,
         j->out + (int64_t)o0 * j->P, j->flags);
}

static void conv_gemm(const run_ctx *c, conv_job *j) {
    int T = c->nthreads, units = (j->O + 3) / 4;
    if (T > 1 && (uint64_t)j->O * (uint64_t)j->P * (uint64_t)j->Kp >= EFM_PAR_MIN_WORK && units > 1) {
        j->T = units < EFM_PAR_TASKS * T ? units : EFM_PAR_TASKS * T;
        efm_parallel(c->pool, j->T, conv_task, j);
    } else {
        j->T = 1;
        conv_task(j, 0, 0);
    }
}

/* Scratch bytes of one chunk of nc images (nc = 1 is what the loader sized the scratch for). */
static uint64_t conv_scratch(int64_t nc, int64_t P, int64_t K, int64_t Kp, int64_t padded, int64_t og, int pointwise) {
    uint64_t cols = (uint64_t)nc * (uint64_t)P;
    uint64_t need = efm_round_up((efm_round_up(cols, 8) + 8) * (uint64_t)Kp, 64);
    if (!pointwise || (P % 8 && nc > 1)) need += efm_round_up((uint64_t)K * (P % 8 ? cols : (uint64_t)P), 64);
    if (!pointwise) need += efm_round_up((uint64_t)padded, 64);
    if (nc > 1) need += efm_round_up((uint64_t)og * cols, 64);
    return need;
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
    int64_t padded_bytes = (int64_t)cg * (H + 2 * ph) * (W + 2 * pw);
    const int8_t *Wq = (const int8_t *)efm_blob_ptr(m, op->blob[0]);
    const int64_t *bias = (const int64_t *)efm_blob_ptr(m, op->blob[1]);
    const int32_t *mult = (const int32_t *)efm_blob_ptr(m, op->blob[2]), *shift = (const int32_t *)efm_blob_ptr(m, op->blob[3]);
    conv_job j = {(flags & EFM_OPF_W7) ? c->k->conv_w7 : c->k->conv, og, (int)P, (int)Kp, 1, 0, 0, 0, 0, 0,
                  clamp_of(y, a[11], a[12]), 0, flags & (EFM_OPF_RQ32 | EFM_OPF_RQF)};
    int pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    int fast_pack = sw == 1 && Wo % 8 == 0;
    /* images per GEMM: the packed panel up to ~256 KB, within the scratch of every thread together */
    uint64_t avail = c->scratch_stride * (uint64_t)c->nthreads;
    int64_t nc = (int64_t)(262144 / (uint64_t)(P * Kp));
    nc = nc < 1 ? 1 : nc > c->batch ? c->batch : nc;
    while (nc > 1 && conv_scratch(nc, P, K, Kp, padded_bytes, og, pointwise) > avail) nc--;
    for (int64_t n0 = 0; n0 < c->batch; n0 += nc) {
        int64_t nn = c->batch - n0 < nc ? c->batch - n0 : nc, cols = nn * P;
        uint8_t *col = c->scratch;
        int8_t *rows = (int8_t *)col + efm_round_up((efm_round_up((uint64_t)cols, 8) + 8) * (uint64_t)Kp, 64);
        int wide_rows = P % 8 && nn > 1; /* pixel blocks straddle images: gather all rows, then pack */
        int8_t *padded = rows + (pointwise && !wide_rows ? 0 : efm_round_up((uint64_t)K * (wide_rows ? cols : P), 64));
        int8_t *tmp = padded + (pointwise ? 0 : efm_round_up((uint64_t)padded_bytes, 64));
        for (int32_t gi = 0; gi < g; gi++) {
            for (int64_t i = 0; i < nn; i++) {
                const int8_t *xg = act(c, xi) + (n0 + i) * (int64_t)C * H * W + (int64_t)gi * cg * H * W;
                uint8_t *coli = col + (uint64_t)i * (uint64_t)(P / 8) * (uint64_t)Kp * 8; /* P % 8 == 0 here */
                EFM_PROF_BEGIN;
                if (pointwise) {
                    if (wide_rows)
                        for (int32_t ci = 0; ci < cg; ci++) efm_memcpy(rows + ci * cols + i * P, xg + ci * P, (uint64_t)P);
                    else
                        pack_pointwise(xg, cg, P, P, Kp, coli);
                } else {
                    pad_planes(xg, cg, H, W, ph, pw, (int8_t)x->zero_point, padded);
                    if (fast_pack && !wide_rows) {
                        EFM_PROF_MARK(1);
                        pack_from_padded(padded, H + 2 * ph, W + 2 * pw, kh, kw, sh, dh, dw, Ho, Wo, K, Kp, coli);
                    } else if (wide_rows) {
                        im2col_rows(cg, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, rows + i * P, cols, padded);
                    } else {
                        im2col_rows(cg, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, rows, P, padded);
                        EFM_PROF_MARK(1);
                        pack_pointwise(rows, K, P, P, Kp, coli);
                    }
                }
                EFM_PROF_MARK(pointwise ? 2 : 3);
            }
            if (wide_rows) pack_pointwise(rows, K, cols, cols, Kp, col);
            int8_t *yg = act(c, op->out) + n0 * (int64_t)O * P + (int64_t)gi * og * P;
            j.P = (int)cols;
            j.col = col;
            j.W = Wq + (int64_t)gi * og * Kp;
            j.bias = bias + gi * og;
            j.mult = mult + gi * og;
            j.shift = shift + gi * og;
            j.out = nn > 1 ? tmp : yg;
            conv_gemm(c, &j);
            if (nn > 1) /* [og][nn * P] -> image i, channels gi*og.., pixels */
                for (int64_t i = 0; i < nn; i++)
                    for (int32_t o = 0; o < og; o++)
                        efm_memcpy(yg + i * (int64_t)O * P + (int64_t)o * P, tmp + (int64_t)o * cols + i * P, (uint64_t)P);
        }
    }
}

/* Depthwise convolution, one (image, channel) plane at a time; threads take contiguous runs of planes,
 * each with its own scratch (centred padded plane and accumulator row). */
typedef struct {
    const run_ctx *c;
    const efm_op *op;
    int T;
} dw_job;

static void dw_task(void *ctx, int t, int thread) {
    const dw_job *jb = (const dw_job *)ctx;
    const run_ctx *c = jb->c;
    const efm_op *op = jb->op;
    const efm_model *m = c->m;
    const int32_t *a = op->attr;
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi), *y = T(c, op->out);
    int32_t C = x->dims[1], H = x->dims[2], W = x->dims[3], kh = a[2], kw = a[3], sh = a[4], sw = a[5];
    int32_t ph = a[6], pw = a[7], dh = a[8], dw = a[9], Ho = y->dims[2], Wo = y->dims[3];
    int32_t Hp = H + 2 * ph, Wp = W + 2 * pw;
    int64_t planes = c->batch * C, per = (planes + jb->T - 1) / jb->T, p0 = t * per, p1 = p0 + per < planes ? p0 + per : planes;
    if (p0 >= p1) return;
    uint8_t *scratch = c->scratch + (uint64_t)thread * c->scratch_stride;
    int16_t *plane = (int16_t *)scratch;
    int32_t *accrow = (int32_t *)(scratch + efm_round_up((uint64_t)Hp * Wp * 2, 64) + 256);
    const int8_t *Wq = (const int8_t *)efm_blob_ptr(m, op->blob[0]);
    const int64_t *bias = (const int64_t *)efm_blob_ptr(m, op->blob[1]);
    const int32_t *mult = (const int32_t *)efm_blob_ptr(m, op->blob[2]), *shift = (const int32_t *)efm_blob_ptr(m, op->blob[3]);
    efm_clamp cl = clamp_of(y, a[11], a[12]);
    int32_t zx = x->zero_point;
    uint32_t flags = m->info[op - m->ops].flags;
    for (int64_t i = 0; i < (int64_t)Hp * Wp; i++) plane[i] = 0; /* the border stays 0 = centred padding */
    for (int64_t pl = p0; pl < p1; pl++) {
        int32_t ch = (int32_t)(pl % C);
        const int8_t *xc = act(c, xi) + pl * (int64_t)H * W;
        EFM_PROF_BEGIN;
        c->k->center(xc, H, W, zx, plane + (int64_t)ph * Wp + pw, Wp);
        EFM_PROF_MARK(6);
        c->k->dw(plane, Wp, Wq + (int64_t)ch * kh * kw, kh, kw, sh, sw, dh, dw, Ho, Wo, bias[ch], mult[ch], shift[ch], cl,
                 act(c, op->out) + pl * (int64_t)Ho * Wo, accrow, flags);
        EFM_PROF_MARK(7);
    }
}

void op_dwconv(const run_ctx *c, const efm_op *op) {
    const efm_tensor *x = T(c, in_id(c, op, 0)), *y = T(c, op->out);
    dw_job j = {c, op, 1};
    int64_t planes = c->batch * x->dims[1];
    uint64_t work = (uint64_t)planes * (uint64_t)y->dims[2] * (uint64_t)y->dims[3] * (uint64_t)(op->attr[2] * op->attr[3]);
    if (c->nthreads > 1 && planes > 1 && work >= EFM_PAR_MIN_WORK) {
        j.T = planes < EFM_PAR_TASKS * c->nthreads ? (int)planes : EFM_PAR_TASKS * c->nthreads;
        efm_parallel(c->pool, j.T, dw_task, &j);
    } else {
        dw_task(&j, 0, 0);
    }
}
