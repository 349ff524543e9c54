/* conv.c: linear and conv2d, forward and backward, and conv2d fused with a max pool.
 *
 * linear is three GEMM calls (packing absorbs every transpose) and a column sum.
 * conv2d works one image at a time, images split over threads:
 *   forward        y_n = W cols_n + b. Few input channels: on the ISA's conv kernel
 *                  (simd/conv_kernel.h), im2col writing cols_n straight into its pixel
 *                  panels. Many: y_n^T on the GEMM tile, reading im2col^T in place from
 *                  a channels-last copy of the image.
 *   grad weight    g_n cols_n^T, summed per fixed chunk of images into that chunk's
 *                  partial, partials added in chunk order: the chunks never depend on
 *                  the thread count, so neither do the bits. A GEMM whose B packing
 *                  gathers cols_n^T from a channels-last copy of the image, or for a
 *                  short im2col (few input channels) the conv kernel's dot products,
 *                  in lanes over the chunk's images, added up at its end.
 *   grad input     dcols_n = g_n^T W on the GEMM, then col2im onto the channels-last
 *                  copy, added in whole runs, and back to CHW.
 * The backward's two GEMMs take images of small outputs a few at a time (their g_n side
 * by side), so that a 6x6 output still gives them a K, or rows, of ~256.
 *   grad bias      per-channel sums, in the same chunks.
 * With a max pool after it (fnn_conv2d_max_pool2d), each image's conv output is pooled
 * from a per-thread buffer, and the backward unpools each image's gradient into one;
 * a short im2col under 2x2 windows that tile its output is pooled in registers instead
 * (the conv + pool pass, pool_pass).
 * The Winograd algorithms (winograd.c) take over the forward and the input gradient of
 * the shapes fnn_conv2d_algorithm gives them, after the checks here. */
#include <math.h>

#include "internal.h"

/* Images per call whose weight-gradient partials are kept apart (then summed in order). */
#define CONV_CHUNKS 16
/* im2col rows up to which conv2d works on the conv kernel (im2col panels, dot products
 * for the weight gradient) rather than on the GEMM tile from a channels-last copy, whose
 * runs would be too short. */
#define CONV_SHORT_K 32
/* Partials beyond this many bytes use fewer chunks (still independent of threads). */
#define CONV_PARTIAL_BYTES ((int64_t)64 << 20)
/* The backward's GEMMs take images of small outputs together up to this K (weight
 * gradient) and rows (input gradient), within this many bytes of buffers per thread.
 * conv2d_backward time, grouped / one image per GEMM (batch 128, Zen 3, 31 interleaved
 * rounds, 1 thread; 2): 32->64 3x3 stride 2 on 13x13 (6x6 out) 0.89, 0.85; on 14x14 p1
 * (7x7) 0.90, 0.88; LeNet's 6->16 5x5 (10x10) 0.99, 0.90; 16->32 stride 2 28x28 (14x14)
 * 1.00, 0.98, so from 128 pixels up images go one at a time. */
#define CONV_GROUP_K 256
#define CONV_GROUP_BYTES ((int64_t)4 << 20)

static int mul_ok(int64_t *r, int64_t a, int64_t b)
{
    return !__builtin_mul_overflow(a, b, r) && *r <= (INT64_MAX >> 4);
}

/* ---- linear ---- */

static int linear_sizes_ok(int64_t n, int64_t in_f, int64_t out_f)
{
    int64_t t;
    return n >= 0 && in_f >= 0 && out_f >= 0 && mul_ok(&t, n, in_f) && mul_ok(&t, n, out_f) &&
           mul_ok(&t, out_f, in_f);
}

int fnn_linear_forward(int64_t n, int64_t in_f, int64_t out_f, const float *x, const float *w,
                       const float *bias, float *y)
{
    if (!linear_sizes_ok(n, in_f, out_f))
        return FNN_EINVAL;
    if (n == 0 || out_f == 0)
        return FNN_OK;
    if (y == NULL || (in_f > 0 && (x == NULL || w == NULL)))
        return FNN_EINVAL;
    if (bias != NULL)  /* folded into the GEMM as beta * C */
        for (int64_t i = 0; i < n; i++)
            memcpy(y + i * out_f, bias, (size_t)out_f * sizeof(float));
    return fnn_sgemm_strided(n, out_f, in_f, 1.0f, x, in_f, 1, w, 1, in_f,
                             bias != NULL ? 1.0f : 0.0f, y, out_f);
}

int fnn_linear_backward(int64_t n, int64_t in_f, int64_t out_f, const float *grad_y,
                        const float *x, const float *w, float *grad_x, float *grad_w,
                        float *grad_b)
{
    if (!linear_sizes_ok(n, in_f, out_f))
        return FNN_EINVAL;
    if ((n > 0 && out_f > 0 && grad_y == NULL) || (grad_x && in_f > 0 && w == NULL) ||
        (grad_w && n > 0 && x == NULL))
        return FNN_EINVAL;
    int st = FNN_OK;
    if (grad_x != NULL)
        st = fnn_sgemm_strided(n, in_f, out_f, 1.0f, grad_y, out_f, 1, w, in_f, 1, 0.0f,
                               grad_x, in_f);
    if (st == FNN_OK && grad_w != NULL)
        st = fnn_sgemm_strided(out_f, in_f, n, 1.0f, grad_y, 1, out_f, x, in_f, 1, 0.0f,
                               grad_w, in_f);
    if (st == FNN_OK && grad_b != NULL) {  /* rows in order; vectorised across columns */
        memset(grad_b, 0, (size_t)out_f * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < out_f; j++)
                grad_b[j] += grad_y[i * out_f + j];
    }
    return st;
}

/* ---- conv2d ---- */

typedef struct {
    fnn_conv2d_shape s;
    int64_t oh, ow, ohw;  /* output plane */
    int64_t k;            /* c_in * kh * kw: rows of cols, columns of W */
    int64_t ldcols;       /* row stride of the im2col buffer */
    int64_t x_img, y_img; /* floats per input / output image */
    /* the tiles of the image's product y^T = im2col^T W^T (ohw x c_out x k, the GEMM for
     * long k) and of its conv kernel (c_out x ohw, for short k) */
    const fnn_gemm_kernels *gk;
    const fnn_conv_kernels *ck;
} conv_dims;

/* The active ISA's wide conv tile where it fills its lanes (fnn_wide_slack): pixels of
 * the conv output, or pooled ones for the conv + pool pass. */
static const fnn_conv_kernels *conv_tile(int64_t pixels, int pooled)
{
    const fnn_conv_kernels *c = fnn_active->conv, *w = fnn_active->conv_wide;
    if (w != NULL && fnn_round_up(pixels, pooled ? w->lanes : w->nr) <=
                         fnn_wide_slack() * fnn_round_up(pixels, pooled ? c->lanes : c->nr))
        return w;
    return c;
}

static int conv_dims_init(const fnn_conv2d_shape *s, conv_dims *d)
{
    int64_t t, span_h, span_w;
    if (s->n < 0 || s->c_in < 0 || s->h < 0 || s->w < 0 || s->c_out < 0 || s->kh < 1 ||
        s->kw < 1 || s->sh < 1 || s->sw < 1 || s->ph < 0 || s->pw < 0 || s->dh < 1 ||
        s->dw < 1 || !mul_ok(&span_h, s->dh, s->kh - 1) || !mul_ok(&span_w, s->dw, s->kw - 1) ||
        s->h > (INT64_MAX >> 4) || s->w > (INT64_MAX >> 4) || s->ph > (INT64_MAX >> 4) ||
        s->pw > (INT64_MAX >> 4))
        return FNN_EINVAL;
    int64_t num_h = s->h + 2 * s->ph - span_h - 1, num_w = s->w + 2 * s->pw - span_w - 1;
    if (num_h < 0 || num_w < 0)
        return FNN_EINVAL;  /* kernel larger than the padded input */
    d->s = *s;
    d->oh = num_h / s->sh + 1;
    d->ow = num_w / s->sw + 1;
    d->ldcols = 0;
    if (!mul_ok(&d->ohw, d->oh, d->ow) || !mul_ok(&t, s->c_in, s->kh) ||
        !mul_ok(&d->k, t, s->kw) || !mul_ok(&t, s->c_out, d->k) ||
        !mul_ok(&t, s->c_in, s->h) || !mul_ok(&d->x_img, t, s->w) ||
        !mul_ok(&t, s->n, d->x_img) || !mul_ok(&d->y_img, s->c_out, d->ohw) ||
        !mul_ok(&t, s->n, d->y_img) || !mul_ok(&t, d->k, d->ohw + 64))
        return FNN_EINVAL;
    d->gk = fnn_gemm_tile(d->ohw, s->c_out);
    d->ck = conv_tile(d->ohw, 0);
    return FNN_OK;
}

int fnn_conv2d_output_size(const fnn_conv2d_shape *s, int64_t *oh, int64_t *ow)
{
    conv_dims d;
    if (s == NULL || conv_dims_init(s, &d) != FNN_OK)
        return FNN_EINVAL;
    *oh = d.oh;
    *ow = d.ow;
    return FNN_OK;
}

/* Output columns [*lo, *hi) whose input column ow*stride + off lies inside [0, size). */
static void valid_range(int64_t off, int64_t stride, int64_t size, int64_t n_out,
                        int64_t *lo, int64_t *hi)
{
    int64_t h = size - 1 - off < 0 ? 0 : (size - 1 - off) / stride + 1;
    int64_t l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    *hi = FNN_MIN(h, n_out);
    *lo = FNN_MIN(l, *hi);
}

/* Writes a row of im2col in pixel order into runs of `width` floats, `step` apart
 * (the panels of the conv kernel, or one long run for a row-major matrix). */
typedef struct {
    float *dst;
    int64_t used, width, step;
} run_writer;

/* The next n values: src[t*stride], or zeros if src is NULL. */
static inline void put(run_writer *wr, const float *src, int64_t stride, int64_t n)
{
    while (n > 0) {
        int64_t len = FNN_MIN(n, wr->width - wr->used);
        float *d = wr->dst + wr->used;
        if (src == NULL)
            for (int64_t t = 0; t < len; t++)
                d[t] = 0.0f;
        else if (stride == 1)
            for (int64_t t = 0; t < len; t++)
                d[t] = src[t];
        else
            for (int64_t t = 0; t < len; t++)
                d[t] = src[t * stride];
        if (src != NULL)
            src += len * stride;
        n -= len;
        wr->used += len;
        if (wr->used == wr->width) {
            wr->used = 0;
            wr->dst += wr->step;
        }
    }
}

/* im2col of one image: row (c*kh + i)*kw + j, pixel oh*OW + ow holds
 * x[c][oh*sh - ph + i*dh][ow*sw - pw + j*dw] (0 outside the image); rows are padded
 * with zeros to `padded` pixels. Row p starts at cols + p*row_step and is written in
 * runs of `width`, `run_step` apart. */
static void im2col(const conv_dims *d, const float *x, float *cols, int64_t row_step,
                   int64_t width, int64_t run_step, int64_t padded)
{
    const fnn_conv2d_shape *s = &d->s;
    for (int64_t c = 0, p = 0; c < s->c_in; c++)
        for (int64_t i = 0; i < s->kh; i++)
            for (int64_t j = 0; j < s->kw; j++, p++) {
                run_writer wr = {cols + p * row_step, 0, width, run_step};
                int64_t off = j * s->dw - s->pw, lo, hi;
                valid_range(off, s->sw, s->w, d->ow, &lo, &hi);
                for (int64_t oh = 0; oh < d->oh; oh++) {
                    int64_t ih = oh * s->sh - s->ph + i * s->dh;
                    if (ih < 0 || ih >= s->h) {
                        put(&wr, NULL, 0, d->ow);
                        continue;
                    }
                    const float *src = x + (c * s->h + ih) * s->w + off;
                    put(&wr, NULL, 0, lo);
                    put(&wr, src + lo * s->sw, s->sw, hi - lo);
                    put(&wr, NULL, 0, d->ow - hi);
                }
                put(&wr, NULL, 0, padded - d->ohw);
            }
}

/* That pass's im2col, in pool order (conv_kernel.h): row 4p + (2di + dj) holds im2col
 * row p at conv pixels (2a + di, 2b + dj) for the pooled pixels (a, b), ld apart. Those
 * sample the zero-padded image every two strides, so each such row is, per pooled row,
 * a run of one of the image's py x px = 2sh x 2sw polyphase components (ch x cw each):
 * the components are made first, then every row is copied in runs. */
typedef struct {
    int64_t py, px, ch, cw, ld;  /* period (rows, columns), component, row stride */
    /* workspace floats: the components, the rows; the backward's gradient in pool order
     * and its sums' lanes */
    size_t phase_elems, cols_elems, grad_elems;
} pool_order;

/* A short im2col followed by a 2x2 max pool whose windows tile the whole output (so no
 * pixel's gradient is left out) runs the conv + pool pass (conv_kernel.h): then d takes
 * its tile and o its plan, and 1 is returned. */
static int pool_pass(conv_dims *d, const fnn_pool2d *pool, pool_order *o)
{
    const fnn_conv2d_shape *s = &d->s;
    if (pool == NULL || d->k > CONV_SHORT_K || !fnn_pool_is_2x2(pool) ||
        2 * pool->oh != d->oh || 2 * pool->ow != d->ow)
        return 0;
    d->ck = conv_tile(pool->oh * pool->ow, 1);
    o->py = 2 * s->sh;
    o->px = 2 * s->sw;
    o->ch = (s->h + 2 * s->ph + o->py - 1) / o->py;
    o->cw = (s->w + 2 * s->pw + o->px - 1) / o->px;
    o->ld = fnn_round_up(pool->oh * pool->ow, d->ck->lanes);
    o->phase_elems = (size_t)fnn_round_up(s->c_in * o->py * o->px * o->ch * o->cw, 16);
    o->cols_elems = (size_t)fnn_round_up(4 * d->k * o->ld, 16);
    o->grad_elems =
        (size_t)fnn_round_up(s->c_out * (4 * o->ld + (d->k + 1) * d->ck->lanes), 16);
    return 1;
}

static void im2col_pooled(const conv_dims *d, const pool_order *o, const fnn_pool2d *pool,
                          const float *x, float *phase, float *cols)
{
    const fnn_conv2d_shape *s = &d->s;
    int64_t comp = o->ch * o->cw, pooled = pool->oh * pool->ow;
    memset(phase, 0, o->phase_elems * sizeof(float));  /* the padding */
    for (int64_t c = 0; c < s->c_in; c++)
        for (int64_t ih = 0; ih < s->h; ih++) {
            int64_t r = ih + s->ph;
            const float *src = x + (c * s->h + ih) * s->w;
            for (int64_t rv = 0; rv < o->px; rv++) {
                float *dst = phase + ((c * o->py + r % o->py) * o->px + rv) * comp +
                             r / o->py * o->cw;
                int64_t q = rv < s->pw ? rv + (s->pw - rv + o->px - 1) / o->px * o->px : rv;
                for (int64_t t = q / o->px; q < s->w + s->pw; q += o->px, t++)
                    dst[t] = src[q - s->pw];
            }
        }
    /* Where the stride is a whole number m of dilations, tap i's rows at di = 0 are tap
     * (i - m)'s at di = 1 (and so for columns): written already, copied whole. */
    int64_t mh = s->sh % s->dh == 0 ? s->sh / s->dh : s->kh;
    int64_t mw = s->sw % s->dw == 0 ? s->sw / s->dw : s->kw;
    for (int64_t c = 0, p = 0; c < s->c_in; c++)
        for (int64_t i = 0; i < s->kh; i++)
            for (int64_t j = 0; j < s->kw; j++, p++)
                for (int64_t at = 0; at < 4; at++) {
                    int64_t di = at >> 1, dj = at & 1, same = -1;
                    float *dst = cols + (4 * p + at) * o->ld;
                    if (di == 0 && i >= mh)
                        same = 4 * (p - mh * s->kw) + 2 + dj;
                    else if (dj == 0 && j >= mw)
                        same = 4 * (p - mw) + 2 * di + 1;
                    if (same >= 0) {
                        memcpy(dst, cols + same * o->ld, (size_t)o->ld * sizeof(float));
                        continue;
                    }
                    int64_t u = di * s->sh + i * s->dh, v = dj * s->sw + j * s->dw;
                    const float *src = phase +
                                       ((c * o->py + u % o->py) * o->px + v % o->px) * comp +
                                       u / o->py * o->cw + v / o->px;
                    for (int64_t a = 0; a < pool->oh; a++, src += o->cw)
                        memcpy(dst + a * pool->ow, src, (size_t)pool->ow * sizeof(float));
                    memset(dst + pooled, 0, (size_t)(o->ld - pooled) * sizeof(float));
                }
}

/* The m x k matrix w[i*rs + p*cs] into FNN_CONV_MR-row panels, element [p][r], rows
 * past m zero: the conv kernel's A operand. */
static void pack_w(int64_t m, int64_t k, const float *w, int64_t rs, int64_t cs, float *wp)
{
    for (int64_t i0 = 0; i0 < m; i0 += FNN_CONV_MR, wp += FNN_CONV_MR * k)
        for (int64_t p = 0; p < k; p++)
            for (int r = 0; r < FNN_CONV_MR; r++)
                wp[p * FNN_CONV_MR + r] = i0 + r < m ? w[(i0 + r) * rs + p * cs] : 0.0f;
}

static size_t packed_w_elems(int64_t m, int64_t k)
{
    return (size_t)fnn_round_up(fnn_round_up(m, FNN_CONV_MR) * k, 16);
}

/* Sum in 16 fixed lanes (vectorisable without reassociation), then the lanes in order. */
static float row_sum(const float *x, int64_t n)
{
    float lane[16] = {0}, s = 0.0f;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            lane[l] += x[i + l];
    for (int l = 0; l < 16; l++)
        s += lane[l];
    for (; i < n; i++)
        s += x[i];
    return s;
}

static void set_error(int *err, int st)
{
    if (st != FNN_OK)
        fnn_store_status(err, st);
}

/* With many input channels, conv2d works on each image in a zero-padded channels-last
 * (HWC) copy, where im2col^T row p = (oh, ow), column q = (i, j, c) is
 * img[roff[p] + coff[q]] and a kernel row's (j, c) columns are one contiguous run when
 * dw = 1. The forward GEMM reads its A operand there in place (macro_rows), the weight
 * gradient's packs its B from there (fnn_operand_b), and col2im adds whole runs.
 * Columns are in (i, j, c) order; W and its gradient are permuted from and to (c, i, j). */
typedef struct {
    int64_t wpad, elems;  /* padded row (pixels) and padded image (floats) */
    int64_t run, nseg;    /* columns per contiguous run of coff, and runs (k / run) */
    int64_t *roff, *coff; /* im2col^T[p][q] = img[roff[p] + coff[q]] */
    int64_t *soff;        /* coff at the start of each run */
    int64_t *wsrc, *wrow; /* W^T[q][o] = w[wrow[o] + wsrc[q]]: column q of the (i, j, c)
                           * order is PyTorch's (c, i, j) column wsrc[q] */
} conv_hwc;

static int hwc_plan(const conv_dims *d, conv_hwc *h)
{
    const fnn_conv2d_shape *s = &d->s;
    int64_t t;
    h->wpad = s->w + 2 * s->pw;
    h->run = s->dw == 1 ? s->kw * s->c_in : s->c_in;
    h->nseg = h->run ? d->k / h->run : 0;  /* no input channels: no runs */
    return mul_ok(&t, s->h + 2 * s->ph, h->wpad) && mul_ok(&h->elems, t, s->c_in);
}

/* Floats of workspace that hwc_tables needs (int64 tables), with roff over `images`. */
static size_t hwc_table_elems(const conv_dims *d, const conv_hwc *h, int64_t images)
{
    return (size_t)fnn_round_up(2 * (images * d->ohw + 2 * d->k + h->nseg + d->s.c_out), 16);
}

/* Lays the tables out at mem (hwc_table_elems floats) and fills them; roff goes on over
 * `images` HWC copies laid end to end (rows j*ohw + p: copy j's pixel p). */
static void hwc_tables(const conv_dims *d, conv_hwc *h, int64_t images, float *mem)
{
    const fnn_conv2d_shape *s = &d->s;
    h->roff = (int64_t *)mem;
    h->coff = h->roff + images * d->ohw;
    h->soff = h->coff + d->k;
    h->wsrc = h->soff + h->nseg;
    h->wrow = h->wsrc + d->k;
    for (int64_t oh = 0, p = 0; oh < d->oh; oh++)
        for (int64_t ow = 0; ow < d->ow; ow++, p++)
            h->roff[p] = (oh * s->sh * h->wpad + ow * s->sw) * s->c_in;
    for (int64_t p = d->ohw; p < images * d->ohw; p++)
        h->roff[p] = h->roff[p - d->ohw] + h->elems;
    for (int64_t i = 0, q = 0; i < s->kh; i++)
        for (int64_t j = 0; j < s->kw; j++)
            for (int64_t c = 0; c < s->c_in; c++, q++)
                h->coff[q] = (i * s->dh * h->wpad + j * s->dw) * s->c_in + c;
    for (int64_t c = 0, q = 0; c < s->c_in; c++)
        for (int64_t ij = 0; ij < s->kh * s->kw; ij++, q++)
            h->wsrc[ij * s->c_in + c] = q;
    for (int64_t o = 0; o < s->c_out; o++)
        h->wrow[o] = o * d->k;
    for (int64_t sg = 0; sg < h->nseg; sg++)
        h->soff[sg] = h->coff[sg * h->run];
}

/* Pixel (ih, iw) of an image is pixel (ih + ph, iw + pw) of its padded HWC copy:
 * copies the CHW image into the copy's interior, or (to_chw) the interior out. */
static void hwc_copy(const conv_dims *d, const conv_hwc *h, const float *src, float *dst,
                     int to_chw)
{
    const fnn_conv2d_shape *s = &d->s;
    int64_t C = s->c_in, interior = (s->ph * h->wpad + s->pw) * C;
    /* a row at a time, or all rows as one run when the copy pads no columns */
    int64_t rows = s->pw == 0 ? 1 : s->h, cols = s->pw == 0 ? s->h * s->w : s->w;
    fnn_active->gemm->planes_rows(to_chw, C, rows, cols, to_chw ? src + interior : src,
                                  to_chw ? dst : dst + interior, s->h * s->w, s->w,
                                  h->wpad * C, C);
}

/* gp = col2im of dcols (OHW x k, (i, j, c) columns): every element is scattered back
 * onto the padded HWC image, in (p, q) order. */
static void col2im_hwc(const conv_dims *d, const conv_hwc *h, const float *restrict dcols,
                       float *restrict gp)
{
    memset(gp, 0, (size_t)h->elems * sizeof(float));
    for (int64_t p = 0; p < d->ohw; p++)
        for (int64_t q = 0; q < d->k; q += h->run) {
            float *restrict dst = gp + h->roff[p] + h->coff[q];
            const float *restrict src = dcols + p * d->k + q;
            for (int64_t t = 0; t < h->run; t++)
                dst[t] += src[t];
        }
}

/* pool, if set, must pool the planes of the conv output, and its windows have byte
 * positions if `positions` (see fnn_conv2d_max_pool2d). */
static int pool_fits(const conv_dims *d, const fnn_pool2d *pool, int positions)
{
    return pool == NULL || (fnn_pool_valid(pool) && pool->planes == d->s.n * d->s.c_out &&
                            pool->h == d->oh && pool->w == d->ow &&
                            (!positions || pool->kw <= FNN_POOL_POSITIONS / pool->kh));
}

/* W (c_out x k) with its columns in (i, j, c) order, into wt: written in order, read
 * through wsrc (scattered stores, 128 bytes apart at 32 channels, took 4x as long). */
static void permute_w(const conv_dims *d, const conv_hwc *h, const float *w, float *wt)
{
    for (int64_t o = 0; o < d->s.c_out; o++)
        for (int64_t q = 0; q < d->k; q++)
            wt[o * d->k + q] = w[o * d->k + h->wsrc[q]];
}

/* Floats of one chunk's partial of the weight and bias gradients, and the chunks of a
 * batch (at most CONV_CHUNKS; fewer where the partials would pass CONV_PARTIAL_BYTES),
 * from the shape alone. */
static int64_t partial_elems(const conv_dims *d)
{
    return fnn_round_up(d->s.c_out * d->k + d->s.c_out, 16);
}

static int64_t partial_chunks(const conv_dims *d)
{
    int64_t nchunks = FNN_MIN(d->s.n, CONV_CHUNKS);
    while (nchunks > 1 && nchunks * partial_elems(d) * (int64_t)sizeof(float) > CONV_PARTIAL_BYTES)
        nchunks--;
    return nchunks;
}

/* ---- NHWC operands (x_hwc, y_hwc) on the direct method: NCHW copies ---- */

typedef struct {
    int64_t C, hw;
    const float *src;
    float *dst;
    int to_hwc;
} relayout_job;

static void relayout_task(void *ctx, int64_t img, int slot)
{
    const relayout_job *J = ctx;
    const float *src = J->src + img * J->C * J->hw;
    float *dst = J->dst + img * J->C * J->hw;
    (void)slot;
    if (J->to_hwc)
        fnn_active->gemm->transpose(J->C, J->hw, src, J->hw, NULL, dst, J->C);
    else
        fnn_active->gemm->transpose(J->hw, J->C, src, J->C, NULL, dst, J->hw);
}

/* n images of C planes of hw pixels from NCHW to NHWC (to_hwc), or back. */
static void relayout(int64_t n, int64_t C, int64_t hw, const float *src, float *dst, int to_hwc)
{
    relayout_job J = {.C = C, .hw = hw, .src = src, .dst = dst, .to_hwc = to_hwc};
    if (n * C * hw > 0)
        fnn_run(n, fnn_threads_for(FNN_COST_MEM * (double)(n * C * hw)), relayout_task, &J);
}

/* The same for window positions (bytes). */
static void relayout_bytes(int64_t n, int64_t C, int64_t hw, const uint8_t *src, uint8_t *dst,
                           int to_hwc)
{
    for (int64_t img = 0; img < n; img++, src += C * hw, dst += C * hw)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < hw; p++) {
                if (to_hwc)
                    dst[p * C + c] = src[c * hw + p];
                else
                    dst[c * hw + p] = src[p * C + c];
            }
}

static int conv_forward(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *x,
                        const float *w, const float *bias, float *y, uint8_t *pos, int algo,
                        int act);

/* The forward on NCHW copies of NHWC operands: x to planes, y (and pos) back. */
static int forward_converted(const fnn_conv2d_shape *s, const conv_dims *d,
                             const fnn_pool2d *pool, const float *x, const float *w,
                             const float *bias, float *y, uint8_t *pos, int algo, int act)
{
    int64_t plane = pool ? pool->oh * pool->ow : d->ohw, y_elems = s->n * s->c_out * plane;
    size_t xe = s->x_hwc ? (size_t)fnn_round_up(s->n * d->x_img, 16) : 0;
    size_t ye = s->y_hwc ? (size_t)fnn_round_up(y_elems, 16) : 0;
    size_t pe = s->y_hwc && pos ? (size_t)fnn_round_up(y_elems, 64) / 4 : 0;
    float *ws = fnn_workspace(FNN_WS_LAYOUT, (xe + ye + pe + 16) * sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    fnn_conv2d_shape t = *s;
    t.x_hwc = t.y_hwc = 0;
    if (s->x_hwc)
        relayout(s->n, s->c_in, s->h * s->w, x, ws, 0);
    float *yc = s->y_hwc ? ws + xe : y;
    uint8_t *pc = s->y_hwc && pos ? (uint8_t *)(ws + xe + ye) : pos;
    int st = conv_forward(&t, pool, s->x_hwc ? ws : x, w, bias, yc, pc, algo, act);
    if (st == FNN_OK && s->y_hwc) {
        relayout(s->n, s->c_out, plane, yc, y, 1);
        if (pos)
            relayout_bytes(s->n, s->c_out, plane, pc, pos, 1);
    }
    return st;
}

typedef struct {
    const conv_dims *d;
    const conv_hwc *h;
    const fnn_pool2d *pool;
    const float *x, *bias;
    float *y, *ws;  /* ws: packed W, then the tables, then each slot's buffers */
    uint8_t *pos;
    size_t shared, thread_elems, conv_out;
    int64_t padded;
    int64_t parts, align;  /* output channels of an image in parts of whole `align` panels */
    const pool_order *order;  /* the conv + pool pass, or NULL */
    int hwc, relu;
} conv_fwd_job;

/* Task t: part t % parts of the output channels of image t / parts. A channel's output
 * does not depend on the part or the slot that computes it. */
static void conv_fwd_task(void *ctx, int64_t t, int slot)
{
    const conv_fwd_job *J = ctx;
    const conv_dims *d = J->d;
    const conv_hwc *h = J->h;
    const fnn_conv2d_shape *s = &d->s;
    const fnn_conv_kernels *ck = d->ck;
    int64_t img = t / J->parts, panels = (s->c_out + J->align - 1) / J->align, o0, o1;
    fnn_split(panels, (int)(t % J->parts), (int)J->parts, &o0, &o1);
    o0 *= J->align;
    o1 = FNN_MIN(o1 * J->align, s->c_out);
    if (o1 <= o0)
        return;
    float *conv_y = J->ws + J->shared + J->thread_elems * slot, *buf = conv_y + J->conv_out;
    float *yt = buf + fnn_round_up(h->elems, 16);
    const float *xi = J->x + img * d->x_img;
    if (J->order) {  /* conv, pool and relu in one pass */
        const pool_order *o = J->order;
        int64_t plane = J->pool->oh * J->pool->ow, at = (img * s->c_out + o0) * plane;
        im2col_pooled(d, o, J->pool, xi, buf + o->cols_elems, buf);
        ck->pool_macro(o1 - o0, plane, d->k, J->ws + o0 * d->k, buf, o->ld,
                       J->bias ? J->bias + o0 : NULL, J->relu, J->y + at, plane,
                       J->pos ? J->pos + at : NULL);
        return;
    }
    float *yi = J->pool ? conv_y : J->y + img * d->y_img;
    if (J->hwc) {
        hwc_copy(d, h, xi, buf, 0);
        d->gk->macro_rows(d->ohw, o1 - o0, buf, h->roff, h->nseg, h->soff, h->run,
                          J->ws + o0 * d->k, yt + o0, s->c_out);
        /* the ISA's layout copy (8x8 register blocks), whichever tile computed yt */
        fnn_active->gemm->transpose(d->ohw, o1 - o0, yt + o0, s->c_out,
                                    J->bias ? J->bias + o0 : NULL, yi + o0 * d->ohw, d->ohw);
    } else {
        im2col(d, xi, buf, ck->nr, ck->nr, d->k * ck->nr, J->padded);
        ck->macro(o1 - o0, d->ohw, d->k, J->ws + o0 * d->k, buf, J->bias ? J->bias + o0 : NULL,
                  yi + o0 * d->ohw, d->ohw);
    }
    float *done = yi + o0 * d->ohw;  /* the task's output channels, in cache */
    int64_t elems = (o1 - o0) * d->ohw;
    if (J->pool) {
        int64_t plane = J->pool->oh * J->pool->ow, at = img * s->c_out * plane + o0 * plane;
        fnn_max_pool_planes(J->pool, o1 - o0, done, J->y + at, NULL, J->pos ? J->pos + at : NULL);
        done = J->y + at;
        elems = (o1 - o0) * plane;
    }
    if (J->relu)
        fnn_active->ew->relu(elems, done, done);
}

/* Forward, optionally max-pooled (pool set: y is pooled, pos its argmax or NULL).
 * Few input channels: im2col into the conv kernel's panels. Many: y_n^T = im2col_n^T W^T
 * on the GEMM tile, A read in place from the HWC copy, then transposed out. */
static int conv_forward(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *x,
                        const float *w, const float *bias, float *y, uint8_t *pos, int algo,
                        int act)
{
    conv_dims d;
    conv_hwc h;
    if (s == NULL || conv_dims_init(s, &d) != FNN_OK || !hwc_plan(&d, &h) ||
        !pool_fits(&d, pool, pos != NULL) || fnn_conv2d_algorithm(s, algo, &algo) != FNN_OK ||
        act < 0 || act >= FNN_ACT_COUNT)
        return FNN_EINVAL;
    if (s->n == 0 || s->c_out == 0)
        return FNN_OK;
    if (y == NULL || (x == NULL && d.x_img > 0) || (w == NULL && d.k > 0))
        return FNN_EINVAL;
    /* Winograd reads and writes NHWC as it is, but for a pool it takes after the blocks */
    if (algo != FNN_CONV_DIRECT && !(s->y_hwc && pool && !fnn_pool_is_2x2(pool))) {
        int st = fnn_winograd_forward(s, algo == FNN_CONV_WINOGRAD4 ? 4 : 2, pool, x, w, bias,
                                      y, pos, act == FNN_ACT_RELU);
        if (st != FNN_ENONFINITE)
            return st;
        algo = FNN_CONV_DIRECT;  /* direct where Winograd's output is not finite */
    }
    if (s->x_hwc || s->y_hwc)
        return forward_converted(s, &d, pool, x, w, bias, y, pos, algo, act);
    pool_order order;
    int hwc = d.k > CONV_SHORT_K, pooled = pool_pass(&d, pool, &order);
    const fnn_conv_kernels *ck = d.ck;
    int nth = fnn_threads_for((double)s->n * d.y_img * d.k);
    /* Fewer images than threads: each image's output channels are split in tile-wide
     * panels, so where the wide tile leaves fewer panels than threads (32 channels: one
     * 32-wide panel), the narrow one, which sums each element in the same order. */
    if (hwc && s->n < nth && fnn_round_up(s->c_out, d.gk->nr) / d.gk->nr < nth)
        d.gk = fnn_active->gemm;
    const fnn_gemm_kernels *gk = d.gk;
    int64_t padded = fnn_round_up(d.ohw, ck->nr);  /* im2col pixels, in whole panels */
    /* shared: W packed (+ the tables); per thread: the conv output if pooled, then
     * the image's im2col, or its HWC copy and y_n^T */
    size_t wp_elems = hwc ? (size_t)fnn_round_up(d.k * fnn_round_up(s->c_out, gk->nr), 16)
                          : packed_w_elems(s->c_out, d.k);
    size_t shared = wp_elems + (hwc ? hwc_table_elems(&d, &h, 1) : 0);
    size_t conv_out = pool && !pooled ? (size_t)fnn_round_up(d.y_img, 16) : 0;
    size_t thread_elems = conv_out + (hwc      ? (size_t)(fnn_round_up(h.elems, 16) +
                                                          fnn_round_up(d.ohw * s->c_out, 16))
                                      : pooled ? order.cols_elems + order.phase_elems
                                               : (size_t)fnn_round_up(d.k * padded, 16));
    /* Images to whichever thread is free; fewer images than threads (inference on a
     * few samples): each image's output channels in parts, one image on every thread. */
    int64_t align = hwc ? gk->nr : FNN_CONV_MR, panels = (s->c_out + align - 1) / align;
    int64_t parts = s->n >= nth ? 1 : FNN_MIN(panels, (nth + s->n - 1) / s->n);
    nth = (int)FNN_MIN(nth, s->n * parts);
    float *ws = fnn_workspace(FNN_WS_OP,  /* never 0 bytes: a NULL would mean ENOMEM */
                              (shared + thread_elems * nth + 16) * sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    if (hwc) {
        hwc_tables(&d, &h, 1, ws + wp_elems);
        gk->pack_b_gather(d.k, s->c_out, w, h.wsrc, h.wrow, ws);  /* B = W^T permuted */
    } else {
        pack_w(s->c_out, d.k, w, d.k, 1, ws);
    }
    conv_fwd_job J = {.d = &d, .h = &h, .pool = pool, .x = x, .bias = bias, .y = y, .pos = pos,
                      .ws = ws, .shared = shared, .thread_elems = thread_elems,
                      .conv_out = conv_out, .padded = padded, .parts = parts, .align = align,
                      .order = pooled ? &order : NULL, .hwc = hwc,
                      .relu = act == FNN_ACT_RELU};
    if (hwc)  /* each slot's HWC border stays zero from here on */
        for (int slot = 0; slot < nth; slot++)
            memset(ws + shared + thread_elems * slot + conv_out, 0,
                   (size_t)h.elems * sizeof(float));
    /* One image (or part) per task, so a core taken by a co-tenant delays the step by
     * one image at most. */
    fnn_run(s->n * parts, nth, conv_fwd_task, &J);
    return FNN_OK;
}

int fnn_conv2d_forward(const fnn_conv2d_shape *s, const float *x, const float *w,
                       const float *bias, float *y, int algo, int act)
{
    return conv_forward(s, NULL, x, w, bias, y, NULL, algo, act);
}

int fnn_conv2d_max_pool2d(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *x,
                          const float *w, const float *bias, float *y, uint8_t *pos, int algo,
                          int act)
{
    return pool == NULL ? FNN_EINVAL : conv_forward(s, pool, x, w, bias, y, pos, algo, act);
}

typedef struct {
    const conv_dims *d;
    const conv_hwc *h;
    const fnn_pool2d *pool;  /* gy is pooled: unpooled image by image through pos */
    const uint8_t *pos;
    const float *gy, *y_act, *x;  /* y_act: the relu output gy is masked by, or NULL */
    float *gx, *gw, *gb;
    int64_t nchunks;
    int64_t group;          /* images per GEMM call (at most) */
    int sum_parts;          /* tasks of the partials' sum */
    int wgrad_gemm;         /* weight gradient on the GEMM from the HWC copy (else dots) */
    const pool_order *order;  /* weight and bias gradients by the conv + pool pass */
    const float *wt;        /* W (c_out x k) in (i, j, c) column order (grad input) */
    float *ws, *part;       /* per-thread buffers; per-chunk partials of gw and gb */
    size_t thread_elems, part_elems;
    int err;
} conv_bwd_plan;

/* out[e] = the sum of the lanes lanes[e*n .. e*n + n) in order, for e < count. */
static void add_lanes(const float *lanes, int64_t n, int64_t count, float *out)
{
    for (int64_t e = 0; e < count; e++, lanes += n) {
        float sum = 0.0f;
        for (int64_t l = 0; l < n; l++)
            sum += lanes[l];
        out[e] = sum;
    }
}

/* Chunk c of the conv + pool pass's backward (weight and bias gradients, no input
 * gradient): each image's output gradient unpooled in pool order and its products with
 * the pooled im2col, in lanes over the chunk's images, then the lanes added up in order
 * into the chunk's partials. */
static void conv_bwd_pooled_chunk(conv_bwd_plan *P, int64_t c, int slot)
{
    const conv_dims *d = P->d;
    const pool_order *o = P->order;
    const fnn_conv2d_shape *s = &d->s;
    const fnn_conv_kernels *ck = d->ck;
    int64_t plane = P->pool->oh * P->pool->ow, lanes = ck->lanes, gw_elems = s->c_out * d->k;
    float *cols = P->ws + P->thread_elems * slot, *phase = cols + o->cols_elems;
    float *g = phase + o->phase_elems, *lw = g + s->c_out * 4 * o->ld;
    float *lb = lw + gw_elems * lanes;
    float *pw = P->part + c * P->part_elems;  /* then the bias's, at pw + gw_elems */
    int64_t first = s->n * c / P->nchunks, last = s->n * (c + 1) / P->nchunks;
    for (int64_t img = first; img < last; img++) {
        int64_t at = img * s->c_out * plane;
        if (ck->pool_ungrad(s->c_out, plane, P->gy + at, P->y_act ? P->y_act + at : NULL,
                            P->pos + at, g, o->ld, img != first, lb)) {
            set_error(&P->err, FNN_EINVAL);  /* a position past its window */
            return;
        }
        im2col_pooled(d, o, P->pool, P->x + img * d->x_img, phase, cols);
        ck->wgrad(s->c_out, d->k, 4 * o->ld, g, 4 * o->ld, cols, 4 * o->ld, img != first, lw);
    }
    add_lanes(lw, lanes, gw_elems, pw);
    add_lanes(lb, lanes, s->c_out, pw + gw_elems);
}

/* Chunk c of the backward: its images' input gradients and its partial sums of the
 * weight and bias gradients, which do not depend on the slot that computes them. Images
 * go through the GEMMs `group` at a time, their gradients side by side (ga, c_out x
 * group*ohw): small images still give the weight gradient a long K and the input
 * gradient many rows. */
static void conv_bwd_chunk(void *ctx, int64_t c, int slot)
{
    conv_bwd_plan *P = ctx;
    if (P->order) {
        conv_bwd_pooled_chunk(P, c, slot);
        return;
    }
    const conv_dims *d = P->d;
    const conv_hwc *h = P->h;
    const fnn_conv2d_shape *s = &d->s;
    int64_t gw_elems = s->c_out * d->k, G = P->group;
    /* the slot's buffers, each only when needed: the images' HWC copies or one image's
     * im2col (grad weight), dcols and one image's col2im (grad input), one image's
     * unpooled or masked gradient, the group's gradients side by side, the weight
     * gradient's lanes (dot products) */
    float *xp = P->ws + P->thread_elems * slot, *cols = xp;
    float *dcols = xp + (P->gw == NULL ? 0 : fnn_round_up(P->wgrad_gemm ? G * h->elems
                                                                      : d->k * d->ldcols, 16));
    float *gp = dcols + (P->gx == NULL ? 0 : fnn_round_up(G * d->ohw * d->k, 16));
    float *unpooled = gp + (P->gx == NULL ? 0 : fnn_round_up(h->elems, 16));
    float *gbuf = unpooled + (P->pool || P->y_act ? fnn_round_up(d->y_img, 16) : 0);
    float *lw = gbuf + (G > 1 ? fnn_round_up(G * d->y_img, 16) : 0);
    int64_t pooled_img = P->pool ? s->c_out * P->pool->oh * P->pool->ow : 0;
    fnn_operand_b cols_t = {.b = xp, .roff = h->roff, .coff = h->coff};
    float *pw = P->part + c * P->part_elems, *pb = pw + gw_elems;
    int64_t first = s->n * c / P->nchunks, last = s->n * (c + 1) / P->nchunks;
    for (int64_t i0 = first; i0 < last; i0 += G) {
        int64_t gn = FNN_MIN(G, last - i0), kg = gn * d->ohw;
        const float *ga = gbuf;
        for (int64_t j = 0; j < gn; j++) {
            int64_t img = i0 + j;
            const float *g = P->gy + img * d->y_img;
            if (P->pool) {
                int64_t at = img * pooled_img;
                int st = fnn_max_unpool_planes(P->pool, s->c_out, P->gy + at,
                                               P->y_act ? P->y_act + at : NULL, NULL,
                                               P->pos + at, unpooled);
                set_error(&P->err, st);
                if (st != FNN_OK)
                    return;
                g = unpooled;
            } else if (P->y_act) {
                fnn_active->ew->relu_backward(d->y_img, g, P->y_act + img * d->y_img, unpooled);
                g = unpooled;
            }
            if (gn == 1)
                ga = g;
            else
                for (int64_t o = 0; o < s->c_out; o++)
                    memcpy(gbuf + o * kg + j * d->ohw, g + o * d->ohw,
                           (size_t)d->ohw * sizeof(float));
            const float *xi = P->x + img * d->x_img;
            if (P->gw != NULL && P->wgrad_gemm) {
                hwc_copy(d, h, xi, xp + j * h->elems, 0);
            } else if (P->gw != NULL) {
                im2col(d, xi, cols, d->ldcols, d->ldcols, 0, d->ldcols);
                d->ck->wgrad(s->c_out, d->k, d->ohw, g, d->ohw, cols, d->ldcols, img != first,
                             lw);
            }
            if (P->gb != NULL)
                for (int64_t o = 0; o < s->c_out; o++) {
                    float sum = row_sum(g + o * d->ohw, d->ohw);
                    pb[o] = img == first ? sum : pb[o] + sum;
                }
        }
        if (P->gw != NULL && P->wgrad_gemm)  /* pw (+)= ga im2col of the group */
            set_error(&P->err, fnn_sgemm_ex(s->c_out, d->k, kg, 1.0f, ga, kg, 1, &cols_t,
                                            i0 == first ? 0.0f : 1.0f, pw, d->k));
        if (P->gx != NULL) {  /* dcols = ga^T W, then col2im image by image */
            set_error(&P->err, fnn_sgemm_strided(kg, d->k, s->c_out, 1.0f, ga, 1, kg, P->wt,
                                                 d->k, 1, 0.0f, dcols, d->k));
            for (int64_t j = 0; j < gn; j++) {
                col2im_hwc(d, h, dcols + j * d->ohw * d->k, gp);
                hwc_copy(d, h, gp, P->gx + (i0 + j) * d->x_img, 1);
            }
        }
    }
    if (P->gw != NULL && !P->wgrad_gemm)
        add_lanes(lw, d->ck->lanes, gw_elems, pw);
}

/* Part i of the output channels of grad W and grad b: the chunks' partials summed in
 * chunk order. */
static void conv_bwd_sum(void *ctx, int64_t i, int slot)
{
    const conv_bwd_plan *P = ctx;
    const conv_dims *d = P->d;
    const conv_hwc *h = P->h;
    const fnn_conv2d_shape *s = &d->s;
    int64_t gw_elems = s->c_out * d->k, lo, hi;
    (void)slot;
    fnn_split(s->c_out, (int)i, P->sum_parts, &lo, &hi);
    if (P->gw != NULL) {
        for (int64_t o = lo; o < hi; o++)
            for (int64_t q = 0; q < d->k; q++) {
                int64_t src = o * d->k + q;  /* (i, j, c) order on the GEMM */
                float sum = P->part[src];
                for (int64_t c = 1; c < P->nchunks; c++)
                    sum += P->part[c * P->part_elems + src];
                P->gw[o * d->k + (P->wgrad_gemm ? h->wsrc[q] : q)] = sum;
            }
    }
    if (P->gb != NULL) {
        for (int64_t e = lo; e < hi; e++) {
            float sum = P->part[gw_elems + e];
            for (int64_t c = 1; c < P->nchunks; c++)
                sum += P->part[c * P->part_elems + gw_elems + e];
            P->gb[e] = sum;
        }
    }
}

/* The input gradient of a stride-1, undilated convolution (padding < kernel) is itself
 * one: of the (unpooled) output gradient, padded by k - 1 - p, with the filters
 * flipped and transposed. The forward's kernels run it without materialising the
 * gradient's im2col (g^T W, then col2im: ~1.5x the time on 32->32 28x28). Only for
 * finite filters: the padding's zeros times an inf would put NaN where no filter tap
 * reaches. */
static int grad_input_by_forward(const conv_dims *d, const float *grad_y, const float *w,
                                 float *wf, float *grad_x)
{
    const fnn_conv2d_shape *s = &d->s;
    int64_t kk = s->kh * s->kw;
    for (int64_t o = 0; o < s->c_out; o++)  /* wf[c][o][i][j] = w[o][c][kh-1-i][kw-1-j] */
        for (int64_t c = 0; c < s->c_in; c++)
            for (int64_t t = 0; t < kk; t++)
                wf[(c * s->c_out + o) * kk + t] = w[(o * s->c_in + c) * kk + kk - 1 - t];
    fnn_conv2d_shape t = {.n = s->n, .c_in = s->c_out, .h = d->oh, .w = d->ow, .c_out = s->c_in,
                          .kh = s->kh, .kw = s->kw, .sh = 1, .sw = 1, .ph = s->kh - 1 - s->ph,
                          .pw = s->kw - 1 - s->pw, .dh = 1, .dw = 1};
    return conv_forward(&t, NULL, grad_y, wf, NULL, grad_x, NULL, FNN_CONV_DIRECT,
                        FNN_ACT_NONE);
}

static int conv_backward(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *grad_y,
                         const float *y_act, const uint8_t *pos, const float *x, const float *w,
                         float *grad_x, float *grad_w, float *grad_b, int algo);

/* The backward on NCHW copies of NHWC operands: grad_y, y_act, pos and x to planes,
 * grad_x back. */
static int backward_converted(const fnn_conv2d_shape *s, const conv_dims *d,
                              const fnn_pool2d *pool, const float *grad_y, const float *y_act,
                              const uint8_t *pos, const float *x, const float *w,
                              float *grad_x, float *grad_w, float *grad_b, int algo)
{
    int64_t plane = pool ? pool->oh * pool->ow : d->ohw, y_elems = s->n * s->c_out * plane;
    size_t xe = (size_t)fnn_round_up(s->n * d->x_img, 16), ye = (size_t)fnn_round_up(y_elems, 16);
    size_t xs = s->x_hwc ? xe * ((grad_w != NULL) + (grad_x != NULL)) : 0;
    size_t ys = s->y_hwc ? ye * (1 + (y_act != NULL)) + (pos ? ye / 4 + 16 : 0) : 0;
    float *ws = fnn_workspace(FNN_WS_LAYOUT, (xs + ys + 16) * sizeof(float)), *at = ws;
    if (ws == NULL)
        return FNN_ENOMEM;
    fnn_conv2d_shape t = *s;
    t.x_hwc = t.y_hwc = 0;
    const float *xc = x, *gyc = grad_y, *yac = y_act;
    const uint8_t *pc = pos;
    float *gxc = grad_x;
    if (s->x_hwc && grad_w != NULL) {
        relayout(s->n, s->c_in, s->h * s->w, x, at, 0);
        xc = at;
        at += xe;
    }
    if (s->x_hwc && grad_x != NULL) {
        gxc = at;
        at += xe;
    }
    if (s->y_hwc) {
        relayout(s->n, s->c_out, plane, grad_y, at, 0);
        gyc = at;
        at += ye;
        if (y_act != NULL) {
            relayout(s->n, s->c_out, plane, y_act, at, 0);
            yac = at;
            at += ye;
        }
        if (pos != NULL) {
            relayout_bytes(s->n, s->c_out, plane, pos, (uint8_t *)at, 0);
            pc = (const uint8_t *)at;
        }
    }
    int st = conv_backward(&t, pool, gyc, yac, pc, xc, w, gxc, grad_w, grad_b, algo);
    if (st == FNN_OK && s->x_hwc && grad_x != NULL)
        relayout(s->n, s->c_in, s->h * s->w, gxc, grad_x, 1);
    return st;
}

/* The bias gradient of an NHWC output gradient g (rows of C), bitwise the direct loop's
 * on planes: per image, each channel's pixels summed in row_sum's 16 lanes (here 16 rows
 * of C, a vector across the channels), the images of a chunk in order, the chunks'
 * partials in chunk order. */
typedef struct {
    int64_t n, pixels, C, nchunks;
    const float *g;
    float *part, *lanes;  /* lanes: 17 rows of C per slot (the 16 lanes, the image's sum) */
} bias_hwc_job;

static void bias_hwc_chunk(void *ctx, int64_t c, int slot)
{
    const bias_hwc_job *J = ctx;
    int64_t C = J->C, first = J->n * c / J->nchunks, last = J->n * (c + 1) / J->nchunks;
    int64_t whole = J->pixels / 16 * 16;
    float *restrict p = J->part + c * C, *restrict lane = J->lanes + slot * 17 * C;
    float *restrict sum = lane + 16 * C;
    for (int64_t img = first; img < last; img++) {
        const float *g = J->g + img * J->pixels * C;
        memset(lane, 0, (size_t)(17 * C) * sizeof(float));
        for (int64_t i = 0; i < whole; i++) {
            float *restrict acc = lane + i % 16 * C;
            const float *restrict row = g + i * C;
            for (int64_t o = 0; o < C; o++)
                acc[o] += row[o];
        }
        for (int l = 0; l < 16; l++)
            for (int64_t o = 0; o < C; o++)
                sum[o] += lane[l * C + o];
        for (int64_t i = whole; i < J->pixels; i++)
            for (int64_t o = 0; o < C; o++)
                sum[o] += g[i * C + o];
        for (int64_t o = 0; o < C; o++)
            p[o] = img == first ? sum[o] : p[o] + sum[o];
    }
}

static int bias_grad_hwc(const fnn_conv2d_shape *s, const conv_dims *d, const float *g,
                         float *grad_b)
{
    int64_t nchunks = partial_chunks(d), C = s->c_out;
    int nth = (int)FNN_MIN(fnn_threads_for((double)s->n * d->y_img), nchunks);
    float *part = fnn_workspace(FNN_WS_OP,
                                (size_t)((nchunks + 17 * nth) * C + 16) * sizeof(float));
    if (part == NULL)
        return FNN_ENOMEM;
    bias_hwc_job J = {.n = s->n, .pixels = d->ohw, .C = C, .nchunks = nchunks, .g = g,
                      .part = part, .lanes = part + nchunks * C};
    fnn_run(nchunks, nth, bias_hwc_chunk, &J);
    for (int64_t o = 0; o < C; o++) {
        float sum = part[o];
        for (int64_t c = 1; c < nchunks; c++)
            sum += part[c * C + o];
        grad_b[o] = sum;
    }
    return FNN_OK;
}

/* The backward on NHWC operands: Winograd's gradients read and write them as they are,
 * from the output gradient unpooled (or masked) once in its layout, with the bias
 * gradient summed there; where a gradient would run direct, or Winograd's is not
 * finite, the whole backward runs on NCHW copies. */
static int backward_hwc(const fnn_conv2d_shape *s, const conv_dims *d, const fnn_pool2d *pool,
                        const float *grad_y, const float *y_act, const uint8_t *pos,
                        const float *x, const float *w, float *grad_x, float *grad_w,
                        float *grad_b, int requested)
{
    int da = FNN_CONV_DIRECT, wa = FNN_CONV_DIRECT, st = FNN_OK;
    if (grad_x != NULL)
        fnn_conv2d_grad_input_algorithm(s, requested, &da);
    if (grad_w != NULL)
        fnn_conv2d_grad_weight_algorithm(s, requested, &wa);
    if ((grad_x == NULL && grad_w == NULL) || (grad_x != NULL && da == FNN_CONV_DIRECT) ||
        (grad_w != NULL && wa == FNN_CONV_DIRECT))
        return backward_converted(s, d, pool, grad_y, y_act, pos, x, w, grad_x, grad_w, grad_b,
                                  requested);
    const float *g = grad_y;
    if (pool != NULL || y_act != NULL) {
        float *ws = fnn_workspace(FNN_WS_INPUTS,
                                  (size_t)(fnn_round_up(s->n * d->y_img, 16) + 16) * sizeof(float));
        if (ws == NULL)
            return FNN_ENOMEM;
        st = pool ? fnn_max_unpool_images(pool, s->n, s->c_out, s->y_hwc, grad_y, y_act, pos, ws)
                  : fnn_relu_backward(s->n * d->y_img, grad_y, y_act, ws);
        if (st != FNN_OK)
            return st;
        g = ws;
    }
    if (grad_b != NULL) {  /* (the direct loop's bias gradient reads g alone) */
        fnn_conv2d_shape t = *s;
        t.x_hwc = t.y_hwc = 0;
        st = s->y_hwc ? bias_grad_hwc(s, d, g, grad_b)
                      : conv_backward(&t, NULL, g, NULL, NULL, x, w, NULL, NULL, grad_b,
                                      FNN_CONV_DIRECT);
        if (st != FNN_OK)
            return st;
    }
    if (grad_w != NULL)
        st = fnn_winograd_grad_weight(s, wa == FNN_CONV_WINOGRAD4 ? 4 : 2, g, x, grad_w);
    if (st == FNN_OK && grad_x != NULL)
        st = fnn_winograd_grad_input(s, da == FNN_CONV_WINOGRAD4 ? 4 : 2, g, w, grad_x);
    if (st != FNN_ENONFINITE)
        return st;
    return backward_converted(s, d, pool, grad_y, y_act, pos, x, w, grad_x, grad_w, grad_b,
                              requested);
}

/* Backward, of the max-pooled forward when pool is set (grad_y pooled, pos its argmax),
 * of its relu too when y_act is set (grad_y passes except where y_act <= 0). */
static int conv_backward(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *grad_y,
                         const float *y_act, const uint8_t *pos, const float *x, const float *w,
                         float *grad_x, float *grad_w, float *grad_b, int algo)
{
    conv_dims d;
    conv_hwc h;
    int requested = algo;
    if (s == NULL || conv_dims_init(s, &d) != FNN_OK || !hwc_plan(&d, &h) ||
        !pool_fits(&d, pool, 1) || fnn_conv2d_grad_input_algorithm(s, algo, &algo) != FNN_OK)
        return FNN_EINVAL;
    if (s->n == 0 || s->c_out == 0) {  /* nothing flows back: every gradient is zero */
        if (grad_x != NULL)
            memset(grad_x, 0, (size_t)(s->n * d.x_img) * sizeof(float));
        if (grad_w != NULL)
            memset(grad_w, 0, (size_t)(s->c_out * d.k) * sizeof(float));
        if (grad_b != NULL)
            memset(grad_b, 0, (size_t)s->c_out * sizeof(float));
        return FNN_OK;
    }
    if (grad_y == NULL || (pool != NULL && pos == NULL) ||
        (grad_w != NULL && x == NULL && d.x_img > 0) ||
        (grad_x != NULL && w == NULL && d.k > 0))
        return FNN_EINVAL;
    if (s->x_hwc || s->y_hwc)
        return backward_hwc(s, &d, pool, grad_y, y_act, pos, x, w, grad_x, grad_w, grad_b,
                            requested);
    /* By forward only onto more than 8 input channels: they are that convolution's output
     * channels, and fewer leave its tile rows empty (1 thread, batch 64-128, g^T W and
     * col2im / by forward: 1->32 0.20x, 3->32 0.57x, 6->16 5x5 0.43x, 8->32 0.73x,
     * 12->32 1.10x, 16->32 1.30x) */
    int dx_forward = s->sh == 1 && s->sw == 1 && s->dh == 1 && s->dw == 1 &&
                     s->ph < s->kh && s->pw < s->kw && s->c_in > 8 && grad_x != NULL &&
                     fnn_all_finite(w, s->c_out * d.k);
    int dx_apart = grad_x != NULL && (algo != FNN_CONV_DIRECT || dx_forward);
    int walgo = FNN_CONV_DIRECT;
    if (grad_w != NULL)
        fnn_conv2d_grad_weight_algorithm(s, requested, &walgo);
    int wm = walgo == FNN_CONV_DIRECT ? 0 : walgo == FNN_CONV_WINOGRAD4 ? 4 : 2;
    if (dx_apart || wm != 0) {
        /* The output gradient unpooled (or masked) once for all the parts; then what
         * stays on the loop below (the bias gradient at least), the Winograd weight
         * gradient, and the input gradient apart (Winograd, or a forward convolution with
         * flipped filters wf). */
        size_t g_elems = pool || y_act ? (size_t)fnn_round_up(s->n * d.y_img, 16) : 0;
        size_t wf_elems = dx_forward ? (size_t)(s->c_out * d.k) : 0;
        float *ws = fnn_workspace(FNN_WS_INPUTS, (g_elems + wf_elems + 16) * sizeof(float));
        if (ws == NULL)
            return FNN_ENOMEM;
        const float *g = pool || y_act ? ws : grad_y;
        int st = pool ? fnn_max_unpool_images(pool, s->n, s->c_out, 0, grad_y, y_act, pos, ws)
                 : y_act ? fnn_relu_backward(s->n * d.y_img, grad_y, y_act, ws)
                         : FNN_OK;
        if (st != FNN_OK)
            return st;
        float *dgx = dx_apart ? NULL : grad_x, *dgw = wm != 0 ? NULL : grad_w;
        if (dgx != NULL || dgw != NULL || grad_b != NULL)
            st = conv_backward(s, NULL, g, NULL, NULL, x, w, dgx, dgw, grad_b, FNN_CONV_DIRECT);
        /* Winograd's gradients, or the direct method's where they are not finite (the
         * direct loop below then uses FNN_WS_OP only: g stays) */
        if (st == FNN_OK && wm != 0 &&
            (st = fnn_winograd_grad_weight(s, wm, g, x, grad_w)) == FNN_ENONFINITE)
            st = conv_backward(s, NULL, g, NULL, NULL, x, w, NULL, grad_w, NULL,
                               FNN_CONV_DIRECT);
        if (st != FNN_OK || !dx_apart)
            return st;
        if (algo != FNN_CONV_DIRECT &&
            (st = fnn_winograd_grad_input(s, algo == FNN_CONV_WINOGRAD4 ? 4 : 2, g, w,
                                          grad_x)) != FNN_ENONFINITE)
            return st;
        return dx_forward ? grad_input_by_forward(&d, g, w, ws + g_elems, grad_x)
                          : conv_backward(s, NULL, g, NULL, NULL, x, w, grad_x, NULL, NULL,
                                          FNN_CONV_DIRECT);
    }
    int wgrad_gemm = d.k > CONV_SHORT_K;
    pool_order order;
    int pooled = grad_x == NULL && (grad_w != NULL || grad_b != NULL) &&
                 pool_pass(&d, pool, &order);
    d.ldcols = fnn_round_up(d.ohw, 16);  /* rows of cols stay FNN_ALIGN-aligned */
    int64_t part_elems = partial_elems(&d), nchunks = partial_chunks(&d);
    /* Images per GEMM call, from the shape alone: outputs under CONV_GROUP_K / 2 pixels
     * are grouped up to CONV_GROUP_K (K of dW, rows of dx), within a chunk and
     * CONV_GROUP_BYTES of buffers per thread. Only where the GEMMs run (many input
     * channels): the bias gradient alone, dot products and a 9-wide dx gain nothing. */
    int64_t group = 1;
    if (wgrad_gemm && (grad_x != NULL || grad_w != NULL) && d.ohw < CONV_GROUP_K / 2)
        group = FNN_MIN((CONV_GROUP_K + d.ohw - 1) / FNN_MAX(d.ohw, 1),
                        (s->n + nchunks - 1) / nchunks);
    int64_t per_image = (grad_w != NULL && wgrad_gemm ? h.elems : 0) + d.y_img +
                        (grad_x != NULL ? d.ohw * d.k : 0);
    while (group > 1 && group * per_image * (int64_t)sizeof(float) > CONV_GROUP_BYTES)
        group--;
    /* shared: W permuted, roff, coff (int64 as 2 floats), partials; then per thread */
    size_t wt_elems = grad_x != NULL ? (size_t)fnn_round_up(s->c_out * d.k, 16) : 0;
    size_t tab_elems = hwc_table_elems(&d, &h, group);
    size_t part_total = (grad_w != NULL || grad_b != NULL) ? (size_t)(nchunks * part_elems) : 0;
    size_t thread_elems = 0;
    if (pooled)  /* the pooled im2col, the gradient in pool order, the sums' lanes */
        thread_elems += order.cols_elems + order.phase_elems + order.grad_elems;
    else if (grad_w != NULL)
        thread_elems += (size_t)fnn_round_up(wgrad_gemm ? group * h.elems : d.k * d.ldcols, 16);
    if (grad_x != NULL)
        thread_elems += (size_t)(fnn_round_up(group * d.ohw * d.k, 16) +
                                 fnn_round_up(h.elems, 16));
    if ((pool != NULL || y_act != NULL) && !pooled)
        thread_elems += (size_t)fnn_round_up(d.y_img, 16);
    if (group > 1)
        thread_elems += (size_t)fnn_round_up(group * d.y_img, 16);
    if (grad_w != NULL && !wgrad_gemm && !pooled)
        thread_elems += (size_t)fnn_round_up(s->c_out * d.k * d.ck->lanes, 16);
    /* each GEMM pass, and the unpooling or masking and the bias sum (alone, 0.66 ms on
     * 1 thread for the reference CNN's conv2) */
    int64_t passes = (grad_w != NULL) + (grad_x != NULL);
    int nth = (int)FNN_MIN(
        fnn_threads_for((double)s->n * d.y_img * ((double)d.k * passes + FNN_COST_MEM)),
        nchunks);
    float *ws = fnn_workspace(FNN_WS_OP,  /* never 0 bytes: a NULL would mean ENOMEM */
                              (wt_elems + tab_elems + part_total + thread_elems * nth + 16) *
                                  sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    hwc_tables(&d, &h, group, ws + wt_elems);
    if (grad_x != NULL)
        permute_w(&d, &h, w, ws);
    conv_bwd_plan P = {
        .d = &d, .h = &h, .pool = pool, .pos = pos, .gy = grad_y, .y_act = y_act, .x = x,
        .gx = grad_x, .gw = grad_w, .gb = grad_b,
        .nchunks = nchunks, .group = group, .sum_parts = (int)FNN_MIN(s->c_out, 2 * nth),
        .wgrad_gemm = wgrad_gemm, .order = pooled ? &order : NULL, .wt = ws,
        .part = ws + wt_elems + tab_elems, .ws = ws + wt_elems + tab_elems + part_total,
        .thread_elems = thread_elems, .part_elems = (size_t)part_elems, .err = FNN_OK,
    };
    if (grad_w != NULL && wgrad_gemm)  /* each slot's HWC border stays zero from here on */
        for (int slot = 0; slot < nth; slot++)
            memset(P.ws + thread_elems * slot, 0, (size_t)(group * h.elems) * sizeof(float));
    /* Chunks to whichever thread is free (see conv_forward), then the sums. */
    fnn_run(nchunks, nth, conv_bwd_chunk, &P);
    if (P.err == FNN_OK && (grad_w != NULL || grad_b != NULL))
        fnn_run(P.sum_parts, nth, conv_bwd_sum, &P);
    return P.err;
}

int fnn_conv2d_backward(const fnn_conv2d_shape *s, const float *grad_y, const float *y_act,
                        const float *x, const float *w, float *grad_x, float *grad_w,
                        float *grad_b, int algo)
{
    return conv_backward(s, NULL, grad_y, y_act, NULL, x, w, grad_x, grad_w, grad_b, algo);
}

int fnn_conv2d_max_pool2d_backward(const fnn_conv2d_shape *s, const fnn_pool2d *pool,
                                   const float *grad_y, const float *y_act, const uint8_t *pos,
                                   const float *x, const float *w, float *grad_x,
                                   float *grad_w, float *grad_b, int algo)
{
    if (pool == NULL)
        return FNN_EINVAL;
    return conv_backward(s, pool, grad_y, y_act, pos, x, w, grad_x, grad_w, grad_b, algo);
}
