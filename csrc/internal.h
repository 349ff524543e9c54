/* internal.h: what the kernel files share and the Python side never sees:
 * the per-ISA kernel table, the active ISA, OpenMP shims and the workspace. */
#ifndef FASTNN_INTERNAL_H
#define FASTNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastnn.h"

#ifdef _OPENMP
#include <omp.h>
#define FNN_BARRIER() _Pragma("omp barrier")
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
#define FNN_BARRIER() ((void)0)
#endif

#define FNN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FNN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FNN_ALIGN 64

/* Problems below this many multiply-adds run on one thread: forking costs more. */
#define FNN_PARALLEL_MIN_WORK (256 * 1024)

/* Register-blocked GEMM pieces of one ISA (simd/gemm_kernel.h).
 * op(A)[i][p] = a[i*rs + p*cs]; a panel of mr rows starts every `ps` elements.
 * Packed A: rs = 1, cs = mr, ps = mr*kc. Packed B: nr-wide panels of kc rows. */
typedef struct {
    int mr, nr;           /* register tile */
    int64_t mc, kc, nc;   /* cache blocks: A block mc x kc in L2, B block kc x nc in L3 */
    void (*pack_a)(int64_t mc, int64_t kc, const float *a, int64_t rs, int64_t cs, float *ap);
    void (*pack_b)(int64_t kc, int64_t nc, const float *b, int64_t rs, int64_t cs, float *bp);
    void (*macro)(int64_t mc, int64_t nc, int64_t kc, float alpha, const float *a,
                  int64_t rs, int64_t cs, int64_t ps, const float *bp, float beta,
                  float *c, int64_t ldc);
} fnn_gemm_kernels;

/* Convolution tile loop of one ISA (simd/conv_kernel.h): out = W * cols + bias
 * with W packed in FNN_CONV_MR-row panels and cols (im2col) in nr-pixel panels, or
 * read in place at row offsets boff (a padded image, for stride 1). */
#define FNN_CONV_MR 4
typedef struct {
    int nr;  /* output pixels per register tile */
    void (*macro)(int64_t m, int64_t n, int64_t k, const float *wp, const float *cols,
                  const int64_t *boff, const float *bias, float *out, int64_t ldo);
    /* Weight gradient of one image for a short im2col: gw (m x k) (+)= g @ cols^T. */
    void (*wgrad)(int64_t m, int64_t k, int64_t n, const float *g, const float *cols,
                  int64_t ldcols, int add, float *gw);
} fnn_conv_kernels;

typedef struct {
    const char *name;
    fnn_gemm_kernels gemm;
    fnn_conv_kernels conv;
} fnn_kernels;

extern const fnn_kernels fnn_kernels_generic;
#if defined(__x86_64__) || defined(_M_X64)
#define FNN_X86 1
extern const fnn_kernels fnn_kernels_avx2;
extern const fnn_kernels fnn_kernels_avx512;
#endif

/* The kernels of the ISA chosen at start-up. */
extern const fnn_kernels *fnn_active;

/* Threads to use for `work` multiply-adds (or element operations); 1 inside a parallel region. */
int fnn_threads_for(double work);

/* The calling thread's workspace `slot`, at least `bytes` long, FNN_ALIGN-aligned,
 * reused by the next request for that slot (so steady-state calls allocate nothing).
 * GEMM owns FNN_WS_GEMM; an op that calls GEMM takes its own buffers from FNN_WS_OP. */
enum { FNN_WS_GEMM = 0, FNN_WS_OP = 1, FNN_WS_SLOTS = 2 };
void *fnn_workspace(int slot, size_t bytes);

/* Split [0, n) into nth near-equal contiguous parts; part ith is [*lo, *hi). */
static inline void fnn_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

static inline int64_t fnn_round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

#endif /* FASTNN_INTERNAL_H */
