# _core.pxd: the C API of csrc/fastnn.h as Cython sees it. Every call is nogil:
# the .pyx wrappers validate under the GIL, then release it around the C call.
from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef extern from "fastnn.h" nogil:
    enum:
        FNN_OK
        FNN_EINVAL
        FNN_ENOMEM
        FNN_EUNSUPPORTED
        FNN_ENONFINITE
    enum:
        FNN_ISA_GENERIC
        FNN_ISA_AVX2
        FNN_ISA_AVX512
        FNN_ISA_COUNT

    const char *fnn_isa_name(int isa)
    int fnn_isa_supported(int isa)
    int fnn_default_isa()
    int fnn_select_isa(int isa)
    int fnn_zmm_width()
    int fnn_set_zmm_width(int width)
    int fnn_current_isa()
    int fnn_max_threads()
    int fnn_set_num_threads(int n)
    int fnn_get_num_threads()
    int fnn_has_openmp()
    const char *fnn_compiler()
    void fnn_release_workspace()

    int fnn_probe_fma(int64_t iters, double *flops)
    int fnn_probe_copy(float *dst, const float *src, int64_t n)

    int fnn_sgemm_strided(int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t a_rs, int64_t a_cs,
                          const float *b, int64_t b_rs, int64_t b_cs,
                          float beta, float *c, int64_t ldc)

    # pooling, batch norm, activations, losses, optimizer steps (pool.c, norm.c, activation.c,
    # loss.c, optim.c)
    ctypedef struct fnn_pool2d:
        int64_t planes, h, w, oh, ow
        int64_t kh, kw, sh, sw, ph, pw
        int ceil_mode, exclude_pad
    int64_t fnn_pool_output_size(int64_t n, int64_t k, int64_t stride, int64_t pad,
                                 int ceil_mode)
    int fnn_max_pool2d(const fnn_pool2d *p, const float *x, float *y, int64_t *idx)
    int fnn_max_pool2d_backward(const fnn_pool2d *p, const float *gy, const int64_t *idx,
                                const float *x, float *gx)
    int fnn_avg_pool2d(const fnn_pool2d *p, const float *x, float *y)
    int fnn_avg_pool2d_backward(const fnn_pool2d *p, const float *gy, float *gx)
    int fnn_adaptive_avg_pool2d(int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                const float *x, float *y)
    int fnn_adaptive_avg_pool2d_backward(int64_t planes, int64_t h, int64_t w, int64_t oh,
                                         int64_t ow, const float *gy, float *gx)

    int fnn_batch_norm(int64_t n, int64_t c, int64_t s, const float *x, const float *weight,
                       const float *bias, float *running_mean, float *running_var,
                       int training, double momentum, double eps, int act, float *y,
                       float *save_mean, float *save_invstd)
    int fnn_batch_norm_backward(int64_t n, int64_t c, int64_t s, const float *grad_y,
                                const float *y_act, const float *x, const float *weight,
                                const float *save_mean, const float *save_invstd,
                                int training, float *grad_x, float *grad_weight,
                                float *grad_bias)

    int fnn_layer_norm(int64_t rows, int64_t cols, const float *x, const float *weight,
                       const float *bias, double eps, float *y, float *save_mean,
                       float *save_rstd)
    int fnn_layer_norm_backward(int64_t rows, int64_t cols, const float *grad_y,
                                const float *x, const float *weight, const float *save_mean,
                                const float *save_rstd, float *grad_x, float *grad_weight,
                                float *grad_bias)

    int fnn_relu(int64_t n, const float *x, float *y)
    int fnn_relu_backward(int64_t n, const float *gy, const float *x, float *gx)
    int fnn_leaky_relu(int64_t n, float slope, const float *x, float *y)
    int fnn_leaky_relu_backward(int64_t n, float slope, const float *gy, const float *x, float *gx)
    int fnn_sigmoid(int64_t n, const float *x, float *y)
    int fnn_sigmoid_backward(int64_t n, const float *gy, const float *y, float *gx)
    int fnn_tanh(int64_t n, const float *x, float *y)
    int fnn_tanh_backward(int64_t n, const float *gy, const float *y, float *gx)
    enum:
        FNN_GELU_ERF
        FNN_GELU_TANH
    int fnn_gelu(int64_t n, int approximate, const float *x, float *y)
    int fnn_gelu_backward(int64_t n, int approximate, const float *gy, const float *x,
                          float *gx)
    int fnn_silu(int64_t n, const float *x, float *y)
    int fnn_silu_backward(int64_t n, const float *gy, const float *x, float *gx)
    int fnn_elu(int64_t n, float alpha, const float *x, float *y)
    int fnn_elu_backward(int64_t n, float alpha, const float *gy, const float *x, float *gx)
    int fnn_softmax(int64_t rows, int64_t cols, const float *x, float *y)
    int fnn_softmax_backward(int64_t rows, int64_t cols, const float *gy, const float *y, float *gx)
    int fnn_log_softmax(int64_t rows, int64_t cols, const float *x, float *y)
    int fnn_log_softmax_backward(int64_t rows, int64_t cols, const float *gy, const float *y,
                                 float *gx)
    int fnn_dropout(int64_t n, double p, uint64_t seed, const float *x, float *y)

    int fnn_add(int64_t count, int64_t n, const float *const *xs, float *y)

    int fnn_cross_entropy(int64_t n, int64_t c, const float *logits, const int64_t *labels,
                          double *loss, float *grad)
    int fnn_bce_with_logits(int64_t n, const float *logits, const float *targets, double *loss,
                            float *grad)
    int fnn_mse_loss(int64_t n, const float *pred, const float *target, double *loss, float *grad)

    int fnn_sgd_step(int64_t count, const int64_t *sizes, float *const *params,
                     const float *const *grads, float *const *bufs, double lr, double momentum,
                     double dampening, int nesterov, double weight_decay, int first_step)
    int fnn_adam_step(int64_t count, const int64_t *sizes, float *const *params,
                      const float *const *grads, float *const *ms, float *const *vs, int64_t step,
                      double lr, double beta1, double beta2, double eps, double weight_decay,
                      int decoupled)
    int fnn_rmsprop_step(int64_t count, const int64_t *sizes, float *const *params,
                         const float *const *grads, float *const *square_avgs,
                         float *const *grad_avgs, float *const *bufs, double lr, double alpha,
                         double eps, double weight_decay, double momentum, int centered,
                         int eps_inside)
    int fnn_linear_forward(int64_t n, int64_t in_f, int64_t out_f, const float *x,
                           const float *w, const float *bias, float *y)
    int fnn_linear_backward(int64_t n, int64_t in_f, int64_t out_f, const float *grad_y,
                            const float *x, const float *w, float *grad_x, float *grad_w,
                            float *grad_b)
    ctypedef struct fnn_conv2d_shape:
        int64_t n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, dh, dw
        int x_hwc, y_hwc
    int fnn_conv2d_output_size(const fnn_conv2d_shape *s, int64_t *oh, int64_t *ow)
    enum:
        FNN_CONV_AUTO
        FNN_CONV_DIRECT
        FNN_CONV_WINOGRAD
        FNN_CONV_WINOGRAD4
        FNN_POOL_POSITIONS
    int fnn_conv2d_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen)
    int fnn_conv2d_grad_weight_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen)
    int fnn_conv2d_grad_input_algorithm(const fnn_conv2d_shape *s, int requested, int *chosen)
    enum:
        FNN_ACT_NONE
        FNN_ACT_RELU
    int fnn_conv2d_forward(const fnn_conv2d_shape *s, const float *x, const float *w,
                           const float *bias, float *y, int algo, int act)
    int fnn_conv2d_backward(const fnn_conv2d_shape *s, const float *grad_y, const float *y_act,
                            const float *x, const float *w, float *grad_x, float *grad_w,
                            float *grad_b, int algo)
    int fnn_conv2d_max_pool2d(const fnn_conv2d_shape *s, const fnn_pool2d *pool, const float *x,
                              const float *w, const float *bias, float *y, uint8_t *pos,
                              int algo, int act)
    int fnn_conv2d_max_pool2d_backward(const fnn_conv2d_shape *s, const fnn_pool2d *pool,
                                       const float *grad_y, const float *y_act,
                                       const uint8_t *pos, const float *x, const float *w,
                                       float *grad_x, float *grad_w, float *grad_b, int algo)
