/* winograd.c: 3x3, stride-1 convolution by Winograd's minimal filtering F(m x m, 3 x 3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), m = 2 or 4.
 *
 * An output tile of m x m pixels comes from an a x a input tile (a = m + 2):
 *     Y = A^T [ sum_c (G g_oc G^T) . (B^T d_c B) ] A          (. elementwise)
 * With U[xi][o][c] the filters' and V[xi][c][t] the input tiles' a*a = P transformed
 * values, position xi of every output tile is one GEMM  M_xi = U_xi V_xi  of
 * [c_out x c_in] x [c_in x tiles]: P GEMMs replace the direct method's 9 multiply-adds per
 * output pixel and input channel by P / m^2 (16/4 = 4 for F(2x2), 36/16 = 2.25 for F(4x4)).
 *
 * Tiles are numbered over (image, tile row, tile column); a block of whole tile rows,
 * sized from the shape alone (not the thread count), goes to whichever thread is free:
 * the thread transforms the block's input tiles straight into the GEMM's packed B panels,
 * runs the P GEMMs on the active ISA's tile against the filters packed once, and
 * transforms the results into the output, cropping the tiles that pass its edge (the
 * input past the edge reads as zeros). Every output element is summed over c_in inside
 * one GEMM, in increasing order: the bits do not depend on the thread count.
 *
 * The input gradient is the same convolution of the output gradient with the flipped,
 * transposed filters, its window starting at 2 - padding (which may be negative: a crop).
 * With a max pool, the whole convolution output (or the unpooled gradient) is kept and
 * pooled (unpooled) image by image after (before) the blocks. */
#include "internal.h"

/* Tiles per vector of the transforms (the loops over them vectorise). */
#define WL 8
/* Bytes of one block's transformed tiles (input and GEMM output): about an L2. */
#define WINO_BLOCK_BYTES ((int64_t)512 << 10)

typedef struct {
    int m, a, P;           /* output tile m x m, input tile a x a, P = a*a positions */
    int64_t n, ci, h, w;   /* the input planes */
    int64_t co, oh, ow;    /* the output planes */
    int64_t top, left;     /* input pixel under tap (0, 0) of output pixel (0, 0) */
    int64_t th, tw;        /* tiles per column and per row of an image */
    int64_t rows, nblocks; /* tile rows per block (n * th in all), blocks */
    int64_t tb, tbp;       /* tiles per block (at most), padded to the GEMM tile's NR */
    int64_t lw;            /* width of the line buffers: tw*m + 2 + WL*m */
} wino_geom;

/* ---- the transforms, on WL tiles at once: element e of point k at p[k*ps + e] ---- */

/* B^T d: the input transform along one axis. */
static inline void wino_bt(int m, const float *restrict d, int64_t ds, float *restrict o,
                           int64_t os)
{
    if (m == 2) {
        for (int e = 0; e < WL; e++) {
            float d0 = d[e], d1 = d[ds + e], d2 = d[2 * ds + e], d3 = d[3 * ds + e];
            o[e] = d0 - d2;
            o[os + e] = d1 + d2;
            o[2 * os + e] = d2 - d1;
            o[3 * os + e] = d1 - d3;
        }
        return;
    }
    for (int e = 0; e < WL; e++) {
        float d0 = d[e], d1 = d[ds + e], d2 = d[2 * ds + e], d3 = d[3 * ds + e];
        float d4 = d[4 * ds + e], d5 = d[5 * ds + e];
        float t1 = d4 - 4.0f * d2, t2 = d3 - 4.0f * d1;   /* points +-1 */
        float t3 = d4 - d2, t4 = 2.0f * (d3 - d1);        /* points +-2 */
        o[e] = 4.0f * d0 - 5.0f * d2 + d4;
        o[os + e] = t1 + t2;
        o[2 * os + e] = t1 - t2;
        o[3 * os + e] = t3 + t4;
        o[4 * os + e] = t3 - t4;
        o[5 * os + e] = 4.0f * d1 - 5.0f * d3 + d5;
    }
}

/* A^T x: the output transform along one axis (a points to m). */
static inline void wino_at(int m, const float *restrict x, int64_t xs, float *restrict o,
                           int64_t os)
{
    if (m == 2) {
        for (int e = 0; e < WL; e++) {
            float x1 = x[xs + e], x2 = x[2 * xs + e];
            o[e] = x[e] + x1 + x2;
            o[os + e] = x1 - x2 - x[3 * xs + e];
        }
        return;
    }
    for (int e = 0; e < WL; e++) {
        float x1 = x[xs + e], x2 = x[2 * xs + e], x3 = x[3 * xs + e], x4 = x[4 * xs + e];
        float s1 = x1 + x2, d1 = x1 - x2, s2 = x3 + x4, d2 = x3 - x4;
        o[e] = x[e] + s1 + s2;
        o[os + e] = d1 + 2.0f * d2;
        o[2 * os + e] = s1 + 4.0f * s2;
        o[3 * os + e] = d1 + 8.0f * d2 + x[5 * xs + e];
    }
}

/* G g: the filter transform along one axis (3 taps to a points), in double. */
static void wino_g(int m, const double *g, int gs, double *o, int os)
{
    if (m == 2) {
        o[0] = g[0];
        o[os] = (g[0] + g[gs] + g[2 * gs]) / 2;
        o[2 * os] = (g[0] - g[gs] + g[2 * gs]) / 2;
        o[3 * os] = g[2 * gs];
        return;
    }
    o[0] = g[0] / 4;
    o[os] = -(g[0] + g[gs] + g[2 * gs]) / 6;
    o[2 * os] = -(g[0] - g[gs] + g[2 * gs]) / 6;
    o[3 * os] = g[0] / 24 + g[gs] / 12 + g[2 * gs] / 6;
    o[4 * os] = g[0] / 24 - g[gs] / 12 + g[2 * gs] / 6;
    o[5 * os] = g[2 * gs];
}

/* ---- plan ---- */

static void geom_init(wino_geom *g, int m, int64_t n, int64_t ci, int64_t h, int64_t w,
                      int64_t co, int64_t oh, int64_t ow, int64_t top, int64_t left)
{
    const fnn_gemm_kernels *gk = fnn_active->gemm;
    *g = (wino_geom){.m = m, .a = m + 2, .P = (m + 2) * (m + 2), .n = n, .ci = ci, .h = h,
                     .w = w, .co = co, .oh = oh, .ow = ow, .top = top, .left = left};
    g->th = (oh + m - 1) / m;
    g->tw = (ow + m - 1) / m;
    int64_t want = WINO_BLOCK_BYTES / ((int64_t)sizeof(float) * g->P * (ci + co));
    g->rows = FNN_MIN(FNN_MAX(1, want / g->tw), n * g->th);
    g->nblocks = (n * g->th + g->rows - 1) / g->rows;
    g->tb = g->rows * g->tw;
    g->tbp = fnn_round_up(g->tb, gk->nr);
    g->lw = g->tw * m + 2 + WL * m;
}

/* Floats of one thread's buffers: V (packed B panels), M, and the line buffers. */
static size_t thread_elems(const wino_geom *g)
{
    return (size_t)(fnn_round_up(g->P * g->ci * g->tbp, 16) + fnn_round_up(g->P * g->co * g->tb, 16) +
                    fnn_round_up(g->a * g->lw, 16) + fnn_round_up(g->m * g->lw, 16));
}

static size_t packed_u_elems(const wino_geom *g)
{
    return (size_t)fnn_round_up(g->P * fnn_round_up(g->co, fnn_active->gemm->mr) * g->ci, 16);
}

/* U_xi = G g G^T for every (o, c), straight into the GEMM's packed A panels (MR rows of
 * o, element [c][r]; rows past co zero). Filter (o, c) tap (i, j) is w[o*so + c*sc + i*si
 * + j*sj]: the weight itself, or flipped and transposed for the input gradient. */
static void transform_filters(const wino_geom *g, const float *w, int64_t so, int64_t sc,
                              int64_t si, int64_t sj, float *up)
{
    int mr = fnn_active->gemm->mr, a = g->a;
    int64_t cop = fnn_round_up(g->co, mr), plane = cop * g->ci;
    for (int64_t o = 0; o < cop; o++)
        for (int64_t c = 0; c < g->ci; c++) {
            double tap[9], t[6 * 3], u[36];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    tap[i * 3 + j] = o < g->co ? w[o * so + c * sc + i * si + j * sj] : 0.0;
            for (int j = 0; j < 3; j++)  /* G g: columns */
                wino_g(g->m, tap + j, 3, t + j, 3);
            for (int r = 0; r < a; r++)  /* (G g) G^T: rows */
                wino_g(g->m, t + r * 3, 1, u + r * a, 1);
            float *dst = up + (o / mr) * mr * g->ci + c * mr + o % mr;
            for (int xi = 0; xi < g->P; xi++)
                dst[xi * plane] = (float)u[xi];
        }
}

/* ---- one block ---- */

/* Input tiles of the block starting at tile row r0 into V: position xi, channel c,
 * tile q at v[xi*vplane + (q/NR)*NR*ci + c*NR + q%NR] (the GEMM's packed B). */
static void transform_input(const wino_geom *g, const float *x, int64_t r0, int64_t r1,
                            float *v, float *line)
{
    int m = g->m, a = g->a, nr = fnn_active->gemm->nr;
    int64_t vplane = g->tbp * g->ci;
    float d[36 * WL], t[36 * WL], o[36 * WL];
    for (int64_t c = 0; c < g->ci; c++)
        for (int64_t r = r0; r < r1; r++) {
            int64_t img = r / g->th, y0 = (r % g->th) * m + g->top;
            const float *plane = x + (img * g->ci + c) * g->h * g->w;
            /* the a input rows under this tile row, zero outside the image */
            for (int i = 0; i < a; i++) {
                float *dst = line + i * g->lw;
                int64_t y = y0 + i;
                for (int64_t xx = 0; xx < g->lw; xx++) {
                    int64_t col = xx + g->left;
                    dst[xx] = y >= 0 && y < g->h && col >= 0 && col < g->w ? plane[y * g->w + col]
                                                                           : 0.0f;
                }
            }
            for (int64_t tx0 = 0; tx0 < g->tw; tx0 += WL) {
                for (int i = 0; i < a; i++)
                    for (int j = 0; j < a; j++)
                        for (int e = 0; e < WL; e++)
                            d[(i * a + j) * WL + e] = line[i * g->lw + (tx0 + e) * m + j];
                for (int i = 0; i < a; i++)  /* rows: d B */
                    wino_bt(m, d + i * a * WL, WL, t + i * a * WL, WL);
                for (int j = 0; j < a; j++)  /* columns: B^T (d B) */
                    wino_bt(m, t + j * WL, a * WL, o + j * WL, a * WL);
                int64_t q0 = (r - r0) * g->tw + tx0;
                for (int e = 0; e < WL && tx0 + e < g->tw; e++) {
                    int64_t q = q0 + e;
                    float *dst = v + (q / nr) * nr * g->ci + c * nr + q % nr;
                    for (int xi = 0; xi < g->P; xi++)
                        dst[xi * vplane] = o[xi * WL + e];
                }
            }
        }
}

/* Output tiles from M (position xi, channel o, tile q at mm[(xi*co + o)*tb + q]) into y,
 * plus the bias, cropped to the output. */
static void transform_output(const wino_geom *g, const float *mm, int64_t r0, int64_t r1,
                             const float *bias, float *y, float *line)
{
    int m = g->m, a = g->a;
    float d[36 * WL], t[24 * WL], o[16 * WL];
    for (int64_t oc = 0; oc < g->co; oc++) {
        float b = bias ? bias[oc] : 0.0f;
        for (int64_t r = r0; r < r1; r++) {
            int64_t img = r / g->th, y0 = (r % g->th) * m;
            const float *src = mm + oc * g->tb + (r - r0) * g->tw;
            for (int64_t tx0 = 0; tx0 < g->tw; tx0 += WL) {
                int ne = (int)FNN_MIN(WL, g->tw - tx0);
                for (int xi = 0; xi < g->P; xi++)
                    for (int e = 0; e < WL; e++)
                        d[xi * WL + e] = e < ne ? src[xi * g->co * g->tb + tx0 + e] : 0.0f;
                for (int i = 0; i < a; i++)  /* rows: x A */
                    wino_at(m, d + i * a * WL, WL, t + i * m * WL, WL);
                for (int j = 0; j < m; j++)  /* columns: A^T (x A) */
                    wino_at(m, t + j * WL, m * WL, o + j * WL, m * WL);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < m; j++)
                        for (int e = 0; e < ne; e++)
                            line[i * g->lw + (tx0 + e) * m + j] = o[(i * m + j) * WL + e] + b;
            }
            float *plane = y + (img * g->co + oc) * g->oh * g->ow;
            for (int i = 0; i < m && y0 + i < g->oh; i++)
                memcpy(plane + (y0 + i) * g->ow, line + i * g->lw, (size_t)g->ow * sizeof(float));
        }
    }
}

static void run_block(const wino_geom *g, int64_t blk, const float *x, const float *up,
                      const float *bias, float *y, float *buf)
{
    const fnn_gemm_kernels *gk = fnn_active->gemm;
    float *v = buf, *mm = v + fnn_round_up(g->P * g->ci * g->tbp, 16);
    float *in_line = mm + fnn_round_up(g->P * g->co * g->tb, 16);
    float *out_line = in_line + fnn_round_up(g->a * g->lw, 16);
    int64_t r0 = blk * g->rows, r1 = FNN_MIN(r0 + g->rows, g->n * g->th);
    int64_t nt = (r1 - r0) * g->tw;
    int64_t cop = fnn_round_up(g->co, gk->mr);
    transform_input(g, x, r0, r1, v, in_line);
    for (int xi = 0; xi < g->P; xi++)  /* M_xi = U_xi V_xi */
        gk->macro(g->co, nt, g->ci, 1.0f, up + xi * cop * g->ci, 1, gk->mr, gk->mr * g->ci,
                  v + xi * g->tbp * g->ci, 0.0f, mm + xi * g->co * g->tb, g->tb);
    transform_output(g, mm, r0, r1, bias, y, out_line);
}

/* ---- entry points (conv.c has validated the shape and the pointers) ---- */

/* The convolution of g's input x with the filters w + base (strides as in
 * transform_filters) into y. With a pool and gy == NULL, the whole output goes to a
 * buffer and py / pidx get its max pool; with gy set, x is a buffer that gets gy
 * unpooled through idx first. */
static int wino_run(const wino_geom *g, const float *x, const float *w, int64_t so, int64_t sc,
                    int64_t si, int64_t sj, int64_t base, const float *bias, float *y,
                    const fnn_pool2d *pool, const float *gy, const int64_t *idx, float *py,
                    int64_t *pidx)
{
    int64_t in_img = g->ci * g->h * g->w, out_img = g->co * g->oh * g->ow;
    int64_t pooled = pool ? (gy ? g->ci : g->co) * pool->oh * pool->ow : 0;
    size_t up_elems = packed_u_elems(g), te = thread_elems(g);
    size_t whole = pool ? (size_t)fnn_round_up(g->n * (gy ? in_img : out_img), 16) : 0;
    double work = (double)g->n * g->co * g->oh * g->ow * g->ci * g->P / (g->m * g->m);
    int nth = (int)FNN_MIN(fnn_threads_for(work), g->nblocks);
    float *ws = fnn_workspace(FNN_WS_OP, (up_elems + whole + te * nth + 16) * sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    float *unpooled = pool && gy ? ws + up_elems : NULL;
    if (pool != NULL && gy == NULL)
        y = ws + up_elems;
    transform_filters(g, w + base, so, sc, si, sj, ws);
    int err = FNN_OK;
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        float *buf = ws + up_elems + whole + te * omp_get_thread_num();
        if (unpooled != NULL) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t img = 0; img < g->n; img++) {
                int st = fnn_max_unpool_planes(pool, g->ci, gy + img * pooled, idx + img * pooled,
                                               unpooled + img * in_img);
                if (st != FNN_OK) {
#pragma omp atomic write
                    err = st;
                }
            }
        }
        int ok;
#pragma omp atomic read
        ok = err;
        ok = ok == FNN_OK;
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < g->nblocks; blk++)
            if (ok)
                run_block(g, blk, unpooled ? unpooled : x, ws, bias, y, buf);
        if (pool != NULL && gy == NULL) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t img = 0; img < g->n; img++)
                fnn_max_pool_planes(pool, g->co, y + img * out_img, py + img * pooled,
                                    pidx ? pidx + img * pooled : NULL);
        }
    }
    return err;
}

int fnn_winograd_forward(const fnn_conv2d_shape *s, int m, const fnn_pool2d *pool,
                         const float *x, const float *w, const float *bias, float *y,
                         int64_t *idx)
{
    wino_geom g;
    geom_init(&g, m, s->n, s->c_in, s->h, s->w, s->c_out, s->h + 2 * s->ph - 2,
              s->w + 2 * s->pw - 2, -s->ph, -s->pw);
    return pool == NULL
               ? wino_run(&g, x, w, s->c_in * 9, 9, 3, 1, 0, bias, y, NULL, NULL, NULL, NULL, NULL)
               : wino_run(&g, x, w, s->c_in * 9, 9, 3, 1, 0, bias, NULL, pool, NULL, NULL, y, idx);
}

int fnn_winograd_grad_input(const fnn_conv2d_shape *s, int m, const fnn_pool2d *pool,
                            const float *grad_y, const int64_t *idx, const float *w,
                            float *grad_x)
{
    /* gx[c] = sum_o gy[o] (*) flip(w[o][c]): filter (c, o) tap (i, j) is
     * w[o][c][2-i][2-j]; its window starts at row ph - 2 of gy */
    wino_geom g;
    geom_init(&g, m, s->n, s->c_out, s->h + 2 * s->ph - 2, s->w + 2 * s->pw - 2, s->c_in,
              s->h, s->w, s->ph - 2, s->pw - 2);
    return wino_run(&g, pool ? NULL : grad_y, w, 9, s->c_in * 9, -3, -1, 8, NULL, grad_x, pool,
                    pool ? grad_y : NULL, idx, NULL, NULL);
}

/* The algorithm "auto" picks: Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions with
 * enough channels and pixels to amortise the transforms (crossovers measured on a 2-core
 * Zen 3, see benchmarks/test_bench_winograd.py), else the direct method. */
static int auto_rule(const fnn_conv2d_shape *s, int64_t oh, int64_t ow)
{
    return s->c_in >= 16 && s->c_out >= 16 && oh >= 8 && ow >= 8 ? FNN_CONV_WINOGRAD
                                                                 : FNN_CONV_DIRECT;
}

int fnn_conv2d_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen)
{
    int64_t oh, ow;
    if (s == NULL || chosen == NULL || requested < 0 || requested >= FNN_CONV_COUNT ||
        fnn_conv2d_output_size(s, &oh, &ow) != FNN_OK)
        return FNN_EINVAL;
    int fits = s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->dh == 1 && s->dw == 1;
    if (requested == FNN_CONV_WINOGRAD || requested == FNN_CONV_WINOGRAD4) {
        if (!fits)
            return FNN_EINVAL;
        /* no channels: nothing to compute, and the direct method says so */
        *chosen = s->c_in > 0 && s->c_out > 0 && s->n > 0 ? requested : FNN_CONV_DIRECT;
        return FNN_OK;
    }
    *chosen = requested == FNN_CONV_AUTO && fits && s->n > 0 ? auto_rule(s, oh, ow)
                                                             : FNN_CONV_DIRECT;
    return FNN_OK;
}
