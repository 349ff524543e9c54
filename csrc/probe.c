/* probe.c: the machine's FMA throughput and copy bandwidth, run on all threads. */
#include "internal.h"

int fnn_probe_fma(int64_t iters, double *flops)
{
    if (iters < 0 || flops == NULL)
        return FNN_EINVAL;
    const fnn_probe_kernels *k = fnn_active->probe;
    int nth = omp_get_max_threads();
    volatile float sink = 0.0f;
    int used = 1;
#pragma omp parallel num_threads(nth)
    {
        float r = k->fma(iters);
#pragma omp critical
        sink += r;
#pragma omp single
        used = omp_get_num_threads();
    }
    (void)sink;
    *flops = (double)iters * k->fma_flops_per_iter * used;
    return FNN_OK;
}

int fnn_probe_copy(float *dst, const float *src, int64_t n)
{
    if (n < 0 || (n > 0 && (dst == NULL || src == NULL)))
        return FNN_EINVAL;
    int nth = fnn_threads_for(FNN_COST_MEM * (double)n);
#pragma omp parallel num_threads(nth)
    {
        int64_t lo, hi;
        fnn_split(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
    }
    return FNN_OK;
}
