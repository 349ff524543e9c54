/* internal.h: what the kernel files share and the Python side never sees:
 * the per-ISA kernel table, the active ISA, the thread pool and the workspace. */
#ifndef FASTNN_INTERNAL_H
#define FASTNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastnn.h"

/* OpenMP supplies the thread count only (OMP_NUM_THREADS, omp_set_num_threads,
 * threadpoolctl); the kernels run on fastnn's pool (threads.c). Without OpenMP: 1. */
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }
#endif

#define FNN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FNN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FNN_ALIGN 64

/* Multiply-adds (or element operations) a thread must get before a kernel splits its
 * work: a job costs ~1 us when the workers are awake (threads.c), so ~2^20 (~20 us on
 * one core). */
#define FNN_WORK_PER_THREAD (1024.0 * 1024.0)
#define FNN_THREADS_CAP 1024
/* Work of one element of the memory-bound kernels in those units: a streamed element
 * (read, op, write), one that also takes an exp, one that also takes a hash. */
#define FNN_COST_MEM 8.0
#define FNN_COST_EXP 128.0
#define FNN_COST_HASH 32.0

/* Register-blocked GEMM pieces of one ISA (simd/gemm_kernel.h).
 * op(A)[i][p] = a[i*rs + p*cs]; a panel of mr rows starts every `ps` elements.
 * Packed A: rs = 1, cs = mr, ps = mr*kc. Packed B: nr-wide panels of kc rows. */
#define FNN_MAX_NR 32     /* the widest register tile's columns (AVX-512's 12x32) */

typedef struct {
    int mr, nr;           /* register tile */
    int64_t mc, kc, nc;   /* cache blocks: A block mc x kc in L2, B block kc x nc in L3 */
    void (*pack_a)(int64_t mc, int64_t kc, const float *a, int64_t rs, int64_t cs, float *ap);
    void (*pack_b)(int64_t kc, int64_t nc, const float *b, int64_t rs, int64_t cs, float *bp);
    /* B[p][q] = b[roff[p] + coff[q]] */
    void (*pack_b_gather)(int64_t kc, int64_t nc, const float *b, const int64_t *roff,
                          const int64_t *coff, float *bp);
    void (*macro)(int64_t mc, int64_t nc, int64_t kc, float alpha, const float *a,
                  int64_t rs, int64_t cs, int64_t ps, const float *bp, float beta,
                  float *c, int64_t ldc);
    /* macro with B read in place, its rows ldb apart, whole panels of nr columns */
    void (*macro_in_place)(int64_t mc, int64_t nc, int64_t kc, float alpha, const float *a,
                           int64_t rs, int64_t cs, int64_t ps, const float *b, int64_t ldb,
                           float beta, float *c, int64_t ldc);
    /* C = A * B, A[i][s*seglen + t] = a[roff[i] + soff[s] + t], B packed (conv.c) */
    void (*macro_rows)(int64_t m, int64_t n, const float *a, const int64_t *roff, int64_t nseg,
                       const int64_t *soff, int64_t seglen, const float *bp, float *c,
                       int64_t ldc);
    /* Columns [j0, j1) of C for few rows of A, B read in place (no packing): B's
     * columns contiguous (dot products; A's rows contiguous too), or B's rows (axpy). */
    void (*rows_dot)(int64_t m, int64_t j0, int64_t j1, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                     int64_t ldc);
    void (*rows_axpy)(int64_t m, int64_t j0, int64_t j1, int64_t k, float alpha, const float *a,
                      int64_t a_rs, int64_t a_cs, const float *b, int64_t ldb, float beta,
                      float *c, int64_t ldc);
    /* dst[c*ld + r] = src[r*ls + c] (+ add[c] if add), r < rows, c < cols */
    void (*transpose)(int64_t rows, int64_t cols, const float *src, int64_t ls,
                      const float *add, float *dst, int64_t ld);
    /* Rows [0, rows) of an image between channel planes and channels-last (conv.c's and
     * winograd.c's copies): planes[c*plane + i*prow + x] and cl[i*crow + x*ld + c],
     * x < cols, c < C, from the first to the second, or back when to_planes. */
    void (*planes_rows)(int to_planes, int64_t C, int64_t rows, int64_t cols,
                        const float *src, float *dst, int64_t plane, int64_t prow,
                        int64_t crow, int64_t ld);
} fnn_gemm_kernels;

/* op(B) of fnn_sgemm_ex: B[p][q] = b[p*rs + q*cs], or b[roff[p] + coff[q]] when roff
 * is set (conv.c's im2col, read from a channels-last image while packing). */
typedef struct {
    const float *b;
    int64_t rs, cs;
    const int64_t *roff, *coff;
} fnn_operand_b;

/* fnn_sgemm_strided with B given as an fnn_operand_b. */
int fnn_sgemm_ex(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a_rs,
                 int64_t a_cs, const fnn_operand_b *b, float beta, float *c, int64_t ldc);

/* A wide tile (GEMM's or conv's) is taken where its padded work is at most fnn_wide_slack()
 * times the narrow tile's: FNN_WIDE_SLACK where zmm runs on 256-bit units (Zen 4: it then
 * does no more work than the narrow one and costs about the same), FNN_WIDE_SLACK_FULL
 * where it runs at full width (runtime.c measures which at the first avx512 selection).
 * The wide tile's speed over the narrow one's at full width (Zen 5, 1 thread): 128x64x64
 * 1.8x, 128x1600x128 1.9x, 128x10x64 1.5x; Winograd's 36 GEMMs of 8 tiles x 64 channels
 * (8 rows of the 12-row tile against 9 of two 6-row half tiles) 1.6x. */
#define FNN_WIDE_SLACK 1.03
#define FNN_WIDE_SLACK_FULL 1.5
double fnn_wide_slack(void);

/* The tile for an m x n product (gemm.c): the active ISA's wide one where it fills its
 * lanes, else its narrow one. */
const fnn_gemm_kernels *fnn_gemm_tile(int64_t m, int64_t n);

/* Per-call constants of the optimizer steps (optim.c). */
typedef struct {
    float lr, momentum, damp1, wd;          /* damp1 = 1 - dampening */
    int nesterov, first_step;
} fnn_sgd_consts;

typedef struct {
    float beta1, beta2, c1, c2;   /* c1 = 1 - beta1, c2 = 1 - beta2 */
    float step_size, bc2_sqrt;    /* lr / bias_correction1, sqrt(bias_correction2) */
    float eps, l2, decay;         /* l2: weight decay added to the gradient (Adam), else 0;
                                     decay: 1 - lr*wd (AdamW), else 1 */
} fnn_adam_consts;

typedef struct {
    float alpha, c1;              /* c1 = 1 - alpha */
    float lr, eps, l2, momentum;  /* l2: weight decay added to the gradient */
    float eps_sq;                 /* added under the square root (Keras'), else 0 */
} fnn_rmsprop_consts;

/* The ops of fnn_elementwise_kernels.smooth: fnn_gelu (erf and tanh forms), fnn_silu,
 * fnn_elu. */
enum { FNN_SMOOTH_GELU = 0, FNN_SMOOTH_GELU_TANH = 1, FNN_SMOOTH_SILU = 2, FNN_SMOOTH_ELU = 3 };

/* Elementwise loops of one ISA (simd/elementwise_kernel.h): the memory-bound
 * activations and add, sums in double, 2x2 max pooling and the optimizer updates. */
typedef struct {
    void (*relu)(int64_t n, const float *x, float *y);
    void (*relu_backward)(int64_t n, const float *gy, const float *x, float *gx);
    void (*leaky_relu)(int64_t n, float slope, const float *x, float *y);
    void (*leaky_relu_backward)(int64_t n, float slope, const float *gy, const float *x,
                                float *gx);
    void (*sigmoid)(int64_t n, const float *x, float *y);
    void (*tanh)(int64_t n, const float *x, float *y);
    /* The smooth activations FNN_SMOOTH_* (alpha: ELU's), forward and their gradients
     * from the input x. */
    void (*smooth)(int op, int64_t n, float alpha, const float *x, float *y);
    void (*smooth_backward)(int op, int64_t n, float alpha, const float *gy, const float *x,
                            float *gx);
    void (*add)(int64_t n, const float *a, const float *b, float *y);  /* y may be a */
    /* fnn_dropout on elements first..first+n-1 of one 2^32 range, whose index's high
     * word k1 carries; keep where the bits are >= thr */
    void (*dropout)(int64_t n, uint32_t first, uint32_t k0, uint32_t k1, uint32_t thr,
                    float scale, const float *x, float *y);
    void (*exp_sums)(int64_t rows, int64_t c, const float *x, float *max, float *out,
                     double *sums);  /* fnn_exp_sums */
    /* Sums in double over n elements, in lanes whose order is the same on every ISA:
     * sums gives s = sum(x - shift) and q = sum((x - shift)^2) (batch-norm statistics,
     * global average pooling); dot_sums s = sum(g) and q = sum(g * (x - shift)), g = gy
     * gated by a relu output y_act (NULL: not gated; relu_backward's rule). */
    void (*sums)(int64_t n, const float *x, float shift, double *s, double *q);
    void (*dot_sums)(int64_t n, const float *gy, const float *y_act, const float *x,
                     float shift, double *s, double *q);
    /* Batch normalisation's passes over a plane: y = (x - mean) * a + b (relu'd if relu);
     * its training input gradient gx = ((g - b) - (x - mean) * k) * a, g = gy gated by
     * y_act as in dot_sums (norm.c). */
    void (*bn_normalise)(int64_t n, const float *x, float mean, float a, float b, int relu,
                         float *y);
    void (*bn_input_grad)(int64_t n, const float *gy, const float *y_act, const float *x,
                          float mean, float a, float b, float k, float *gx);
    /* oh output rows of 2x2/stride-2 max pooling from rows x[0..2*oh) of width w;
     * idx (may be NULL) gets base + the offset from x of each maximum, pos (may be NULL)
     * its position in the window (0 to 3, row-major). w < 2^31. */
    void (*max_pool_2x2)(int64_t oh, int64_t ow, int w, const float *x, int64_t base, float *y,
                         int64_t *idx, uint8_t *pos);
    /* Its gradient through pos into the whole h x w plane gx (the rows and columns past
     * the windows zeroed), each gy at its window's position, where y (the pooled relu
     * output, or NULL) is > 0; nonzero if a position is past 3. */
    int (*max_unpool_2x2)(int64_t oh, int64_t ow, int64_t h, int w, const float *gy,
                          const float *y, const uint8_t *pos, float *gx);
    /* The same on a channels-last image of C channels (gy, y, pos and gx). */
    int (*max_unpool_2x2_hwc)(int64_t oh, int64_t ow, int64_t h, int64_t w, int64_t C,
                              const float *gy, const float *y, const uint8_t *pos, float *gx);
    /* One optimizer step on n elements of one parameter (buf may be NULL without momentum). */
    void (*sgd)(int64_t n, float *p, const float *g, float *buf, const fnn_sgd_consts *c);
    void (*adam)(int64_t n, float *p, const float *g, float *m, float *v,
                 const fnn_adam_consts *c);
    /* gavg is NULL unless centered, buf NULL without momentum */
    void (*rmsprop)(int64_t n, float *p, const float *g, float *sq, float *gavg, float *buf,
                    const fnn_rmsprop_consts *c);
} fnn_elementwise_kernels;

typedef struct {
    float (*fma)(int64_t iters);  /* simd/probe_kernel.h */
    int fma_flops_per_iter;
} fnn_probe_kernels;

/* Convolution tile loop of one ISA (simd/conv_kernel.h): out = W * cols + bias
 * with W packed in FNN_CONV_MR-row panels and cols (im2col) in nr-pixel panels. */
#define FNN_CONV_MR 4
typedef struct {
    int nr;     /* output pixels per register tile */
    int lanes;  /* floats per vector: of the weight gradient's sums, and pooled pixels */
    void (*macro)(int64_t m, int64_t n, int64_t k, const float *wp, const float *cols,
                  const float *bias, float *out, int64_t ldo);
    /* Weight gradient of one image for a short im2col: gw (m x k, in lanes) (+)=
     * g @ cols^T. */
    void (*wgrad)(int64_t m, int64_t k, int64_t n, const float *g, int64_t ldg,
                  const float *cols, int64_t ldcols, int add, float *gw);
    /* A convolution and the 2x2 max pool after it in one pass, on im2col in pool order;
     * and its output gradient in that order, for wgrad (see conv_kernel.h). */
    void (*pool_macro)(int64_t m, int64_t n, int64_t k, const float *wp, const float *cols,
                       int64_t ldc, const float *bias, int relu, float *y, int64_t ldy,
                       uint8_t *pos);
    int (*pool_ungrad)(int64_t m, int64_t n, const float *gy, const float *y,
                       const uint8_t *pos, float *g, int64_t ldg, int add, float *gb);
} fnn_conv_kernels;

/* Winograd transforms of one ISA (simd/winograd_kernel.h), m = 2 or 4, of one tile,
 * `lanes` channels per vector; cp (the channels, padded to FNN_WINO_LANES) is a multiple
 * of it. */
#define FNN_WINO_LANES 8
typedef struct {
    int lanes;
    /* patch pixel (i, j) at src + i*ld + j*cp -> position xi of channel c at out[xi*os + c] */
    void (*input)(int m, const float *src, int64_t ld, int64_t cp, float *out, int64_t os);
    /* B x B^T of in[xi*is + c] added to pixel (i, j) of channel c at out[i*ld + j*cp + c],
     * a x a of them (the input gradient's tiles) */
    void (*input_t)(int m, const float *in, int64_t is, int64_t cp, float *out, int64_t ld);
    /* in[xi*is + c] + bias[c] -> pixel (i, j) of channel c at out[i*ld + j*cp + c];
     * nonzero if one of them is inf or NaN (tested in registers, not by a pass after) */
    int (*output)(int m, const float *in, int64_t is, int64_t cp, const float *bias,
                   float *out, int64_t ld);
    /* the m x m patch, pixel (i, j) at src + i*ld + j*cp -> position xi of A g A^T of
     * channel c at out[xi*os + c] (the weight gradient's output-gradient tiles) */
    void (*output_t)(int m, const float *src, int64_t ld, int64_t cp, float *out, int64_t os);
    /* G^T S G (the weight gradient's 3x3 taps from its a x a positions) of len lanes:
     * position (i, j) of lane e at s[(i*a + j)*ss + e], tap (i, j) to o[(i*3 + j)*os + e] */
    void (*filter_t)(int m, const float *s, int64_t ss, float *o, int64_t os, int64_t len);
    /* 2x2 max pool, stride 2, of channels-last rows r0, r1 (pixel j of channel c at
     * r[j*cp + c]) -> ow maxima at y[j*cp + c], window positions (0-3) at pos[j*cp + c] */
    void (*pool_2x2)(const float *r0, const float *r1, int64_t ow, int64_t cp, float *y,
                     uint8_t *pos);
} fnn_wino_kernels;

/* One ISA's kernels. A variant may share another's pieces: AVX-512 pays only where all
 * 16 lanes of a vector are busy, so its table holds AVX2's GEMM, convolution and
 * Winograd-transform kernels beside wider ones, taken by shape where they fill their
 * lanes. */
typedef struct {
    const char *name;
    const fnn_gemm_kernels *gemm;       /* the tile of every GEMM and convolution */
    const fnn_gemm_kernels *gemm_wide;  /* a larger tile for large products, or NULL */
    const fnn_probe_kernels *probe;
    const fnn_elementwise_kernels *ew;
    const fnn_conv_kernels *conv;
    const fnn_conv_kernels *conv_wide;  /* more pixels per tile, or NULL */
    const fnn_wino_kernels *wino;
    const fnn_wino_kernels *wino_wide;  /* more channels per vector, or NULL */
} fnn_kernels;

extern const fnn_kernels fnn_kernels_generic;
#if defined(__x86_64__) || defined(_M_X64)
#define FNN_X86 1
extern const fnn_kernels fnn_kernels_avx2;
extern const fnn_kernels fnn_kernels_avx512;
/* The AVX2 variant's pieces, which the AVX-512 variant runs too. */
extern const fnn_gemm_kernels fnn_gemm_avx2;
extern const fnn_conv_kernels fnn_conv_avx2;
extern const fnn_wino_kernels fnn_wino_avx2;
void fnn_max_pool_2x2_avx2(int64_t oh, int64_t ow, int w, const float *x, int64_t base, float *y,
                           int64_t *idx, uint8_t *pos);
#endif

/* The kernels of the ISA chosen at start-up. */
extern const fnn_kernels *fnn_active;

/* Max pooling on the calling thread (pool.c), for conv.c's fused conv + max-pool:
 * `planes` planes of p's geometry (p->planes is ignored); the argmax as plane offsets
 * into idx or as window positions (see fnn_conv2d_max_pool2d) into pos, either may be
 * NULL. unpool overwrites gx with gy scattered through idx, or through pos when idx is
 * NULL (FNN_EINVAL: an index off its plane, a position off its window or the plane, or a
 * window of more than FNN_POOL_POSITIONS); with y, the pooled output after a relu (or
 * NULL), only the gy where y > 0, as relu's backward passes them. */
int fnn_pool_valid(const fnn_pool2d *p);
/* A 2x2, stride-2 window without padding: the vectorised kernels' (and winograd.c's) case. */
int fnn_pool_is_2x2(const fnn_pool2d *p);
void fnn_max_pool_planes(const fnn_pool2d *p, int64_t planes, const float *x, float *y,
                         int64_t *idx, uint8_t *pos);
int fnn_max_unpool_planes(const fnn_pool2d *p, int64_t planes, const float *gy,
                          const float *y, const int64_t *idx, const uint8_t *pos, float *gx);
/* n images of `planes` planes each (channels-last if hwc: gy, y, pos and gx) unpooled
 * through window positions, images as tasks on the pool (the whole batch at once, for a
 * backward that reads it more than once). */
int fnn_max_unpool_images(const fnn_pool2d *p, int64_t n, int64_t planes, int hwc,
                          const float *gy, const float *y, const uint8_t *pos, float *gx);

/* Winograd F(m x m, 3 x 3), m = 2 or 4 (winograd.c), on a shape conv.c has validated
 * (3x3 kernel, stride 1, dilation 1, at least one image and channel each way): the
 * forward, max-pooled when pool is set (y, pos as fnn_conv2d_max_pool2d's) and relu'd in
 * cache when relu is set, the input gradient and the weight gradient of the whole
 * (unpooled) output gradient. Each returns FNN_ENONFINITE when its result holds an inf or
 * NaN: the transforms turn one inf into NaN across its tile (inf - inf), so conv.c then
 * runs the direct method instead. */
int fnn_winograd_forward(const fnn_conv2d_shape *s, int m, const fnn_pool2d *pool,
                         const float *x, const float *w, const float *bias, float *y,
                         uint8_t *pos, int relu);
int fnn_winograd_grad_input(const fnn_conv2d_shape *s, int m, const float *grad_y,
                            const float *w, float *grad_x);
int fnn_winograd_grad_weight(const fnn_conv2d_shape *s, int m, const float *grad_y,
                             const float *x, float *grad_w);

/* Threads to use for `work` multiply-adds (or element operations): one per
 * FNN_WORK_PER_THREAD, at most the thread count; 1 inside a task (threads.c). */
int fnn_threads_for(double work);

/* The thread pool (threads.c): f(ctx, i, slot) for every task i in [0, n), each on
 * whichever of the caller (slot 0) and nth - 1 workers (slots 1..nth-1) claims it
 * first; returns when all are done. Tasks of one call may run in any order and at the
 * same time, so each writes its own part of the output. */
typedef void (*fnn_task_fn)(void *ctx, int64_t i, int slot);
void fnn_run(int64_t n, int nth, fnn_task_fn f, void *ctx);

/* A status that any task may set (tasks that set it all set the same kind of value). */
static inline void fnn_store_status(int *status, int value)
{
    __atomic_store_n(status, value, __ATOMIC_RELAXED);
}

/* The calling thread's workspace `slot`, at least `bytes` long, FNN_ALIGN-aligned,
 * reused by the next request for that slot (so steady-state calls allocate nothing).
 * GEMM owns FNN_WS_GEMM (its packed blocks) and FNN_WS_GEMM_C (C^T of a product it runs
 * transposed); an op that calls GEMM takes its own buffers from FNN_WS_OP, and an op that
 * calls another op the inputs it makes for it from FNN_WS_INPUTS; conv2d's NCHW copies of
 * NHWC operands are in FNN_WS_LAYOUT. */
enum { FNN_WS_GEMM = 0, FNN_WS_GEMM_C = 1, FNN_WS_OP = 2, FNN_WS_INPUTS = 3, FNN_WS_LAYOUT = 4,
       FNN_WS_SLOTS = 5 };
void *fnn_workspace(int slot, size_t bytes);

/* Split [0, n) into nth near-equal contiguous parts; part ith is [*lo, *hi). */
static inline void fnn_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

/* Run f(lo, hi, ctx) over [0, n) split into contiguous parts, two per thread, whose
 * bounds are multiples of `align` (threads from fnn_threads_for(work)). */
typedef void (*fnn_range_fn)(int64_t lo, int64_t hi, void *ctx);
void fnn_parallel_range(int64_t n, double work, int64_t align, fnn_range_fn f, void *ctx);

/* exp(x) in float32 within ~1 ulp (Cephes' expf polynomial), written so that loops
 * calling it vectorise, which libm's expf does not: exp(x) = 2^n e^r with
 * n = round(x / ln 2), |r| <= ln(2)/2, and 2^n applied as two factors so that
 * overflow gives inf and underflow goes gradually to 0. NaN propagates. The clamp
 * and the NaN test work on the bits: float compares feeding selects would keep GCC
 * (under -ftrapping-math) from vectorising. (Clamp and split as integer min, max and
 * shift: 0.29 -> 0.22 ns an element with AVX-512 on Zen 5, 0.55 -> 0.44 with AVX2, every
 * one of the 2^32 inputs giving the same bits as the masks and division before.) */
static inline float fnn_expf(float x)
{
    const float shift = 12582912.0f; /* 1.5 * 2^23: t = y + shift rounds y to an integer */
    uint32_t ux, uy;
    memcpy(&ux, &x, sizeof ux);
    uint32_t ax = ux & 0x7fffffffu;
    /* x clamped to [-104, 89] (below, exp rounds to 0; above, it is inf) as integers: the
     * bits with a negative's magnitude flipped order as the floats do */
    int32_t key = (int32_t)(ux ^ ((uint32_t)((int32_t)ux >> 31) >> 1));
    const int32_t key_lo = (int32_t)(0xC2D00000u ^ 0x7fffffffu), key_hi = 0x42B20000;
    key = key < key_lo ? key_lo : key;
    key = key > key_hi ? key_hi : key;
    uint32_t uc = (uint32_t)key ^ ((uint32_t)(key >> 31) >> 1);
    float xc;
    memcpy(&xc, &uc, sizeof xc);
    float t = xc * 1.44269504088896341f + shift, n = t - shift;
    int32_t ni;
    memcpy(&ni, &t, sizeof ni);
    ni -= 0x4B400000; /* the bits of shift: the rest is n */
    float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t n1 = ni >> 1, n2 = ni - n1;  /* either split of an odd n gives the same bits */
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2, y;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    y = p * s1 * s2;
    memcpy(&uy, &y, sizeof uy);
    uint32_t nan = -(uint32_t)(ax > 0x7f800000u);
    uy = (ux & nan) | (uy & ~nan);
    memcpy(&y, &uy, sizeof y);
    return y;
}

/* max[r] = the largest of row r of x (rows of c floats), out[r*c + j] = fnn_expf(x[r*c + j]
 * - max[r]) (out may be NULL) and sums[r] = their sum over j, added in double in four
 * interleaved lanes (element j to lane j % 4), a fixed order: a softmax's pieces. Rows go
 * fnn_exp_group(c) at a time through one vector pass of FNN_EXP_PASS elements (callers
 * that split rows among threads split on multiples of it, so that an element's place in
 * the pass, and so its bits, never depend on the thread count). */
#define FNN_EXP_PASS 256
static inline int64_t fnn_exp_group(int64_t c)
{
    return c < FNN_EXP_PASS ? FNN_EXP_PASS / c : 1;
}
void fnn_exp_sums(int64_t rows, int64_t c, const float *x, float *max, float *out,
                  double *sums);

/* A 32-bit integer mixer (xor-shift-multiply, a bijection with full avalanche), in place
 * on a uint32_t or a vector of them: two keyed rounds make dropout's random bits. */
#define FNN_MIX32(h) \
    ((h) ^= (h) >> 16, (h) *= 0x7feb352dU, (h) ^= (h) >> 15, (h) *= 0x846ca68bU, (h) ^= (h) >> 16)

/* Whether none of x[0..n) is inf or NaN: an integer test of the exponent bits (bit 31
 * of (exponent + 1) set when it is all ones), which vectorises. */
static inline int fnn_all_finite(const float *x, int64_t n)
{
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (u & 0x7f800000u) + 0x00800000u;
    }
    return !(bad >> 31);
}

static inline int64_t fnn_round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

#endif /* FASTNN_INTERNAL_H */
