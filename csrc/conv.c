/* conv.c: linear and conv2d, forward and backward, and conv2d fused with a max pool.
 *
 * linear is three GEMM calls (packing absorbs every transpose) and a column sum.
 * conv2d works one image at a time, images split over threads:
 *   forward        y_n = W cols_n + b on the ISA's conv kernel (simd/conv_kernel.h):
 *                  im2col writes cols_n straight into the kernel's pixel panels, or, for
 *                  stride 1, the kernel reads a padded copy of the image in place.
 *   grad weight    g_n cols_n^T, summed per fixed chunk of images into that chunk's
 *                  partial, partials added in chunk order: the chunks never depend on
 *                  the thread count, so neither do the bits. A GEMM whose B packing
 *                  gathers cols_n^T from a channels-last copy of the image, or for a
 *                  short im2col (few input channels) the conv kernel's dot products.
 *   grad input     dcols_n = g_n^T W on the GEMM, then col2im onto the channels-last
 *                  copy, added in whole runs, and back to CHW.
 *   grad bias      per-channel sums, in the same chunks.
 * With a max pool after it (fnn_conv2d_max_pool2d), each image's conv output is pooled
 * from a per-thread buffer, and the backward unpools each image's gradient into one. */
#include "internal.h"

/* Images per call whose weight-gradient partials are kept apart (then summed in order). */
#define CONV_CHUNKS 16
/* im2col rows up to which the weight gradient uses the conv kernel's dot products
 * (the GEMM would spend most of its register tile on padding). */
#define CONV_WGRAD_MAX_K 32
/* Partials beyond this many bytes use fewer chunks (still independent of threads). */
#define CONV_PARTIAL_BYTES ((int64_t)64 << 20)

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
} conv_dims;

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
    if (st != FNN_OK) {
#pragma omp atomic write
        *err = st;
    }
}

/* Stride-1 forward without im2col: the kernel reads a zero-padded copy of the image in
 * place (B row (c, i, j) starts at c*plane + i*dh*wpad + j*dw) and computes every
 * column of the padded width, wpad - OW of them wasted and dropped on the copy out.
 * Used when that waste is small and im2col would write more (k x OHW) than the copy
 * out does (c_out x OHW): e.g. 32->64 channels 3x3, not 1->32. */
typedef struct {
    int64_t wpad, plane;  /* padded row and plane */
    int64_t nq;           /* computed pixels: OH * wpad */
    int64_t xp_elems;     /* padded image + what the last panel reads past it */
} conv_inplace;

static int inplace_plan(const conv_dims *d, int64_t nr, conv_inplace *q)
{
    const fnn_conv2d_shape *s = &d->s;
    int64_t hpad = s->h + 2 * s->ph, t, img, last;
    q->wpad = s->w + 2 * s->pw;
    if (s->sh != 1 || s->sw != 1 || 4 * (q->wpad - d->ow) > d->ow || d->k <= s->c_out ||
        !mul_ok(&q->plane, hpad, q->wpad) || !mul_ok(&q->nq, d->oh, q->wpad) ||
        !mul_ok(&img, s->c_in, q->plane) || !mul_ok(&t, s->kh - 1, s->dh) ||
        !mul_ok(&t, t, q->wpad))
        return 0;
    last = img - q->plane + t + (s->kw - 1) * s->dw + fnn_round_up(q->nq, nr);
    q->xp_elems = fnn_round_up(FNN_MAX(img, last), 16);
    return 1;
}

/* pool, if set, must pool the planes of the conv output (see fnn_conv2d_max_pool2d). */
static int pool_fits(const conv_dims *d, const fnn_pool2d *pool)
{
    return pool == NULL || (fnn_pool_valid(pool) && pool->planes == d->s.n * d->s.c_out &&
                            pool->h == d->oh && pool->w == d->ow);
}

/* Forward, optionally max-pooled (pool set: y is pooled, idx its argmax or NULL). */
static int conv_forward(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *x,
                        const float *w, const float *bias, float *y, int64_t *idx)
{
    conv_dims d;
    if (s == NULL || conv_dims_init(s, &d) != FNN_OK || !pool_fits(&d, pool))
        return FNN_EINVAL;
    if (s->n == 0 || s->c_out == 0)
        return FNN_OK;
    if (y == NULL || (x == NULL && d.x_img > 0) || (w == NULL && d.k > 0))
        return FNN_EINVAL;
    int64_t pooled_img = pool ? s->c_out * pool->oh * pool->ow : 0;
    const fnn_conv_kernels *ck = &fnn_active->conv;
    int64_t nr = ck->nr;
    conv_inplace q;
    int inplace = inplace_plan(&d, nr, &q);
    int64_t padded = fnn_round_up(d.ohw, nr);  /* im2col pixels, in whole panels */
    size_t wp_elems = packed_w_elems(s->c_out, d.k);
    size_t boff_elems = inplace ? (size_t)fnn_round_up(2 * d.k, 16) : 0;  /* int64 in floats */
    size_t thread_elems = inplace ? (size_t)(q.xp_elems + fnn_round_up(s->c_out * q.nq, 16))
                                  : (size_t)fnn_round_up(d.k * padded, 16);
    size_t conv_out = pool ? (size_t)fnn_round_up(d.y_img, 16) : 0;  /* an image's, to pool */
    thread_elems += conv_out;
    int nth = (int)FNN_MIN(fnn_threads_for((double)s->n * d.y_img * d.k), s->n);
    float *ws = fnn_workspace(FNN_WS_OP,  /* never 0 bytes: a NULL would mean ENOMEM */
                              (wp_elems + boff_elems + thread_elems * nth + 16) * sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    pack_w(s->c_out, d.k, w, d.k, 1, ws);
    int64_t *boff = (int64_t *)(ws + wp_elems);
    if (inplace)
        for (int64_t c = 0, p = 0; c < s->c_in; c++)
            for (int64_t i = 0; i < s->kh; i++)
                for (int64_t j = 0; j < s->kw; j++, p++)
                    boff[p] = c * q.plane + i * s->dh * q.wpad + j * s->dw;
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        int ith = omp_get_thread_num(), nt = omp_get_num_threads();
        float *conv_y = ws + wp_elems + boff_elems + thread_elems * ith, *buf = conv_y + conv_out;
        int64_t lo, hi;
        fnn_split(s->n, ith, nt, &lo, &hi);
        if (inplace)  /* the border and the tail stay zero from here on */
            memset(buf, 0, (size_t)q.xp_elems * sizeof(float));
        for (int64_t img = lo; img < hi; img++) {
            const float *xi = x + img * d.x_img;
            float *yi = pool ? conv_y : y + img * d.y_img;
            if (inplace) {
                float *out = buf + q.xp_elems;
                if (s->ph == 0 && s->pw == 0)
                    memcpy(buf, xi, (size_t)d.x_img * sizeof(float));
                else
                    for (int64_t c = 0; c < s->c_in; c++)
                        for (int64_t ih = 0; ih < s->h; ih++)
                            memcpy(buf + c * q.plane + (ih + s->ph) * q.wpad + s->pw,
                                   xi + (c * s->h + ih) * s->w, (size_t)s->w * sizeof(float));
                ck->macro(s->c_out, q.nq, d.k, ws, buf, boff, bias, out, q.nq);
                for (int64_t o = 0; o < s->c_out; o++)
                    for (int64_t oh = 0; oh < d.oh; oh++)
                        memcpy(yi + o * d.ohw + oh * d.ow, out + o * q.nq + oh * q.wpad,
                               (size_t)d.ow * sizeof(float));
            } else {
                im2col(&d, xi, buf, nr, nr, d.k * nr, padded);
                ck->macro(s->c_out, d.ohw, d.k, ws, buf, NULL, bias, yi, d.ohw);
            }
            if (pool)
                fnn_max_pool_planes(pool, s->c_out, yi, y + img * pooled_img,
                                    idx ? idx + img * pooled_img : NULL);
        }
    }
    return FNN_OK;
}

int fnn_conv2d_forward(const fnn_conv2d_shape *s, const float *x, const float *w,
                       const float *bias, float *y)
{
    return conv_forward(s, NULL, x, w, bias, y, NULL);
}

int fnn_conv2d_max_pool2d(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *x,
                          const float *w, const float *bias, float *y, int64_t *idx)
{
    return pool == NULL ? FNN_EINVAL : conv_forward(s, pool, x, w, bias, y, idx);
}

/* The backward works on each image in a zero-padded channels-last (HWC) copy, where
 * im2col row p = (oh, ow), column q = (i, j, c) is img[roff[p] + coff[q]] and a
 * kernel row's (j, c) columns are one contiguous run when dw = 1. The GEMM then packs
 * im2col straight from the copy (fnn_operand_b) and col2im adds whole runs. Columns
 * are in (i, j, c) order; W and its gradient are permuted from and to (c, i, j). */
typedef struct {
    int64_t wpad, elems;  /* padded row (pixels) and padded image (floats) */
    int64_t run;          /* columns per contiguous run of coff */
    int64_t *roff, *coff;
} conv_hwc;

static int hwc_plan(const conv_dims *d, conv_hwc *h)
{
    const fnn_conv2d_shape *s = &d->s;
    int64_t t;
    h->wpad = s->w + 2 * s->pw;
    h->run = s->dw == 1 ? s->kw * s->c_in : s->c_in;
    return mul_ok(&t, s->h + 2 * s->ph, h->wpad) && mul_ok(&h->elems, t, s->c_in);
}

static void hwc_tables(const conv_dims *d, conv_hwc *h)
{
    const fnn_conv2d_shape *s = &d->s;
    for (int64_t oh = 0, p = 0; oh < d->oh; oh++)
        for (int64_t ow = 0; ow < d->ow; ow++, p++)
            h->roff[p] = (oh * s->sh * h->wpad + ow * s->sw) * s->c_in;
    for (int64_t i = 0, q = 0; i < s->kh; i++)
        for (int64_t j = 0; j < s->kw; j++)
            for (int64_t c = 0; c < s->c_in; c++, q++)
                h->coff[q] = (i * s->dh * h->wpad + j * s->dw) * s->c_in + c;
}

/* Column q of PyTorch's (c, i, j) order in the (i, j, c) order. */
static inline int64_t hwc_column(const conv_dims *d, int64_t q)
{
    int64_t khw = d->s.kh * d->s.kw;
    return q % khw * d->s.c_in + q / khw;
}

/* Pixel (ih, iw) of an image is pixel (ih + ph, iw + pw) of its padded HWC copy:
 * copies the CHW image into the copy's interior, or (to_chw) the interior out. */
static void hwc_copy(const conv_dims *d, const conv_hwc *h, const float *src, float *dst,
                     int to_chw)
{
    const fnn_conv2d_shape *s = &d->s;
    int64_t C = s->c_in;
    for (int64_t c = 0; c < C; c++)
        for (int64_t ih = 0; ih < s->h; ih++) {
            int64_t plain = (c * s->h + ih) * s->w, padded = ((ih + s->ph) * h->wpad + s->pw) * C + c;
            if (to_chw)
                for (int64_t iw = 0; iw < s->w; iw++)
                    dst[plain + iw] = src[padded + iw * C];
            else
                for (int64_t iw = 0; iw < s->w; iw++)
                    dst[padded + iw * C] = src[plain + iw];
        }
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

typedef struct {
    const conv_dims *d;
    const conv_hwc *h;
    const fnn_pool2d *pool;  /* gy is pooled: unpooled image by image through idx */
    const int64_t *idx;
    const float *gy, *x;
    float *gx, *gw, *gb;
    int64_t nchunks;
    int wgrad_gemm;         /* weight gradient on the GEMM from the HWC copy (else dots) */
    const float *wt;        /* W (c_out x k) in (i, j, c) column order (grad input) */
    float *ws, *part;       /* per-thread buffers; per-chunk partials of gw and gb */
    size_t thread_elems, part_elems;
    int err;
} conv_bwd_plan;

static void conv_bwd_thread(conv_bwd_plan *P, int ith, int nth)
{
    const conv_dims *d = P->d;
    const conv_hwc *h = P->h;
    const fnn_conv2d_shape *s = &d->s;
    int64_t gw_elems = s->c_out * d->k;
    /* this thread's buffers, each only when needed: the image's HWC copy or its im2col
     * (grad weight), dcols and its col2im (grad input), the unpooled gradient */
    float *xp = P->ws + P->thread_elems * ith, *cols = xp;
    float *dcols = xp + (P->gw == NULL ? 0 : fnn_round_up(P->wgrad_gemm ? h->elems : d->k * d->ldcols, 16));
    float *gp = dcols + (P->gx == NULL ? 0 : fnn_round_up(d->ohw * d->k, 16));
    float *unpooled = gp + (P->gx == NULL ? 0 : fnn_round_up(h->elems, 16));
    int64_t pooled_img = P->pool ? s->c_out * P->pool->oh * P->pool->ow : 0;
    fnn_operand_b cols_t = {.b = xp, .roff = h->roff, .coff = h->coff};
    if (P->gw != NULL && P->wgrad_gemm)
        memset(xp, 0, (size_t)h->elems * sizeof(float));  /* the border stays zero */
    int64_t c_lo, c_hi;
    fnn_split(P->nchunks, ith, nth, &c_lo, &c_hi);
    for (int64_t c = c_lo; c < c_hi; c++) {
        float *pw = P->part + c * P->part_elems, *pb = pw + gw_elems;
        int64_t first = s->n * c / P->nchunks, last = s->n * (c + 1) / P->nchunks;
        for (int64_t img = first; img < last; img++) {
            const float *g = P->gy + img * d->y_img;
            if (P->pool) {
                int st = fnn_max_unpool_planes(P->pool, s->c_out, P->gy + img * pooled_img,
                                               P->idx + img * pooled_img, unpooled);
                set_error(&P->err, st);
                if (st != FNN_OK)
                    break;
                g = unpooled;
            }
            const float *xi = P->x + img * d->x_img;
            if (P->gw != NULL && P->wgrad_gemm) {  /* pw (+)= g_n im2col_n */
                hwc_copy(d, h, xi, xp, 0);
                set_error(&P->err, fnn_sgemm_ex(s->c_out, d->k, d->ohw, 1.0f, g, d->ohw, 1,
                                                &cols_t, img == first ? 0.0f : 1.0f, pw, d->k));
            } else if (P->gw != NULL) {
                im2col(d, xi, cols, d->ldcols, d->ldcols, 0, d->ldcols);
                fnn_active->conv.wgrad(s->c_out, d->k, d->ohw, g, cols, d->ldcols,
                                       img != first, pw);
            }
            if (P->gb != NULL)
                for (int64_t o = 0; o < s->c_out; o++) {
                    float sum = row_sum(g + o * d->ohw, d->ohw);
                    pb[o] = img == first ? sum : pb[o] + sum;
                }
            if (P->gx != NULL) {  /* dcols = g_n^T W, then col2im */
                set_error(&P->err, fnn_sgemm_strided(d->ohw, d->k, s->c_out, 1.0f, g, 1, d->ohw,
                                                     P->wt, d->k, 1, 0.0f, dcols, d->k));
                col2im_hwc(d, h, dcols, gp);
                hwc_copy(d, h, gp, P->gx + img * d->x_img, 1);
            }
        }
    }
    FNN_BARRIER(nth);
    /* The chunks' partials summed in chunk order, each thread a slice of elements. */
    int64_t lo, hi;
    if (P->gw != NULL) {
        fnn_split(gw_elems, ith, nth, &lo, &hi);
        for (int64_t e = lo; e < hi; e++) {
            int64_t src = P->wgrad_gemm ? e / d->k * d->k + hwc_column(d, e % d->k) : e;
            float sum = P->part[src];
            for (int64_t c = 1; c < P->nchunks; c++)
                sum += P->part[c * P->part_elems + src];
            P->gw[e] = sum;
        }
    }
    if (P->gb != NULL) {
        fnn_split(s->c_out, ith, nth, &lo, &hi);
        for (int64_t e = lo; e < hi; e++) {
            float sum = P->part[gw_elems + e];
            for (int64_t c = 1; c < P->nchunks; c++)
                sum += P->part[c * P->part_elems + gw_elems + e];
            P->gb[e] = sum;
        }
    }
}

/* Backward, of the max-pooled forward when pool is set (grad_y pooled, idx its argmax). */
static int conv_backward(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *grad_y,
                         const int64_t *idx, const float *x, const float *w, float *grad_x,
                         float *grad_w, float *grad_b)
{
    conv_dims d;
    conv_hwc h;
    if (s == NULL || conv_dims_init(s, &d) != FNN_OK || !hwc_plan(&d, &h) || !pool_fits(&d, pool))
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
    if (grad_y == NULL || (pool != NULL && idx == NULL) ||
        (grad_w != NULL && x == NULL && d.x_img > 0) ||
        (grad_x != NULL && w == NULL && d.k > 0))
        return FNN_EINVAL;
    int wgrad_gemm = d.k > CONV_WGRAD_MAX_K;
    d.ldcols = fnn_round_up(d.ohw, 16);  /* rows of cols stay FNN_ALIGN-aligned */
    int64_t part_elems = fnn_round_up(s->c_out * d.k + s->c_out, 16), nchunks = FNN_MIN(s->n, CONV_CHUNKS);
    while (nchunks > 1 && nchunks * part_elems * (int64_t)sizeof(float) > CONV_PARTIAL_BYTES)
        nchunks--;
    /* shared: W permuted, roff, coff (int64 as 2 floats), partials; then per thread */
    size_t wt_elems = grad_x != NULL ? (size_t)fnn_round_up(s->c_out * d.k, 16) : 0;
    size_t tab_elems = (size_t)fnn_round_up(2 * (d.ohw + d.k), 16);
    size_t part_total = (grad_w != NULL || grad_b != NULL) ? (size_t)(nchunks * part_elems) : 0;
    size_t thread_elems = 0;
    if (grad_w != NULL)
        thread_elems += (size_t)fnn_round_up(wgrad_gemm ? h.elems : d.k * d.ldcols, 16);
    if (grad_x != NULL)
        thread_elems += (size_t)(fnn_round_up(d.ohw * d.k, 16) + fnn_round_up(h.elems, 16));
    if (pool != NULL)
        thread_elems += (size_t)fnn_round_up(d.y_img, 16);
    int64_t passes = (grad_w != NULL) + (grad_x != NULL);
    int nth = (int)FNN_MIN(fnn_threads_for((double)s->n * d.y_img * d.k * passes), nchunks);
    float *ws = fnn_workspace(FNN_WS_OP,  /* never 0 bytes: a NULL would mean ENOMEM */
                              (wt_elems + tab_elems + part_total + thread_elems * nth + 16) *
                                  sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    h.roff = (int64_t *)(ws + wt_elems);
    h.coff = h.roff + d.ohw;
    hwc_tables(&d, &h);
    if (grad_x != NULL)
        for (int64_t e = 0; e < s->c_out * d.k; e++)
            ws[e / d.k * d.k + hwc_column(&d, e % d.k)] = w[e];
    conv_bwd_plan P = {
        .d = &d, .h = &h, .pool = pool, .idx = idx, .gy = grad_y, .x = x, .gx = grad_x, .gw = grad_w, .gb = grad_b,
        .nchunks = nchunks, .wgrad_gemm = wgrad_gemm, .wt = ws,
        .part = ws + wt_elems + tab_elems, .ws = ws + wt_elems + tab_elems + part_total,
        .thread_elems = thread_elems, .part_elems = (size_t)part_elems, .err = FNN_OK,
    };
    if (nth == 1) {
        conv_bwd_thread(&P, 0, 1);
        return P.err;
    }
#pragma omp parallel num_threads(nth)
    conv_bwd_thread(&P, omp_get_thread_num(), omp_get_num_threads());
    return P.err;
}

int fnn_conv2d_backward(const fnn_conv2d_shape *s, const float *grad_y, const float *x,
                        const float *w, float *grad_x, float *grad_w, float *grad_b)
{
    return conv_backward(s, NULL, grad_y, NULL, x, w, grad_x, grad_w, grad_b);
}

int fnn_conv2d_max_pool2d_backward(const fnn_conv2d_shape *s, const fnn_pool2d *pool,
                                   const float *grad_y, const int64_t *idx, const float *x,
                                   const float *w, float *grad_x, float *grad_w, float *grad_b)
{
    if (pool == NULL)
        return FNN_EINVAL;
    return conv_backward(s, pool, grad_y, idx, x, w, grad_x, grad_w, grad_b);
}
