/* fastnn.h: the whole C API of fastnn.
 *
 * Every kernel works on float32, row-major data, returns an int status (FNN_OK on
 * success) and never calls into Python. Sizes are int64_t; strides are in elements.
 * Threads come from OpenMP (fnn_set_num_threads); the SIMD variant from the ISA
 * chosen at start-up (fnn_select_isa). Every reduction runs in a fixed order, so a
 * result does not depend on the number of threads.
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
enum {
    FNN_OK = 0,
    FNN_EINVAL = 1,      /* an argument is out of range (negative size, bad stride) */
    FNN_ENOMEM = 2,      /* the workspace could not be allocated */
    FNN_EUNSUPPORTED = 3, /* the CPU or the OS lacks the requested instruction set */
    FNN_ENONFINITE = 4    /* an input that must be finite holds NaN or inf (losses) */
};

/* Instruction-set variants, best last. */
enum { FNN_ISA_GENERIC = 0, FNN_ISA_AVX2 = 1, FNN_ISA_AVX512 = 2, FNN_ISA_COUNT = 3 };

/* ---- runtime: ISA dispatch, threads, build facts (runtime.c) ---- */
const char *fnn_isa_name(int isa);          /* "generic", "avx2", "avx512"; NULL if out of range */
int fnn_isa_supported(int isa);             /* 1 if this CPU and OS can run it */
/* The default variant: the best this CPU runs (AVX-512, else AVX2+FMA, else generic).
 * AVX-512 also where it runs on 256-bit units (AMD Zen 4): its kernels take the wide
 * tiles only where they do no more work than AVX2's, and there its training steps
 * measured 0.97x AVX2's time (README, "Instruction sets"). */
int fnn_default_isa(void);
int fnn_select_isa(int isa);                /* FNN_EUNSUPPORTED if the CPU lacks it */
/* The width AVX-512's FMAs run at, measured once (512: full width, Zen 5 and Intel's
 * servers; 256: on 256-bit units, Zen 4), which sets how readily its kernels take their
 * wide tiles; 0 without AVX-512. */
int fnn_zmm_width(void);
/* Takes `width` (256 or 512) as the measured one: tests run both tile choices. */
int fnn_set_zmm_width(int width);
int fnn_current_isa(void);
/* Threads: 1 <= n <= fnn_max_threads() = 4 per processor OpenMP sees (more never pays;
 * a few over the cores are allowed for tests of odd splits), at most 1024; else
 * FNN_EINVAL. A kernel takes fewer when its work is too small to pay for them. */
int fnn_max_threads(void);
int fnn_set_num_threads(int n);
int fnn_get_num_threads(void);
int fnn_has_openmp(void);
const char *fnn_compiler(void);
void fnn_release_workspace(void);           /* frees the calling thread's cached workspace */

/* ---- GEMM (gemm.c) ----
 * C = alpha * op(A) * op(B) + beta * C, op(A) is m x k, op(B) is k x n, C is m x n
 * with row stride ldc. With beta == 0, C is only written (NaN in C does not leak). */
int fnn_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
              float *c, int64_t ldc);

/* The same with general strides: op(A)[i][p] = a[i*a_rs + p*a_cs],
 * op(B)[p][j] = b[p*b_rs + j*b_cs]. Packing absorbs any layout, negative strides included. */
int fnn_sgemm_strided(int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t a_rs, int64_t a_cs,
                      const float *b, int64_t b_rs, int64_t b_cs,
                      float beta, float *c, int64_t ldc);

/* ---- machine ceilings (probe.c): what "% of peak" in the benchmarks divides by ---- */
/* Runs `iters` rounds of the active ISA's FMA probe on every thread; *flops gets the
 * floating-point operations done (time it from the caller). */
int fnn_probe_fma(int64_t iters, double *flops);
/* Copies n floats src -> dst with every thread (a bandwidth probe, like memcpy). */
int fnn_probe_copy(float *dst, const float *src, int64_t n);
/* ---- pooling (pool.c) ----
 * x holds `planes` (N*C) input planes of h x w, y the same number of oh x ow planes.
 * Windows start at (i*sh - ph, j*sw - pw); padding <= kernel/2, so every window
 * holds at least one input element. oh = floor((h + 2*ph - kh) / sh) + 1, or with
 * ceil_mode torch's ceil((h + 2*ph - kh) / sh) + 1, less one if that last window would
 * start in the bottom padding (its windows may run past the padding: they are clipped).
 * Max pooling pads with -inf (padding never wins;
 * ties pick the first maximum in row-major window order; NaN wins, the last NaN in
 * a window); indices are h*w-plane offsets. Average pooling counts padding as zeros
 * in the divisor, kh*kw but for windows that run past the padding (ceil_mode: the part
 * inside the padded plane), or with exclude_pad only the input elements of the window
 * (torch's count_include_pad=False). Backward passes overwrite gx (no accumulation into
 * it). */
typedef struct {
    int64_t planes, h, w, oh, ow;
    int64_t kh, kw, sh, sw, ph, pw;
    int ceil_mode, exclude_pad;
} fnn_pool2d;

/* oh (or ow) for a dimension of size n, window k, stride and padding; < 1 if no window fits. */
int64_t fnn_pool_output_size(int64_t n, int64_t k, int64_t stride, int64_t pad, int ceil_mode);
int fnn_max_pool2d(const fnn_pool2d *p, const float *x, float *y, int64_t *idx /* or NULL */);
/* gx from gy through idx, or through the argmax recomputed from x when idx is NULL.
 * FNN_EINVAL if an index lies outside its plane. */
int fnn_max_pool2d_backward(const fnn_pool2d *p, const float *gy, const int64_t *idx,
                            const float *x, float *gx);
int fnn_avg_pool2d(const fnn_pool2d *p, const float *x, float *y);
int fnn_avg_pool2d_backward(const fnn_pool2d *p, const float *gy, float *gx);
/* Adaptive average pooling of `planes` h x w planes to oh x ow (torch's windows: output
 * row i averages rows [floor(i*h/oh), ceil((i+1)*h/oh)), columns likewise), any sizes
 * >= 1; a 1x1 output is global average pooling (summed in double). */
int fnn_adaptive_avg_pool2d(int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                            const float *x, float *y);
int fnn_adaptive_avg_pool2d_backward(int64_t planes, int64_t h, int64_t w, int64_t oh,
                                     int64_t ow, const float *gy, float *gx);

/* ---- batch normalization (norm.c) ----
 * x is (n, c, s): statistics per channel over its n planes of s values (m = n*s),
 * summed in double in a fixed order. training: the batch mean and biased variance,
 * and (when given) running = (1 - momentum) * running + momentum * stat, with the
 * unbiased variance for running_var (FNN_EINVAL if m == 1; m == 0 gives NaN
 * statistics and leaves the running ones). Otherwise the running statistics
 * (required). save_mean and save_invstd = 1/sqrt(var + eps) get the statistics used,
 * which the backward takes. weight and bias may be NULL (scale 1, shift 0); a NULL
 * gradient is not computed. act (FNN_ACT_*): FNN_ACT_RELU relu's y in the same pass;
 * the backward of that takes its output as y_act (NULL otherwise), which gates grad_y
 * as relu_backward would. */
int fnn_batch_norm(int64_t n, int64_t c, int64_t s, const float *x, const float *weight,
                   const float *bias, float *running_mean, float *running_var, int training,
                   double momentum, double eps, int act, float *y, float *save_mean,
                   float *save_invstd);
int fnn_batch_norm_backward(int64_t n, int64_t c, int64_t s, const float *grad_y,
                            const float *y_act, const float *x, const float *weight,
                            const float *save_mean, const float *save_invstd, int training,
                            float *grad_x, float *grad_weight, float *grad_bias);

/* ---- layer normalization (norm.c) ----
 * x is (rows, cols): each row normalised over its cols values, mean and biased variance
 * summed in double in a fixed order; y = (x - mean) * rstd * weight + bias, rstd =
 * 1/sqrt(var + eps). weight and bias (cols values) may be NULL (scale 1, shift 0).
 * save_mean and save_rstd (rows values) get the statistics, which the backward takes
 * (cols == 0 gives NaN ones). A NULL gradient is not computed. */
int fnn_layer_norm(int64_t rows, int64_t cols, const float *x, const float *weight,
                   const float *bias, double eps, float *y, float *save_mean, float *save_rstd);
int fnn_layer_norm_backward(int64_t rows, int64_t cols, const float *grad_y, const float *x,
                            const float *weight, const float *save_mean, const float *save_rstd,
                            float *grad_x, float *grad_weight, float *grad_bias);

/* ---- activations (activation.c) ----
 * n elements (y may be x: in place); softmax and log_softmax over rows of `cols`.
 * The sigmoid, tanh, softmax and log_softmax backward passes take the forward output y. */
int fnn_relu(int64_t n, const float *x, float *y);
int fnn_relu_backward(int64_t n, const float *gy, const float *x, float *gx);
int fnn_leaky_relu(int64_t n, float slope, const float *x, float *y);
int fnn_leaky_relu_backward(int64_t n, float slope, const float *gy, const float *x, float *gx);
int fnn_sigmoid(int64_t n, const float *x, float *y);
int fnn_sigmoid_backward(int64_t n, const float *gy, const float *y, float *gx);
int fnn_tanh(int64_t n, const float *x, float *y);
int fnn_tanh_backward(int64_t n, const float *gy, const float *y, float *gx);
/* GELU x * Phi(x), with approximate = FNN_GELU_ERF (Phi by erf, torch's 'none') or
 * FNN_GELU_TANH (torch's 'tanh' form); SiLU x * sigmoid(x); ELU x for x > 0, else
 * alpha * (exp(x) - 1). Their backward passes take the input x (torch's formulas; ELU's
 * gy * alpha * exp(x) for x <= 0). Relative error bounds: tests/test_activation.py. */
enum { FNN_GELU_ERF = 0, FNN_GELU_TANH = 1 };
int fnn_gelu(int64_t n, int approximate, const float *x, float *y);
int fnn_gelu_backward(int64_t n, int approximate, const float *gy, const float *x, float *gx);
int fnn_silu(int64_t n, const float *x, float *y);
int fnn_silu_backward(int64_t n, const float *gy, const float *x, float *gx);
int fnn_elu(int64_t n, float alpha, const float *x, float *y);
int fnn_elu_backward(int64_t n, float alpha, const float *gy, const float *x, float *gx);
int fnn_softmax(int64_t rows, int64_t cols, const float *x, float *y);
int fnn_softmax_backward(int64_t rows, int64_t cols, const float *gy, const float *y, float *gx);
int fnn_log_softmax(int64_t rows, int64_t cols, const float *x, float *y);
int fnn_log_softmax_backward(int64_t rows, int64_t cols, const float *gy, const float *y,
                             float *gx);
/* Inverted dropout: y[i] = x[i] * m[i], m[i] = 1 / (1 - p) where element i is kept
 * (probability 1 - p) and 0 elsewhere, from a counter-based hash of (seed, i): the same
 * seed gives the same mask whatever the thread count or ISA, and the backward pass is
 * this call on the gradient with the forward's seed. 0 <= p < 1; y may be x. */
int fnn_dropout(int64_t n, double p, uint64_t seed, const float *x, float *y);

/* ---- merging (merge.c) ----
 * y = ((xs[0] + xs[1]) + xs[2]) + ... over n elements; y may be one of the inputs
 * (the same pointer), but may not overlap one otherwise. */
int fnn_add(int64_t count, int64_t n, const float *const *xs, float *y);

/* ---- losses, mean reduction (loss.c) ----
 * `loss` (double, may be NULL) and `grad` (the gradient w.r.t. the first input, may
 * be NULL) come from one pass; sums run in double over fixed-size blocks reduced in
 * block order. Cross-entropy: FNN_EINVAL if a label is outside [0, c),
 * FNN_ENONFINITE if a logit is NaN or inf. */
int fnn_cross_entropy(int64_t n, int64_t c, const float *logits, const int64_t *labels,
                      double *loss, float *grad);
int fnn_bce_with_logits(int64_t n, const float *logits, const float *targets, double *loss,
                        float *grad);
int fnn_mse_loss(int64_t n, const float *pred, const float *target, double *loss, float *grad);

/* ---- fused optimizer steps over `count` parameter arrays (optim.c) ----
 * Array i has sizes[i] elements; formulas are torch.optim.SGD's, Adam's (AdamW when
 * decoupled) and RMSprop's, updating params and the state arrays in place. bufs may be
 * NULL when momentum == 0, grad_avgs when not centered. RMSprop with eps_inside divides
 * by sqrt(square_avg + eps) (Keras') instead of sqrt(square_avg) + eps. The element range of all
 * arrays together is split over the threads. */
int fnn_sgd_step(int64_t count, const int64_t *sizes, float *const *params,
                 const float *const *grads, float *const *bufs, double lr, double momentum,
                 double dampening, int nesterov, double weight_decay, int first_step);
int fnn_adam_step(int64_t count, const int64_t *sizes, float *const *params,
                  const float *const *grads, float *const *ms, float *const *vs, int64_t step,
                  double lr, double beta1, double beta2, double eps, double weight_decay,
                  int decoupled);
int fnn_rmsprop_step(int64_t count, const int64_t *sizes, float *const *params,
                     const float *const *grads, float *const *square_avgs,
                     float *const *grad_avgs, float *const *bufs, double lr, double alpha,
                     double eps, double weight_decay, double momentum, int centered,
                     int eps_inside);

/* ---- linear and convolution (conv.c) ----
 * PyTorch layouts: x (n, in) and weight (out, in) for linear; NCHW x, (c_out, c_in, kh, kw)
 * weight and NCHW output for conv2d. A NULL output pointer means "not needed" (its work
 * is skipped); a NULL bias means none. Gradients are summed over the batch in a fixed
 * order, so they do not depend on the thread count. */
int fnn_linear_forward(int64_t n, int64_t in_f, int64_t out_f, const float *x, const float *w,
                       const float *bias, float *y);
int fnn_linear_backward(int64_t n, int64_t in_f, int64_t out_f, const float *grad_y,
                        const float *x, const float *w, float *grad_x, float *grad_w,
                        float *grad_b);

typedef struct {
    int64_t n, c_in, h, w;      /* input */
    int64_t c_out, kh, kw;      /* weight */
    int64_t sh, sw, ph, pw, dh, dw;  /* stride >= 1, zero padding >= 0, dilation >= 1 */
    /* Channels-last (NHWC) instead of NCHW: x_hwc for x and grad_x, y_hwc for y, grad_y,
     * y_act and pos. Between two convolutions this spares each its layout copies (the
     * Winograd paths read and write NHWC as they are; the direct ones convert). */
    int x_hwc, y_hwc;
} fnn_conv2d_shape;

/* Output height and width; FNN_EINVAL if the shape is invalid or the output empty. */
int fnn_conv2d_output_size(const fnn_conv2d_shape *s, int64_t *oh, int64_t *ow);

/* Convolution algorithms (`algo` below). DIRECT: the im2col-free GEMM of conv.c, any shape.
 * WINOGRAD: Winograd's F(2x2, 3x3), WINOGRAD4: F(4x4, 3x3) (winograd.c), for 3x3 kernels at
 * stride 1 and dilation 1 only: 4 and 2.25x fewer multiplies than DIRECT, at a float32
 * error bound below the direct method's (F(2x2)) or up to 28x it (F(4x4)), stated in
 * tests/test_winograd.py. AUTO: WINOGRAD4 on the shapes where it measured faster (>= 32
 * channels each way, outputs of >= 16x16: the rule in winograd.c, from the shape alone),
 * WINOGRAD there past 128 input channels (F(4x4)'s error grows ~10x faster with the
 * channels summed) and on small outputs with many tiles, else DIRECT. Whichever it is,
 * the results do not depend on the thread count. */
enum { FNN_CONV_AUTO = 0, FNN_CONV_DIRECT = 1, FNN_CONV_WINOGRAD = 2, FNN_CONV_WINOGRAD4 = 3,
       FNN_CONV_COUNT = 4 };
/* *chosen = the algorithm `requested` runs on shape s (DIRECT or a WINOGRAD);
 * FNN_EINVAL if s is invalid or a WINOGRAD is requested for a shape it cannot run. */
int fnn_conv2d_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen);
/* The same for the weight gradient, which a WINOGRAD runs too (F(3x3, m x m): winograd.c)
 * and AUTO by its own rule: WINOGRAD4 where it measured faster (>= 16 channels each way,
 * 4x4 tiles covering at most 15% past the output, >= 16 tiles: winograd.c), else DIRECT. */
int fnn_conv2d_grad_weight_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen);
/* The same for the input gradient: AUTO takes the forward's WINOGRAD where it picks one
 * (WINOGRAD for WINOGRAD4 past 128 output channels, which it sums), else WINOGRAD (F(2x2):
 * as accurate as DIRECT) on >= 32 channels each way (winograd.c). */
int fnn_conv2d_grad_input_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen);

/* The activation a convolution applies to its output in place while it is in cache (`act`
 * below; after the max pool when fused with one: relu and max commute). Its backward takes
 * that output as y_act (NULL without one) and passes grad_y only where y_act > 0, as
 * fnn_relu_backward does on the activation's input. */
enum { FNN_ACT_NONE = 0, FNN_ACT_RELU = 1, FNN_ACT_COUNT = 2 };

int fnn_conv2d_forward(const fnn_conv2d_shape *s, const float *x, const float *w,
                       const float *bias, float *y, int algo, int act);
/* The input gradient runs on the algorithm fnn_conv2d_grad_input_algorithm chooses, the
 * weight gradient on fnn_conv2d_grad_weight_algorithm's, the bias gradient on the direct
 * method. */
int fnn_conv2d_backward(const fnn_conv2d_shape *s, const float *grad_y, const float *y_act,
                        const float *x, const float *w, float *grad_x, float *grad_w,
                        float *grad_b, int algo);

/* conv2d then max pooling (pool: planes n*c_out of the conv output's oh x ow), image by
 * image, the conv output pooled while in cache and never stored (DIRECT; a WINOGRAD
 * keeps the whole output and pools it after): y is what fnn_max_pool2d gives on it,
 * bitwise. pos (may be NULL) gets, instead of fnn_max_pool2d's int64 index, the maximum's
 * position in its window in one byte: (row - window top) * kw + (column - window left),
 * window top/left = output row/column * stride - padding; it needs kh * kw <=
 * FNN_POOL_POSITIONS (FNN_EINVAL otherwise). The backward takes the pooled gradient and
 * pos (FNN_EINVAL if a position lies off its window or outside the plane); its results
 * are fnn_conv2d_backward's on the unpooled gradient. */
#define FNN_POOL_POSITIONS 256
int fnn_conv2d_max_pool2d(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *x,
                          const float *w, const float *bias, float *y, uint8_t *pos, int algo,
                          int act);
int fnn_conv2d_max_pool2d_backward(const fnn_conv2d_shape *s, const fnn_pool2d *pool,
                                   const float *grad_y, const float *y_act, const uint8_t *pos,
                                   const float *x, const float *w, float *grad_x,
                                   float *grad_w, float *grad_b, int algo);

#ifdef __cplusplus
}
#endif

#endif /* FASTNN_H */
