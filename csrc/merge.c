/* merge.c: the elementwise sum of several arrays (a residual connection's add).
 *
 * Threads split the elements; each element is summed in the order of the inputs,
 * ((x0 + x1) + x2) + ..., so the result does not depend on the thread count. A block
 * is summed into a stack buffer before it is stored, so y may be any of the inputs. */
#include "internal.h"

#define BLOCK 1024  /* floats: 4 KiB of L1 */

typedef struct {
    int64_t count;
    const float *const *xs;
    float *y;
} add_job;

static void add_part(int64_t lo, int64_t hi, void *ctx)
{
    const add_job *J = ctx;
    float acc[BLOCK];
    for (int64_t b = lo; b < hi; b += BLOCK) {
        int64_t len = FNN_MIN(BLOCK, hi - b);
        if (J->count == 1) {
            memmove(J->y + b, J->xs[0] + b, (size_t)len * sizeof(float));
            continue;
        }
        fnn_active->ew.add(len, J->xs[0] + b, J->xs[1] + b, acc);
        for (int64_t k = 2; k < J->count; k++)
            fnn_active->ew.add(len, acc, J->xs[k] + b, acc);
        memcpy(J->y + b, acc, (size_t)len * sizeof(float));
    }
}

int fnn_add(int64_t count, int64_t n, const float *const *xs, float *y)
{
    if (count < 1 || n < 0 || !xs)
        return FNN_EINVAL;
    for (int64_t k = 0; k < count && n > 0; k++)
        if (!xs[k])
            return FNN_EINVAL;
    if (n > 0 && !y)
        return FNN_EINVAL;
    add_job J = {.count = count, .xs = xs, .y = y};
    /* Split on 64-byte boundaries, so threads never share a cache line of y. */
    fnn_parallel_range(n, (double)count * (double)n, 16, add_part, &J);
    return FNN_OK;
}
