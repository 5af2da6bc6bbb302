/* Internal to the interpreter: the run context shared by the op implementations (efm_ops_*.c)
 * and efm_run.c. Not part of the public API (efm.h). */
#ifndef EFM_OPS_H
#define EFM_OPS_H

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
    efm_pool *pool;          /* NULL: one thread */
    int nthreads;            /* efm_pool_threads(pool) */
    uint64_t scratch_stride; /* bytes of scratch per thread: task t of efm_parallel may use scratch + t * stride */
} run_ctx;

/* Work (multiply-adds) below which an op is not split across threads, and tasks per thread (more
 * tasks than threads: a thread that gets no core for a while leaves its share to the others). */
#define EFM_PAR_MIN_WORK (1 << 18)
#define EFM_PAR_TASKS 4

static inline int8_t *act(const run_ctx *c, uint32_t id) { return (int8_t *)(c->arena + (uint64_t)c->batch * c->m->tensors[id].offset); }
static inline float *actf(const run_ctx *c, uint32_t id) { return (float *)(c->arena + (uint64_t)c->batch * c->m->tensors[id].offset); }
static inline const efm_tensor *T(const run_ctx *c, uint32_t id) { return &c->m->tensors[id]; }
static inline uint32_t in_id(const run_ctx *c, const efm_op *op, uint32_t k) { return c->m->ids[op->in_ids + k]; }
static inline efm_clamp clamp_of(const efm_tensor *y, int32_t lo, int32_t hi) { efm_clamp r = {y->zero_point, lo, hi}; return r; }
static inline int same_dims(const efm_tensor *a, const efm_tensor *b) {
    if (a->rank != b->rank) return 0;
    for (uint32_t i = 1; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

/* efm_ops_conv.c */
void op_linear(const run_ctx *c, const efm_op *op, uint32_t flags);
void op_conv(const run_ctx *c, const efm_op *op, uint32_t flags);
void op_dwconv(const run_ctx *c, const efm_op *op);
/* efm_ops.c */
void op_pool(const run_ctx *c, const efm_op *op);
void op_mean(const run_ctx *c, const efm_op *op);
void op_softmax(const run_ctx *c, const efm_op *op);
void op_layernorm(const run_ctx *c, const efm_op *op);
void op_binary(const run_ctx *c, const efm_op *op);
void op_binary_f32(const run_ctx *c, const efm_op *op); /* add_f32, mul_f32 */
void op_lut(const run_ctx *c, const efm_op *op);
void op_matmul(const run_ctx *c, const efm_op *op);
void op_transpose(const run_ctx *c, const efm_op *op);
void op_concat(const run_ctx *c, const efm_op *op);
int op_embedding(const run_ctx *c, const efm_op *op, uint32_t graph_input, char *err, size_t errlen);
/* Mean and sqrt(variance + eps) of one layer-norm row (sums in double, as the int8 layer norm). */
static inline void efm_row_moments(const float *v, int64_t D, float eps, float *mean, float *den) {
    double sum = 0, sq = 0;
    for (int64_t d = 0; d < D; d++) sum += v[d];
    float mu = (float)(sum / (double)D);
    for (int64_t d = 0; d < D; d++) { float t = v[d] - mu; sq += (double)t * t; }
    *mean = mu;
    *den = __builtin_sqrtf((float)(sq / (double)D) + eps);
}
/* efm_ops_float.c: precision islands */
void op_quantize(const run_ctx *c, const efm_op *op);
void op_dequantize(const run_ctx *c, const efm_op *op);
void op_linear_f32(const run_ctx *c, const efm_op *op);
void op_layernorm_f32(const run_ctx *c, const efm_op *op);
void op_gelu_f32(const run_ctx *c, const efm_op *op);
void op_mean_f32(const run_ctx *c, const efm_op *op); /* efm_ops.c, beside op_mean */
/* efm_ops_misc.c (their loader checks are declared in efm_util.h) */
void op_pad(const run_ctx *c, const efm_op *op);
void op_slice(const run_ctx *c, const efm_op *op);
void op_cast(const run_ctx *c, const efm_op *op, uint32_t graph_input);
void op_sum(const run_ctx *c, const efm_op *op);

#endif
