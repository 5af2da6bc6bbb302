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
} run_ctx;

static inline int8_t *act(const run_ctx *c, uint32_t id) { return (int8_t *)(c->arena + (uint64_t)c->batch * c->m->tensors[id].offset); }
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
void op_lut(const run_ctx *c, const efm_op *op);
void op_matmul(const run_ctx *c, const efm_op *op);
void op_transpose(const run_ctx *c, const efm_op *op);
void op_concat(const run_ctx *c, const efm_op *op);
int op_embedding(const run_ctx *c, const efm_op *op, uint32_t graph_input, char *err, size_t errlen);
/* efm_ops_misc.c (their loader checks are declared in efm_util.h) */
void op_pad(const run_ctx *c, const efm_op *op);
void op_slice(const run_ctx *c, const efm_op *op);
void op_cast(const run_ctx *c, const efm_op *op, uint32_t graph_input);
void op_sum(const run_ctx *c, const efm_op *op);

#endif
