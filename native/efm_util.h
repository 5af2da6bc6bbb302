/* Small freestanding helpers shared by the loader and the interpreter. */
#ifndef EFM_UTIL_H
#define EFM_UTIL_H

#include "efm.h"

/* Error text without libc: "<what> <number><tail>" into the caller's buffer. */
void efm_err(char *err, size_t errlen, const char *what, int64_t num, const char *tail);

static inline uint64_t efm_numel_ps(const efm_tensor *t) {
    uint64_t n = 1;
    for (uint32_t i = (t->kind == EFM_T_CONST ? 0 : 1); i < t->rank; i++) n *= (uint64_t)t->dims[i];
    return n;
}

static inline uint64_t efm_round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static inline const void *efm_blob_ptr(const efm_model *m, uint32_t b) {
    return m->base + m->blobs[b].offset;
}

static inline int8_t efm_sat8(int64_t v) { return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v); }

/* run_int's QParams.quantize: round(x / scale) + zp (ties to even), saturated to int8.
 * Branch-free so loops over it vectorise: the quotient is clamped to +-2^20 (NaN goes to the low
 * end), then rounded by adding and removing 1.5 * 2^23, which rounds to even in the default
 * rounding mode for |v| < 2^22 whatever the sign (the constant is even). */
static inline int8_t efm_quantize(float x, float scale, int32_t zp) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    float v = x / scale;
    v = v >= -1048576.0f ? v : -1048576.0f;
    v = v <= 1048576.0f ? v : 1048576.0f;
    int32_t q = (int32_t)((v + magic) - magic) + zp;
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

void efm_memcpy(void *dst, const void *src, uint64_t n);

/* The loader's checks of the ops in efm_ops_misc.c: 1 when the attributes fit the shapes. */
int efm_check_pad(const efm_tensor *x, const efm_tensor *y, const int32_t *a);
int efm_check_slice(const efm_tensor *x, const efm_tensor *y, const int32_t *a);
int efm_check_cast(const efm_tensor *x, const efm_tensor *y);

#endif
