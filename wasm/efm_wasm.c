/* The wasm module's exports: a small allocator over the linear memory above __heap_base, and thin
 * wrappers around the native C API (native/efm.h) that take 32-bit sizes, so a JavaScript loader
 * needs no BigInt. Everything else is the unchanged native/ C.
 *
 * Memory: [data | stack | __heap_base ... heap ...]. Every heap block starts on a 64-byte boundary
 * (the .efm buffer and the arena must be 64-aligned) behind a 64-byte header; free blocks are reused
 * first fit and merged with free neighbours; the memory grows when nothing fits. */
#include <stddef.h>
#include <stdint.h>

#include "efm.h"
#include "kernels_wasm.h"

#define EXPORT(name) __attribute__((export_name(#name)))
#define HDR 64u

extern unsigned char __heap_base;

typedef struct {
    uint32_t size; /* bytes of the block, header included, multiple of 64 */
    uint32_t used;
} blk;

static uintptr_t heap_lo, heap_hi; /* [heap_lo, heap_hi): blocks laid end to end */

static blk *at(uintptr_t p) { return (blk *)p; }

EXPORT(efw_alloc) void *efw_alloc(uint32_t n) {
    if (!heap_lo) heap_lo = heap_hi = ((uintptr_t)&__heap_base + 63u) & ~(uintptr_t)63u;
    if (n > 0xFFFFFF00u - HDR) return 0;
    uint32_t need = (n + HDR + 63u) & ~63u;
    for (uintptr_t p = heap_lo; p < heap_hi; p += at(p)->size) {
        blk *b = at(p);
        if (b->used) continue;
        while (p + b->size < heap_hi && !at(p + b->size)->used) b->size += at(p + b->size)->size;
        if (b->size < need) continue;
        if (b->size - need >= 2 * HDR) { /* split off the rest */
            blk *rest = at(p + need);
            rest->size = b->size - need;
            rest->used = 0;
            b->size = need;
        }
        b->used = 1;
        return (void *)(p + HDR);
    }
    uint64_t end = (uint64_t)heap_hi + need, have = (uint64_t)__builtin_wasm_memory_size(0) * 65536u;
    if (end > 0xFFFFFFFFu) return 0;
    if (end > have && __builtin_wasm_memory_grow(0, (size_t)((end - have + 65535u) / 65536u)) == (size_t)-1) return 0;
    blk *b = at(heap_hi);
    b->size = need;
    b->used = 1;
    heap_hi += need;
    return (void *)((uintptr_t)b + HDR);
}

EXPORT(efw_free) void efw_free(void *ptr) {
    if (!ptr) return;
    uintptr_t p = (uintptr_t)ptr - HDR;
    at(p)->used = 0;
    if (p + at(p)->size == heap_hi) heap_hi = p; /* the top block goes back to the free space */
}

/* bytes of heap in use (blocks and headers), for leak tests */
EXPORT(efw_heap_used) uint32_t efw_heap_used(void) {
    uint32_t used = 0;
    for (uintptr_t p = heap_lo; p < heap_hi; p += at(p)->size)
        if (at(p)->used) used += at(p)->size;
    return used;
}

/* record sizes the loader allocates: one efm_model and n_ops efm_opinfo per model */
EXPORT(efw_model_bytes) uint32_t efw_model_bytes(void) { return sizeof(efm_model); }
EXPORT(efw_opinfo_bytes) uint32_t efw_opinfo_bytes(void) { return sizeof(efm_opinfo); }

/* n_ops of a file, or -status (the message is in err) */
EXPORT(efw_peek) int32_t efw_peek(const void *buf, uint32_t len, char *err, uint32_t errlen) {
    uint32_t n_ops = 0;
    int rc = efm_peek(buf, len, &n_ops, err, errlen);
    return rc ? -rc : (int32_t)n_ops;
}

EXPORT(efw_load) int32_t efw_load(const void *buf, uint32_t len, int32_t verify, efm_model *m, efm_opinfo *info,
                                  uint32_t n_info, char *err, uint32_t errlen) {
    return efm_load(buf, len, verify, m, info, n_info, err, errlen);
}

/* arena bytes for a batch; 0 when it does not fit a 32-bit address space */
EXPORT(efw_arena_bytes) uint32_t efw_arena_bytes(const efm_model *m, int32_t batch) {
    uint64_t n = efm_arena_bytes(m, batch);
    return n > 0xF0000000u ? 0 : (uint32_t)n;
}

EXPORT(efw_run) int32_t efw_run(const efm_model *m, int32_t batch, const void *const *inputs, float *const *outputs_f,
                                int8_t *const *outputs_q, void *arena, uint32_t arena_len, char *err, uint32_t errlen) {
    return efm_run(m, batch, inputs, outputs_f, outputs_q, arena, arena_len, err, errlen);
}

EXPORT(efw_kernel_name) const char *efw_kernel_name(const efm_model *m) { return efm_kernel_path(m); }

/* 0 best, 1 portable, 5 SIMD128; EFM_E_ARG where this build lacks the table */
EXPORT(efw_use_kernels) int32_t efw_use_kernels(efm_model *m, int32_t which) { return efm_use_kernels(m, which); }

/* 1 when this build was compiled with SIMD128 kernels */
EXPORT(efw_simd128) int32_t efw_simd128(void) { return efm_kernels_named(EFM_K_WASM_SIMD128) != 0; }
