/* norm.c: batch normalization, forward and backward, on x viewed as (N, C, S): the
 * statistics of channel c run over its N planes of S values (m = N*S of them); layer
 * normalization (at the end) over the rows of x viewed as (rows, cols).
 *
 * Threads split the channels and each channel's sums run in one fixed order: plane by
 * plane in batch order, each plane in the ISA's double lanes (fnn_active->ew->sums), so
 * no result depends on the thread count. A thread takes its channels in chunks whose
 * data fits in L2: it sums a chunk row by row (each row's part of the chunk is
 * contiguous, which small planes need: one plane per row would stride through memory),
 * then normalises the chunk while it is still in cache. With S == 1 ((N, C) input) a
 * row's chunk is a run of columns, summed vectorised across the columns.
 *
 * The sums are shifted (by a value of the channel in the forward, by its mean in the
 * backward): a mean far from zero costs the one-pass variance no precision, and a
 * constant channel has a variance of exactly 0. */
#include <math.h>

#include "internal.h"

/* Most channels per chunk (the per-channel state lives on the stack), and the bytes
 * of x a chunk aims at. */
#define CHUNK_MAX 256
#define CHUNK_BYTES (256 * 1024)
/* With S == 1 threads split columns on 64-byte boundaries: they never share a line. */
#define COL_ALIGN 16

typedef struct {
    int64_t n, c, s;
    const float *x, *gy, *weight, *bias;
    float *running_mean, *running_var;  /* forward: updated in training, read otherwise */
    const float *mean_in, *invstd_in;   /* backward: the forward's save_mean, save_invstd */
    const float *y_act;                 /* backward: the relu'd output gy is gated by */
    int training, relu;                 /* relu: the forward's output relu'd */
    double momentum, eps;
    float *y, *mean, *invstd;           /* forward outputs */
    float *gx, *gw, *gb;                /* backward outputs (each may be NULL) */
} bn_job;

/* The state of a chunk of channels: sums in double, then the per-channel constants of
 * the elementwise pass. Forward: y = (x - mean) * a + b, a = weight * invstd. Backward,
 * training: gx = ((gy - b) - (x - mean) * k) * a with b = mean(gy) and
 * k = mean(gy * (x - mean)) * invstd^2 (torch's form); otherwise gx = gy * a. */
typedef struct {
    double s[CHUNK_MAX], q[CHUNK_MAX];
    float shift[CHUNK_MAX], mean[CHUNK_MAX], a[CHUNK_MAX], b[CHUNK_MAX], k[CHUNK_MAX];
} bn_chunk;

/* Channels per chunk: about CHUNK_BYTES of x, at least a vector of columns when S == 1. */
static int64_t chunk_channels(const bn_job *J)
{
    double per_channel = 4.0 * (double)J->n * (double)J->s;
    int64_t k = (int64_t)FNN_MIN((double)CHUNK_MAX, CHUNK_BYTES / FNN_MAX(per_channel, 1.0));
    return FNN_MAX(k, J->s == 1 ? COL_ALIGN : 1);
}

/* The shift of a channel's sums: a value of it, unless that is inf or NaN (which
 * would make every shifted value NaN where the plain sums give inf). */
static inline float finite_or_zero(float v) { return isfinite(v) ? v : 0.0f; }

/* Channel c (slot j of the chunk): its statistics from the shifted sums (training) or
 * the running ones; sets save_mean and save_invstd, updates the running statistics. */
static void forward_constants(const bn_job *J, int64_t c, bn_chunk *t, int64_t j)
{
    double m = (double)J->n * (double)J->s, mu, invstd;
    if (J->training) {
        double var_sum = t->q[j] - t->s[j] * t->s[j] / m;
        if (var_sum < 0.0)  /* rounding; NaN stays NaN */
            var_sum = 0.0;
        mu = t->shift[j] + t->s[j] / m;  /* NaN when m == 0: the mean of nothing */
        invstd = 1.0 / sqrt(var_sum / m + J->eps);
        if (m > 0 && J->running_mean)
            J->running_mean[c] =
                (float)((1.0 - J->momentum) * J->running_mean[c] + J->momentum * mu);
        if (m > 0 && J->running_var)  /* the unbiased variance, like torch */
            J->running_var[c] = (float)((1.0 - J->momentum) * J->running_var[c] +
                                        J->momentum * (var_sum / (m - 1.0)));
    } else {
        mu = J->running_mean[c];
        invstd = 1.0 / sqrt((double)J->running_var[c] + J->eps);
    }
    J->mean[c] = t->mean[j] = (float)mu;
    J->invstd[c] = (float)invstd;
    t->a[j] = (float)(invstd * (J->weight ? J->weight[c] : 1.0f));
    t->b[j] = J->bias ? J->bias[c] : 0.0f;
}

/* Channel c: grad_weight and grad_bias from the sums of gy and gy * (x - mean), and
 * the constants of its input gradient. */
static void backward_constants(const bn_job *J, int64_t c, bn_chunk *t, int64_t j)
{
    double m = (double)J->n * (double)J->s, invstd = J->invstd_in[c];
    if (J->gb)
        J->gb[c] = (float)t->s[j];
    if (J->gw)
        J->gw[c] = m > 0 ? (float)(t->q[j] * invstd) : 0.0f;
    t->mean[j] = J->mean_in[c];
    t->a[j] = (float)(invstd * (J->weight ? J->weight[c] : 1.0f));
    t->b[j] = m > 0 ? (float)(t->s[j] / m) : 0.0f;
    t->k[j] = m > 0 ? (float)(t->q[j] / m * invstd * invstd) : 0.0f;
}

/* g gated by the relu'd output y there (relu_backward's rule). */
static inline float gated(float y, float g) { return y <= 0.0f ? 0.0f : g; }

/* g[j], gated by y_act[j] where y_act is given (a loop over j is unswitched on it). */
static inline float gated_at(const float *y_act, const float *g, int64_t j)
{
    return y_act ? gated(y_act[j], g[j]) : g[j];
}

/* Adds row i's part of chunk [c0, c0 + w) to the sums: of x - shift and its square
 * (g NULL), or of g and g * (x - shift) (g: gy, gated). */
static void row_sums(const bn_job *J, const float *g, int64_t i, int64_t c0, int64_t w,
                     bn_chunk *t)
{
    int64_t s = J->s, off = (i * J->c + c0) * s;
    const float *x = J->x + off;
    if (s == 1 && !g) {
        for (int64_t j = 0; j < w; j++) {
            double d = (double)x[j] - t->shift[j];
            t->s[j] += d;
            t->q[j] += d * d;
        }
    } else if (s == 1) {
        const float *y_act = J->y_act ? J->y_act + off : NULL;
        for (int64_t j = 0; j < w; j++) {
            double gj = gated_at(y_act, g + off, j);
            t->s[j] += gj;
            t->q[j] += gj * ((double)x[j] - t->shift[j]);
        }
    } else {
        for (int64_t j = 0; j < w; j++) {
            double ps, pq;
            if (g)
                fnn_active->ew->dot_sums(s, g + off + j * s,
                                         J->y_act ? J->y_act + off + j * s : NULL, x + j * s,
                                         t->shift[j], &ps, &pq);
            else
                fnn_active->ew->sums(s, x + j * s, t->shift[j], &ps, &pq);
            t->s[j] += ps;
            t->q[j] += pq;
        }
    }
}

/* Row i's part of chunk [c0, c0 + w): y = (x - mean) * a + b, per channel (relu'd if
 * J->relu). */
static void row_normalise(const bn_job *J, int64_t i, int64_t c0, int64_t w, const bn_chunk *t)
{
    int64_t s = J->s, off = (i * J->c + c0) * s;
    const float *restrict x = J->x + off;
    float *restrict y = J->y + off;
    if (s == 1) {
        for (int64_t j = 0; j < w; j++) {
            float v = (x[j] - t->mean[j]) * t->a[j] + t->b[j];
            y[j] = J->relu && v < 0.0f ? 0.0f : v;
        }
        return;
    }
    for (int64_t j = 0; j < w; j++)
        fnn_active->ew->bn_normalise(s, x + j * s, t->mean[j], t->a[j], t->b[j], J->relu,
                                     y + j * s);
}

/* Row i's part of chunk [c0, c0 + w) of the input gradient. */
static void row_input_grad(const bn_job *J, int64_t i, int64_t c0, int64_t w, const bn_chunk *t)
{
    int64_t s = J->s, off = (i * J->c + c0) * s;
    const float *restrict x = J->x + off, *restrict gy = J->gy + off;
    const float *restrict y_act = J->y_act ? J->y_act + off : NULL;
    float *restrict gx = J->gx + off;
    if (s == 1 && J->training) {
        for (int64_t j = 0; j < w; j++)
            gx[j] = ((gated_at(y_act, gy, j) - t->b[j]) - (x[j] - t->mean[j]) * t->k[j]) *
                    t->a[j];
        return;
    }
    if (s == 1) {
        for (int64_t j = 0; j < w; j++)
            gx[j] = gated_at(y_act, gy, j) * t->a[j];
        return;
    }
    for (int64_t j = 0; j < w; j++) {
        float a = t->a[j];
        if (J->training) {
            fnn_active->ew->bn_input_grad(s, gy + j * s, y_act ? y_act + j * s : NULL,
                                          x + j * s, t->mean[j], a, t->b[j], t->k[j],
                                          gx + j * s);
        } else if (y_act) {  /* (the branch out of the loop: it vectorises) */
            for (int64_t e = j * s; e < (j + 1) * s; e++)
                gx[e] = gated(y_act[e], gy[e]) * a;
        } else {
            for (int64_t e = j * s; e < (j + 1) * s; e++)
                gx[e] = gy[e] * a;
        }
    }
}

static void forward_part(int64_t lo, int64_t hi, void *ctx)
{
    const bn_job *J = ctx;
    bn_chunk t;
    int64_t k = chunk_channels(J);
    for (int64_t c0 = lo; c0 < hi; c0 += k) {
        int64_t w = FNN_MIN(k, hi - c0);
        for (int64_t j = 0; j < w; j++) {
            t.s[j] = t.q[j] = 0.0;
            t.shift[j] = J->training && J->n > 0 ? finite_or_zero(J->x[(c0 + j) * J->s]) : 0.0f;
        }
        for (int64_t i = 0; J->training && i < J->n; i++)
            row_sums(J, NULL, i, c0, w, &t);
        for (int64_t j = 0; j < w; j++)
            forward_constants(J, c0 + j, &t, j);
        for (int64_t i = 0; i < J->n; i++)
            row_normalise(J, i, c0, w, &t);
    }
}

static void backward_part(int64_t lo, int64_t hi, void *ctx)
{
    const bn_job *J = ctx;
    bn_chunk t;
    int64_t k = chunk_channels(J);
    int sums = (J->training && J->gx) || J->gw || J->gb;
    for (int64_t c0 = lo; c0 < hi; c0 += k) {
        int64_t w = FNN_MIN(k, hi - c0);
        for (int64_t j = 0; j < w; j++) {
            t.s[j] = t.q[j] = 0.0;
            t.shift[j] = J->mean_in[c0 + j];
        }
        for (int64_t i = 0; sums && i < J->n; i++)
            row_sums(J, J->gy, i, c0, w, &t);
        for (int64_t j = 0; j < w; j++)
            backward_constants(J, c0 + j, &t, j);
        for (int64_t i = 0; J->gx && i < J->n; i++)
            row_input_grad(J, i, c0, w, &t);
    }
}

/* n, c, s >= 0 and n*c*s fits in int64_t. */
static int sizes_valid(int64_t n, int64_t c, int64_t s)
{
    if (n < 0 || c < 0 || s < 0)
        return 0;
    if (c > 0 && s > INT64_MAX / c)
        return 0;
    return n == 0 || c * s == 0 || n <= INT64_MAX / (c * s);
}

/* Channels split over the threads; with no values (N*S == 0) only the per-channel
 * constants are set, and no pointer into x is formed. */
static void run_channels(bn_job *J, fnn_range_fn f, double cost)
{
    if (J->n == 0 || J->s == 0) {
        J->n = J->s = 0;
        f(0, J->c, J);
        return;
    }
    fnn_parallel_range(J->c, cost * (double)J->n * J->c * J->s, J->s == 1 ? COL_ALIGN : 1, f,
                       J);
}

int fnn_batch_norm(int64_t n, int64_t c, int64_t s, const float *x, const float *weight,
                   const float *bias, float *running_mean, float *running_var, int training,
                   double momentum, double eps, int act, float *y, float *save_mean,
                   float *save_invstd)
{
    if (!sizes_valid(n, c, s) || (n * c * s > 0 && (!x || !y)) ||
        (c > 0 && (!save_mean || !save_invstd)) || act < 0 || act >= FNN_ACT_COUNT)
        return FNN_EINVAL;
    if (training ? n == 1 && s == 1 : c > 0 && (!running_mean || !running_var))
        return FNN_EINVAL;
    bn_job J = {.n = n, .c = c, .s = s, .x = x, .weight = weight, .bias = bias,
                .running_mean = running_mean, .running_var = running_var,
                .training = training, .relu = act == FNN_ACT_RELU, .momentum = momentum,
                .eps = eps, .y = y,
                .mean = save_mean, .invstd = save_invstd};
    run_channels(&J, forward_part, training ? 4.0 : 2.0);
    return FNN_OK;
}

int fnn_batch_norm_backward(int64_t n, int64_t c, int64_t s, const float *grad_y,
                            const float *y_act, const float *x, const float *weight,
                            const float *save_mean,
                            const float *save_invstd, int training, float *grad_x,
                            float *grad_weight, float *grad_bias)
{
    if (!sizes_valid(n, c, s) || (n * c * s > 0 && (!x || !grad_y)) ||
        (c > 0 && (!save_mean || !save_invstd)))
        return FNN_EINVAL;
    bn_job J = {.n = n, .c = c, .s = s, .x = x, .gy = grad_y, .y_act = y_act,
                .weight = weight, .mean_in = save_mean, .invstd_in = save_invstd,
                .training = training, .gx = grad_x, .gw = grad_weight, .gb = grad_bias};
    run_channels(&J, backward_part, 4.0);
    return FNN_OK;
}

/* ---- layer normalization: x viewed as (rows, cols), each row normalised over its cols.
 * Threads split the rows for the forward and the input gradient, each row summed in the
 * ISA's double lanes (the forward, as batch norm's channels) or in four double lanes (the
 * backward), and the columns for grad_weight and grad_bias, each column summed over the
 * rows in row order: no result depends on the thread count. */

typedef struct {
    int64_t rows, cols;
    const float *x, *gy, *weight, *bias;
    double eps;
    float *y, *mean, *rstd;  /* forward outputs */
    const float *mean_in, *rstd_in;  /* backward: the forward's save_mean, save_rstd */
    float *gx, *gw, *gb;     /* backward outputs (each may be NULL) */
} ln_job;

static void ln_forward_part(int64_t lo, int64_t hi, void *ctx)
{
    const ln_job *J = ctx;
    int64_t c = J->cols;
    double m = (double)c;
    for (int64_t r = lo; r < hi; r++) {
        const float *restrict x = J->x + r * c;
        float *restrict y = J->y + r * c;
        float shift = finite_or_zero(x[0]);
        double s, q;
        fnn_active->ew->sums(c, x, shift, &s, &q);
        double var_sum = q - s * s / m;
        if (var_sum < 0.0)  /* rounding; NaN stays NaN */
            var_sum = 0.0;
        float mean = J->mean[r] = (float)(shift + s / m);
        float rstd = J->rstd[r] = (float)(1.0 / sqrt(var_sum / m + J->eps));
        const float *w = J->weight, *b = J->bias;
        for (int64_t j = 0; j < c; j++) {
            float v = (x[j] - mean) * rstd;
            y[j] = (w ? v * w[j] : v) + (b ? b[j] : 0.0f);
        }
    }
}

/* gx = ((g - mean(g)) - (x - mean) * k) * rstd, g = gy * weight, k = mean(g * (x - mean))
 * * rstd^2: batch norm's form over a row. */
static void ln_input_grad_part(int64_t lo, int64_t hi, void *ctx)
{
    const ln_job *J = ctx;
    int64_t c = J->cols;
    const float *w = J->weight;
    for (int64_t r = lo; r < hi; r++) {
        const float *restrict x = J->x + r * c, *restrict gy = J->gy + r * c;
        float *restrict gx = J->gx + r * c;
        float mean = J->mean_in[r], rstd = J->rstd_in[r];
        double ls[4] = {0.0, 0.0, 0.0, 0.0}, lq[4] = {0.0, 0.0, 0.0, 0.0};
        for (int64_t j = 0; j < c; j++) {  /* element j in lane j % 4: a fixed order */
            double g = w ? (double)gy[j] * w[j] : gy[j];
            ls[j & 3] += g;
            lq[j & 3] += g * ((double)x[j] - mean);
        }
        double m = (double)c, s = (ls[0] + ls[1]) + (ls[2] + ls[3]);
        double q = (lq[0] + lq[1]) + (lq[2] + lq[3]);
        float b = (float)(s / m), k = (float)(q / m * rstd * rstd);
        for (int64_t j = 0; j < c; j++) {
            float g = w ? gy[j] * w[j] : gy[j];
            gx[j] = ((g - b) - (x[j] - mean) * k) * rstd;
        }
    }
}

/* grad_weight = sum over rows of gy * xhat and grad_bias = sum of gy, for the columns
 * [lo, hi), CHUNK_MAX at a time, row by row. */
static void ln_param_grad_part(int64_t lo, int64_t hi, void *ctx)
{
    const ln_job *J = ctx;
    int64_t c = J->cols;
    double sw[CHUNK_MAX], sb[CHUNK_MAX];
    for (int64_t c0 = lo; c0 < hi; c0 += CHUNK_MAX) {
        int64_t w = FNN_MIN(CHUNK_MAX, hi - c0);
        for (int64_t j = 0; j < w; j++)
            sw[j] = sb[j] = 0.0;
        for (int64_t r = 0; r < J->rows; r++) {
            const float *restrict x = J->x + r * c + c0, *restrict gy = J->gy + r * c + c0;
            double mean = J->mean_in[r], rstd = J->rstd_in[r];
            for (int64_t j = 0; j < w; j++) {
                sb[j] += gy[j];
                sw[j] += gy[j] * (((double)x[j] - mean) * rstd);
            }
        }
        for (int64_t j = 0; j < w; j++) {
            if (J->gw)
                J->gw[c0 + j] = (float)sw[j];
            if (J->gb)
                J->gb[c0 + j] = (float)sb[j];
        }
    }
}

int fnn_layer_norm(int64_t rows, int64_t cols, const float *x, const float *weight,
                   const float *bias, double eps, float *y, float *save_mean, float *save_rstd)
{
    if (!sizes_valid(rows, cols, 1) || (rows * cols > 0 && (!x || !y)) ||
        (rows > 0 && (!save_mean || !save_rstd)))
        return FNN_EINVAL;
    if (cols == 0) {  /* the statistics of nothing; no pointer into x is formed */
        for (int64_t r = 0; r < rows; r++)
            save_mean[r] = save_rstd[r] = NAN;
        return FNN_OK;
    }
    ln_job J = {.rows = rows, .cols = cols, .x = x, .weight = weight, .bias = bias, .eps = eps,
                .y = y, .mean = save_mean, .rstd = save_rstd};
    fnn_parallel_range(rows, 4.0 * (double)rows * cols, 1, ln_forward_part, &J);
    return FNN_OK;
}

int fnn_layer_norm_backward(int64_t rows, int64_t cols, const float *grad_y, const float *x,
                            const float *weight, const float *save_mean, const float *save_rstd,
                            float *grad_x, float *grad_weight, float *grad_bias)
{
    if (!sizes_valid(rows, cols, 1) || (rows * cols > 0 && (!x || !grad_y)) ||
        (rows > 0 && (!save_mean || !save_rstd)))
        return FNN_EINVAL;
    if (cols == 0)
        return FNN_OK;
    ln_job J = {.rows = rows, .cols = cols, .x = x, .gy = grad_y, .weight = weight,
                .mean_in = save_mean, .rstd_in = save_rstd, .gx = grad_x,
                .gw = grad_weight, .gb = grad_bias};
    double work = 4.0 * (double)rows * cols;
    if (grad_x && rows > 0)
        fnn_parallel_range(rows, work, 1, ln_input_grad_part, &J);
    if (grad_weight || grad_bias)  /* rows == 0: zeros, sums of nothing */
        fnn_parallel_range(cols, work, COL_ALIGN, ln_param_grad_part, &J);
    return FNN_OK;
}
