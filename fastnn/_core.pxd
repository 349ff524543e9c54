# _core.pxd: the C API of csrc/fastnn.h as Cython sees it. Every call is nogil:
# the .pyx wrappers validate under the GIL, then release it around the C call.
from libc.stdint cimport int64_t

cdef extern from "fastnn.h" nogil:
    enum:
        FNN_OK
        FNN_EINVAL
        FNN_ENOMEM
        FNN_EUNSUPPORTED
    enum:
        FNN_ISA_GENERIC
        FNN_ISA_AVX2
        FNN_ISA_AVX512
        FNN_ISA_COUNT

    const char *fnn_isa_name(int isa)
    int fnn_isa_supported(int isa)
    int fnn_best_isa()
    int fnn_select_isa(int isa)
    int fnn_current_isa()
    int fnn_set_num_threads(int n)
    int fnn_get_num_threads()
    int fnn_has_openmp()
    const char *fnn_compiler()
    void fnn_release_workspace()

    int fnn_sgemm_strided(int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t a_rs, int64_t a_cs,
                          const float *b, int64_t b_rs, int64_t b_cs,
                          float beta, float *c, int64_t ldc)

    int fnn_linear_forward(int64_t n, int64_t in_f, int64_t out_f, const float *x,
                           const float *w, const float *bias, float *y)
    int fnn_linear_backward(int64_t n, int64_t in_f, int64_t out_f, const float *grad_y,
                            const float *x, const float *w, float *grad_x, float *grad_w,
                            float *grad_b)
    ctypedef struct fnn_conv2d_shape:
        int64_t n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, dh, dw
    int fnn_conv2d_output_size(const fnn_conv2d_shape *s, int64_t *oh, int64_t *ow)
    int fnn_conv2d_forward(const fnn_conv2d_shape *s, const float *x, const float *w,
                           const float *bias, float *y)
    int fnn_conv2d_backward(const fnn_conv2d_shape *s, const float *grad_y, const float *x,
                            const float *w, float *grad_x, float *grad_w, float *grad_b)
