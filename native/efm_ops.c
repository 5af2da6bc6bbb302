/* The other ops: pooling, reductions, softmax, layer norm, elementwise, attention matmul, data
 * movement, embedding. Each computes what run_int computes (see FORMAT.md). */
#include "efm_ops.h"

/* ---- pooling and reductions ------------------------------------------------------------------ */
static int64_t rounded_div(int64_t num, int64_t den) {
    int64_t half = den / 2;
    return num >= 0 ? (num + half) / den : -((-num + half) / den);
}

void op_pool(const run_ctx *c, const efm_op *op) {
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

void op_mean(const run_ctx *c, const efm_op *op) {
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

/* Island mean: float32 values summed in double in order, divided, rounded to float32. */
void op_mean_f32(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    int64_t outer, len, inner;
    outer_len_inner(T(c, xi), c->batch, op->attr[0], op->attr[1], &outer, &len, &inner);
    const float *xs = actf(c, xi);
    float *ys = actf(c, op->out);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            double s = 0;
            for (int64_t l = 0; l < len; l++) s += xs[(o * len + l) * inner + in];
            ys[o * inner + in] = (float)(s / (double)len);
        }
}

void op_softmax(const run_ctx *c, const efm_op *op) {
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
void op_layernorm(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi), *y = T(c, op->out);
    int64_t D = x->dims[x->rank - 1], rows = c->batch * (int64_t)(efm_numel_ps(x) / (uint64_t)D);
    union { int32_t i; float f; } eps = {op->attr[0]};
    const float *gamma = (const float *)efm_blob_ptr(c->m, op->blob[0]), *beta = (const float *)efm_blob_ptr(c->m, op->blob[1]);
    float *v = (float *)c->scratch;
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    for (int64_t r = 0; r < rows; r++) {
        float mean, den;
        for (int64_t d = 0; d < D; d++) v[d] = (float)(xs[r * D + d] - x->zero_point) * x->scale;
        efm_row_moments(v, D, eps.f, &mean, &den);
        for (int64_t d = 0; d < D; d++) ys[r * D + d] = efm_quantize((v[d] - mean) / den * gamma[d] + beta[d], y->scale, y->zero_point);
    }
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

/* The broadcast walk of a binary op: output dims and both operands' element strides; returns the
 * number of output elements. The output is walked in order with an odometer over the leading axes
 * (bcast_next after each last-axis row). */
static int64_t bcast_setup(const run_ctx *c, const efm_tensor *ta, const efm_tensor *tb, const efm_tensor *y, bcast *g) {
    int64_t total = 1;
    for (uint32_t d = 0; d < y->rank; d++) total *= g->dims[d] = d == 0 ? c->batch : y->dims[d];
    operand_strides(c, ta, y, g->sa);
    operand_strides(c, tb, y, g->sb);
    return total;
}

static inline void bcast_next(const bcast *g, uint32_t R, int64_t *idx, int64_t *oa, int64_t *ob) {
    for (int32_t d = (int32_t)R - 2; d >= 0; d--) {
        *oa += g->sa[d]; *ob += g->sb[d];
        if (++idx[d] < g->dims[d]) break;
        *oa -= g->sa[d] * g->dims[d]; *ob -= g->sb[d] * g->dims[d];
        idx[d] = 0;
    }
}

/* Island add/mul: float32 operands (activations or a float32 constant), broadcasting as op_binary. */
void op_binary_f32(const run_ctx *c, const efm_op *op) {
    uint32_t ai = in_id(c, op, 0), bi = in_id(c, op, 1);
    const efm_tensor *ta = T(c, ai), *tb = T(c, bi), *y = T(c, op->out);
    const float *A = (const float *)operand_ptr(c, ai), *B = (const float *)operand_ptr(c, bi);
    float *Y = actf(c, op->out);
    int is_add = op->opcode == EFM_OP_ADD_F32;
    bcast g;
    uint32_t R = y->rank;
    int64_t total = bcast_setup(c, ta, tb, y, &g), idx[EFM_MAX_RANK] = {0}, oa = 0, ob = 0;
    if (ta->kind == EFM_T_ACT && tb->kind == EFM_T_ACT && same_dims(ta, y) && same_dims(tb, y)) {
        for (int64_t i = 0; i < total; i++) Y[i] = is_add ? A[i] + B[i] : A[i] * B[i];
        return;
    }
    int64_t inner = g.dims[R - 1], sa = g.sa[R - 1], sb = g.sb[R - 1];
    for (int64_t o = 0; o < total; o += inner) {
        for (int64_t k = 0; k < inner; k++) Y[o + k] = is_add ? A[oa + k * sa] + B[ob + k * sb] : A[oa + k * sa] * B[ob + k * sb];
        bcast_next(&g, R, idx, &oa, &ob);
    }
}

void op_binary(const run_ctx *c, const efm_op *op) {
    uint32_t ai = in_id(c, op, 0), bi = in_id(c, op, 1);
    const efm_tensor *ta = T(c, ai), *tb = T(c, bi), *y = T(c, op->out);
    const int8_t *A = operand_ptr(c, ai), *B = operand_ptr(c, bi);
    int8_t *Y = act(c, op->out);
    int64_t za = ta->zero_point, zb = tb->zero_point, zo = y->zero_point, lo = op->attr[0], hi = op->attr[1];
    int64_t ma = op->param[0], mb = op->param[1];
    int32_t mult = op->attr[2], shift = op->attr[3];
    int is_add = op->opcode == EFM_OP_ADD, is_div = op->opcode == EFM_OP_DIV;
    bcast g;
    uint32_t R = y->rank;
    int64_t total = bcast_setup(c, ta, tb, y, &g), idx[EFM_MAX_RANK] = {0}, oa = 0, ob = 0;
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
            if (is_div) { /* float32 between dequantize and quantize, as run_int; 0 / 0 gives the zero point */
                float q = ((float)av * ta->scale) / ((float)bv * tb->scale);
                Y[o + k] = efm_quantize(q != q ? 0.0f : q, y->scale, y->zero_point);
                continue;
            }
            if (is_add) v = (av * ma + bv * mb + (1 << 19)) >> 20;
            else {
                uint64_t p = (uint64_t)(av * bv) * (uint64_t)(int64_t)mult + ((uint64_t)1 << (shift - 1));
                v = (int64_t)p >> shift;
            }
            v += zo;
            Y[o + k] = (int8_t)(v < lo ? lo : v > hi ? hi : v);
        }
        bcast_next(&g, R, idx, &oa, &ob);
    }
}

void op_lut(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const int8_t *tab = (const int8_t *)efm_blob_ptr(c->m, op->blob[0]);
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    int64_t n = c->batch * (int64_t)efm_numel_ps(T(c, xi));
    for (int64_t i = 0; i < n; i++) ys[i] = tab[xs[i] + 128];
}

/* ---- attention matmul ------------------------------------------------------------------------ */
void op_matmul(const run_ctx *c, const efm_op *op) {
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
void op_transpose(const run_ctx *c, const efm_op *op) {
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

void op_concat(const run_ctx *c, const efm_op *op) {
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

int op_embedding(const run_ctx *c, const efm_op *op, uint32_t graph_input, char *err, size_t errlen) {
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
