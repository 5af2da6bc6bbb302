/* A small thread pool for intra-op parallelism: efm_parallel splits one op's work into tasks that
 * write disjoint outputs with the same arithmetic as one thread, so every thread count gives the
 * same bytes. Built with pthreads when EFM_THREADS is defined (setup.py does, on POSIX); elsewhere
 * (wasm32, freestanding builds) efm_pool_create returns NULL and every op runs on the caller. */
#include "efm_ops.h"

void efm_use_pool(efm_model *m, efm_pool *p) { m->pool = p; }

#if defined(EFM_THREADS)
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define EFM_MAX_THREADS 64
#define SPIN_ROUNDS 4000 /* a worker polls this long for the next job before it sleeps */

/* The job word: generation (high 32 bits) | task count (16) | next task (16). A thread claims a task
 * with a compare-and-swap that succeeds only for the generation it saw, so a worker waking late never
 * touches a newer job by mistake; the caller waits for the tasks to be done, not for every worker to
 * wake up (on a busy machine a sleeping worker may get no core for a long time). */
struct efm_pool {
    int n; /* threads including the caller */
    pthread_t th[EFM_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t word;
    atomic_int done;
    atomic_int sleepers;
    void (*fn)(void *ctx, int task, int thread);
    void *ctx;
    int quit;
};

typedef struct {
    efm_pool *p;
    int slot;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claim and run tasks of generation gen until none is left. */
static void run_tasks(efm_pool *p, uint32_t gen, int slot) {
    uint64_t w = atomic_load_explicit(&p->word, memory_order_acquire);
    for (;;) {
        uint32_t ntasks = (uint32_t)(w >> 16) & 0xFFFFu, next = (uint32_t)w & 0xFFFFu;
        if ((uint32_t)(w >> 32) != gen || next >= ntasks) return;
        if (!atomic_compare_exchange_weak_explicit(&p->word, &w, w + 1, memory_order_acq_rel, memory_order_acquire))
            continue;
        p->fn(p->ctx, (int)next, slot); /* fn/ctx stay put until every task of this generation is done */
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        w = atomic_load_explicit(&p->word, memory_order_acquire);
    }
}

static void *worker(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    efm_pool *p = wa.p;
    free(arg);
    uint32_t seen = 0; /* the pool starts at generation 0: a job posted before this thread runs is still seen */
    for (;;) {
        int spins = 0;
        while ((uint32_t)(atomic_load_explicit(&p->word, memory_order_acquire) >> 32) == seen && spins < SPIN_ROUNDS) {
            cpu_relax();
            spins++;
        }
        if ((uint32_t)(atomic_load(&p->word) >> 32) == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((uint32_t)(atomic_load(&p->word) >> 32) == seen && !p->quit) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        pthread_mutex_lock(&p->mu);
        int quit = p->quit;
        pthread_mutex_unlock(&p->mu);
        if (quit) return 0;
        seen = (uint32_t)(atomic_load(&p->word) >> 32);
        run_tasks(p, seen, wa.slot);
    }
}

efm_pool *efm_pool_create(int threads) {
    if (threads < 2) return 0;
    if (threads > EFM_MAX_THREADS) threads = EFM_MAX_THREADS;
    efm_pool *p = (efm_pool *)calloc(1, sizeof(efm_pool));
    if (!p) return 0;
    pthread_mutex_init(&p->mu, 0);
    pthread_cond_init(&p->cv, 0);
    atomic_init(&p->word, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    p->n = 1;
    for (int i = 1; i < threads; i++) {
        worker_arg *wa = (worker_arg *)malloc(sizeof(worker_arg));
        if (!wa) break;
        wa->p = p;
        wa->slot = i;
        if (pthread_create(&p->th[i], 0, worker, wa)) {
            free(wa);
            break;
        }
        p->n++;
    }
    if (p->n < 2) {
        efm_pool_destroy(p);
        return 0;
    }
    return p;
}

void efm_pool_destroy(efm_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    atomic_fetch_add(&p->word, (uint64_t)1 << 32); /* wakes spinning workers too */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->th[i], 0);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

int efm_pool_threads(const efm_pool *p) { return p ? p->n : 1; }

void efm_parallel(efm_pool *p, int ntasks, void (*fn)(void *ctx, int task, int thread), void *ctx) {
    if (!p || ntasks < 2 || ntasks > 0xFFFF) {
        for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
        return;
    }
    uint32_t gen = (uint32_t)(atomic_load(&p->word) >> 32) + 1;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store(&p->word, ((uint64_t)gen << 32) | ((uint64_t)ntasks << 16)); /* seq_cst: before reading sleepers */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    run_tasks(p, gen, 0);
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < ntasks; spins++) {
        if (spins < SPIN_ROUNDS) cpu_relax();
        else sched_yield(); /* a worker holding a task was preempted: let it run */
    }
}

#else /* no threads: everything runs on the caller */

efm_pool *efm_pool_create(int threads) {
    (void)threads;
    return 0;
}

void efm_pool_destroy(efm_pool *p) { (void)p; }

int efm_pool_threads(const efm_pool *p) {
    (void)p;
    return 1;
}

void efm_parallel(efm_pool *p, int ntasks, void (*fn)(void *ctx, int task, int thread), void *ctx) {
    (void)p;
    for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
}

#endif
