/* pool.c: max, average and adaptive average pooling over NCHW planes, forward and
 * backward.
 *
 * Threads split the planes (N*C), so a backward scatter into overlapping windows
 * never has two threads writing one element, and each element's sum runs in window
 * order whatever the thread count. 2x2/stride-2 max pooling without padding (the
 * CNN's case) runs the ISA's vectorised kernel. */
#include <math.h>

#include "internal.h"

int64_t fnn_pool_output_size(int64_t n, int64_t k, int64_t stride, int64_t pad, int ceil_mode)
{
    /* floored, as torch's: a ceil_mode window may run past the padding even when the
     * kernel is longer than n + 2*pad, so the span can be negative (C truncates) */
    int64_t span = n + 2 * pad - k + (ceil_mode ? stride - 1 : 0);
    int64_t out = (span >= 0 ? span / stride : -((stride - 1 - span) / stride)) + 1;
    /* and no window starts in the padding */
    return ceil_mode && (out - 1) * stride >= n + pad ? out - 1 : out;
}

int fnn_pool_valid(const fnn_pool2d *p)
{
    if (p->planes < 0 || p->h < 1 || p->w < 1 || p->kh < 1 || p->kw < 1 || p->sh < 1 ||
        p->sw < 1 || p->ph < 0 || p->pw < 0 || p->ph > p->kh / 2 || p->pw > p->kw / 2)
        return 0;
    if (p->oh < 1 || p->ow < 1 ||
        p->oh != fnn_pool_output_size(p->h, p->kh, p->sh, p->ph, p->ceil_mode) ||
        p->ow != fnn_pool_output_size(p->w, p->kw, p->sw, p->pw, p->ceil_mode))
        return 0;
    /* Plane offsets and whole-tensor element counts must fit in int64_t. */
    return p->h <= INT64_MAX / p->w && p->oh <= INT64_MAX / p->ow &&
           (p->planes == 0 || (p->h * p->w <= INT64_MAX / p->planes &&
                               p->oh * p->ow <= INT64_MAX / p->planes));
}

int fnn_pool_is_2x2(const fnn_pool2d *p)
{
    /* (a ceil_mode pool of an odd size has a last, clipped window: not tiled) */
    return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0 &&
           2 * p->oh <= p->h && 2 * p->ow <= p->w && p->w < INT32_MAX;
}

/* The in-bounds part [*lo, *hi) of a window starting at `start` of size k in [0, n). */
static inline void clip(int64_t start, int64_t k, int64_t n, int64_t *lo, int64_t *hi)
{
    *lo = FNN_MAX(start, 0);
    *hi = FNN_MIN(start + k, n);
}

/* Plane offset of the maximum of window (oi, oj), and *at its position in the window:
 * the first in-bounds element until something larger (or NaN) appears, so an all -inf
 * window reports its first element. */
static inline int64_t window_argmax(const fnn_pool2d *p, const float *x, int64_t oi, int64_t oj,
                                    int64_t *at)
{
    int64_t top = oi * p->sh - p->ph, left = oj * p->sw - p->pw, i0, i1, j0, j1;
    clip(top, p->kh, p->h, &i0, &i1);
    clip(left, p->kw, p->w, &j0, &j1);
    int64_t bi = i0, bj = j0;
    float m = -INFINITY;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1; j++) {
            float v = x[i * p->w + j];
            if (v > m || v != v) {
                m = v;
                bi = i;
                bj = j;
            }
        }
    *at = (bi - top) * p->kw + bj - left;
    return bi * p->w + bj;
}

typedef struct {
    const fnn_pool2d *p;
    const float *x, *gy;
    const int64_t *idx_in;
    float *y, *gx;
    int64_t *idx;
    int status;  /* a thread's failure: a bad index or no workspace */
} pool_job;

/* Output rows [i0, i1) of one plane: maxima into y, their plane offsets into idx and
 * their window positions into pos (either may be NULL). */
static void max_rows(const fnn_pool2d *p, const float *x, int64_t i0, int64_t i1, float *y,
                     int64_t *idx, uint8_t *pos)
{
    if (fnn_pool_is_2x2(p)) {
        fnn_active->ew->max_pool_2x2(i1 - i0, p->ow, (int)p->w, x + 2 * i0 * p->w,
                                    2 * i0 * p->w, y, idx, pos);
        return;
    }
    for (int64_t oi = i0; oi < i1; oi++, y += p->ow, idx = idx ? idx + p->ow : NULL,
                 pos = pos ? pos + p->ow : NULL)
        for (int64_t oj = 0; oj < p->ow; oj++) {
            int64_t at, k = window_argmax(p, x, oi, oj, &at);
            y[oj] = x[k];
            if (idx)
                idx[oj] = k;
            if (pos)
                pos[oj] = (uint8_t)at;
        }
}

void fnn_max_pool_planes(const fnn_pool2d *p, int64_t planes, const float *x, float *y,
                         int64_t *idx, uint8_t *pos)
{
    int64_t in = p->h * p->w, out = p->oh * p->ow;
    for (int64_t q = 0; q < planes; q++)
        max_rows(p, x + q * in, 0, p->oh, y + q * out, idx ? idx + q * out : NULL,
                 pos ? pos + q * out : NULL);
}

/* gy[k], or 0 where the relu output y[k] is <= 0 (relu's backward: a NaN passes). */
static inline float passed(const float *gy, const float *y, int64_t k)
{
    return y != NULL && y[k] <= 0.0f ? 0.0f : gy[k];
}

/* gx[idx[k]] += gy[k] over one plane's outputs k in order. */
static int unpool_offsets(const fnn_pool2d *p, const float *gy, const float *y,
                          const int64_t *idx, float *gx)
{
    int64_t in = p->h * p->w, out = p->oh * p->ow;
    for (int64_t k = 0; k < out; k++) {
        if ((uint64_t)idx[k] >= (uint64_t)in)
            return FNN_EINVAL;
        gx[idx[k]] += passed(gy, y, k);
    }
    return FNN_OK;
}

/* The same through window positions: at is window (oi, oj)'s corner as a plane offset,
 * delta[k] position k's offset from it, row[k] and col[k] its row and column in the
 * window (no division per output). Without padding every window lies in the plane and
 * only k needs checking. */
typedef struct {
    int64_t delta[FNN_POOL_POSITIONS];
    uint8_t row[FNN_POOL_POSITIONS], col[FNN_POOL_POSITIONS];
} window_table;

static int unpool_positions(const fnn_pool2d *p, const window_table *t, const uint8_t *pos,
                            const float *gy, const float *y, float *gx)
{
    int64_t n = p->kh * p->kw;
    int inside = p->ph == 0 && p->pw == 0 && !p->ceil_mode;
    for (int64_t oi = 0; oi < p->oh;
         oi++, gy += p->ow, y = y ? y + p->ow : NULL, pos += p->ow) {
        int64_t top = oi * p->sh - p->ph, at = top * p->w - p->pw;
        for (int64_t oj = 0; oj < p->ow; oj++, at += p->sw) {
            int64_t k = pos[oj];
            if (k >= n || (!inside && ((uint64_t)(top + t->row[k]) >= (uint64_t)p->h ||
                                       (uint64_t)(oj * p->sw - p->pw + t->col[k]) >=
                                           (uint64_t)p->w)))
                return FNN_EINVAL;
            gx[at + t->delta[k]] += passed(gy, y, oj);
        }
    }
    return FNN_OK;
}

int fnn_max_unpool_planes(const fnn_pool2d *p, int64_t planes, const float *gy,
                          const float *y, const int64_t *idx, const uint8_t *pos, float *gx)
{
    int64_t in = p->h * p->w, out = p->oh * p->ow;
    window_table t;
    if (pos != NULL) {
        if (p->kw > FNN_POOL_POSITIONS / p->kh)
            return FNN_EINVAL;
        for (int64_t k = 0; k < p->kh * p->kw; k++) {
            t.row[k] = (uint8_t)(k / p->kw);
            t.col[k] = (uint8_t)(k % p->kw);
            t.delta[k] = t.row[k] * p->w + t.col[k];
        }
    }
    for (int64_t q = 0; q < planes; q++, gy += out, y = y ? y + out : NULL, gx += in) {
        int st;
        if (pos && fnn_pool_is_2x2(p)) {  /* windows tile the plane: written once, vectorised */
            st = fnn_active->ew->max_unpool_2x2(p->oh, p->ow, p->h, (int)p->w, gy, y,
                                                pos + q * out, gx) ? FNN_EINVAL : FNN_OK;
        } else {
            memset(gx, 0, (size_t)in * sizeof(float));
            st = pos ? unpool_positions(p, &t, pos + q * out, gy, y, gx)
                     : unpool_offsets(p, gy, y, idx + q * out, gx);
        }
        if (st != FNN_OK)
            return st;
    }
    return FNN_OK;
}

/* One channels-last image (C channels) through window positions: position k of every
 * window at a time, across the channels (a vector), adding 0 where another position
 * holds the maximum (gx is never -0, so the sums are the planes' bitwise). */
static int unpool_hwc(const fnn_pool2d *p, int64_t C, const uint8_t *pos, const float *gy,
                      const float *y, float *gx)
{
    int64_t n = p->kh * p->kw;
    if (fnn_pool_is_2x2(p))  /* windows tile the plane: written once, vectorised */
        return fnn_active->ew->max_unpool_2x2_hwc(p->oh, p->ow, p->h, p->w, C, gy, y, pos, gx)
                   ? FNN_EINVAL : FNN_OK;
    memset(gx, 0, (size_t)(p->h * p->w * C) * sizeof(float));
    for (int64_t oi = 0; oi < p->oh; oi++)
        for (int64_t oj = 0; oj < p->ow; oj++) {
            int64_t q = (oi * p->ow + oj) * C, top = oi * p->sh - p->ph, left = oj * p->sw - p->pw;
            const uint8_t *restrict wp = pos + q;
            const float *restrict g = gy + q, *restrict ya = y ? y + q : NULL;
            int bad = 0;
            for (int64_t c = 0; c < C; c++)
                bad |= wp[c] >= n;
            for (int64_t k = 0; k < n; k++) {
                int64_t r = top + k / p->kw, col = left + k % p->kw;
                if ((uint64_t)r >= (uint64_t)p->h || (uint64_t)col >= (uint64_t)p->w) {
                    for (int64_t c = 0; c < C; c++)  /* off the plane: no maximum there */
                        bad |= wp[c] == k;
                    continue;
                }
                float *restrict dst = gx + (r * p->w + col) * C;
                for (int64_t c = 0; c < C; c++)
                    dst[c] += wp[c] == k && !(ya && ya[c] <= 0.0f) ? g[c] : 0.0f;
            }
            if (bad)
                return FNN_EINVAL;
        }
    return FNN_OK;
}

typedef struct {
    const fnn_pool2d *p;
    int64_t planes;
    int hwc;
    const float *gy, *y;
    const uint8_t *pos;
    float *gx;
    int status;
} unpool_images_job;

static void unpool_image_task(void *ctx, int64_t img, int slot)
{
    unpool_images_job *J = ctx;
    int64_t in = J->planes * J->p->h * J->p->w, out = J->planes * J->p->oh * J->p->ow;
    const float *y = J->y ? J->y + img * out : NULL;
    int st = J->hwc ? unpool_hwc(J->p, J->planes, J->pos + img * out, J->gy + img * out, y,
                                 J->gx + img * in)
                    : fnn_max_unpool_planes(J->p, J->planes, J->gy + img * out, y, NULL,
                                            J->pos + img * out, J->gx + img * in);
    (void)slot;
    if (st != FNN_OK)
        fnn_store_status(&J->status, st);
}

int fnn_max_unpool_images(const fnn_pool2d *p, int64_t n, int64_t planes, int hwc,
                          const float *gy, const float *y, const uint8_t *pos, float *gx)
{
    unpool_images_job J = {.p = p, .planes = planes, .hwc = hwc, .gy = gy, .y = y, .pos = pos,
                           .gx = gx, .status = FNN_OK};
    fnn_run(n, fnn_threads_for(FNN_COST_MEM * (double)n * planes * p->h * p->w),
            unpool_image_task, &J);
    return J.status;
}

static void max_forward_planes(int64_t lo, int64_t hi, void *ctx)
{
    pool_job *J = ctx;
    int64_t in = J->p->h * J->p->w, out = J->p->oh * J->p->ow;
    fnn_max_pool_planes(J->p, hi - lo, J->x + lo * in, J->y + lo * out,
                        J->idx ? J->idx + lo * out : NULL, NULL);
}

/* gx from gy through the saved indices, or one output row at a time through the
 * argmax recomputed into this thread's workspace. */
static void max_backward_planes(int64_t lo, int64_t hi, void *ctx)
{
    pool_job *J = ctx;
    const fnn_pool2d *p = J->p;
    int64_t in = p->h * p->w, out = p->oh * p->ow;
    if (J->idx_in) {
        int st = fnn_max_unpool_planes(p, hi - lo, J->gy + lo * out, NULL,
                                       J->idx_in + lo * out, NULL, J->gx + lo * in);
        if (st != FNN_OK)
            fnn_store_status(&J->status, st);
        return;
    }
    int64_t *idx_row = fnn_workspace(FNN_WS_OP, (size_t)p->ow * (sizeof(int64_t) + sizeof(float)));
    if (!idx_row) {
        fnn_store_status(&J->status, FNN_ENOMEM);
        return;
    }
    float *y_row = (float *)(idx_row + p->ow);
    for (int64_t q = lo; q < hi; q++) {
        const float *gy = J->gy + q * out;
        float *gx = J->gx + q * in;
        memset(gx, 0, (size_t)in * sizeof(float));
        for (int64_t oi = 0; oi < p->oh; oi++) {
            max_rows(p, J->x + q * in, oi, oi + 1, y_row, idx_row, NULL);
            for (int64_t oj = 0; oj < p->ow; oj++)
                gx[idx_row[oj]] += gy[oi * p->ow + oj];
        }
    }
}

/* torch's adaptive windows: output i covers [floor(i*n/out), ceil((i+1)*n/out)). */
static inline void adaptive_window(int64_t i, int64_t n, int64_t out, int64_t *lo, int64_t *hi)
{
    *lo = i * n / out;
    *hi = ((i + 1) * n + out - 1) / out;
}

/* The window of output (oi, oj), rows [*i0, *i1) and columns [*j0, *j1) of the plane,
 * and the divisor of its average: for a fixed window its part inside the padded plane
 * (kh*kw but where a ceil_mode window runs past the padding), or its input elements
 * alone with exclude_pad; its own size for an adaptive one (kh == 0). */
static inline float avg_window(const fnn_pool2d *p, int64_t oi, int64_t oj, int64_t *i0,
                               int64_t *i1, int64_t *j0, int64_t *j1)
{
    if (p->kh == 0) {
        adaptive_window(oi, p->h, p->oh, i0, i1);
        adaptive_window(oj, p->w, p->ow, j0, j1);
        return (float)((*i1 - *i0) * (*j1 - *j0));
    }
    int64_t top = oi * p->sh - p->ph, left = oj * p->sw - p->pw;
    clip(top, p->kh, p->h, i0, i1);
    clip(left, p->kw, p->w, j0, j1);
    if (p->exclude_pad)
        return (float)((*i1 - *i0) * (*j1 - *j0));
    return (float)((FNN_MIN(top + p->kh, p->h + p->ph) - top) *
                   (FNN_MIN(left + p->kw, p->w + p->pw) - left));
}

/* Output columns [*lo, *hi) of a fixed window (kw > 0) whose windows lie wholly inside
 * the plane's columns: there the window of oj starts at column oj*sw - pw, unclipped. */
static void inner_columns(const fnn_pool2d *p, int64_t *lo, int64_t *hi)
{
    *lo = FNN_MIN((p->pw + p->sw - 1) / p->sw, p->ow);
    *hi = FNN_MAX(*lo, p->w + p->pw >= p->kw ? FNN_MIN((p->w + p->pw - p->kw) / p->sw + 1, p->ow)
                                             : *lo);
}

/* Outputs [c0, c1) of row oi, whose windows (rows [i0, i1)) lie inside the plane's
 * columns: each window summed in float in row-major order, divided once. 2x2 windows of
 * stride 2 along the row (the common average pool) sum each window in a register with
 * constant loops the compiler unrolls and vectorises: the general loop, innermost over
 * the outputs (the same sums), took 2.5-3x the time on LeNet-5's pools. */
static void avg_inner_row(const fnn_pool2d *p, const float *restrict x, int64_t i0,
                          int64_t i1, int64_t c0, int64_t c1, float div, float *restrict yr)
{
    if (i1 - i0 == 2 && p->kw == 2 && p->sw == 2) {
        const float *r0 = x + i0 * p->w - p->pw, *r1 = r0 + p->w;
        for (int64_t oj = c0; oj < c1; oj++)
            yr[oj] = (((0.0f + r0[2 * oj]) + r0[2 * oj + 1]) + r1[2 * oj] + r1[2 * oj + 1]) /
                     div;
        return;
    }
    for (int64_t oj = c0; oj < c1; oj++)
        yr[oj] = 0.0f;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = 0; j < p->kw; j++) {
            int64_t at = i * p->w + j - p->pw;  /* + oj*sw: inside the row */
            for (int64_t oj = c0; oj < c1; oj++)
                yr[oj] += x[at + oj * p->sw];
        }
    for (int64_t oj = c0; oj < c1; oj++)
        yr[oj] /= div;
}

/* gx over the windows of outputs [c0, c1) of a row (rows [i0, i1)) that lie inside the
 * plane's columns and do not overlap along the row (sw >= kw): each gy / div added once
 * per window element, as avg_inner_row lays them out. */
static void avg_inner_row_backward(const fnn_pool2d *p, const float *restrict gr, int64_t i0,
                                   int64_t i1, int64_t c0, int64_t c1, float div,
                                   float *restrict gx)
{
    if (i1 - i0 == 2 && p->kw == 2 && p->sw == 2) {
        float *g0 = gx + i0 * p->w - p->pw, *g1 = g0 + p->w;
        for (int64_t oj = c0; oj < c1; oj++) {
            float g = gr[oj] / div;
            g0[2 * oj] += g;
            g0[2 * oj + 1] += g;
            g1[2 * oj] += g;
            g1[2 * oj + 1] += g;
        }
        return;
    }
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = 0; j < p->kw; j++) {
            int64_t at = i * p->w + j - p->pw;
            for (int64_t oj = c0; oj < c1; oj++)
                gx[at + oj * p->sw] += gr[oj] / div;
        }
}

/* Each window summed in float in row-major order, divided once; adaptive pooling to
 * 1x1 (global average pooling) sums its plane in the ISA's double lanes instead. The
 * inner columns of a fixed window run a row of outputs at a time (avg_inner_row). */
static void avg_forward_planes(int64_t lo, int64_t hi, void *ctx)
{
    pool_job *J = ctx;
    const fnn_pool2d *p = J->p;
    int64_t in = p->h * p->w, out = p->oh * p->ow, c0 = 0, c1 = 0;
    if (p->kh > 0)
        inner_columns(p, &c0, &c1);
    for (int64_t q = lo; q < hi; q++) {
        const float *x = J->x + q * in;
        float *y = J->y + q * out;
        if (p->kh == 0 && out == 1) {
            double s, unused;
            fnn_active->ew->sums(in, x, 0.0f, &s, &unused);
            y[0] = (float)(s / (double)in);
            continue;
        }
        for (int64_t oi = 0; oi < p->oh; oi++) {
            float *yr = y + oi * p->ow;
            int64_t i0, i1, j0, j1;  /* an inner column's divisor: column 0's may differ */
            float div = avg_window(p, oi, c0, &i0, &i1, &j0, &j1);
            avg_inner_row(p, x, i0, i1, c0, c1, div, yr);
            for (int64_t oj = 0; oj < p->ow; oj++) {
                if (oj == c0 && (oj = c1) == p->ow)  /* past the inner columns */
                    break;
                float s = 0.0f;
                div = avg_window(p, oi, oj, &i0, &i1, &j0, &j1);
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t j = j0; j < j1; j++)
                        s += x[i * p->w + j];
                yr[oj] = s / div;
            }
        }
    }
}

/* gx: each gy / (its window's divisor) added over the window, outputs in row-major order.
 * Windows that do not overlap along the row (sw >= kw) add their inner columns a row of
 * outputs at a time, as the forward: every gx element then gets one term per output row,
 * in the same order. */
static void avg_backward_planes(int64_t lo, int64_t hi, void *ctx)
{
    pool_job *J = ctx;
    const fnn_pool2d *p = J->p;
    int64_t in = p->h * p->w, out = p->oh * p->ow, c0 = 0, c1 = 0;
    if (p->kh > 0 && p->sw >= p->kw)
        inner_columns(p, &c0, &c1);
    for (int64_t q = lo; q < hi; q++) {
        const float *gy = J->gy + q * out;
        float *gx = J->gx + q * in;
        memset(gx, 0, (size_t)in * sizeof(float));
        for (int64_t oi = 0; oi < p->oh; oi++) {
            const float *gr = gy + oi * p->ow;
            int64_t i0, i1, j0, j1;  /* as in the forward */
            float div = avg_window(p, oi, c0, &i0, &i1, &j0, &j1);
            avg_inner_row_backward(p, gr, i0, i1, c0, c1, div, gx);
            for (int64_t oj = 0; oj < p->ow; oj++) {
                if (oj == c0 && (oj = c1) == p->ow)
                    break;
                float g = gr[oj] / avg_window(p, oi, oj, &i0, &i1, &j0, &j1);
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t j = j0; j < j1; j++)
                        gx[i * p->w + j] += g;
            }
        }
    }
}

/* Run f over the planes; `per_plane` is the element work of one plane. */
static int run_planes(const fnn_pool2d *p, pool_job *J, fnn_range_fn f, double per_plane)
{
    if (!fnn_pool_valid(p))
        return FNN_EINVAL;
    J->p = p;
    J->status = FNN_OK;
    fnn_parallel_range(p->planes, FNN_COST_MEM * per_plane * (double)p->planes, 1, f, J);
    return J->status;
}

static double window_work(const fnn_pool2d *p) { return (double)p->oh * p->ow * p->kh * p->kw; }

int fnn_max_pool2d(const fnn_pool2d *p, const float *x, float *y, int64_t *idx)
{
    if (!x || !y)
        return FNN_EINVAL;
    pool_job J = {.x = x, .y = y, .idx = idx};
    return run_planes(p, &J, max_forward_planes, window_work(p));
}

int fnn_max_pool2d_backward(const fnn_pool2d *p, const float *gy, const int64_t *idx,
                            const float *x, float *gx)
{
    if (!gy || !gx || (!idx && !x))
        return FNN_EINVAL;
    pool_job J = {.gy = gy, .idx_in = idx, .x = x, .gx = gx};
    return run_planes(p, &J, max_backward_planes,
                      (double)p->h * p->w + (idx ? (double)p->oh * p->ow : window_work(p)));
}

int fnn_avg_pool2d(const fnn_pool2d *p, const float *x, float *y)
{
    if (!x || !y)
        return FNN_EINVAL;
    pool_job J = {.x = x, .y = y};
    return run_planes(p, &J, avg_forward_planes, window_work(p));
}

int fnn_avg_pool2d_backward(const fnn_pool2d *p, const float *gy, float *gx)
{
    if (!gy || !gx)
        return FNN_EINVAL;
    pool_job J = {.gy = gy, .gx = gx};
    return run_planes(p, &J, avg_backward_planes, (double)p->h * p->w + window_work(p));
}

/* ---- adaptive average pooling: avg_*_planes on an fnn_pool2d with kh = kw = 0 ---- */

/* Sizes >= 1 (planes >= 0) whose products, the window bounds' i*h included, fit in
 * int64_t; then f over the planes. */
static int run_adaptive(int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                        pool_job *J, fnn_range_fn f)
{
    if (planes < 0 || h < 1 || w < 1 || oh < 1 || ow < 1 || h > INT64_MAX / w ||
        oh > INT64_MAX / ow || oh > INT64_MAX / h || ow > INT64_MAX / w ||
        (planes > 0 && (h * w > INT64_MAX / planes || oh * ow > INT64_MAX / planes)))
        return FNN_EINVAL;
    fnn_pool2d p = {.planes = planes, .h = h, .w = w, .oh = oh, .ow = ow};
    J->p = &p;
    /* Work: every input read (or written) once, plus the overlap of the windows. */
    double per_plane = (double)h * w + (double)oh * ow * ((h + oh - 1) / oh + 1) *
                                           ((w + ow - 1) / ow + 1);
    fnn_parallel_range(planes, per_plane * (double)planes, 1, f, J);
    return FNN_OK;
}

int fnn_adaptive_avg_pool2d(int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                            const float *x, float *y)
{
    if (planes > 0 && (!x || !y))
        return FNN_EINVAL;
    pool_job J = {.x = x, .y = y};
    return run_adaptive(planes, h, w, oh, ow, &J, avg_forward_planes);
}

int fnn_adaptive_avg_pool2d_backward(int64_t planes, int64_t h, int64_t w, int64_t oh,
                                     int64_t ow, const float *gy, float *gx)
{
    if (planes > 0 && (!gy || !gx))
        return FNN_EINVAL;
    pool_job J = {.gy = gy, .gx = gx};
    return run_adaptive(planes, h, w, oh, ow, &J, avg_backward_planes);
}
