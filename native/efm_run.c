/* The whole-graph interpreter: one call quantizes the inputs, runs every op over a planned arena
 * (tensor offsets fixed at export, scaled by the batch size) and writes the outputs. The loader has
 * validated every shape, index and constant, so the ops only compute. */
#include "efm_ops.h"

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
    run_ctx c = {m, (const efm_kernels *)m->kernels, batch, (uint8_t *)arena, 0, inputs, m->pool,
                 efm_pool_threads(m->pool), efm_round_up(m->scratch_bytes, EFM_ALIGN)};
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
        case EFM_OP_MUL:
        case EFM_OP_DIV: op_binary(&c, op); break;
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
        case EFM_OP_QUANTIZE: op_quantize(&c, op); break;
        case EFM_OP_DEQUANTIZE: op_dequantize(&c, op); break;
        case EFM_OP_LINEAR_F32: op_linear_f32(&c, op); break;
        case EFM_OP_ADD_F32:
        case EFM_OP_MUL_F32: op_binary_f32(&c, op); break;
        case EFM_OP_LAYERNORM_F32: op_layernorm_f32(&c, op); break;
        case EFM_OP_GELU_F32: op_gelu_f32(&c, op); break;
        case EFM_OP_MEAN_F32: op_mean_f32(&c, op); break;
        case EFM_OP_CONCAT: op_concat(&c, op); break;
        case EFM_OP_PAD: op_pad(&c, op); break;
        case EFM_OP_SUM: op_sum(&c, op); break;
        case EFM_OP_SLICE: op_slice(&c, op); break;
        case EFM_OP_EMBEDDING:
        case EFM_OP_CAST: {
            uint32_t g = 0;
            while (m->ids[g] != in_id(&c, op, 0)) g++; /* the loader proved it is a graph input */
            if (op->opcode == EFM_OP_CAST) {
                op_cast(&c, op, g);
                break;
            }
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
        if (t->dtype == EFM_FLOAT32) { /* an island's output: float32, quantized only for an int8 reader */
            if (outputs_f && outputs_f[k]) efm_memcpy(outputs_f[k], src, (uint64_t)n * 4);
            if (outputs_q && outputs_q[k]) c.k->quantize((const float *)src, n, t->scale, t->zero_point, outputs_q[k]);
            continue;
        }
        if (outputs_q && outputs_q[k]) efm_memcpy(outputs_q[k], src, (uint64_t)n);
        if (outputs_f && outputs_f[k])
            for (int64_t i = 0; i < n; i++) outputs_f[k][i] = (float)(src[i] - t->zero_point) * t->scale;
    }
    return EFM_OK;
}
