/* runtime.c: ISA detection and dispatch, thread count, the per-thread workspace. */
#include <stdlib.h>
#include <time.h>

#include "internal.h"

static const fnn_kernels *const kernels_by_isa[FNN_ISA_COUNT] = {
    &fnn_kernels_generic,
#ifdef FNN_X86
    &fnn_kernels_avx2,
    &fnn_kernels_avx512,
#else
    NULL,
    NULL,
#endif
};

const fnn_kernels *fnn_active = &fnn_kernels_generic;

const char *fnn_isa_name(int isa)
{
    static const char *const names[FNN_ISA_COUNT] = {"generic", "avx2", "avx512"};
    return isa >= 0 && isa < FNN_ISA_COUNT ? names[isa] : NULL;
}

/* __builtin_cpu_supports checks CPUID and, through XGETBV, that the OS saves
 * the YMM/ZMM state, so a "yes" here never leads to an illegal instruction. */
int fnn_isa_supported(int isa)
{
    switch (isa) {
    case FNN_ISA_GENERIC:
        return 1;
#ifdef FNN_X86
    case FNN_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FNN_ISA_AVX512:
#ifdef FNN_AVX512_ON_AVX2
        return fnn_isa_supported(FNN_ISA_AVX2);
#endif
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

int fnn_default_isa(void)
{
    int isa = FNN_ISA_COUNT - 1;
    while (isa > FNN_ISA_GENERIC && !fnn_isa_supported(isa))
        isa--;
    return isa;
}

/* How much more padded work the wide tiles may take than the narrow ones (fnn_gemm_tile,
 * conv.c's conv_tile): where zmm runs on 256-bit units (AMD Zen 4) a zmm FMA costs two
 * ymm ones, and the wide tile pays only where it does no more work (FNN_WIDE_SLACK);
 * where it runs at full width (Zen 5, Intel's servers with two 512-bit FMA units) it
 * does twice the work in the same time, and pays up to FNN_WIDE_SLACK_FULL times it. */
static int zmm_width;  /* 0 until measured (or without AVX-512), then 256 or 512 */

double fnn_wide_slack(void) { return zmm_width == 512 ? FNN_WIDE_SLACK_FULL : FNN_WIDE_SLACK; }

/* Seconds of `iters` rounds of a probe's FMA chains on this thread. */
static double fma_seconds(const fnn_probe_kernels *p, int64_t iters)
{
    struct timespec t0, t1;
    volatile float sink;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sink = p->fma(iters);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    (void)sink;
    return (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
}

/* The width zmm FMAs run at: AVX-512's FMA probe against AVX2's (each the tile's own
 * chains), interleaved, the best of 7 rounds of ~20 us each (a co-tenant's interruption
 * only slows a round). Full width gives ~2x AVX2's rate, 256-bit units ~1x. Tile choice
 * never changes a result's bits (each element is summed in the same order on either
 * tile), only the time. */
static void measure_zmm_width(void)
{
#ifdef FNN_X86
    const fnn_probe_kernels *p512 = fnn_kernels_avx512.probe, *p256 = fnn_kernels_avx2.probe;
    double r512 = 0.0, r256 = 0.0;
    for (int round = 0; round < 7; round++) {
        double t512 = fma_seconds(p512, 2048), t256 = fma_seconds(p256, 2048);
        if (t512 > 0.0)
            r512 = FNN_MAX(r512, 2048.0 * p512->fma_flops_per_iter / t512);
        if (t256 > 0.0)
            r256 = FNN_MAX(r256, 2048.0 * p256->fma_flops_per_iter / t256);
    }
    zmm_width = r512 >= 1.5 * r256 ? 512 : 256;
#endif
}

int fnn_zmm_width(void)
{
    if (zmm_width == 0 && fnn_isa_supported(FNN_ISA_AVX512) &&
        kernels_by_isa[FNN_ISA_AVX512] != NULL)
        measure_zmm_width();
    return zmm_width;
}

int fnn_set_zmm_width(int width)
{
    if (width != 256 && width != 512)
        return FNN_EINVAL;
    if (fnn_zmm_width() == 0)
        return FNN_EUNSUPPORTED;
    zmm_width = width;
    return FNN_OK;
}

int fnn_select_isa(int isa)
{
    if (isa < 0 || isa >= FNN_ISA_COUNT)
        return FNN_EINVAL;
    if (!fnn_isa_supported(isa) || kernels_by_isa[isa] == NULL)
        return FNN_EUNSUPPORTED;
    if (isa == FNN_ISA_AVX512)
        fnn_zmm_width();
    fnn_active = kernels_by_isa[isa];
    return FNN_OK;
}

int fnn_current_isa(void)
{
    for (int isa = 0; isa < FNN_ISA_COUNT; isa++)
        if (kernels_by_isa[isa] == fnn_active)
            return isa;
    return FNN_ISA_GENERIC;
}

int fnn_max_threads(void)
{
    return FNN_MIN(4 * omp_get_num_procs(), FNN_THREADS_CAP);
}

int fnn_set_num_threads(int n)
{
    if (n < 1 || n > fnn_max_threads())
        return FNN_EINVAL;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    return FNN_OK;
}

int fnn_get_num_threads(void) { return omp_get_max_threads(); }

int fnn_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

const char *fnn_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

/* Growing buffers per calling thread: kernels ask once per call and carve their
 * pieces out, so steady-state calls allocate nothing. */
static _Thread_local void *ws_ptr[FNN_WS_SLOTS];
static _Thread_local size_t ws_size[FNN_WS_SLOTS];

void *fnn_workspace(int slot, size_t bytes)
{
    if (bytes <= ws_size[slot])
        return ws_ptr[slot];
    if (bytes > SIZE_MAX / 2)
        return NULL;
    size_t want = (size_t)fnn_round_up((int64_t)(bytes + bytes / 4), FNN_ALIGN);
    void *p = aligned_alloc(FNN_ALIGN, want);
    if (p == NULL)
        return NULL;
    free(ws_ptr[slot]);
    ws_ptr[slot] = p;
    ws_size[slot] = want;
    return p;
}

void fnn_release_workspace(void)
{
    for (int slot = 0; slot < FNN_WS_SLOTS; slot++) {
        free(ws_ptr[slot]);
        ws_ptr[slot] = NULL;
        ws_size[slot] = 0;
    }
}
