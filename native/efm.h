/* edgefleet native runtime: the .efm flat model format and the whole-graph interpreter.
 *
 * Freestanding C99: no OS calls, no allocation, no libc beyond <stdint.h>/<stddef.h>. The caller
 * owns every byte: the model file (one buffer, read-only, used in place), the per-op info array and
 * the activation arena. The same sources compile to wasm32 (clang --target=wasm32 -ffreestanding).
 * The byte layout is documented in native/FORMAT.md; the int8 arithmetic is the IR's run_int.
 */
#ifndef EFM_H
#define EFM_H

#include <stddef.h>
#include <stdint.h>

#include "efm_format.h" /* generated: numbers, enums and on-disk records */

enum efm_status {
    EFM_OK = 0, EFM_E_TRUNCATED, EFM_E_MAGIC, EFM_E_VERSION, EFM_E_CHECKSUM, EFM_E_CORRUPT,
    EFM_E_ARENA, EFM_E_INDEX, EFM_E_ARG
};

/* ---- in-memory model: views into the caller's buffer plus facts derived at load -------------- */
typedef struct efm_pool efm_pool; /* intra-op threads (efm_pool.c); NULL runs every op on the caller */
typedef struct {
    uint32_t flags;          /* EFM_OPF_* */
    uint32_t reserved;
} efm_opinfo;
#define EFM_OPF_W7 1u        /* every weight |w| <= 63: the u8 x s8 pairwise multiply-add is exact */
#define EFM_OPF_RQ32 2u      /* = EFM_KF_RQ32: accumulator + bias always fits int32 */
#define EFM_OPF_RQF 4u       /* = EFM_KF_RQF: and every multiplier is below 1 (shift >= 31) */

typedef struct {
    const uint8_t *base;
    uint64_t size;
    const efm_header *h;
    const efm_tensor *tensors;
    const efm_op *ops;
    const efm_blob *blobs;
    const uint32_t *ids;
    const char *names;
    efm_opinfo *info;        /* caller-provided, n_ops entries */
    uint64_t arena_per_sample; /* bytes of activations per batch item */
    uint64_t scratch_bytes;  /* batch-independent scratch (im2col, int16 panels, float rows) */
    const void *kernels;     /* kernel table: the best this CPU runs, or one set by efm_use_kernels */
    efm_pool *pool;          /* NULL after load (one thread); set by efm_use_pool */
} efm_model;

/* Read the header counts before load (to size the opinfo array). */
int efm_peek(const void *buf, uint64_t len, uint32_t *n_ops, char *err, size_t errlen);
/* Validate everything and fill *m. verify_checksum=0 skips the checksum (to test the validators). */
int efm_load(const void *buf, uint64_t len, int verify_checksum, efm_model *m, efm_opinfo *info,
             uint32_t n_info, char *err, size_t errlen);
/* Bytes of arena one run with this batch needs (0 on overflow). */
uint64_t efm_arena_bytes(const efm_model *m, int64_t batch);
/* Run the whole graph. inputs[i]: float32 (or int64 indices) of shape [batch, ...];
 * outputs_f[i] float32 (may be NULL), outputs_q[i] int8 (may be NULL; the pointer arrays too). An
 * output written by a precision island is float32 in the arena: outputs_f gets it as is, outputs_q
 * quantized with the output's qparams. */
int efm_run(const efm_model *m, int64_t batch, const void *const *inputs, float *const *outputs_f,
            int8_t *const *outputs_q, void *arena, uint64_t arena_len, char *err, size_t errlen);

/* efm_run with a hook called after every op (profilers; NULL for none). */
typedef void (*efm_op_hook)(void *user, uint32_t op_index);
int efm_run_hooked(const efm_model *m, int64_t batch, const void *const *inputs, float *const *outputs_f,
                   int8_t *const *outputs_q, void *arena, uint64_t arena_len, char *err, size_t errlen,
                   efm_op_hook hook, void *user);

uint32_t efm_crc32(const uint8_t *p, uint64_t n, uint32_t crc); /* zlib.crc32 compatible, chainable */
const char *efm_kernel_path(const efm_model *m);
/* Use kernel table `which` (0 best, 1 portable, 2 avx2, 3 avxvnni); EFM_E_ARG if this CPU lacks it. */
int efm_use_kernels(efm_model *m, int which);

/* Intra-op threads. efm_pool_create(n) starts n - 1 workers (the caller is the n-th); it returns NULL
 * for n < 2 or where the build has no threads (wasm32, freestanding: define EFM_THREADS to get them).
 * Every thread count computes the same bytes. A pool serves one run at a time. efm_use_pool attaches
 * one to a model (NULL: one thread); the arena a run needs grows with the pool's threads. */
efm_pool *efm_pool_create(int threads);
void efm_pool_destroy(efm_pool *p);
int efm_pool_threads(const efm_pool *p);
void efm_use_pool(efm_model *m, efm_pool *p);
/* Run fn(ctx, t, thread) for every task t < ntasks on the pool's threads and the caller (thread is
 * the runner's index, 0 .. threads-1: per-thread scratch); returns when all tasks are done. */
void efm_parallel(efm_pool *p, int ntasks, void (*fn)(void *ctx, int task, int thread), void *ctx);

#endif
