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
    FNN_EUNSUPPORTED = 3 /* the CPU or the OS lacks the requested instruction set */
};

/* Instruction-set variants, best last. */
enum { FNN_ISA_GENERIC = 0, FNN_ISA_AVX2 = 1, FNN_ISA_AVX512 = 2, FNN_ISA_COUNT = 3 };

/* ---- runtime: ISA dispatch, threads, build facts (runtime.c) ---- */
const char *fnn_isa_name(int isa);          /* "generic", "avx2", "avx512"; NULL if out of range */
int fnn_isa_supported(int isa);             /* 1 if this CPU and OS can run it */
int fnn_best_isa(void);
int fnn_select_isa(int isa);                /* FNN_EUNSUPPORTED if the CPU lacks it */
int fnn_current_isa(void);
int fnn_set_num_threads(int n);             /* n >= 1; the same as omp_set_num_threads */
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
} fnn_conv2d_shape;

/* Output height and width; FNN_EINVAL if the shape is invalid or the output empty. */
int fnn_conv2d_output_size(const fnn_conv2d_shape *s, int64_t *oh, int64_t *ow);
int fnn_conv2d_forward(const fnn_conv2d_shape *s, const float *x, const float *w,
                       const float *bias, float *y);
int fnn_conv2d_backward(const fnn_conv2d_shape *s, const float *grad_y, const float *x,
                        const float *w, float *grad_x, float *grad_w, float *grad_b);

#ifdef __cplusplus
}
#endif

#endif /* FASTNN_H */
