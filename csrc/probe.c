/* probe.c: the machine's FMA throughput and copy bandwidth, run on all threads. */
#include <time.h>

#include "internal.h"

typedef struct {
    const fnn_probe_kernels *k;
    int64_t iters;
    int nth, started;
    float sink;
} fma_job;

/* Each task waits (at most 0.1 s) until all nth have started, so the FMA loops run side
 * by side: an idle worker takes a moment to wake up, and the caller would otherwise run
 * its task and then the worker's. A thread that never comes leaves its task to another,
 * and the time shows it. */
static void fma_task(void *ctx, int64_t i, int slot)
{
    fma_job *J = ctx;
    (void)i;
    (void)slot;
    __atomic_add_fetch(&J->started, 1, __ATOMIC_SEQ_CST);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while (__atomic_load_n(&J->started, __ATOMIC_SEQ_CST) < J->nth &&
           (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 100000000L);
    float r = J->k->fma(J->iters);
    __atomic_store(&J->sink, &r, __ATOMIC_RELAXED);  /* keeps the loop alive */
}

/* One task per thread; the caller times the call. */
int fnn_probe_fma(int64_t iters, double *flops)
{
    if (iters < 0 || flops == NULL)
        return FNN_EINVAL;
    int nth = omp_get_max_threads();
    fma_job J = {.k = fnn_active->probe, .iters = iters, .nth = nth};
    fnn_run(nth, nth, fma_task, &J);
    *flops = (double)iters * J.k->fma_flops_per_iter * nth;
    return FNN_OK;
}

typedef struct {
    float *dst;
    const float *src;
} copy_job;

static void copy_part(int64_t lo, int64_t hi, void *ctx)
{
    copy_job *J = ctx;
    memcpy(J->dst + lo, J->src + lo, (size_t)(hi - lo) * sizeof(float));
}

int fnn_probe_copy(float *dst, const float *src, int64_t n)
{
    if (n < 0 || (n > 0 && (dst == NULL || src == NULL)))
        return FNN_EINVAL;
    copy_job J = {.dst = dst, .src = src};
    fnn_parallel_range(n, FNN_COST_MEM * (double)n, 16, copy_part, &J);
    return FNN_OK;
}
