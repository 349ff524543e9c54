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

    int fnn_probe_fma(int64_t iters, double *flops)
    int fnn_probe_copy(float *dst, const float *src, int64_t n)

    int fnn_sgemm_strided(int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t a_rs, int64_t a_cs,
                          const float *b, int64_t b_rs, int64_t b_cs,
                          float beta, float *c, int64_t ldc)
