/* elementwise_kernel.h: the memory-bound activation loops and the 2x2/stride-2
 * max-pool row, written as plain branch-free loops that the compiler vectorises for
 * the ISA that simd/isa_*.c targets. Semantics are fastnn.reference's: NaN
 * propagates through relu, and a NaN wins a max-pool window (the last one). */

static void ew_relu(int64_t n, const float *x, float *y)
{
    /* y may alias x (in place): each element is read once, then written. */
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

static void ew_relu_backward(int64_t n, const float *restrict gy, const float *restrict x,
                             float *restrict gx)
{
    for (int64_t i = 0; i < n; i++)
        gx[i] = x[i] > 0.0f ? gy[i] : 0.0f;
}

static void ew_leaky_relu(int64_t n, float slope, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

static void ew_leaky_relu_backward(int64_t n, float slope, const float *restrict gy,
                                   const float *restrict x, float *restrict gx)
{
    for (int64_t i = 0; i < n; i++)
        gx[i] = x[i] > 0.0f ? gy[i] : gy[i] * slope;
}

/* Window (a b / c d) scanned in row-major order: a later element replaces the
 * running maximum when it is larger or NaN, exactly like the generic window scan. */
static void ew_max_pool_2x2_row(int64_t ow, int64_t w, const float *restrict r0, int64_t base,
                                float *restrict y, int64_t *restrict idx)
{
    const float *restrict r1 = r0 + w;
    for (int64_t j = 0; j < ow; j++) {
        float m = r0[2 * j], v;
        int64_t k = 0;
        v = r0[2 * j + 1];
        if (v > m || v != v) { m = v; k = 1; }
        v = r1[2 * j];
        if (v > m || v != v) { m = v; k = w; }
        v = r1[2 * j + 1];
        if (v > m || v != v) { m = v; k = w + 1; }
        y[j] = m;
        if (idx)
            idx[j] = base + 2 * j + k;
    }
}

#define FNN_EW_KERNELS                                                                   \
    {                                                                                    \
        .relu = ew_relu, .relu_backward = ew_relu_backward, .leaky_relu = ew_leaky_relu,  \
        .leaky_relu_backward = ew_leaky_relu_backward,                                   \
        .max_pool_2x2_row = ew_max_pool_2x2_row                                          \
    }
