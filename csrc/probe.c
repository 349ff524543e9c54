/* probe.c: the machine's FMA throughput and copy bandwidth, run on all threads. */
#include "internal.h"

typedef struct {
    const fnn_probe_kernels *k;
    int64_t iters;
    float sink;
} fma_job;

static void fma_task(void *ctx, int64_t i, int slot)
{
    fma_job *J = ctx;
    float r = J->k->fma(J->iters);
    (void)i;
    (void)slot;
    __atomic_store(&J->sink, &r, __ATOMIC_RELAXED);  /* keeps the loop alive */
}

/* One task per thread; the caller times the call. A thread that joins late leaves its
 * task to another, and the time shows it. */
int fnn_probe_fma(int64_t iters, double *flops)
{
    if (iters < 0 || flops == NULL)
        return FNN_EINVAL;
    int nth = omp_get_max_threads();
    fma_job J = {.k = fnn_active->probe, .iters = iters};
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
