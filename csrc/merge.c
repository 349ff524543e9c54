/* merge.c: the elementwise sum of several arrays (a residual connection's add).
 *
 * Threads split the elements; each element is summed in the order of the inputs,
 * ((x0 + x1) + x2) + ..., so the result does not depend on the thread count. A block
 * is summed in L1, into y itself, or into a stack buffer when y is one of the inputs
 * after the first two (which summing into y would overwrite before it is read). */
#include "internal.h"

#define BLOCK 1024  /* floats: 4 KiB of L1 */

typedef struct {
    int64_t count;
    const float *const *xs;
    float *y;
    int y_is_later_input;  /* y is xs[k] for some k >= 2 */
} add_job;

static void add_part(int64_t lo, int64_t hi, void *ctx)
{
    const add_job *J = ctx;
    float buf[BLOCK];
    for (int64_t b = lo; b < hi; b += BLOCK) {
        int64_t len = FNN_MIN(BLOCK, hi - b);
        float *acc = J->y_is_later_input ? buf : J->y + b;
        if (J->count == 1) {
            memmove(J->y + b, J->xs[0] + b, (size_t)len * sizeof(float));
            continue;
        }
        fnn_active->ew->add(len, J->xs[0] + b, J->xs[1] + b, acc);
        for (int64_t k = 2; k < J->count; k++)
            fnn_active->ew->add(len, acc, J->xs[k] + b, acc);
        if (acc == buf)
            memcpy(J->y + b, buf, (size_t)len * sizeof(float));
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
    for (int64_t k = 2; k < count; k++)
        J.y_is_later_input |= xs[k] == y;
    /* Split on 64-byte boundaries, so threads never share a cache line of y. */
    fnn_parallel_range(n, (double)count * (double)n, 16, add_part, &J);
    return FNN_OK;
}
