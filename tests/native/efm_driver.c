/* Test driver for the native runtime on another architecture (built by test_neon_qemu.py with a cross
 * compiler, run under qemu-user): runs every case of a directory on the kernel tables this CPU runs
 * and compares the int8 outputs with the integer reference's.
 *
 * The portable table runs only where the CPU has no SIMD table (its C is the same on every target and
 * is tested natively); threads 1 on each table, and 3 on the best one.
 *
 * DIR/cases.txt: one line per case, "<name> <batch> <max_lsb> <max_differing_per_million>"; the files
 * DIR/<name>.efm (model), DIR/<name>.in (the one input's raw bytes), DIR/<name>.ref (expected int8).
 * Prints one line per failure and a summary; exit status 0 when every case matches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "efm.h"
#include "kernels.h"

static void *read_file(const char *dir, const char *name, const char *ext, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = aligned_alloc(64, ((size_t)n + 64) / 64 * 64);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = 0;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* 0 when the case matches on this table and thread count, else 1 (and a line saying why). */
static int run_case(const char *dir, const char *name, long batch, long max_lsb, long max_ppm, int table, int threads) {
    size_t mlen, ilen, rlen;
    char err[512] = "";
    void *model = read_file(dir, name, ".efm", &mlen), *in = read_file(dir, name, ".in", &ilen);
    int8_t *ref = (int8_t *)read_file(dir, name, ".ref", &rlen);
    int bad = 1;
    efm_model m;
    efm_opinfo *info = 0;
    efm_pool *pool = 0;
    void *arena = 0;
    int8_t *out = 0;
    uint32_t n_ops = 0;
    if (!model || !in || !ref) {
        printf("FAIL %s: missing files\n", name);
        goto done;
    }
    if (efm_peek(model, mlen, &n_ops, err, sizeof err) || !(info = calloc(n_ops + 1, sizeof *info)) ||
        efm_load(model, mlen, 1, &m, info, n_ops + 1, err, sizeof err) || efm_use_kernels(&m, table)) {
        printf("FAIL %s: load: %s\n", name, err);
        goto done;
    }
    pool = efm_pool_create(threads);
    efm_use_pool(&m, pool);
    uint64_t need = efm_arena_bytes(&m, batch);
    arena = aligned_alloc(64, (need + 63) / 64 * 64);
    out = malloc(rlen + 1);
    const void *ins[1] = {in};
    int8_t *outs[1] = {out};
    if (!arena || !out || efm_run(&m, batch, ins, 0, outs, arena, need, err, sizeof err)) {
        printf("FAIL %s: run: %s\n", name, err);
        goto done;
    }
    long differ = 0, worst = 0;
    for (size_t i = 0; i < rlen; i++) {
        long d = labs((long)out[i] - (long)ref[i]);
        differ += d != 0;
        worst = d > worst ? d : worst;
    }
    if (worst > max_lsb || differ * 1000000L > max_ppm * (long)rlen)
        printf("FAIL %s [%s, %d threads]: %ld of %zu outputs differ, max %ld LSB\n", name, efm_kernel_path(&m),
               efm_pool_threads(pool), differ, rlen, worst);
    else
        bad = 0;
done:
    efm_pool_destroy(pool);
    free(model);
    free(in);
    free(ref);
    free(info);
    free(arena);
    free(out);
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASE_DIR\n", argv[0]);
        return 2;
    }
    char path[4096], name[1024];
    snprintf(path, sizeof path, "%s/cases.txt", argv[1]);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 2;
    }
    const int all[] = {EFM_K_NEON, EFM_K_NEONDOT, EFM_K_AVX2, EFM_K_AVXVNNI, EFM_K_AVX512VNNI};
    int tables[8], n = 0;
    for (unsigned t = 0; t < sizeof all / sizeof all[0]; t++)
        if (efm_kernels_named(all[t])) tables[n++] = all[t];
    if (!n) tables[n++] = EFM_K_PORTABLE;
    long batch, max_lsb, max_ppm, cases = 0, runs = 0, failed = 0;
    while (fscanf(f, "%1023s %ld %ld %ld", name, &batch, &max_lsb, &max_ppm) == 4) {
        cases++;
        for (int t = 0; t < n; t++) {
            for (int threads = 1; threads <= (t == n - 1 ? 3 : 1); threads += 2) {
                runs++;
                failed += run_case(argv[1], name, batch, max_lsb, max_ppm, tables[t], threads);
            }
        }
    }
    fclose(f);
    printf("tables:");
    for (int t = 0; t < n; t++) printf(" %s", efm_kernels_named(tables[t])->name);
    printf(" (3 threads on %s)\n%ld cases, %ld runs, %ld failed\n", efm_kernels_named(tables[n - 1])->name, cases, runs,
           failed);
    return failed ? 1 : 0;
}
