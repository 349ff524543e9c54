/* activation.c: elementwise activations and row-wise softmax, forward and backward,
 * dropout, plus fnn_parallel_range, the split of [0, n) the elementwise families share.
 *
 * relu, leaky_relu, sigmoid, tanh, gelu, silu and elu run the ISA's vectorised loops (exp
 * is fnn_expf, vectorisable, ~1 ulp; tanh Cephes' tanhf on it; gelu's erf an erfc of
 * relative error below 1.2e-7 on it). Softmax rows sum in double,
 * each row on one thread, so results do not depend on the thread count. */
#include <math.h>

#include "internal.h"

typedef struct {
    int64_t n, align, parts;
    fnn_range_fn f;
    void *ctx;
} range_job;

static void range_part(void *ctx, int64_t i, int slot)
{
    const range_job *R = ctx;
    int64_t blocks = (R->n + R->align - 1) / R->align, lo, hi;
    (void)slot;
    fnn_split(blocks, (int)i, (int)R->parts, &lo, &hi);
    lo = FNN_MIN(lo * R->align, R->n);
    hi = FNN_MIN(hi * R->align, R->n);
    if (hi > lo)
        R->f(lo, hi, R->ctx);
}

void fnn_parallel_range(int64_t n, double work, int64_t align, fnn_range_fn f, void *ctx)
{
    int nth = fnn_threads_for(work);
    if (nth == 1 || n <= align) {
        f(0, n, ctx);
        return;
    }
    /* Two parts per thread: one that runs late costs half a share. */
    range_job R = {.n = n, .align = align, .parts = 2 * nth, .f = f, .ctx = ctx};
    fnn_run(R.parts, nth, range_part, &R);
}

void fnn_exp_sums(int64_t rows, int64_t c, const float *x, float *max, float *out,
                  double *sums)
{
    fnn_active->ew->exp_sums(rows, c, x, max, out, sums);
}

/* Elementwise split on 64-byte boundaries so threads never share a cache line. */
#define EW_ALIGN 16

typedef struct {
    const float *a, *b;
    float *out;
    float slope;  /* leaky_relu's negative slope, elu's alpha */
    int64_t cols;
    int op;       /* FNN_SMOOTH_* */
} ew_job;

static void relu_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    fnn_active->ew->relu(hi - lo, J->a + lo, J->out + lo);
}

static void relu_backward_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    fnn_active->ew->relu_backward(hi - lo, J->a + lo, J->b + lo, J->out + lo);
}

static void leaky_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    fnn_active->ew->leaky_relu(hi - lo, J->slope, J->a + lo, J->out + lo);
}

static void leaky_backward_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    fnn_active->ew->leaky_relu_backward(hi - lo, J->slope, J->a + lo, J->b + lo, J->out + lo);
}

static void sigmoid_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    fnn_active->ew->sigmoid(hi - lo, J->a + lo, J->out + lo);
}

static void sigmoid_backward_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    for (int64_t i = lo; i < hi; i++)
        J->out[i] = J->a[i] * J->b[i] * (1.0f - J->b[i]);
}

static void tanh_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    fnn_active->ew->tanh(hi - lo, J->a + lo, J->out + lo);
}

static void tanh_backward_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    for (int64_t i = lo; i < hi; i++)
        J->out[i] = J->a[i] * (1.0f - J->b[i] * J->b[i]);
}

static void smooth_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    fnn_active->ew->smooth(J->op, hi - lo, J->slope, J->a + lo, J->out + lo);
}

static void smooth_backward_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    fnn_active->ew->smooth_backward(J->op, hi - lo, J->slope, J->a + lo, J->b + lo, J->out + lo);
}

/* Rows fnn_exp_group(c) at a time (lo is a multiple of it: run_rows). */
static void softmax_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    int64_t c = J->cols, group = fnn_exp_group(c);
    float m[FNN_EXP_PASS];
    double s[FNN_EXP_PASS];
    for (int64_t r0 = lo; r0 < hi; r0 += group) {
        int64_t nr = FNN_MIN(group, hi - r0);
        fnn_exp_sums(nr, c, J->a + r0 * c, m, J->out + r0 * c, s);
        for (int64_t r = 0; r < nr; r++) {
            float *y = J->out + (r0 + r) * c, inv = (float)(1.0 / s[r]);
            for (int64_t j = 0; j < c; j++)
                y[j] *= inv;
        }
    }
}

static void log_softmax_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    int64_t c = J->cols, group = fnn_exp_group(c);
    float m[FNN_EXP_PASS];
    double s[FNN_EXP_PASS];
    for (int64_t r0 = lo; r0 < hi; r0 += group) {
        int64_t nr = FNN_MIN(group, hi - r0);
        fnn_exp_sums(nr, c, J->a + r0 * c, m, NULL, s);
        for (int64_t r = 0; r < nr; r++) {
            const float *x = J->a + (r0 + r) * c;
            float *y = J->out + (r0 + r) * c, lse = (float)log(s[r]);
            for (int64_t j = 0; j < c; j++)
                y[j] = (x[j] - m[r]) - lse;
        }
    }
}

/* gx = y * (gy - sum(gy * y)) */
static void softmax_backward_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    int64_t c = J->cols;
    for (int64_t r = lo; r < hi; r++) {
        const float *gy = J->a + r * c, *y = J->b + r * c;
        double lane[4] = {0.0, 0.0, 0.0, 0.0}, dot;  /* as in fnn_exp_sums */
        int64_t j = 0;
        for (; j + 4 <= c; j += 4)
            for (int l = 0; l < 4; l++)
                lane[l] += (double)gy[j + l] * y[j + l];
        for (; j < c; j++)
            lane[j & 3] += (double)gy[j] * y[j];
        dot = (lane[0] + lane[1]) + (lane[2] + lane[3]);
        for (int64_t j = 0; j < c; j++)
            J->out[r * c + j] = y[j] * (gy[j] - (float)dot);
    }
}

/* gx = gy - exp(y) * sum(gy) */
static void log_softmax_backward_part(int64_t lo, int64_t hi, void *ctx)
{
    ew_job *J = ctx;
    int64_t c = J->cols;
    for (int64_t r = lo; r < hi; r++) {
        const float *gy = J->a + r * c, *y = J->b + r * c;
        double s = 0.0;
        for (int64_t j = 0; j < c; j++)
            s += gy[j];
        for (int64_t j = 0; j < c; j++)
            J->out[r * c + j] = gy[j] - fnn_expf(y[j]) * (float)s;
    }
}

/* A binary op reads J->a and J->b, a unary one only J->a. */
static int run_elementwise(int64_t n, double cost, fnn_range_fn f, ew_job *J, int binary)
{
    if (n < 0 || (n > 0 && (!J->a || !J->out || (binary && !J->b))))
        return FNN_EINVAL;
    fnn_parallel_range(n, cost * (double)n, EW_ALIGN, f, J);
    return FNN_OK;
}

static int run_rows(int64_t rows, int64_t cols, fnn_range_fn f, ew_job *J, int binary)
{
    if (rows < 0 || cols < 1 || (rows > 0 && cols > INT64_MAX / rows) ||
        (rows > 0 && (!J->a || !J->out || (binary && !J->b))))
        return FNN_EINVAL;
    J->cols = cols;
    /* parts of whole exp passes (fnn_exp_sums): the same bits on any thread count */
    fnn_parallel_range(rows, FNN_COST_EXP * (double)rows * cols, fnn_exp_group(cols), f, J);
    return FNN_OK;
}

int fnn_relu(int64_t n, const float *x, float *y)
{
    return run_elementwise(n, FNN_COST_MEM, relu_part, &(ew_job){.a = x, .out = y}, 0);
}

int fnn_relu_backward(int64_t n, const float *gy, const float *x, float *gx)
{
    return run_elementwise(n, FNN_COST_MEM, relu_backward_part,
                           &(ew_job){.a = gy, .b = x, .out = gx}, 1);
}

int fnn_leaky_relu(int64_t n, float slope, const float *x, float *y)
{
    return run_elementwise(n, FNN_COST_MEM, leaky_part,
                           &(ew_job){.a = x, .out = y, .slope = slope}, 0);
}

int fnn_leaky_relu_backward(int64_t n, float slope, const float *gy, const float *x, float *gx)
{
    return run_elementwise(n, FNN_COST_MEM, leaky_backward_part,
                           &(ew_job){.a = gy, .b = x, .out = gx, .slope = slope}, 1);
}

int fnn_sigmoid(int64_t n, const float *x, float *y)
{
    return run_elementwise(n, FNN_COST_EXP, sigmoid_part, &(ew_job){.a = x, .out = y}, 0);
}

int fnn_sigmoid_backward(int64_t n, const float *gy, const float *y, float *gx)
{
    return run_elementwise(n, FNN_COST_MEM, sigmoid_backward_part,
                           &(ew_job){.a = gy, .b = y, .out = gx}, 1);
}

int fnn_tanh(int64_t n, const float *x, float *y)
{
    return run_elementwise(n, FNN_COST_EXP, tanh_part, &(ew_job){.a = x, .out = y}, 0);
}

int fnn_tanh_backward(int64_t n, const float *gy, const float *y, float *gx)
{
    return run_elementwise(n, FNN_COST_MEM, tanh_backward_part,
                           &(ew_job){.a = gy, .b = y, .out = gx}, 1);
}

/* A smooth activation's forward (a = x) or backward (a = gy, b = x). */
static int run_smooth(int op, int backward, int64_t n, float alpha, const float *gy,
                      const float *x, float *out)
{
    ew_job J = {.a = backward ? gy : x, .b = x, .out = out, .slope = alpha, .op = op};
    return run_elementwise(n, FNN_COST_EXP, backward ? smooth_backward_part : smooth_part, &J,
                           backward);
}

/* The FNN_SMOOTH_* op of a gelu's `approximate`, or -1. */
static int gelu_op(int approximate)
{
    return approximate == FNN_GELU_TANH ? FNN_SMOOTH_GELU_TANH
           : approximate == FNN_GELU_ERF ? FNN_SMOOTH_GELU : -1;
}

int fnn_gelu(int64_t n, int approximate, const float *x, float *y)
{
    int op = gelu_op(approximate);
    return op < 0 ? FNN_EINVAL : run_smooth(op, 0, n, 0.0f, NULL, x, y);
}

int fnn_gelu_backward(int64_t n, int approximate, const float *gy, const float *x, float *gx)
{
    int op = gelu_op(approximate);
    return op < 0 ? FNN_EINVAL : run_smooth(op, 1, n, 0.0f, gy, x, gx);
}

int fnn_silu(int64_t n, const float *x, float *y)
{
    return run_smooth(FNN_SMOOTH_SILU, 0, n, 0.0f, NULL, x, y);
}

int fnn_silu_backward(int64_t n, const float *gy, const float *x, float *gx)
{
    return run_smooth(FNN_SMOOTH_SILU, 1, n, 0.0f, gy, x, gx);
}

int fnn_elu(int64_t n, float alpha, const float *x, float *y)
{
    return run_smooth(FNN_SMOOTH_ELU, 0, n, alpha, NULL, x, y);
}

int fnn_elu_backward(int64_t n, float alpha, const float *gy, const float *x, float *gx)
{
    return run_smooth(FNN_SMOOTH_ELU, 1, n, alpha, gy, x, gx);
}

typedef struct {
    const float *x;
    float *y;
    uint64_t seed;
    uint32_t thr;
    float scale;
} dropout_job;

/* Element i's bits hash its low word with the seed's low word, then with the seed's high
 * word and its own high word (mixed): pieces never cross a multiple of 2^32. */
static void dropout_part(int64_t lo, int64_t hi, void *ctx)
{
    const dropout_job *J = ctx;
    for (int64_t i = lo, end; i < hi; i = end) {
        end = FNN_MIN(hi, (i | 0xFFFFFFFF) + 1);
        uint32_t high = (uint32_t)(i >> 32);
        FNN_MIX32(high);
        uint32_t k1 = (uint32_t)(J->seed >> 32) ^ high;
        fnn_active->ew->dropout(end - i, (uint32_t)i, (uint32_t)J->seed, k1, J->thr, J->scale,
                                J->x + i, J->y + i);
    }
}

int fnn_dropout(int64_t n, double p, uint64_t seed, const float *x, float *y)
{
    if (!(p >= 0.0 && p < 1.0) || n < 0 || (n > 0 && (x == NULL || y == NULL)))
        return FNN_EINVAL;
    /* kept when the bits are >= p * 2^32: probability 1 - p to within 2^-32 */
    dropout_job J = {.x = x, .y = y, .seed = seed, .thr = (uint32_t)ldexp(p, 32),
                     .scale = (float)(1.0 / (1.0 - p))};
    fnn_parallel_range(n, FNN_COST_HASH * (double)n, EW_ALIGN, dropout_part, &J);
    return FNN_OK;
}

int fnn_softmax(int64_t rows, int64_t cols, const float *x, float *y)
{
    return run_rows(rows, cols, softmax_part, &(ew_job){.a = x, .out = y}, 0);
}

int fnn_softmax_backward(int64_t rows, int64_t cols, const float *gy, const float *y, float *gx)
{
    return run_rows(rows, cols, softmax_backward_part, &(ew_job){.a = gy, .b = y, .out = gx}, 1);
}

int fnn_log_softmax(int64_t rows, int64_t cols, const float *x, float *y)
{
    return run_rows(rows, cols, log_softmax_part, &(ew_job){.a = x, .out = y}, 0);
}

int fnn_log_softmax_backward(int64_t rows, int64_t cols, const float *gy, const float *y,
                             float *gx)
{
    return run_rows(rows, cols, log_softmax_backward_part,
                    &(ew_job){.a = gy, .b = y, .out = gx}, 1);
}
