/* Precision islands (format version 2): float32 activations between a dequantize and a quantize, and
 * the float kernels that run on them. The arithmetic is run_int's for island nodes: int8 inputs
 * dequantized ((q - zp) * scale in float32), the op's float32 definition, the output quantized with
 * its qparams (round half to even). */
#include "efm_ops.h"

void op_quantize(const run_ctx *c, const efm_op *op) {
    const efm_tensor *y = T(c, op->out);
    c->k->quantize(actf(c, in_id(c, op, 0)), c->batch * (int64_t)efm_numel_ps(y), y->scale, y->zero_point,
                   act(c, op->out));
}

void op_dequantize(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi);
    const int8_t *q = act(c, xi);
    float *y = actf(c, op->out);
    int64_t n = c->batch * (int64_t)efm_numel_ps(x);
    for (int64_t i = 0; i < n; i++) y[i] = (float)((int32_t)q[i] - x->zero_point) * x->scale;
}

/* Threads split the output channels in 16-channel blocks: every element is computed by the same
 * code in the same order whatever the split. */
typedef struct {
    efm_flinear_fn f;
    int M, N, K, Np, T, act;
    const float *X, *scale, *bias;
    const int8_t *Wt;
    float *Y;
} flinear_job;

static void flinear_task(void *ctx, int t, int thread) {
    (void)thread;
    const flinear_job *j = (const flinear_job *)ctx;
    int nblk = j->Np / EFM_FLINEAR_NBLK, per = (nblk + j->T - 1) / j->T;
    int b0 = t * per, b1 = b0 + per < nblk ? b0 + per : nblk;
    if (b0 < b1)
        j->f(j->M, b0 * EFM_FLINEAR_NBLK, b1 * EFM_FLINEAR_NBLK, j->K, j->Np, j->X, j->Wt, j->scale, j->bias, j->act,
             j->Y, j->N);
}

void op_linear_f32(const run_ctx *c, const efm_op *op) {
    const efm_model *m = c->m;
    uint32_t xi = in_id(c, op, 0);
    int32_t K = op->attr[0], N = op->attr[1];
    int64_t rows = c->batch * (int64_t)(efm_numel_ps(T(c, xi)) / (uint64_t)K);
    flinear_job j = {c->k->flinear, (int)rows, N, K, (int)efm_round_up((uint64_t)N, EFM_FLINEAR_NBLK), 1, op->attr[2],
                     actf(c, xi), (const float *)efm_blob_ptr(m, op->blob[1]), (const float *)efm_blob_ptr(m, op->blob[2]),
                     (const int8_t *)efm_blob_ptr(m, op->blob[0]), actf(c, op->out)};
    int nblk = j.Np / EFM_FLINEAR_NBLK;
    if (c->nthreads > 1 && nblk > 1 && (uint64_t)rows * (uint64_t)N * (uint64_t)K >= EFM_PAR_MIN_WORK) {
        j.T = nblk < EFM_PAR_TASKS * c->nthreads ? nblk : EFM_PAR_TASKS * c->nthreads;
        efm_parallel(c->pool, j.T, flinear_task, &j);
    } else {
        flinear_task(&j, 0, 0);
    }
}

void op_layernorm_f32(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const efm_tensor *x = T(c, xi);
    int64_t D = x->dims[x->rank - 1], rows = c->batch * (int64_t)(efm_numel_ps(x) / (uint64_t)D);
    union { int32_t i; float f; } eps = {op->attr[0]};
    const float *gamma = (const float *)efm_blob_ptr(c->m, op->blob[0]), *beta = (const float *)efm_blob_ptr(c->m, op->blob[1]);
    const float *xs = actf(c, xi);
    float *ys = actf(c, op->out);
    for (int64_t r = 0; r < rows; r++) {
        float mean, den;
        efm_row_moments(xs + r * D, D, eps.f, &mean, &den);
        for (int64_t d = 0; d < D; d++) ys[r * D + d] = (xs[r * D + d] - mean) / den * gamma[d] + beta[d];
    }
}

/* gelu(x) = 0.5 x (1 + erf(x / sqrt 2)) in double, as run_int's float64 definition, then float32.
 * erf from the file's table (erf and erf' at x0 = i / EFM_ERF_STEPS, stored as float64 bits) and a
 * degree-5 Taylor step from the nearest x0: erf^(n)(x0) = erf'(x0) P_n(x0). No libm: the same bytes
 * on every target, wasm32 included. */
static double erf_from_table(double x, const double *tab) {
    double ax = x < 0 ? -x : x;
    if (!(ax < (double)(EFM_ERF_POINTS - 1) / EFM_ERF_STEPS)) return x < 0 ? -1.0 : 1.0;
    int i = (int)(ax * EFM_ERF_STEPS + 0.5);
    double x0 = (double)i / EFM_ERF_STEPS, d = ax - x0, x2 = x0 * x0;
    double p = d * (1.0 + d * (-x0 + d * ((4 * x2 - 2) / 6 + d * ((-8 * x2 * x0 + 12 * x0) / 24 +
                                                                   d * (16 * x2 * x2 - 48 * x2 + 12) / 120))));
    double e = tab[2 * i] + tab[2 * i + 1] * p;
    return x < 0 ? -e : e;
}

void op_gelu_f32(const run_ctx *c, const efm_op *op) {
    uint32_t xi = in_id(c, op, 0);
    const double *tab = (const double *)efm_blob_ptr(c->m, op->blob[0]);
    const float *x = actf(c, xi);
    float *y = actf(c, op->out);
    int64_t n = c->batch * (int64_t)efm_numel_ps(T(c, xi));
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(0.5 * v * (1.0 + erf_from_table(v * 0.70710678118654752440, tab)));
    }
}
