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

#define EFM_MAGIC "EFM\x01"
#define EFM_VERSION 1u
#define EFM_ALIGN 64u     /* blob and arena-tensor alignment */
#define EFM_KPAD 4u       /* packed weights: K padded to a multiple of 4 ... */
#define EFM_NPAD 8u       /* ... and output channels to a multiple of 8 (see FORMAT.md) */
#define EFM_MAX_RANK 6
#define EFM_NATTR 32
#define EFM_NBLOB 6
#define EFM_NO_BLOB 0xFFFFFFFFu

enum efm_opcode {
    EFM_OP_LINEAR = 1, EFM_OP_CONV2D, EFM_OP_MAXPOOL, EFM_OP_AVGPOOL, EFM_OP_MEAN, EFM_OP_ADD, EFM_OP_MUL,
    EFM_OP_LUT, EFM_OP_SOFTMAX, EFM_OP_LAYERNORM, EFM_OP_MATMUL, EFM_OP_RESHAPE, EFM_OP_TRANSPOSE,
    EFM_OP_CONCAT, EFM_OP_EMBEDDING, EFM_OP_DWCONV, EFM_OP_COUNT
};

enum efm_tensor_kind { EFM_T_ACT = 0, EFM_T_INPUT_I64 = 1, EFM_T_CONST = 2 };
enum efm_dtype { EFM_INT8 = 0, EFM_INT32 = 1, EFM_INT64 = 2, EFM_FLOAT32 = 3 };

enum efm_status {
    EFM_OK = 0, EFM_E_TRUNCATED, EFM_E_MAGIC, EFM_E_VERSION, EFM_E_CHECKSUM, EFM_E_CORRUPT,
    EFM_E_ARENA, EFM_E_INDEX, EFM_E_ARG
};

/* ---- on-disk records (little endian, all fields naturally aligned) --------------------------- */
typedef struct {
    char magic[4];
    uint32_t version;
    uint32_t header_bytes;   /* sizeof(efm_header) */
    uint32_t checksum;       /* CRC-32 (zlib's) of the file with this field zeroed */
    uint64_t file_bytes;
    uint32_t n_tensors, n_ops, n_blobs, n_ids;
    uint32_t n_inputs, n_outputs;
    uint64_t tensors_off, ops_off, blobs_off, ids_off, names_off;
    uint64_t names_bytes;
    uint32_t reserved[8];
} efm_header;                /* 128 bytes */

typedef struct {
    uint32_t kind;           /* efm_tensor_kind */
    uint32_t dtype;          /* efm_dtype: int8, or int64 for EFM_T_INPUT_I64 */
    uint32_t rank;           /* including the batch axis for ACT/INPUT tensors */
    uint32_t name;           /* offset into the names section (NUL-terminated) */
    int32_t dims[EFM_MAX_RANK]; /* dims[0] is ignored (batch) for ACT/INPUT; full shape for CONST */
    uint64_t offset;         /* ACT: per-sample arena offset (times batch at run time); CONST: blob index */
    float scale;
    int32_t zero_point;
    uint32_t reserved[2];
} efm_tensor;                /* 64 bytes */

typedef struct {
    uint32_t opcode;
    uint32_t n_in;
    uint32_t in_ids;         /* index of the first input tensor id in the ids section */
    uint32_t out;            /* output tensor id */
    int32_t attr[EFM_NATTR];
    int64_t param[4];
    uint32_t blob[EFM_NBLOB]; /* blob indices or EFM_NO_BLOB */
} efm_op;                    /* 200 bytes */

typedef struct {
    uint64_t offset;         /* from the start of the file, multiple of EFM_ALIGN */
    uint64_t nbytes;
    uint32_t dtype;
    uint32_t count;
} efm_blob;                  /* 24 bytes */

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
 * outputs_f[i] float32 (may be NULL), outputs_q[i] int8 (may be NULL; the pointer arrays too). */
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
