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

/* float -> nearest integer, ties to even (numpy's round), for |x| < 2^22; callers clamp first. */
static inline float efm_rint(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return x >= 0 ? (x + magic) - magic : (x - magic) + magic;
}

/* run_int's QParams.quantize: round(x / scale) + zp, saturated to int8. */
static inline int8_t efm_quantize(float x, float scale, int32_t zp) {
    float v = x / scale;
    if (!(v > -1e6f)) return -128; /* also catches NaN (the Python layer rejects it earlier) */
    if (v > 1e6f) return 127;
    return efm_sat8((int64_t)efm_rint(v) + zp);
}

void efm_memcpy(void *dst, const void *src, uint64_t n);

#endif
