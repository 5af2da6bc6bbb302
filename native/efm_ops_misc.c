/* Ops added for real model families: constant padding (TF "same", ZeroPad2d), slicing (split,
 * chunk, narrow) and the int64 -> int8 cast of a mask input. Each computes what run_int does; the loader checks their
 * attributes with the efm_check_* functions below before anything runs. */
#include "efm_ops.h"

/* pad: attr[0] = fill (int8, the padding value quantized with the input's qparams);
 * attr[1 + 2d], attr[2 + 2d] = padding before/after axis d (d = 0, the batch, must be 0). */
int efm_check_pad(const efm_tensor *x, const efm_tensor *y, const int32_t *a) {
    if (x->rank != y->rank || x->rank < 2 || 1 + 2 * x->rank > EFM_NATTR) return 0;
    if (a[0] < -128 || a[0] > 127 || a[1] != 0 || a[2] != 0) return 0;
    for (uint32_t d = 1; d < x->rank; d++) {
        int32_t before = a[1 + 2 * d], after = a[2 + 2 * d];
        if (before < 0 || after < 0 || before > 65536 || after > 65536) return 0;
        if ((int64_t)y->dims[d] != (int64_t)x->dims[d] + before + after) return 0;
    }
    return 1;
}

void op_pad(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi), *y = T(c, op->out);
    const int32_t *a = op->attr;
    uint32_t r = x->rank;
    int8_t fill = (int8_t)a[0];
    int64_t W = y->dims[r - 1], Win = x->dims[r - 1], before_w = a[1 + 2 * (r - 1)];
    uint64_t rows = efm_numel_ps(y) / (uint64_t)W, nx = efm_numel_ps(x), ny = efm_numel_ps(y);
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    for (int64_t n = 0; n < c->batch; n++)
        for (uint64_t row = 0; row < rows; row++) {
            int8_t *yr = ys + (uint64_t)n * ny + row * (uint64_t)W;
            /* the row's index on each axis 1..r-2, mapped into the input (rows above/below padding: fill) */
            uint64_t rem = row, in_row = 0, in_stride = 1;
            int inside = 1;
            for (uint32_t d = r - 2; d >= 1; d--) {
                int64_t idx = (int64_t)(rem % (uint64_t)y->dims[d]) - a[1 + 2 * d];
                rem /= (uint64_t)y->dims[d];
                if (idx < 0 || idx >= x->dims[d]) { inside = 0; break; }
                in_row += (uint64_t)idx * in_stride;
                in_stride *= (uint64_t)x->dims[d];
            }
            if (!inside) {
                for (int64_t k = 0; k < W; k++) yr[k] = fill;
                continue;
            }
            const int8_t *xr = xs + (uint64_t)n * nx + in_row * (uint64_t)Win;
            for (int64_t k = 0; k < before_w; k++) yr[k] = fill;
            efm_memcpy(yr + before_w, xr, (uint64_t)Win);
            for (int64_t k = before_w + Win; k < W; k++) yr[k] = fill;
        }
}

/* slice: attr = axis (>= 1), start, stop, step: y = x[..., start:stop:step, ...] on that axis. */
int efm_check_slice(const efm_tensor *x, const efm_tensor *y, const int32_t *a) {
    int32_t axis = a[0], start = a[1], stop = a[2], step = a[3];
    if (x->rank != y->rank || axis < 1 || (uint32_t)axis >= x->rank) return 0;
    if (step < 1 || start < 0 || stop < start || stop > x->dims[axis]) return 0;
    if (y->dims[axis] != (stop - start + step - 1) / step || y->dims[axis] < 1) return 0;
    for (uint32_t d = 1; d < x->rank; d++)
        if ((int32_t)d != axis && x->dims[d] != y->dims[d]) return 0;
    return 1;
}

void op_slice(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi), *y = T(c, op->out);
    int32_t axis = op->attr[0], start = op->attr[1], step = op->attr[3];
    uint64_t outer = (uint64_t)c->batch, inner = 1;
    for (int32_t d = 1; d < axis; d++) outer *= (uint64_t)x->dims[d];
    for (uint32_t d = (uint32_t)axis + 1; d < x->rank; d++) inner *= (uint64_t)x->dims[d];
    uint64_t len_in = (uint64_t)x->dims[axis], len_out = (uint64_t)y->dims[axis];
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    for (uint64_t o = 0; o < outer; o++)
        for (uint64_t k = 0; k < len_out; k++)
            efm_memcpy(ys + (o * len_out + k) * inner, xs + (o * len_in + (uint64_t)start + k * (uint64_t)step) * inner, inner);
}

/* cast: an int64 graph input (a mask, a count) quantized with the output's qparams. */
int efm_check_cast(const efm_tensor *x, const efm_tensor *y) {
    if (x->rank != y->rank) return 0;
    for (uint32_t d = 1; d < x->rank; d++)
        if (x->dims[d] != y->dims[d]) return 0;
    return 1;
}

void op_cast(const run_ctx *c, const efm_op *op, uint32_t graph_input) {
    const efm_tensor *y = T(c, op->out);
    int64_t n = c->batch * (int64_t)efm_numel_ps(y);
    const int64_t *x = (const int64_t *)c->inputs[graph_input];
    int8_t *ys = act(c, op->out);
    for (int64_t i = 0; i < n; i++) ys[i] = efm_quantize((float)x[i], y->scale, y->zero_point);
}

/* sum over the contiguous axes attr[0]..attr[1]: int64 sum of centered values, requantized
 * (attr[2] = M, attr[3] = s) to the output's qparams and clamped to attr[4]..attr[5]. */
void op_sum(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi), *y = T(c, op->out);
    const int32_t *a = op->attr;
    int64_t outer = c->batch, len = 1, inner = 1;
    for (int32_t d = 1; d < a[0]; d++) outer *= x->dims[d];
    for (int32_t d = a[0]; d <= a[1]; d++) len *= x->dims[d];
    for (uint32_t d = (uint32_t)a[1] + 1; d < x->rank; d++) inner *= x->dims[d];
    int64_t zx = x->zero_point, zo = y->zero_point, mult = a[2], lo = a[4], hi = a[5];
    int32_t shift = a[3];
    const int8_t *xs = act(c, xi);
    int8_t *ys = act(c, op->out);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t s = 0;
            for (int64_t l = 0; l < len; l++) s += xs[(o * len + l) * inner + in] - zx;
            int64_t v = ((s * mult + ((int64_t)1 << (shift - 1))) >> shift) + zo;
            ys[o * inner + in] = (int8_t)(v < lo ? lo : v > hi ? hi : v);
        }
}
