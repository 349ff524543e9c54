/* winograd.c: 3x3, stride-1 convolution by Winograd's minimal filtering F(m x m, 3 x 3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), m = 2 or 4.
 *
 * An output tile of m x m pixels comes from an a x a input tile (a = m + 2):
 *     Y = A^T [ sum_c (G g_oc G^T) . (B^T d_c B) ] A          (. elementwise)
 * With U[xi][o][c] the filters' and V[xi][c][t] the input tiles' a*a = P transformed
 * values, position xi of every output tile is one GEMM, here transposed (tiles by
 * channels, channels innermost as in NNPACK and ncnn):  M_xi^T = V_xi^T U_xi^T  of
 * [tiles x c_in] x [c_in x c_out]. P GEMMs replace the direct method's 9 multiply-adds
 * per output pixel and input channel by P / m^2 (16/4 = 4 for F(2x2), 36/16 = 2.25 for
 * F(4x4)).
 *
 * Tiles are numbered over (image, tile row, tile column); a block of whole tile rows,
 * sized from the shape and the L2 cache (not the thread count), goes to whichever thread
 * is free: the thread copies the input rows under each tile row channels-last (a plain
 * copy when the input is NHWC already: fnn_conv2d_shape's x_hwc), transforms its
 * tiles (vectors across channels, simd/winograd_kernel.h), runs the P GEMMs on the
 * active ISA's tile, V^T read in place against U^T packed once, and transforms the
 * results into the output, cropping the tiles that pass its edge (the input past the
 * edge reads as zeros). Every output element is summed over c_in inside one GEMM, in
 * increasing order: the bits depend on neither the thread count nor the blocks.
 *
 * The input gradient is the same convolution of the output gradient with the flipped,
 * transposed filters, its window starting at 2 - padding (which may be negative: a crop).
 * A 2x2, stride-2 max pool is taken in the band (a tile row holds whole windows, m being
 * even), so the convolution's output never goes to memory; with another pool the whole
 * output is kept and pooled image by image after the blocks. The gradients take the output
 * gradient unpooled (conv.c does that once).
 *
 * The weight gradient. The forward's tile is linear in U = G g G^T, so for one output
 * tile's gradient dY (m x m, zero past the output's edge), dL/dU = (A dY A^T) . V and
 * dL/dg = G^T (dL/dU) G; summed over the tiles t of every image,
 *     dW[o][c] = G^T [ sum_t (A dY_ot A^T) . (B^T d_ct B) ] G
 * (the minimal filtering F(3x3, m x m) with the gradient tile as the filter: P / m^2
 * multiplies per output pixel and channel pair against the direct method's 9). With
 * Z[xi][t][o] the gradient tiles' and V[xi][t][c] the input tiles' transforms, position xi
 * is one GEMM  S_xi = Z_xi^T V_xi  of [c_out x tiles] x [tiles x c_in]. The tile rows are
 * cut into blocks (as the forward's, larger: the GEMM's K is the block's tiles) and the
 * blocks into a fixed number of chunks, both from the shape alone; a thread sums a chunk's
 * blocks in order into its S, takes G^T S G as the chunk's partial, and the
 * partials are added in chunk order (as conv.c's weight gradient does): the bits do not
 * depend on the thread count. */
#include <unistd.h>

#include "internal.h"

/* Bytes of one block's transformed tiles (input and GEMM output): half the L2 cache, so
 * that each of a block's P GEMMs gets many tiles (its M). Forward time with 512 KiB blocks
 * / 192 KiB (batch 128, 32->32 28x28, 64->64 16x16, 128->128 8x8; Zen 5, L2 1 MiB): 0.92,
 * 0.79, 0.83 on 1 thread, 0.93, 0.77, 0.82 on 2; 768 KiB 0.93, 0.81, 0.80. Blocks change no
 * bit of the results. Without a known L2, WINO_BLOCK_DEFAULT (measured best on Zen 3, whose
 * L2 is 512 KiB). */
#define WINO_BLOCK_DEFAULT ((int64_t)192 << 10)
/* The weight gradient's: its GEMMs' K is the block's tiles, so longer blocks pay. */
#define WINO_WGRAD_BLOCK_BYTES ((int64_t)1 << 20)
/* The weight gradient's chunks (partials summed in order), and their bytes at most. */
#define WINO_WGRAD_CHUNKS 16
#define WINO_WGRAD_PARTIAL_BYTES ((int64_t)64 << 20)
/* (o, c) pairs per step of the weight gradient's sum of partials (on the stack) */
#define WGRAD_SUM_LANES 64

typedef struct {
    int m, a, P;           /* output tile m x m, input tile a x a, P = a*a positions */
    int64_t n, ci, h, w;   /* the input planes */
    int64_t co, oh, ow;    /* the output planes */
    int64_t top, left;     /* input pixel under tap (0, 0) of output pixel (0, 0) */
    int64_t cip, cop;      /* channels rounded up to the transforms' lanes */
    int64_t th, tw;        /* tiles per column and per row of an image */
    int64_t rows, nblocks; /* tile rows per block (n * th in all), blocks */
    int64_t tb;            /* tiles per block (at most) */
    int64_t bw;            /* pixels per row of a band: tw*m + 2 */
    int64_t vplane, mplane; /* floats per position of V and of M (see plane_stride) */
    int in_hwc, out_hwc;   /* the input / output planes are channels-last (NHWC) */
    const fnn_gemm_kernels *gk; /* the P GEMMs' tile, which packs U */
    const fnn_wino_kernels *wk; /* the transforms: 16 channels a vector where both fill them */
} wino_geom;

/* ---- the filter transform (the input and output ones: simd/winograd_kernel.h) ---- */

/* G g along one axis, in double: 3 taps g[k*gs + r] to a points o[p*os + r] of nr lanes
 * (a loop per formula, so that the compiler runs the lanes as vectors). */
static void wino_g(int m, const double *g, int gs, double *o, int os, int nr)
{
    const double *g0 = g, *g1 = g + gs, *g2 = g + 2 * gs;
    if (m == 2) {
        for (int r = 0; r < nr; r++) {
            o[r] = g0[r];
            o[os + r] = (g0[r] + g1[r] + g2[r]) * 0.5;
            o[2 * os + r] = (g0[r] - g1[r] + g2[r]) * 0.5;
            o[3 * os + r] = g2[r];
        }
        return;
    }
    /* multiplied by the reciprocals: a division would cost most of the time */
    const double r4 = 1.0 / 4, r6 = 1.0 / 6, r12 = 1.0 / 12, r24 = 1.0 / 24;
    for (int r = 0; r < nr; r++) {
        o[r] = g0[r] * r4;
        o[os + r] = -(g0[r] + g1[r] + g2[r]) * r6;
        o[2 * os + r] = -(g0[r] - g1[r] + g2[r]) * r6;
        o[3 * os + r] = g0[r] * r24 + g1[r] * r12 + g2[r] * r6;
        o[4 * os + r] = g0[r] * r24 - g1[r] * r12 + g2[r] * r6;
        o[5 * os + r] = g2[r];
    }
}

/* ---- plan ---- */

/* Floats between the P planes of V or M: whole cache lines, and one line more, so that
 * the P stores (loads) of one tile's transform do not all fall in the same L1 set, as
 * they would 4 KiB apart. */
static int64_t plane_stride(int64_t elems) { return fnn_round_up(elems, 16) + 16; }

/* The offset of pixel (y, x) of image img of C planes of h x w (its channel 0), in
 * planes or channels-last. */
static int64_t pixel_at(int hwc, int64_t C, int64_t h, int64_t w, int64_t img, int64_t y,
                        int64_t x)
{
    return hwc ? ((img * h + y) * w + x) * C : (img * C * h + y) * w + x;
}

/* rows x cols pixels of C channels between an image (planes of `plane` floats, rows
 * `prow` apart, or channels-last with rows prow * C apart) and a channels-last band
 * (rows crow apart, pixels ld apart): planes_rows' copy, or whole runs of channels. */
static void image_rows(int hwc, int to_image, int64_t C, int64_t rows, int64_t cols,
                       const float *src, float *dst, int64_t plane, int64_t prow, int64_t crow,
                       int64_t ld)
{
    if (!hwc) {
        fnn_active->gemm->planes_rows(to_image, C, rows, cols, src, dst, plane, prow, crow, ld);
        return;
    }
    int64_t irow = prow * C, sr = to_image ? crow : irow, dr = to_image ? irow : crow;
    int64_t sp = to_image ? ld : C, dp = to_image ? C : ld;
    for (int64_t i = 0; i < rows; i++) {
        if (ld == C) {
            memcpy(dst + i * dr, src + i * sr, (size_t)(cols * C) * sizeof(float));
            continue;
        }
        for (int64_t j = 0; j < cols; j++)
            memcpy(dst + i * dr + j * dp, src + i * sr + j * sp, (size_t)C * sizeof(float));
    }
}

/* The forward's and input gradient's block bytes: half the L2 cache (see
 * WINO_BLOCK_DEFAULT), within 128 KiB to 2 MiB. */
static int64_t wino_block_bytes(void)
{
    static int64_t bytes;
    if (bytes == 0) {
        long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
        bytes = l2 > 0 ? FNN_MIN(FNN_MAX((int64_t)l2 / 2, (int64_t)128 << 10), (int64_t)2 << 20)
                       : WINO_BLOCK_DEFAULT;
    }
    return bytes;
}

static void geom_init(wino_geom *g, int m, int64_t n, int64_t ci, int64_t h, int64_t w,
                      int64_t co, int64_t oh, int64_t ow, int64_t top, int64_t left,
                      int64_t block_bytes)
{
    *g = (wino_geom){.m = m, .a = m + 2, .P = (m + 2) * (m + 2), .n = n, .ci = ci, .h = h,
                     .w = w, .co = co, .oh = oh, .ow = ow, .top = top, .left = left};
    g->cip = fnn_round_up(ci, FNN_WINO_LANES);
    g->cop = fnn_round_up(co, FNN_WINO_LANES);
    g->th = (oh + m - 1) / m;
    g->tw = (ow + m - 1) / m;
    int64_t want = block_bytes / ((int64_t)sizeof(float) * g->P * (g->cip + g->cop));
    g->rows = FNN_MIN(FNN_MAX(1, want / g->tw), n * g->th);
    g->nblocks = (n * g->th + g->rows - 1) / g->rows;
    g->tb = g->rows * g->tw;
    g->bw = g->tw * m + 2;
    g->vplane = plane_stride(g->tb * g->cip);
    g->mplane = plane_stride(g->tb * g->cop);
    g->gk = fnn_gemm_tile(g->tb, g->cop);
    const fnn_wino_kernels *wide = fnn_active->wino_wide;
    g->wk = wide != NULL && g->cip % wide->lanes == 0 && g->cop % wide->lanes == 0
                ? wide : fnn_active->wino;
}

/* Floats of the band of input rows under a tile row (or of output rows of one). */
static int64_t band_elems(const wino_geom *g)
{
    return fnn_round_up(FNN_MAX(g->a * g->bw * g->cip, g->m * g->tw * g->m * g->cop), 16);
}

/* Floats of one pooled row, channels-last (a band's 2x2 max pool); as many bytes of
 * window positions follow it (a quarter as many floats). */
static int64_t pooled_row_elems(const wino_geom *g)
{
    return fnn_round_up(g->tw * g->m / 2 * g->cop, 16);
}

/* Floats of one thread's buffers: V, M, the band, then a pooled row and its positions. */
static size_t thread_elems(const wino_geom *g)
{
    return (size_t)(g->P * (g->vplane + g->mplane) + band_elems(g) +
                    pooled_row_elems(g) * 5 / 4);
}

/* Floats of the shared buffers: the transformed filters, then the bias (padded). */
static size_t packed_u_elems(const wino_geom *g)
{
    return (size_t)fnn_round_up(g->P * fnn_round_up(g->co, g->gk->nr) * g->ci, 16);
}

/* U_xi^T = (G g G^T)^T for every (c, o), straight into the GEMM's packed B panels (NR
 * columns of o, element [c][o % NR]; columns past co zero). Filter (o, c) tap (i, j) is
 * w[o*so + c*sc + i*si + j*sj]: the weight itself, or flipped and transposed for the
 * input gradient. */
typedef struct {
    const wino_geom *g;
    const float *w;
    int64_t so, sc, si, sj;
    float *up;
} filter_job;

/* Channels per task of the filters' transform: a layer's few panels become enough tasks
 * for every thread. */
#define FILTER_TASK_CHANNELS 16
/* One filter's transform in FNN_WORK_PER_THREAD's units: about as long as 1024 of GEMM's
 * multiply-adds (14.5 ns a filter of a 128->128 layer, 1 thread, Zen 5) */
#define FILTER_COST 1024.0

/* Task i: the filters of output panel i / cblocks (nr outputs) and its i % cblocks-th
 * FILTER_TASK_CHANNELS input channels, the nr outputs side by side as vector lanes. A
 * position's nr values are stored as one run: the P planes lie a multiple of 4 KiB apart,
 * and single stores to all of them would keep evicting each other from one L1 set. */
static void transform_filter_panel(void *ctx, int64_t i, int slot)
{
    const filter_job *J = ctx;
    const wino_geom *g = J->g;
    int nr = g->gk->nr, a = g->a;
    int64_t cblocks = (g->ci + FILTER_TASK_CHANNELS - 1) / FILTER_TASK_CHANNELS;
    int64_t panel = i / cblocks, c0 = i % cblocks * FILTER_TASK_CHANNELS;
    int64_t c1 = FNN_MIN(c0 + FILTER_TASK_CHANNELS, g->ci);
    int64_t plane = fnn_round_up(g->co, nr) * g->ci;
    double tap[9][FNN_MAX_NR], t[6 * 3][FNN_MAX_NR], u[36][FNN_MAX_NR];
    (void)slot;
    for (int64_t c = c0; c < c1; c++) {
        for (int r = 0; r < nr; r++) {
            int64_t o = panel * nr + r;
            for (int k = 0; k < 9; k++)
                tap[k][r] = o < g->co
                    ? J->w[o * J->so + c * J->sc + k / 3 * J->si + k % 3 * J->sj] : 0.0;
        }
        for (int j = 0; j < 3; j++)  /* G g: columns */
            wino_g(g->m, tap[j], 3 * FNN_MAX_NR, t[j], 3 * FNN_MAX_NR, nr);
        for (int k = 0; k < a; k++)  /* (G g) G^T: rows */
            wino_g(g->m, t[k * 3], FNN_MAX_NR, u[k * a], FNN_MAX_NR, nr);
        float *dst = J->up + panel * nr * g->ci + c * nr;
        for (int xi = 0; xi < g->P; xi++)
            for (int r = 0; r < nr; r++)
                dst[xi * plane + r] = (float)u[xi][r];
    }
}

static void transform_filters(const wino_geom *g, const float *w, int64_t so, int64_t sc,
                              int64_t si, int64_t sj, float *up)
{
    int nr = g->gk->nr;
    int64_t tasks = (g->co + nr - 1) / nr * ((g->ci + FILTER_TASK_CHANNELS - 1)
                                             / FILTER_TASK_CHANNELS);
    filter_job J = {.g = g, .w = w, .so = so, .sc = sc, .si = si, .sj = sj, .up = up};
    fnn_run(tasks, fnn_threads_for(FILTER_COST * (double)g->co * g->ci),
            transform_filter_panel, &J);
}

/* ---- one block ---- */

/* Band rows [i0, a): input rows y0 + i0 .. of image img, channels-last, zero outside the
 * image. */
static void band_rows(const wino_geom *g, const float *x, int64_t img, int64_t y0, int i0,
                      float *band)
{
    int64_t row = g->bw * g->cip;
    int64_t lo = FNN_MIN(FNN_MAX(-g->left, 0), g->bw);
    int64_t hi = FNN_MAX(FNN_MIN(g->w - g->left, g->bw), lo);  /* columns inside */
    int64_t i1 = FNN_MAX(FNN_MIN(g->a, g->h - y0), i0), i_in = FNN_MIN(FNN_MAX(i0, -y0), i1);
    memset(band + i0 * row, 0, (size_t)((g->a - i0) * row) * sizeof(float));
    if (i1 > i_in)  /* (else no input row: x + its offset could point past the array) */
        image_rows(g->in_hwc, 0, g->ci, i1 - i_in, hi - lo,
                   x + pixel_at(g->in_hwc, g->ci, g->h, g->w, img, y0 + i_in, g->left + lo),
                   band + i_in * row + lo * g->cip, g->h * g->w, g->w, row, g->cip);
}

/* Input tiles of the block's tile rows [r0, r1) into V: position xi, tile q, channel c
 * at v[xi*vplane + q*cip + c], a tile row at a time from a channels-last, zero-padded
 * band of the a input rows under it (the a - m it shares with the tile row above moved
 * up, not copied again). */
static void transform_input(const wino_geom *g, const float *x, int64_t r0, int64_t r1,
                            float *v, float *band)
{
    int m = g->m, a = g->a;
    int64_t row = g->bw * g->cip;
    for (int64_t r = r0; r < r1; r++) {
        int64_t img = r / g->th, y0 = (r % g->th) * m + g->top;
        int keep = r > r0 && r % g->th != 0 ? a - m : 0;
        if (keep)
            memmove(band, band + m * row, (size_t)(keep * row) * sizeof(float));
        band_rows(g, x, img, y0, keep, band);
        for (int64_t tx = 0, q = (r - r0) * g->tw; tx < g->tw; tx++, q++)
            g->wk->input(m, band + tx * m * g->cip, row, g->cip, v + q * g->cip, g->vplane);
    }
}

/* A 2x2, stride-2 max pool of the output taken in the band: a tile row (m even) holds
 * whole windows, so the convolution's output never goes to memory. py: the pooled planes
 * (poh x pow), ppos: their window positions, or NULL. */
typedef struct {
    int64_t poh, pow;
    float *py;
    uint8_t *ppos;
} band_pool;

/* The pooled rows of the band of output rows y0.. of image img (pooled row buffer prow,
 * its positions after it), relu'd if relu, into the pool's planes. */
static void pool_band(const wino_geom *g, const band_pool *bp, const float *band, int64_t img,
                      int64_t y0, int relu, float *prow)
{
    int64_t ld = g->tw * g->m * g->cop, plane = bp->poh * bp->pow, n = bp->pow * g->cop;
    uint8_t *pos = (uint8_t *)(prow + pooled_row_elems(g));
    for (int64_t pr = y0 / 2; pr < FNN_MIN((y0 + g->m) / 2, bp->poh); pr++) {
        const float *b0 = band + (2 * pr - y0) * ld;
        int64_t at = pixel_at(g->out_hwc, g->co, bp->poh, bp->pow, img, pr, 0);
        g->wk->pool_2x2(b0, b0 + ld, bp->pow, g->cop, prow, pos);
        if (relu)
            fnn_active->ew->relu(n, prow, prow);
        image_rows(g->out_hwc, 1, g->co, 1, bp->pow, prow, bp->py + at, plane, bp->pow, n,
                   g->cop);
        if (bp->ppos != NULL) {  /* sizes in locals: a byte store may alias any field */
            uint8_t *dst = bp->ppos + at;
            const int64_t co = g->co, cop = g->cop, pw = bp->pow;
            const int64_t cs = g->out_hwc ? 1 : plane, js = g->out_hwc ? co : 1;
            for (int64_t c = 0; c < co; c++)
                for (int64_t j = 0; j < pw; j++)
                    dst[c * cs + j * js] = pos[j * cop + c];
        }
    }
}

/* Output tiles from M (position xi, tile q, channel o at mm[xi*mplane + q*cop + o]),
 * plus the bias (then relu'd if relu), into y (or pooled by bp into its planes), a tile
 * row at a time through a channels-last band, cropped to the output. Returns nonzero if
 * an output is inf or NaN. */
static int transform_output(const wino_geom *g, const float *mm, int64_t r0, int64_t r1,
                            const float *bias, int relu, float *y, const band_pool *bp,
                            float *band)
{
    int m = g->m;
    int64_t ld = g->tw * m * g->cop;
    int bad = 0;
    for (int64_t r = r0; r < r1; r++) {
        int64_t img = r / g->th, y0 = (r % g->th) * m;
        /* the whole band, cropped pixels too (they are finite if the inputs are) */
        for (int64_t tx = 0, q = (r - r0) * g->tw; tx < g->tw; tx++, q++)
            bad |= g->wk->output(m, mm + q * g->cop, g->mplane, g->cop, bias,
                                 band + tx * m * g->cop, ld);
        if (bp != NULL) {
            pool_band(g, bp, band, img, y0, relu, band + band_elems(g));
            continue;
        }
        if (relu)
            fnn_active->ew->relu(m * ld, band, band);
        image_rows(g->out_hwc, 1, g->co, FNN_MIN(m, g->oh - y0), g->ow, band,
                   y + pixel_at(g->out_hwc, g->co, g->oh, g->ow, img, y0, 0),
                   g->oh * g->ow, g->ow, ld, g->cop);
    }
    return bad;
}

/* Output-gradient tiles of tile rows [r0, r1) into Z: position xi of A dY A^T, tile q,
 * channel o at z[xi*mplane + q*cop + o], a tile row at a time from a channels-last band of
 * its m rows of gy, zero past the output's edge. */
static void transform_grad(const wino_geom *g, const float *gy, int64_t r0, int64_t r1,
                           float *z, float *band)
{
    int m = g->m;
    int64_t ld = g->tw * m * g->cop;
    for (int64_t r = r0; r < r1; r++) {
        int64_t img = r / g->th, y0 = (r % g->th) * m;
        memset(band, 0, (size_t)(m * ld) * sizeof(float));
        image_rows(g->out_hwc, 0, g->co, FNN_MIN(m, g->oh - y0), g->ow,
                   gy + pixel_at(g->out_hwc, g->co, g->oh, g->ow, img, y0, 0), band, g->oh * g->ow,
                   g->ow, ld, g->cop);
        for (int64_t tx = 0, q = (r - r0) * g->tw; tx < g->tw; tx++, q++)
            g->wk->output_t(m, band + tx * m * g->cop, ld, g->cop, z + q * g->cop, g->mplane);
    }
}

/* Block blk: its input tiles, the P GEMMs M_xi^T = V_xi^T U_xi^T (V^T read in place,
 * U^T packed once), its output tiles; nonzero if one is inf or NaN. The GEMMs write all
 * cop lanes (zeros past co, from U's zero rows): the output transform reads them, and a
 * lane left unwritten would hold whatever the workspace held before, an inf or NaN among
 * them sending the result to the direct method at random. */
static int run_block(const wino_geom *g, int64_t blk, const float *x, const float *up,
                     const float *bias, int relu, float *y, const band_pool *bp, float *buf)
{
    const fnn_gemm_kernels *gk = g->gk;
    float *v = buf, *mm = v + g->P * g->vplane, *band = mm + g->P * g->mplane;
    int64_t r0 = blk * g->rows, r1 = FNN_MIN(r0 + g->rows, g->n * g->th);
    int64_t nt = (r1 - r0) * g->tw, uplane = fnn_round_up(g->co, gk->nr) * g->ci;
    transform_input(g, x, r0, r1, v, band);
    for (int xi = 0; xi < g->P; xi++)
        gk->macro(nt, g->cop, g->ci, 1.0f, v + xi * g->vplane, g->cip, 1, gk->mr * g->cip,
                  up + xi * uplane, 0.0f, mm + xi * g->mplane, g->cop);
    return transform_output(g, mm, r0, r1, bias, relu, y, bp, band);
}

/* ---- entry points (conv.c has validated the shape and the pointers) ---- */

typedef struct {
    const wino_geom *g;
    const fnn_pool2d *pool;  /* pooled after the blocks, or */
    const band_pool *bp;     /* in each tile row's band */
    const float *x, *up, *bias;  /* up: packed U */
    float *y, *py, *bufs;        /* bufs: te floats per slot */
    uint8_t *ppos;
    size_t te;
    int64_t out_img, pooled;
    int relu, err;  /* relu: the output (pooled if pool) relu'd in cache */
} wino_job;

static void wino_block(void *ctx, int64_t blk, int slot)
{
    wino_job *J = ctx;
    if (run_block(J->g, blk, J->x, J->up, J->bias, J->relu && !J->pool, J->y, J->bp,
                  J->bufs + J->te * slot))
        fnn_store_status(&J->err, FNN_ENONFINITE);
}

static void wino_pool_image(void *ctx, int64_t img, int slot)
{
    const wino_job *J = ctx;
    (void)slot;
    float *py = J->py + img * J->pooled;
    fnn_max_pool_planes(J->pool, J->g->co, J->y + img * J->out_img, py, NULL,
                        J->ppos ? J->ppos + img * J->pooled : NULL);
    if (J->relu)
        fnn_active->ew->relu(J->pooled, py, py);
}

/* The convolution of g's input x with the filters w + base (strides as in
 * transform_filters) into y; with a pool, py / ppos get its max pool (a 2x2, stride-2 one
 * taken in each tile row's band, another from the whole output in a buffer); relu: the
 * result relu'd. */
static int wino_run(const wino_geom *g, const float *x, const float *w, int64_t so, int64_t sc,
                    int64_t si, int64_t sj, int64_t base, const float *bias, float *y,
                    const fnn_pool2d *pool, float *py, uint8_t *ppos, int relu)
{
    int64_t out_img = g->co * g->oh * g->ow;
    band_pool bp = {.py = py, .ppos = ppos};
    if (pool != NULL && fnn_pool_is_2x2(pool)) {  /* then no pass after the blocks */
        bp.poh = pool->oh;
        bp.pow = pool->ow;
        pool = NULL;
    }
    if (pool != NULL && g->out_hwc)  /* that pass pools planes (conv.c converts) */
        return FNN_EINVAL;
    int64_t pooled = pool ? g->co * pool->oh * pool->ow : 0;
    size_t up_elems = packed_u_elems(g) + fnn_round_up(g->cop, 16), te = thread_elems(g);
    size_t whole = pool ? (size_t)fnn_round_up(g->n * out_img, 16) : 0;
    double work = (double)g->n * g->co * g->oh * g->ow * g->ci * g->P / (g->m * g->m);
    int nth = (int)FNN_MIN(fnn_threads_for(work), g->nblocks);
    float *ws = fnn_workspace(FNN_WS_OP, (up_elems + whole + te * nth + 16) * sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    if (pool != NULL)
        y = ws + up_elems;
    transform_filters(g, w + base, so, sc, si, sj, ws);
    float *bias_p = ws + packed_u_elems(g);  /* lanes past co (and no bias): 0 */
    for (int64_t o = 0; o < g->cop; o++)
        bias_p[o] = bias != NULL && o < g->co ? bias[o] : 0.0f;
    wino_job J = {.g = g, .pool = pool, .bp = bp.poh > 0 ? &bp : NULL, .x = x, .up = ws,
                  .bias = bias_p, .y = y, .py = py, .ppos = ppos, .bufs = ws + up_elems + whole,
                  .te = te, .out_img = out_img, .pooled = pooled, .relu = relu, .err = FNN_OK};
    fnn_run(g->nblocks, nth, wino_block, &J);
    if (J.err != FNN_OK)
        return J.err;
    if (pool != NULL)
        fnn_run(g->n, nth, wino_pool_image, &J);
    return FNN_OK;
}

int fnn_winograd_forward(const fnn_conv2d_shape *s, int m, const fnn_pool2d *pool,
                         const float *x, const float *w, const float *bias, float *y,
                         uint8_t *pos, int relu)
{
    wino_geom g;
    geom_init(&g, m, s->n, s->c_in, s->h, s->w, s->c_out, s->h + 2 * s->ph - 2,
              s->w + 2 * s->pw - 2, -s->ph, -s->pw, wino_block_bytes());
    g.in_hwc = s->x_hwc;
    g.out_hwc = s->y_hwc;
    return pool == NULL
               ? wino_run(&g, x, w, s->c_in * 9, 9, 3, 1, 0, bias, y, NULL, NULL, NULL, relu)
               : wino_run(&g, x, w, s->c_in * 9, 9, 3, 1, 0, bias, NULL, pool, y, pos, relu);
}

/* m x m tiles covering n planes of h x w. */
static int64_t tile_count(int64_t n, int64_t h, int64_t w, int m)
{
    return n * ((h + m - 1) / m) * ((w + m - 1) / m);
}

/* ---- the input gradient as the forward's transpose ----
 *
 * Per forward tile, the transpose of its three steps: Z = A dY A^T (transform_grad), one
 * GEMM per position  dV_xi = Z_xi U_xi  of [tiles x c_out] x [c_out x c_in], then B dV B^T
 * added over the a x a input pixels the tile read. It runs the forward's tiles, which
 * cover the output: fewer than the convolution with flipped filters runs over the input
 * when the padding is below 1 (the reference CNN's conv2, 11x11 from 13x13: 9 4x4 tiles an
 * image against 16). Neighbouring tiles share a - m pixels each way. A tile row's tiles
 * are summed into a band from zero, left to right; a row it shares with the tile row
 * above gets the two bands' sums added (the upper one kept in `carry`, or, at a block's
 * first tile row, kept in the block's `head` and added after all the blocks, once the
 * block above has written its last rows): the same two sums added whatever the blocks and
 * threads, so the bits do not depend on them. */

typedef struct {
    const wino_geom *g, *gu;  /* the image's geometry; U's (c_out x c_in, its GEMMs' tile) */
    const float *gy, *ut;   /* the (unpooled) output gradient; U packed c_out x c_in */
    float *gx, *heads, *bufs;
    size_t te;
    int64_t head_elems;     /* c_in planes of a - m rows of the image's width */
    int err;
} wino_t_job;

/* Band rows [i0, i1) of tile row r into gx (dst NULL) or into the planes of dst (a - m
 * rows, the image's width), cropped to the image. */
static void band_to_planes(const wino_geom *g, const float *band, int64_t r, int i0, int i1,
                           float *gx, float *dst)
{
    int64_t row = g->bw * g->cip, img = r / g->th, y0 = (r % g->th) * g->m + g->top;
    int64_t lo = FNN_MAX(-g->left, 0), hi = FNN_MIN(g->w - g->left, g->bw);
    int64_t a = FNN_MAX(i0, -y0), b = FNN_MIN(i1, g->h - y0);
    if (b <= a || hi <= lo)
        return;
    int64_t left = g->left + lo, ci = g->ci, over = g->a - g->m;
    float *at = dst != NULL ? dst + pixel_at(g->in_hwc, ci, over, g->w, 0, a - i0, left)
                            : gx + pixel_at(g->in_hwc, ci, g->h, g->w, img, y0 + a, left);
    image_rows(g->in_hwc, 1, ci, b - a, hi - lo, band + a * row + lo * g->cip, at,
               dst != NULL ? over * g->w : g->h * g->w, g->w, row, g->cip);
}

static void wino_t_block(void *ctx, int64_t blk, int slot)
{
    wino_t_job *J = ctx;
    const wino_geom *g = J->g;
    const fnn_gemm_kernels *gk = J->gu->gk;
    int m = g->m, over = g->a - m;
    float *dv = J->bufs + J->te * slot, *z = dv + g->P * g->vplane;
    float *band = z + g->P * g->mplane, *carry = band + band_elems(g);
    int64_t r0 = blk * g->rows, r1 = FNN_MIN(r0 + g->rows, g->n * g->th);
    int64_t nt = (r1 - r0) * g->tw, row = g->bw * g->cip;
    int64_t uplane = fnn_round_up(g->ci, gk->nr) * g->co;
    transform_grad(g, J->gy, r0, r1, z, band);
    for (int xi = 0; xi < g->P; xi++)
        gk->macro(nt, g->cip, g->co, 1.0f, z + xi * g->mplane, g->cop, 1, gk->mr * g->cop,
                  J->ut + xi * uplane, 0.0f, dv + xi * g->vplane, g->cip);
    for (int64_t r = r0; r < r1; r++) {
        int top_row = r % g->th == 0, last = r % g->th == g->th - 1 || r == r1 - 1;
        memset(band, 0, (size_t)(g->a * row) * sizeof(float));
        for (int64_t tx = 0, q = (r - r0) * g->tw; tx < g->tw; tx++, q++)
            g->wk->input_t(m, dv + q * g->cip, g->vplane, g->cip, band + tx * m * g->cip, row);
        int i0 = 0;
        if (!top_row && r == r0) {  /* shared with the block above: added after the blocks */
            band_to_planes(g, band, r, 0, over, NULL, J->heads + blk * J->head_elems);
            i0 = over;
        } else if (!top_row) {
            fnn_active->ew->add(over * row, band, carry, band);
        }
        if (!fnn_all_finite(band + i0 * row, ((last ? g->a : m) - i0) * row))
            fnn_store_status(&J->err, FNN_ENONFINITE);
        band_to_planes(g, band, r, i0, last ? g->a : m, J->gx, NULL);
        if (!last)
            memcpy(carry, band + m * row, (size_t)(over * row) * sizeof(float));
    }
}

/* A block's head (if its first tile row is not an image's first) added to gx. */
static void wino_t_head(void *ctx, int64_t blk, int slot)
{
    wino_t_job *J = ctx;
    const wino_geom *g = J->g;
    int64_t r = blk * g->rows, img = r / g->th, y0 = (r % g->th) * g->m + g->top;
    int64_t i0 = FNN_MAX(0, -y0), i1 = FNN_MIN(g->a - g->m, g->h - y0);
    int64_t plane = (g->a - g->m) * g->w, len = (i1 - i0) * g->w;
    (void)slot;
    if (r % g->th == 0 || len <= 0)
        return;
    if (g->in_hwc) {  /* the rows' channels: one run */
        float *dst = J->gx + ((img * g->h + y0 + i0) * g->w) * g->ci;
        const float *src = J->heads + blk * J->head_elems + i0 * g->w * g->ci;
        fnn_active->ew->add(len * g->ci, dst, src, dst);
        if (!fnn_all_finite(dst, len * g->ci))
            fnn_store_status(&J->err, FNN_ENONFINITE);
        return;
    }
    for (int64_t c = 0; c < g->ci; c++) {
        float *dst = J->gx + ((img * g->ci + c) * g->h + y0 + i0) * g->w;
        const float *src = J->heads + blk * J->head_elems + c * plane + i0 * g->w;
        fnn_active->ew->add(len, dst, src, dst);
        if (!fnn_all_finite(dst, len))
            fnn_store_status(&J->err, FNN_ENONFINITE);
    }
}

static int wino_grad_input_t(const fnn_conv2d_shape *s, int m, const float *grad_y,
                             const float *w, float *grad_x)
{
    wino_geom g, gu;
    geom_init(&g, m, s->n, s->c_in, s->h, s->w, s->c_out, s->h + 2 * s->ph - 2,
              s->w + 2 * s->pw - 2, -s->ph, -s->pw, wino_block_bytes());
    g.in_hwc = s->x_hwc;
    g.out_hwc = s->y_hwc;
    /* U with c_out as the GEMM's K and c_in as its N: filter (c, o) at w[o][c], unflipped */
    gu = (wino_geom){.m = m, .a = g.a, .P = g.P, .ci = s->c_out, .co = s->c_in,
                     .gk = fnn_gemm_tile(g.tb, g.cip)};
    int over = g.a - m;
    size_t ut_elems = packed_u_elems(&gu);
    int64_t head_elems = g.ci * over * g.w;
    size_t heads = (size_t)fnn_round_up(g.nblocks * head_elems, 16);
    size_t te = thread_elems(&g) + (size_t)fnn_round_up(over * g.bw * g.cip, 16);
    double work = (double)g.n * g.co * g.oh * g.ow * g.ci * g.P / (m * m);
    int nth = (int)FNN_MIN(fnn_threads_for(work), g.nblocks);
    float *ws = fnn_workspace(FNN_WS_OP, (ut_elems + heads + te * nth + 16) * sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    transform_filters(&gu, w, 9, s->c_in * 9, 3, 1, ws);
    wino_t_job J = {.g = &g, .gy = grad_y, .gu = &gu, .ut = ws, .gx = grad_x,
                    .heads = ws + ut_elems, .bufs = ws + ut_elems + heads, .te = te,
                    .head_elems = head_elems, .err = FNN_OK};
    fnn_run(g.nblocks, nth, wino_t_block, &J);
    if (J.err == FNN_OK)
        fnn_run(g.nblocks, nth, wino_t_head, &J);
    return J.err;
}

int fnn_winograd_grad_input(const fnn_conv2d_shape *s, int m, const float *grad_y,
                            const float *w, float *grad_x)
{
    int64_t oh = s->h + 2 * s->ph - 2, ow = s->w + 2 * s->pw - 2;
    if (tile_count(s->n, oh, ow, m) < tile_count(s->n, s->h, s->w, m))
        return wino_grad_input_t(s, m, grad_y, w, grad_x);
    /* gx[c] = sum_o gy[o] (*) flip(w[o][c]): filter (c, o) tap (i, j) is
     * w[o][c][2-i][2-j]; its window starts at row ph - 2 of gy */
    wino_geom g;
    geom_init(&g, m, s->n, s->c_out, s->h + 2 * s->ph - 2, s->w + 2 * s->pw - 2, s->c_in,
              s->h, s->w, s->ph - 2, s->pw - 2, wino_block_bytes());
    g.in_hwc = s->y_hwc;  /* its input is the output gradient */
    g.out_hwc = s->x_hwc;
    return wino_run(&g, grad_y, w, 9, s->c_in * 9, -3, -1, 8, NULL, grad_x, NULL, NULL, NULL, 0);
}

/* A weight-gradient chunk, blocks [b0, b1): S_xi = sum over its blocks of Z_xi^T V_xi,
 * in block order, then G^T S G into its partial, tap k of pair (o, c) at
 * part[k*co*ci + o*ci + c]. */
static int wgrad_chunk(const wino_geom *g, int64_t b0, int64_t b1, const float *x,
                       const float *gy, float *buf, float *acc, float *part)
{
    float *v = buf, *z = v + g->P * g->vplane, *band = z + g->P * g->mplane;
    int64_t splane = g->co * g->ci;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t r0 = blk * g->rows, r1 = FNN_MIN(r0 + g->rows, g->n * g->th);
        int64_t nt = (r1 - r0) * g->tw;
        transform_input(g, x, r0, r1, v, band);
        transform_grad(g, gy, r0, r1, z, band);
        for (int xi = 0; xi < g->P; xi++) {
            int st = fnn_sgemm_strided(g->co, g->ci, nt, 1.0f, z + xi * g->mplane, 1, g->cop,
                                       v + xi * g->vplane, g->cip, 1, blk == b0 ? 0.0f : 1.0f,
                                       acc + xi * splane, g->ci);
            if (st != FNN_OK)
                return st;
        }
    }
    g->wk->filter_t(g->m, acc, splane, part, splane, splane);  /* G^T S G */
    return FNN_OK;
}

typedef struct {
    const wino_geom *g;
    const float *x, *gy;  /* gy: the unpooled output gradient */
    float *part, *bufs;   /* the chunks' partials; te floats per slot */
    float *grad_w;
    size_t te;
    int64_t nchunks, gw_elems;
    int err;
} wgrad_job;

static void wgrad_chunk_task(void *ctx, int64_t c, int slot)
{
    wgrad_job *J = ctx;
    const wino_geom *g = J->g;
    float *buf = J->bufs + J->te * slot;
    int st = wgrad_chunk(g, g->nblocks * c / J->nchunks, g->nblocks * (c + 1) / J->nchunks, J->x,
                         J->gy, buf, buf + thread_elems(g), J->part + c * J->gw_elems);
    if (st != FNN_OK)
        fnn_store_status(&J->err, st);
}

/* Pairs (o, c) [lo, hi) of the gradient: the chunks' partials in chunk order, a block of
 * pairs at a time (each partial's 9 taps are 9 rows: summing tap by tap over all pairs
 * went through the gradient 9 times per chunk, 9 floats apart). */
static void wgrad_sum_range(int64_t lo, int64_t hi, void *ctx)
{
    const wgrad_job *J = ctx;
    int64_t pairs = J->g->co * J->g->ci;
    for (int64_t e0 = lo; e0 < hi; e0 += WGRAD_SUM_LANES) {
        int64_t len = FNN_MIN(WGRAD_SUM_LANES, hi - e0);
        float sum[9][WGRAD_SUM_LANES] = {{0}};
        for (int64_t c = 0; c < J->nchunks; c++)
            for (int k = 0; k < 9; k++) {
                const float *src = J->part + c * J->gw_elems + k * pairs + e0;
                for (int64_t e = 0; e < len; e++)
                    sum[k][e] += src[e];
            }
        for (int64_t e = 0; e < len; e++)
            for (int k = 0; k < 9; k++)
                J->grad_w[(e0 + e) * 9 + k] = sum[k][e];
    }
}

int fnn_winograd_grad_weight(const fnn_conv2d_shape *s, int m, const float *grad_y,
                             const float *x, float *grad_w)
{
    wino_geom g;
    geom_init(&g, m, s->n, s->c_in, s->h, s->w, s->c_out, s->h + 2 * s->ph - 2,
              s->w + 2 * s->pw - 2, -s->ph, -s->pw, WINO_WGRAD_BLOCK_BYTES);
    g.in_hwc = s->x_hwc;
    g.out_hwc = s->y_hwc;
    int64_t gw_elems = g.co * g.ci * 9;
    int64_t nchunks = FNN_MIN(g.nblocks, WINO_WGRAD_CHUNKS);
    while (nchunks > 1 && nchunks * gw_elems * (int64_t)sizeof(float) > WINO_WGRAD_PARTIAL_BYTES)
        nchunks--;
    size_t part_elems = (size_t)fnn_round_up(nchunks * gw_elems, 16);
    size_t te = thread_elems(&g) + (size_t)fnn_round_up(g.P * g.co * g.ci, 16);
    double work = (double)g.n * g.co * g.oh * g.ow * g.ci * g.P / (g.m * g.m);
    int nth = (int)FNN_MIN(fnn_threads_for(work), nchunks);
    float *ws = fnn_workspace(FNN_WS_OP, (part_elems + te * nth + 16) * sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    wgrad_job J = {.g = &g, .x = x, .gy = grad_y, .part = ws, .bufs = ws + part_elems,
                   .grad_w = grad_w, .te = te, .nchunks = nchunks, .gw_elems = gw_elems,
                   .err = FNN_OK};
    fnn_run(nchunks, nth, wgrad_chunk_task, &J);
    if (J.err != FNN_OK)
        return J.err;
    fnn_parallel_range(g.co * g.ci, FNN_COST_MEM * (double)nchunks * gw_elems, 1,
                       wgrad_sum_range, &J);
    return fnn_all_finite(grad_w, gw_elems) ? FNN_OK : FNN_ENONFINITE;
}


/* The algorithm "auto" picks, from the shape alone. Forward time / the direct method's
 * (batch 128, 2 threads, 2-core Zen 3 shared with 3-10 other jobs: run to run spread
 * +-30%; medians of interleaved rounds, python -m benchmarks.test_bench_winograd):
 *   64->64 16x16 p1:  F(4x4) 0.85, 0.86, 0.72, 1.10   F(2x2) 0.95, 0.96, 0.80, 1.10
 *   32->32 28x28 p1:  F(4x4) 0.82, 0.90, 1.27, 1.26   F(2x2) 0.94, 1.02, 1.42, 1.26
 *   32->64 13x13 p0:  F(4x4) 0.97, 1.06, 1.20, 0.70   F(2x2) 1.23, 1.15, 1.00, 0.73
 *   16->32 16x16 p1:  F(4x4) 1.16                    F(2x2) 1.18
 * (forward + backward, the weight gradient then direct: 64->64 0.86, 0.73, 0.97;
 * 32->32 0.90, 1.05, 1.03; 32->64 1.14, 1.20, 1.18). The transforms and the
 * channels-last copies cost a share per pixel and channel that only many channels each
 * way repay: >= 32 each way. The filters' transform is paid once per call: with fewer
 * than 64 output tiles in all (inference on a few small images) it outweighs the saving.
 * Forward, 1 thread, F(4x4) time / direct's: 64->64 16x16 p1 at 1, 4, 16 images 1.34,
 * 0.92, 1.02; 128->128 1.32, 0.90, 0.79; 64->64 32x32 (64 tiles an image) 0.93, 0.84,
 * 0.89. Measured again quietly (2026-11-30, 2 threads): F(4x4) 0.59-0.79x the direct
 * method's time on 32-channel layers (32->32 28x28 and 32x32, 32->64 16x16; forward and
 * input gradient): TinyVGG and VGG-CIFAR training steps 0.88x the time at 2 threads, 0.90x
 * at 1 (interleaved, 30 rounds), batch 2-8 inference 0.87-0.98x.
 * Outputs below 16x16 (tiles reaching past an 11x11 or 7x7 output) gain as much
 * (2026-12-01, 15 interleaved rounds, F(2x2) then F(4x4) time / direct's, 1 thread; 2):
 * 32->64 13x13 p0 at 8 images (72 4x4 tiles) 0.78, 0.71; 1.19, 0.97; at 32 0.92, 0.72;
 * 0.98, 0.71; at 128 1.04, 0.75; 1.00, 0.52. 64->128 7x7 p1 at 32 images 0.99, 0.79;
 * 0.98, 0.79. 32->32 14x14 p1 at 32 0.89, 0.87; 0.94, 0.95. 64->64 8x8 p1 at 32 0.72,
 * 0.66; 0.73, 0.69, but at 8 (32 tiles) 0.84, 1.03; 0.92, 1.60. The reference CNN's
 * step with F(4x4) for F(2x2) on conv2's forward (fused with its pool): 0.90-0.94x the
 * time (interleaved, 30 rounds, 1 and 2 threads). Its step is still checked against the
 * float64 reference (tests/test_training.py), which then takes F(4x4)'s output for
 * conv2's: the quantized data that keeps every other layer exact does not keep F(4x4)'s
 * filter transform (1/6, 1/24) exact, and a max-pool tie or a ReLU at exactly 0 would
 * decide on its rounding.
 *
 * Past WINO4_MAX_SUM channels summed per output, F(2x2) instead of F(4x4). Both errors grow
 * with the channels summed (as the direct method's), F(4x4)'s from ~10x the others': the
 * largest difference from PyTorch's float32 result in units of rtol 1e-4 + atol 1e-5 x
 * the largest element, forward then input gradient (batch 4-8, 16x16-32x32, weights of
 * unit output variance): F(4x4) 32 channels 0.38, 0.39; 64 0.57, 0.48; 128 0.92, 0.65;
 * 256 1.02, 0.99; 512 1.65, 1.50; F(2x2) and direct <= 0.19 throughout. Beyond 128 F(2x2)
 * costs little (1 thread, F(2x2) then F(4x4) time / direct's, forward, input gradient:
 * 16 images 256->256 16x16 0.60, 0.54; 0.66, 0.60; 8 images 32x32 0.53, 0.52; 0.65, 0.63). */
#define WINO4_MAX_SUM 128

/* Narrower layers: F(4x4) where its GEMMs sum k >= 16 channels into n >= 8, over images
 * of at least 16x16 and 1024 4x4 tiles in all (batch 21 of 28x28, 64 of 16x16).
 * Time / the direct method's, F(4x4), batch 128 (Zen 5, 15-round interleaved medians,
 * python -m benchmarks.test_bench_winograd --fwd, --dgrad; avx512 2 threads, 1; avx2 2):
 *   forward 16->16 28x28 p1 0.77, 0.70, 0.58; 16->8 0.75, 0.61, 0.63; 16->32 16x16
 *   0.63, 0.59, 0.50; input gradient 8->16 28x28 (k = its 16 outputs) 0.79, 0.79, 0.61;
 * against, forward, 8->16 28x28 (k = 8) 1.07, 1.02, 0.73; 16->16 7x7 1.20, 1.06, 0.95;
 * 16->16 14x14 0.95, 0.92, 0.74 at 128 but 1.15 at 32 (512 tiles); 16->16 28x28 at 16
 * images (784 tiles) 0.95, at 8 1.28 (2 threads): the filters' transform and the
 * blocks' fork and join are paid per call. With 32 or more channels each way the
 * measurements above hold (F(4x4) from 64 tiles). */
static int narrow_fits(int64_t k, int64_t n, int64_t h, int64_t w, int64_t tiles)
{
    return k >= 16 && n >= 8 && h >= 16 && w >= 16 && tiles >= 1024;
}

static int auto_rule(const fnn_conv2d_shape *s, int64_t oh, int64_t ow)
{
    int64_t tiles = tile_count(s->n, oh, ow, 4);
    if ((s->c_in >= 32 && s->c_out >= 32 && tiles >= 64) ||
        narrow_fits(s->c_in, s->c_out, oh, ow, tiles))
        return s->c_in <= WINO4_MAX_SUM ? FNN_CONV_WINOGRAD4 : FNN_CONV_WINOGRAD;
    return FNN_CONV_DIRECT;
}

static int winograd_fits(const fnn_conv2d_shape *s)
{
    return s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->dh == 1 && s->dw == 1;
}

int fnn_conv2d_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen)
{
    int64_t oh, ow;
    if (s == NULL || chosen == NULL || requested < 0 || requested >= FNN_CONV_COUNT ||
        fnn_conv2d_output_size(s, &oh, &ow) != FNN_OK)
        return FNN_EINVAL;
    int fits = winograd_fits(s);
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

/* The input gradient's "auto", from the shape alone: on >= 32 channels each way, the
 * forward's F(4x4) where it picks it, else (the forward's F(2x2) or direct) F(4x4) from
 * 256 4x4 tiles in all, F(2x2) from 64 2x2 tiles; F(2x2) for F(4x4) past WINO4_MAX_SUM
 * output channels, which it sums. On narrower layers, narrow_fits with the output
 * channels as the ones summed (8->16 28x28 0.79, 0.79, 0.61 of the direct method's time;
 * 16->8, summing 8, 1.03 with avx512: direct). Its error bound is that of F(4x4)'s forward
 * (tests/test_winograd.py). With its forward on F(2x2), the reference CNN's
 * gradients against PyTorch's (worst element / (rtol 1e-4 + atol 1e-5 x the largest),
 * 3 seeds, MNIST-like inputs) stay <= 0.11 at batch 4, 32 and 128 (<= 0.09 with F(2x2)).
 * Input-gradient time / the direct method's (batch 128, 2 threads, Zen 3, medians of 9
 * interleaved rounds, python -m benchmarks.test_bench_winograd --dgrad; F(2x2), then
 * F(4x4)): 32->64 13x13 p0 0.88, 0.64; 32->64 11x11 p1 0.81, 0.60; 32->32 14x14 p1
 * 0.83, 0.74; 64->128 7x7 p1 0.75, 0.50; batch 32, 32->64 13x13 p0 0.87, 0.77; few
 * tiles (1 thread, loaded host): 4 images 32->64 13x13 (64 4x4 tiles) 0.87, 1.09; 16
 * images 64->128 7x7 (64) 0.87, 1.05; 8 images 32->64 13x13 (128) 0.97, 0.91; 16 images
 * 32->32 14x14 (256) 1.02, 0.78. Below 32 channels F(2x2) gained nothing: 16->32 16x16
 * p1 0.98, 16->16 28x28 p1 1.11, 8->16 28x28 p1 0.96. The reference CNN's step with
 * F(4x4) for F(2x2) here: 0.946x the time on 2 threads, 0.956x on 1 (interleaved). */
static int auto_grad_input_rule(const fnn_conv2d_shape *s, int64_t oh, int64_t ow, int forward)
{
    (void)oh, (void)ow;  /* dx's tiles cover the input */
    int64_t tiles = tile_count(s->n, s->h, s->w, 4);
    int w4 = s->c_out <= WINO4_MAX_SUM ? FNN_CONV_WINOGRAD4 : FNN_CONV_WINOGRAD;
    if (s->c_in < 32 || s->c_out < 32)  /* its GEMMs sum the c_out channels into c_in */
        return narrow_fits(s->c_out, s->c_in, s->h, s->w, tiles) ? w4 : FNN_CONV_DIRECT;
    if (forward == FNN_CONV_WINOGRAD4)
        return w4;
    if (forward == FNN_CONV_DIRECT && tile_count(s->n, s->h, s->w, 2) < 64)
        return FNN_CONV_DIRECT;
    return tiles >= 256 ? w4 : FNN_CONV_WINOGRAD;
}

/* The weight gradient's "auto", from the shape alone: F(4x4) with >= 4 input channels,
 * >= 8 output channels and >= 16 4x4 tiles in all, else direct. Zen 5 (avx512 2 threads,
 * 1; avx2 2; batch 128, 2026-12-04): 8->8 28x28 p1 0.25, 0.24, 0.46; 4->16 0.44, 0.41,
 * 0.54; 16->8 0.42, 0.40, 0.54; at 8 images 0.39, 0.92 (8->16), 0.83 (16->8); but 3->16
 * 32x32 1.09, 1.10, 0.64. On Zen 3, when the rule was >= 16 each way, weight-gradient
 * time / the direct method's (batch 128, medians of 11 interleaved rounds on 2 threads
 * and 7 on 1, 2026-12-01; python -m benchmarks.test_bench_winograd --wgrad), F(4x4) then F(2x2):
 *   cnn conv2 32->64 13x13 p0: 2 threads 0.74, 0.92; 1 thread 0.77, 0.96
 *   tinyvgg 32->32 28x28 p1:   0.48, 0.66; 0.54, 0.70
 *   vgg-cifar 64->64 16x16 p1: 0.52, 0.70; 0.48, 0.68
 * and F(4x4) on 2 threads, 1: 64->64 32x32 0.42, 0.40; 128->128 8x8 0.60, 0.54;
 *   64->64 8x8 0.53, 0.50; 16->32 16x16 0.72, 0.62; 16->16 28x28 0.60, 0.64;
 *   32->64 13x13 p1 0.76, 0.70; 64->128 7x7 p1 0.74, 0.68; 32->32 14x14 p1 0.70, 0.67;
 *   but 8->16 28x28 p1 0.97, 1.00; 3->16 32x32 p1 1.56, 1.65; 1->32 28x28 p0 3.9, 3.7.
 * F(4x4) beat F(2x2) everywhere. Tiles that reach past the output (11x11 in 12x12, 7x7
 * in 8x8) no longer keep it out, as they did when its layout copies cost more (11-29:
 * 1.07-1.52 on the CNN's conv2). Its error bound is ~11x the direct method's for many
 * tiles (tests/test_winograd.py); the weights it feeds decide no max-pool tie in the
 * same step. Against PyTorch's gradients (the reference CNN, worst element / (rtol 1e-4
 * + atol 1e-5)): batch 4 0.92 as with every layer direct; batch 32 2.5 (direct 2.1),
 * batch 128 3.2 (direct 2.6): long sums differ from PyTorch's by more either way. Few
 * images (F(4x4), 21 rounds, 11-29): 64->64 16x16 p1 at 1, 4, 16 images 0.50, 0.70,
 * 0.59; 32->32 28x28 p1 0.32, 0.42, 0.73; 128->128 8x8 p1 (4 tiles an image) 1.05, 0.80,
 * 0.56. */
static int auto_grad_weight_rule(const fnn_conv2d_shape *s, int64_t oh, int64_t ow, int forward)
{
    (void)forward;
    return s->c_in >= 4 && s->c_out >= 8 && tile_count(s->n, oh, ow, 4) >= 16
               ? FNN_CONV_WINOGRAD4
               : FNN_CONV_DIRECT;
}

/* A gradient's algorithm: the forward's, except that "auto" on a shape Winograd runs
 * takes the gradient's own rule, given the forward's choice. */
static int grad_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen,
                          int (*rule)(const fnn_conv2d_shape *, int64_t, int64_t, int))
{
    int64_t oh, ow;
    if (fnn_conv2d_algorithm(s, requested, chosen) != FNN_OK)
        return FNN_EINVAL;
    if (requested == FNN_CONV_AUTO && winograd_fits(s) && s->n > 0) {
        fnn_conv2d_output_size(s, &oh, &ow);
        *chosen = rule(s, oh, ow, *chosen);
    }
    return FNN_OK;
}

int fnn_conv2d_grad_input_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen)
{
    return grad_algorithm(s, requested, chosen, auto_grad_input_rule);
}

int fnn_conv2d_grad_weight_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen)
{
    return grad_algorithm(s, requested, chosen, auto_grad_weight_rule);
}
