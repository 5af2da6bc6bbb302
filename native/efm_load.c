/* Loader: validates a .efm buffer completely before anything runs, so that a truncated or corrupted
 * file is refused with a message instead of reading out of bounds later. Nothing is copied: the
 * model is a set of views into the caller's buffer. Every check is integer-overflow safe. */
#include "efm_util.h"
#include "kernels.h"

#define FAIL(code, what, num, tail)                \
    do {                                           \
        efm_err(err, errlen, what, num, tail);     \
        return code;                               \
    } while (0)
#define CORRUPT(what, num, tail) FAIL(EFM_E_CORRUPT, what, num, tail)

static const uint64_t DTYPE_SIZE[4] = {1, 4, 8, 4};
#define MAX_DIM (1 << 24)
#define MAX_NUMEL ((uint64_t)1 << 31)

static int section_ok(uint64_t off, uint64_t count, uint64_t size, uint64_t len) {
    if (off % 8 || count > len || size > len) return 0;
    return off <= len && count * size <= len - off;
}

int efm_peek(const void *buf, uint64_t len, uint32_t *n_ops, char *err, size_t errlen) {
    const efm_header *h = (const efm_header *)buf;
    if (len < sizeof(efm_header)) FAIL(EFM_E_TRUNCATED, "file truncated: header needs 128 bytes, got", (int64_t)len, "");
    const char *mg = EFM_MAGIC;
    for (int i = 0; i < 4; i++)
        if (h->magic[i] != mg[i]) FAIL(EFM_E_MAGIC, "not an .efm file (bad magic); byte", i, " differs");
    if (h->version < EFM_VERSION_INT8 || h->version > EFM_VERSION)
        FAIL(EFM_E_VERSION, "unsupported .efm version", h->version, " (this runtime reads versions 1 and 2)");
    if (h->header_bytes != sizeof(efm_header)) CORRUPT("corrupt header: header_bytes is", h->header_bytes, "");
    if (h->file_bytes != len)
        FAIL(h->file_bytes > len ? EFM_E_TRUNCATED : EFM_E_CORRUPT,
             h->file_bytes > len ? "file truncated: header says" : "file size mismatch: header says",
             (int64_t)h->file_bytes, " bytes");
    if ((uint64_t)h->n_ops * sizeof(efm_op) > len) CORRUPT("op count exceeds the file:", h->n_ops, "");
    *n_ops = h->n_ops;
    return EFM_OK;
}

static int check_act(const efm_model *m, uint32_t id, char *err, size_t errlen) {
    if (id >= m->h->n_tensors) CORRUPT("tensor id out of range:", id, "");
    if (m->tensors[id].kind != EFM_T_ACT) CORRUPT("expected an activation tensor, id", id, "");
    return EFM_OK;
}

/* Element type of every activation an op reads and writes: quantize reads float32 and writes int8,
 * dequantize the reverse, the other float ops (opcode >= EFM_FIRST_FLOAT_OP) stay in float32, and
 * every int8 op reads and writes int8 (constants and index inputs are checked per op). */
static int check_dtypes(const efm_model *m, const efm_op *op, uint32_t i, char *err, size_t errlen) {
    uint32_t o = op->opcode, in = EFM_INT8, out = EFM_INT8;
    if (o == EFM_OP_QUANTIZE) in = EFM_FLOAT32;
    else if (o == EFM_OP_DEQUANTIZE) out = EFM_FLOAT32;
    else if (o >= EFM_FIRST_FLOAT_OP) in = out = EFM_FLOAT32;
    if (o >= EFM_FIRST_FLOAT_OP && m->h->version < 2)
        CORRUPT("a version 1 file cannot hold float32 island ops; op", i, "");
    if (m->tensors[op->out].dtype != out)
        CORRUPT(out == EFM_FLOAT32 ? "op must write a float32 activation, op" : "op must write an int8 activation, op", i, "");
    for (uint32_t k = 0; k < op->n_in; k++) {
        const efm_tensor *t = &m->tensors[m->ids[op->in_ids + k]];
        if (t->kind == EFM_T_ACT && t->dtype != in)
            CORRUPT(in == EFM_FLOAT32 ? "op must read float32 activations, op" : "op must read int8 activations, op", i, "");
        if (t->kind == EFM_T_CONST && t->dtype != in) CORRUPT("op reads a constant of the wrong element type, op", i, "");
        if (t->kind == EFM_T_INPUT_I64 && in == EFM_FLOAT32) CORRUPT("float32 op reads an index tensor, op", i, "");
    }
    return EFM_OK;
}

static int same_dims(const efm_tensor *a, const efm_tensor *b) {
    if (a->rank != b->rank) return 0;
    for (uint32_t i = 1; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

static int check_blob(const efm_model *m, const efm_op *op, int slot, uint32_t dtype, uint64_t count, char *err,
                      size_t errlen) {
    uint32_t b = op->blob[slot];
    if (b >= m->h->n_blobs) CORRUPT("op refers to a missing blob, slot", slot, "");
    if (m->blobs[b].dtype != dtype || m->blobs[b].count != count) CORRUPT("blob has the wrong type or size:", b, "");
    return EFM_OK;
}

/* requantization constants: 0 <= M < 2^31, 1 <= shift <= 62, as quantize_multiplier produces */
static int check_rq(int64_t mult, int64_t shift) { return mult >= 0 && mult < ((int64_t)1 << 31) && shift >= 1 && shift <= 62; }
static int check_clamp(int32_t lo, int32_t hi) { return lo >= -128 && hi <= 127 && lo <= hi; }

static uint32_t shift_flags(const efm_model *m, const efm_op *op, uint64_t n) {
    const int32_t *shift = (const int32_t *)efm_blob_ptr(m, op->blob[3]);
    for (uint64_t i = 0; i < n; i++)
        if (shift[i] < 31) return 0;
    return EFM_OPF_RQF;
}

static int check_rq_blobs(const efm_model *m, const efm_op *op, uint64_t n, char *err, size_t errlen) {
    int rc;
    if ((rc = check_blob(m, op, 1, EFM_INT64, n, err, errlen)) || (rc = check_blob(m, op, 2, EFM_INT32, n, err, errlen)) ||
        (rc = check_blob(m, op, 3, EFM_INT32, n, err, errlen)))
        return rc;
    const int32_t *mult = (const int32_t *)efm_blob_ptr(m, op->blob[2]);
    const int32_t *shift = (const int32_t *)efm_blob_ptr(m, op->blob[3]);
    for (uint64_t i = 0; i < n; i++)
        if (!check_rq(mult[i], shift[i])) CORRUPT("bad requantization constants at channel", (int64_t)i, "");
    return EFM_OK;
}

/* EFM_OPF_W7 when every |w| <= 63; EFM_OPF_RQ32 when |bias| + taps * xmax * max|w| < 2^31, so the
 * kernels may requantize in int32 lanes (xmax: 255, the largest unsigned or centred activation). */
static uint32_t weight_flags(const int8_t *w, uint64_t n, const int64_t *bias, uint64_t nb, uint64_t taps) {
    int32_t wmax = 0;
    int64_t bmax = 0;
    for (uint64_t i = 0; i < n; i++) {
        int32_t a = w[i] < 0 ? -w[i] : w[i];
        wmax = a > wmax ? a : wmax;
    }
    for (uint64_t i = 0; i < nb; i++) {
        if (bias[i] > ((int64_t)1 << 40) || bias[i] < -((int64_t)1 << 40)) return wmax <= 63 ? EFM_OPF_W7 : 0;
        int64_t a = bias[i] < 0 ? -bias[i] : bias[i];
        bmax = a > bmax ? a : bmax;
    }
    uint32_t f = wmax <= 63 ? EFM_OPF_W7 : 0;
    if ((uint64_t)bmax + taps * 255u * (uint64_t)wmax < ((uint64_t)1 << 31)) f |= EFM_OPF_RQ32;
    return f;
}

/* Output spatial size of a window op; 0 when the attributes are impossible. */
static int32_t out_size(int32_t in, int32_t k, int32_t s, int32_t p, int32_t d) {
    if (k < 1 || s < 1 || p < 0 || d < 1 || k > 4096 || s > 4096 || p > 4096 || d > 4096) return 0;
    int64_t span = (int64_t)d * (k - 1) + 1, full = (int64_t)in + 2 * p;
    if (span > full) return 0;
    return (int32_t)((full - span) / s + 1);
}

/* linear (int8 or float32): x [..., K] -> y [..., N], the leading axes equal */
static int linear_shapes_ok(const efm_tensor *x, const efm_tensor *y, int32_t K, int32_t N) {
    if (K < 1 || N < 1 || K > 65536 || N > MAX_DIM || x->dims[x->rank - 1] != K || y->dims[y->rank - 1] != N ||
        x->rank != y->rank || x->rank < 2)
        return 0;
    for (uint32_t d = 1; d + 1 < x->rank; d++)
        if (x->dims[d] != y->dims[d]) return 0;
    return 1;
}

static int check_op(efm_model *m, uint32_t i, char *err, size_t errlen) {
    const efm_op *op = &m->ops[i];
    const int32_t *a = op->attr;
    int rc;
    if (op->opcode == 0 || op->opcode >= EFM_OP_COUNT) CORRUPT("unknown opcode", op->opcode, "");
    if (op->n_in < 1 || op->n_in > 64 || op->in_ids > m->h->n_ids || op->n_in > m->h->n_ids - op->in_ids)
        CORRUPT("bad input list of op", i, "");
    if ((rc = check_act(m, op->out, err, errlen))) return rc;
    for (uint32_t k = 0; k < op->n_in; k++)
        if (m->ids[op->in_ids + k] >= m->h->n_tensors) CORRUPT("op input tensor id out of range, op", i, "");
    if ((rc = check_dtypes(m, op, i, err, errlen))) return rc;
    const efm_tensor *x = &m->tensors[m->ids[op->in_ids]], *y = &m->tensors[op->out];
    uint32_t xid = m->ids[op->in_ids];
    uint64_t scratch = 0;
    m->info[i].flags = 0;
    if (op->opcode != EFM_OP_EMBEDDING && op->opcode != EFM_OP_ADD && op->opcode != EFM_OP_MUL &&
        op->opcode != EFM_OP_MATMUL && op->opcode != EFM_OP_CONCAT && op->opcode != EFM_OP_DIV &&
        op->opcode != EFM_OP_CAST && op->opcode != EFM_OP_ADD_F32 && op->opcode != EFM_OP_MUL_F32) {
        if (op->n_in != 1) CORRUPT("op takes one input, op", i, "");
        if ((rc = check_act(m, xid, err, errlen))) return rc;
    }
    switch (op->opcode) {
    case EFM_OP_LINEAR: {
        int32_t K = a[0], N = a[1];
        if (!linear_shapes_ok(x, y, K, N)) CORRUPT("linear: shapes do not match, op", i, "");
        uint64_t Kp = efm_round_up(K, EFM_KPAD), Np = efm_round_up(N, EFM_NPAD);
        if ((rc = check_blob(m, op, 0, EFM_INT8, Np * Kp, err, errlen)) || (rc = check_rq_blobs(m, op, N, err, errlen)))
            return rc;
        if (!check_clamp(a[2], a[3])) CORRUPT("linear: bad clamp, op", i, "");
        m->info[i].flags = weight_flags((const int8_t *)efm_blob_ptr(m, op->blob[0]), Np * Kp,
                                        (const int64_t *)efm_blob_ptr(m, op->blob[1]), (uint64_t)N, Kp);
        break;
    }
    case EFM_OP_CONV2D:
    case EFM_OP_DWCONV:
    case EFM_OP_MAXPOOL:
    case EFM_OP_AVGPOOL: {
        int conv = op->opcode == EFM_OP_CONV2D || op->opcode == EFM_OP_DWCONV;
        /* conv attrs: C O kh kw sh sw ph pw dh dw groups lo hi; pool attrs: kh kw sh sw ph pw cip */
        const int32_t *w = conv ? a + 2 : a;
        int32_t dh = conv ? a[8] : 1, dw = conv ? a[9] : 1;
        if (x->rank != 4 || y->rank != 4) CORRUPT("window op needs NCHW tensors, op", i, "");
        int32_t C = x->dims[1], H = x->dims[2], W = x->dims[3];
        int32_t Ho = out_size(H, w[0], w[2], w[4], dh), Wo = out_size(W, w[1], w[3], w[5], dw);
        int32_t O = conv ? a[1] : C;
        if (!Ho || !Wo || y->dims[2] != Ho || y->dims[3] != Wo || y->dims[1] != O)
            CORRUPT("window op: output shape does not match its attributes, op", i, "");
        if (!conv) break;
        int32_t g = a[10];
        if (a[0] != C || g < 1 || C % g || O % g || !check_clamp(a[11], a[12])) CORRUPT("conv2d: bad attributes, op", i, "");
        uint64_t taps = (uint64_t)w[0] * w[1];
        if (op->opcode == EFM_OP_DWCONV) {
            if (g != C || O != C) CORRUPT("depthwise conv: groups must equal channels, op", i, "");
            if (taps > 65536) CORRUPT("depthwise conv: kernel too large for int32 accumulation, op", i, "");
            if ((rc = check_blob(m, op, 0, EFM_INT8, (uint64_t)C * taps, err, errlen)) ||
                (rc = check_rq_blobs(m, op, O, err, errlen)))
                return rc;
            m->info[i].flags = weight_flags((const int8_t *)efm_blob_ptr(m, op->blob[0]), (uint64_t)C * taps,
                                            (const int64_t *)efm_blob_ptr(m, op->blob[1]), (uint64_t)O, taps) & EFM_OPF_RQ32;
            uint64_t Hp = (uint64_t)H + 2 * w[4], Wp = (uint64_t)W + 2 * w[5];
            scratch = efm_round_up(Hp * Wp * 2, 64) + 256 + efm_round_up(((uint64_t)Wo + 16) * 4, 64) + 64;
        } else {
            uint64_t K = (uint64_t)(C / g) * taps, Kp = efm_round_up(K, EFM_KPAD);
            if (K > 65536) CORRUPT("conv2d: reduction too long for int32 accumulation, op", i, "");
            if ((rc = check_blob(m, op, 0, EFM_INT8, (uint64_t)O * Kp, err, errlen)) ||
                (rc = check_rq_blobs(m, op, O, err, errlen)))
                return rc;
            m->info[i].flags = weight_flags((const int8_t *)efm_blob_ptr(m, op->blob[0]), (uint64_t)O * Kp,
                                            (const int64_t *)efm_blob_ptr(m, op->blob[1]), (uint64_t)O, Kp);
            /* im2col rows [K][P] then their packed form [P/8][Kp/4][8][4], one image and group at a time */
            /* packed activations (+ one spare 8-pixel block the 512-bit kernel may read), im2col rows, padded planes */
            scratch = efm_round_up((efm_round_up((uint64_t)Ho * Wo, 8) + 8) * Kp, 64) + efm_round_up(K * Ho * Wo, 64) +
                      (uint64_t)(C / g) * ((uint64_t)H + 2 * w[4]) * ((uint64_t)W + 2 * w[5]) + 64;
        }
        break;
    }
    case EFM_OP_MEAN:
    case EFM_OP_MEAN_F32:
    case EFM_OP_SUM: {
        int32_t a0 = a[0], a1 = a[1];
        if (op->opcode == EFM_OP_SUM && (!check_rq(a[2], a[3]) || !check_clamp(a[4], a[5])))
            CORRUPT("sum: bad requantization, op", i, "");
        if (a0 < 1 || a1 < a0 || (uint32_t)a1 >= x->rank) CORRUPT("mean: bad axes, op", i, "");
        uint64_t len = 1;
        for (int32_t d = a0; d <= a1; d++) len *= (uint64_t)x->dims[d];
        if (efm_numel_ps(y) * len != efm_numel_ps(x)) CORRUPT("mean: output shape does not match, op", i, "");
        if (op->opcode == EFM_OP_SUM && len > ((uint64_t)1 << 22)) CORRUPT("sum: too many terms for exact requantization, op", i, "");
        break;
    }
    case EFM_OP_ADD:
    case EFM_OP_MUL:
    case EFM_OP_DIV:
    case EFM_OP_ADD_F32: /* attributes zero: the clamp check passes, float ops ignore it */
    case EFM_OP_MUL_F32: {
        if (op->n_in != 2) CORRUPT("add/mul take two operands, op", i, "");
        if (!check_clamp(a[0], a[1])) CORRUPT("add/mul: bad clamp, op", i, "");
        for (uint32_t k = 0; k < 2; k++) {
            const efm_tensor *t = &m->tensors[m->ids[op->in_ids + k]];
            if (t->kind == EFM_T_INPUT_I64) CORRUPT("add/mul of an index tensor, op", i, "");
            if (t->kind == EFM_T_ACT && t->rank != y->rank) CORRUPT("add/mul: operand rank differs from output, op", i, "");
            if (t->rank > y->rank) CORRUPT("add/mul: operand rank too large, op", i, "");
            uint32_t off = y->rank - t->rank;
            if (t->kind == EFM_T_CONST && t->rank == y->rank && t->dims[0] != 1)
                CORRUPT("add/mul: a constant cannot span the batch axis, op", i, "");
            for (uint32_t d = (t->kind == EFM_T_CONST ? 0 : 1); d < t->rank; d++)
                if (d + off > 0 && t->dims[d] != 1 && t->dims[d] != y->dims[d + off])
                    CORRUPT("add/mul: operand does not broadcast to the output, op", i, "");
        }
        if (op->opcode == EFM_OP_ADD) {
            if (op->param[0] < 0 || op->param[0] > ((int64_t)1 << 40) || op->param[1] < 0 || op->param[1] > ((int64_t)1 << 40))
                CORRUPT("add: bad operand multipliers, op", i, "");
        } else if (op->opcode == EFM_OP_MUL && !check_rq(a[2], a[3])) {
            CORRUPT("mul: bad requantization constants, op", i, "");
        }
        break;
    }
    case EFM_OP_LUT:
        if (efm_numel_ps(x) != efm_numel_ps(y)) CORRUPT("lookup op: shapes differ, op", i, "");
        if ((rc = check_blob(m, op, 0, EFM_INT8, 256, err, errlen))) return rc;
        break;
    case EFM_OP_SOFTMAX: {
        if (!same_dims(x, y) || a[0] < 1 || (uint32_t)a[0] >= x->rank) CORRUPT("softmax: bad axis or shape, op", i, "");
        if (x->dims[a[0]] > (1 << 20)) CORRUPT("softmax: axis too long, op", i, "");
        if ((rc = check_blob(m, op, 0, EFM_INT32, 256, err, errlen))) return rc;
        const int32_t *t = (const int32_t *)efm_blob_ptr(m, op->blob[0]);
        if (t[0] <= 0) CORRUPT("softmax: exp table must start positive, op", i, "");
        for (int k = 0; k < 256; k++)
            if (t[k] < 0) CORRUPT("softmax: negative exp table entry", k, "");
        scratch = (uint64_t)x->dims[a[0]] * 4 + 64;
        break;
    }
    case EFM_OP_LAYERNORM: {
        uint64_t D = (uint64_t)x->dims[x->rank - 1];
        if (!same_dims(x, y) || x->rank < 2) CORRUPT("layer_norm: shapes differ, op", i, "");
        if ((rc = check_blob(m, op, 0, EFM_FLOAT32, D, err, errlen)) || (rc = check_blob(m, op, 1, EFM_FLOAT32, D, err, errlen)))
            return rc;
        scratch = D * 4 + 64;
        break;
    }
    case EFM_OP_MATMUL: {
        if (op->n_in != 2) CORRUPT("matmul takes two inputs, op", i, "");
        uint32_t bid = m->ids[op->in_ids + 1];
        if ((rc = check_act(m, xid, err, errlen)) || (rc = check_act(m, bid, err, errlen))) return rc;
        const efm_tensor *b = &m->tensors[bid];
        uint32_t r = x->rank;
        if (r < 3 || b->rank != r || y->rank != r) CORRUPT("matmul: needs equal ranks >= 3, op", i, "");
        for (uint32_t d = 1; d + 2 < r; d++)
            if (x->dims[d] != b->dims[d] || y->dims[d] != x->dims[d]) CORRUPT("matmul: batch dims differ, op", i, "");
        int32_t M = x->dims[r - 2], K = x->dims[r - 1], N = b->dims[r - 1];
        if (b->dims[r - 2] != K || y->dims[r - 2] != M || y->dims[r - 1] != N) CORRUPT("matmul: shapes do not match, op", i, "");
        if (K > 32768) CORRUPT("matmul: reduction too long for int32 accumulation, op", i, "");
        if (!check_rq(a[0], a[1]) || !check_clamp(a[2], a[3])) CORRUPT("matmul: bad requantization, op", i, "");
        scratch = ((uint64_t)M * K + (uint64_t)N * K) * 2 + 128;
        break;
    }
    case EFM_OP_CAST:
        if (op->n_in != 1 || x->kind != EFM_T_INPUT_I64 || !efm_check_cast(x, y)) CORRUPT("cast needs an int64 graph input of the output's shape, op", i, "");
        break;
    case EFM_OP_PAD:
        if (!efm_check_pad(x, y, a)) CORRUPT("pad: bad paddings or output shape, op", i, "");
        break;
    case EFM_OP_SLICE:
        if (!efm_check_slice(x, y, a)) CORRUPT("slice: bad range or output shape, op", i, "");
        break;
    case EFM_OP_RESHAPE:
        if (efm_numel_ps(x) != efm_numel_ps(y)) CORRUPT("reshape: element counts differ, op", i, "");
        break;
    case EFM_OP_TRANSPOSE: {
        uint32_t seen = 0;
        if (x->rank != y->rank || a[0] != 0) CORRUPT("transpose: bad permutation, op", i, "");
        for (uint32_t d = 0; d < x->rank; d++) {
            if (a[d] < 0 || (uint32_t)a[d] >= x->rank || (seen >> a[d]) & 1) CORRUPT("transpose: bad permutation, op", i, "");
            seen |= 1u << a[d];
            if (d > 0 && y->dims[d] != x->dims[a[d]]) CORRUPT("transpose: output shape does not match, op", i, "");
        }
        break;
    }
    case EFM_OP_CONCAT: {
        int32_t ax = a[0];
        if (ax < 1 || (uint32_t)ax >= y->rank) CORRUPT("concat: bad axis, op", i, "");
        int64_t total = 0;
        for (uint32_t k = 0; k < op->n_in; k++) {
            uint32_t id = m->ids[op->in_ids + k];
            if ((rc = check_act(m, id, err, errlen))) return rc;
            const efm_tensor *t = &m->tensors[id];
            if (t->rank != y->rank) CORRUPT("concat: ranks differ, op", i, "");
            for (uint32_t d = 1; d < t->rank; d++)
                if ((int32_t)d != ax && t->dims[d] != y->dims[d]) CORRUPT("concat: shapes differ, op", i, "");
            total += t->dims[ax];
        }
        if (total != y->dims[ax]) CORRUPT("concat: output size does not match, op", i, "");
        if ((rc = check_blob(m, op, 0, EFM_INT64, op->n_in, err, errlen))) return rc;
        const int64_t *mults = (const int64_t *)efm_blob_ptr(m, op->blob[0]);
        for (uint32_t k = 0; k < op->n_in; k++)
            if (mults[k] < 0 || mults[k] > ((int64_t)1 << 40)) CORRUPT("concat: bad multiplier, op", i, "");
        break;
    }
    case EFM_OP_QUANTIZE:
    case EFM_OP_DEQUANTIZE:
        if (!same_dims(x, y)) CORRUPT("quantize/dequantize: shapes differ, op", i, "");
        break;
    case EFM_OP_LINEAR_F32: {
        int32_t K = a[0], N = a[1];
        if (!linear_shapes_ok(x, y, K, N)) CORRUPT("linear_f32: shapes do not match, op", i, "");
        if (a[2] < 0 || a[2] > 2) CORRUPT("linear_f32: unknown activation, op", i, "");
        if ((rc = check_blob(m, op, 0, EFM_INT8, (uint64_t)K * efm_round_up((uint64_t)N, EFM_FLINEAR_NBLK), err, errlen)) ||
            (rc = check_blob(m, op, 1, EFM_FLOAT32, (uint64_t)N, err, errlen)) ||
            (rc = check_blob(m, op, 2, EFM_FLOAT32, (uint64_t)N, err, errlen)))
            return rc;
        break;
    }
    case EFM_OP_LAYERNORM_F32: {
        uint64_t D = (uint64_t)x->dims[x->rank - 1];
        if (!same_dims(x, y) || x->rank < 2) CORRUPT("layer_norm_f32: shapes differ, op", i, "");
        if ((rc = check_blob(m, op, 0, EFM_FLOAT32, D, err, errlen)) || (rc = check_blob(m, op, 1, EFM_FLOAT32, D, err, errlen)))
            return rc;
        break;
    }
    case EFM_OP_GELU_F32:
        if (!same_dims(x, y)) CORRUPT("gelu_f32: shapes differ, op", i, "");
        if ((rc = check_blob(m, op, 0, EFM_INT64, 2 * EFM_ERF_POINTS, err, errlen))) return rc;
        break;
    case EFM_OP_EMBEDDING: {
        if (op->n_in != 1 || x->kind != EFM_T_INPUT_I64) CORRUPT("embedding needs an int64 index input, op", i, "");
        int32_t V = a[0], D = a[1];
        if (V < 1 || D < 1 || y->rank != x->rank + 1 || y->dims[y->rank - 1] != D) CORRUPT("embedding: bad shape, op", i, "");
        for (uint32_t d = 1; d < x->rank; d++)
            if (x->dims[d] != y->dims[d]) CORRUPT("embedding: bad shape, op", i, "");
        if ((rc = check_blob(m, op, 0, EFM_INT8, (uint64_t)V * D, err, errlen))) return rc;
        break;
    }
    }
    if ((op->opcode == EFM_OP_LINEAR || op->opcode == EFM_OP_CONV2D || op->opcode == EFM_OP_DWCONV) &&
        (m->info[i].flags & EFM_OPF_RQ32))
        m->info[i].flags |= shift_flags(m, op, (uint64_t)a[1]); /* a[1]: output channels of all three */
    if (scratch > m->scratch_bytes) m->scratch_bytes = scratch;
    return EFM_OK;
}

/* Every op input must be a graph input, a constant, or the output of an earlier op. */
static int check_order(const efm_model *m, char *err, size_t errlen) {
    const efm_header *h = m->h;
    for (uint32_t i = 0; i < h->n_ops; i++) {
        for (uint32_t j = 0; j < i; j++)
            if (m->ops[j].out == m->ops[i].out) CORRUPT("tensor written by two ops:", m->ops[i].out, "");
        for (uint32_t k = 0; k < h->n_inputs; k++)
            if (m->ids[k] == m->ops[i].out) CORRUPT("op overwrites a graph input, op", i, "");
        for (uint32_t k = 0; k < m->ops[i].n_in; k++) {
            uint32_t id = m->ids[m->ops[i].in_ids + k];
            int ok = m->tensors[id].kind == EFM_T_CONST;
            for (uint32_t g = 0; !ok && g < h->n_inputs; g++) ok = m->ids[g] == id;
            for (uint32_t j = 0; !ok && j < i; j++) ok = m->ops[j].out == id;
            if (!ok) CORRUPT("op reads a tensor before it is written, op", i, "");
        }
    }
    for (uint32_t k = 0; k < h->n_outputs; k++) {
        uint32_t id = m->ids[h->n_inputs + k];
        int ok = 0;
        for (uint32_t j = 0; !ok && j < h->n_ops; j++) ok = m->ops[j].out == id;
        for (uint32_t g = 0; !ok && g < h->n_inputs; g++) ok = m->ids[g] == id && m->tensors[id].kind == EFM_T_ACT;
        if (!ok) CORRUPT("graph output is never written, tensor", id, "");
    }
    return EFM_OK;
}

int efm_load(const void *buf, uint64_t len, int verify_checksum, efm_model *m, efm_opinfo *info, uint32_t n_info,
             char *err, size_t errlen) {
    uint32_t n_ops;
    int rc = efm_peek(buf, len, &n_ops, err, errlen);
    if (rc) return rc;
    if ((uintptr_t)buf % EFM_ALIGN) FAIL(EFM_E_ARG, "model buffer must be 64-byte aligned; misaligned by", (int64_t)((uintptr_t)buf % EFM_ALIGN), "");
    if (n_info < n_ops) FAIL(EFM_E_ARG, "opinfo array too small for", n_ops, " ops");
    const uint8_t *base = (const uint8_t *)buf;
    const efm_header *h = (const efm_header *)buf;
    if (verify_checksum) {
        uint32_t zero = 0, c = efm_crc32(base, 12, 0);
        c = efm_crc32((const uint8_t *)&zero, 4, c);
        c = efm_crc32(base + 16, len - 16, c);
        if (c != h->checksum) FAIL(EFM_E_CHECKSUM, "checksum mismatch: the file is corrupted (stored", h->checksum, ")");
    }
    if (!section_ok(h->tensors_off, h->n_tensors, sizeof(efm_tensor), len) || !section_ok(h->ops_off, h->n_ops, sizeof(efm_op), len) ||
        !section_ok(h->blobs_off, h->n_blobs, sizeof(efm_blob), len) || !section_ok(h->ids_off, h->n_ids, 4, len) ||
        !section_ok(h->names_off, h->names_bytes, 1, len))
        CORRUPT("section table points outside the file (or is misaligned); file bytes", (int64_t)len, "");
    if (h->n_inputs < 1 || h->n_outputs < 1 || h->n_inputs > 64 || h->n_outputs > 64 || h->n_ids < h->n_inputs + h->n_outputs)
        CORRUPT("bad input/output count:", h->n_inputs, "");
    if (h->names_bytes < 1 || base[h->names_off + h->names_bytes - 1] != 0) CORRUPT("names section not terminated", 0, "");
    m->base = base; m->size = len; m->h = h;
    m->tensors = (const efm_tensor *)(base + h->tensors_off);
    m->ops = (const efm_op *)(base + h->ops_off);
    m->blobs = (const efm_blob *)(base + h->blobs_off);
    m->ids = (const uint32_t *)(base + h->ids_off);
    m->names = (const char *)(base + h->names_off);
    m->info = info; m->arena_per_sample = 0; m->scratch_bytes = 0; m->kernels = efm_kernels_named(EFM_K_BEST);
    m->pool = 0;
    for (uint32_t b = 0; b < h->n_blobs; b++) {
        const efm_blob *bl = &m->blobs[b];
        if (bl->dtype > EFM_FLOAT32 || bl->offset % EFM_ALIGN || bl->offset > len || bl->nbytes > len - bl->offset ||
            (uint64_t)bl->count * DTYPE_SIZE[bl->dtype] != bl->nbytes)
            CORRUPT("bad blob entry", b, "");
    }
    uint64_t act_total = 0; /* no plan needs more than every activation side by side */
    for (uint32_t t = 0; t < h->n_tensors; t++) {
        const efm_tensor *ts = &m->tensors[t];
        if (ts->kind > EFM_T_CONST || ts->rank < 1 || ts->rank > EFM_MAX_RANK || ts->name >= h->names_bytes)
            CORRUPT("bad tensor entry", t, "");
        uint64_t n = 1;
        for (uint32_t d = (ts->kind == EFM_T_CONST ? 0 : 1); d < ts->rank; d++) {
            if (ts->dims[d] < 1 || ts->dims[d] > MAX_DIM) CORRUPT("bad dimension in tensor", t, "");
            n *= (uint64_t)ts->dims[d];
            if (n > MAX_NUMEL) CORRUPT("tensor too large:", t, "");
        }
        if (ts->kind == EFM_T_ACT) {
            if ((ts->dtype != EFM_INT8 && ts->dtype != EFM_FLOAT32) || ts->offset % EFM_ALIGN || ts->offset > ((uint64_t)1 << 40))
                CORRUPT("bad activation tensor", t, "");
            if (ts->dtype == EFM_FLOAT32 && h->version < 2)
                CORRUPT("float32 activation in a version 1 file: tensor", t, "");
            if (ts->dtype == EFM_INT8 && (!(ts->scale > 0 && ts->scale < 3.0e38f) || ts->zero_point < -128 || ts->zero_point > 127))
                CORRUPT("bad quantization parameters in tensor", t, "");
            uint64_t bytes = efm_round_up(n * DTYPE_SIZE[ts->dtype], EFM_ALIGN);
            uint64_t end = ts->offset + bytes;
            if (end > m->arena_per_sample) m->arena_per_sample = end;
            act_total += bytes;
        } else if (ts->kind == EFM_T_INPUT_I64) {
            if (ts->dtype != EFM_INT64) CORRUPT("bad index tensor", t, "");
        } else {
            if ((ts->dtype != EFM_INT8 && !(ts->dtype == EFM_FLOAT32 && h->version >= 2)) || ts->offset >= h->n_blobs ||
                m->blobs[ts->offset].dtype != ts->dtype ||
                m->blobs[ts->offset].count != n || ts->zero_point < -128 || ts->zero_point > 127)
                CORRUPT("bad constant tensor", t, "");
        }
    }
    if (m->arena_per_sample > act_total) CORRUPT("activation offsets exceed the sum of all activations; bytes", (int64_t)m->arena_per_sample, "");
    for (uint32_t k = 0; k < h->n_inputs + h->n_outputs; k++) {
        uint32_t id = m->ids[k];
        if (id >= h->n_tensors || (k >= h->n_inputs && m->tensors[id].kind != EFM_T_ACT) || m->tensors[id].kind == EFM_T_CONST ||
            (m->tensors[id].kind == EFM_T_ACT && m->tensors[id].dtype != EFM_INT8 && k < h->n_inputs) ||
            (m->tensors[id].dtype == EFM_FLOAT32 && !(m->tensors[id].scale > 0 && m->tensors[id].scale < 3.0e38f)))
            CORRUPT("bad graph input/output entry", k, "");
    }
    for (uint32_t i = 0; i < h->n_ops; i++)
        if ((rc = check_op(m, i, err, errlen))) return rc;
    if ((rc = check_order(m, err, errlen))) return rc;
    if (m->scratch_bytes > ((uint64_t)1 << 30)) CORRUPT("an op needs more than 1 GiB of scratch; bytes", (int64_t)m->scratch_bytes, "");
    return EFM_OK;
}

uint64_t efm_arena_bytes(const efm_model *m, int64_t batch) {
    if (batch < 1 || batch > ((int64_t)1 << 24)) return 0;
    if (m->arena_per_sample > ((uint64_t)1 << 62) / (uint64_t)batch) return 0;
    /* 64 bytes of slack: the GEMM reads up to 3 bytes past a row whose K is not a multiple of 4 */
    /* one scratch region per thread (an op's parallel tasks each get their own) */
    return (uint64_t)batch * m->arena_per_sample + efm_round_up(m->scratch_bytes, EFM_ALIGN) * (uint64_t)efm_pool_threads(m->pool) + 64;
}

uint32_t efm_crc32(const uint8_t *p, uint64_t n, uint32_t crc) {
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    crc = ~crc;
    for (uint64_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

const char *efm_kernel_path(const efm_model *m) { return ((const efm_kernels *)m->kernels)->name; }

int efm_use_kernels(efm_model *m, int which) {
    const efm_kernels *k = efm_kernels_named(which);
    if (!k) return EFM_E_ARG;
    m->kernels = k;
    return EFM_OK;
}
