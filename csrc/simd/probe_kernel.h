/* probe_kernel.h: the machine's ceilings, measured with the GEMM tile's own register
 * budget (MR*NR/VEC independent FMA chains), so "% of peak" compares like with like.
 * Included after gemm_kernel.h, whose vfloat and tile sizes it uses. */

#define FNN_PROBE_ACC (FNN_MR * FNN_NV)

/* iters rounds of FNN_PROBE_ACC independent vector FMAs; returns a value that depends
 * on every chain so the compiler cannot drop them. */
static float probe_fma(int64_t iters)
{
    vfloat acc[FNN_PROBE_ACC];
    vfloat x = (vfloat){0} + 0.999999f, y = (vfloat){0} + 1e-7f;
    _Pragma("GCC unroll 32") for (int i = 0; i < FNN_PROBE_ACC; i++) acc[i] = (vfloat){0} + (float)i;
    /* Without -ffast-math the compiler may not reassociate, so every FMA stays. */
    for (int64_t n = 0; n < iters; n++)
        _Pragma("GCC unroll 32") for (int i = 0; i < FNN_PROBE_ACC; i++) acc[i] = acc[i] * x + y;
    float sum = 0.0f;
    for (int i = 0; i < FNN_PROBE_ACC; i++)
        for (int j = 0; j < FNN_VEC; j++)
            sum += acc[i][j];
    return sum;
}

#define FNN_PROBE_KERNELS {.fma = probe_fma, .fma_flops_per_iter = 2 * FNN_PROBE_ACC * FNN_VEC}
