/* runtime.c: ISA detection and dispatch, thread count, the per-thread workspace. */
#include <stdlib.h>

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

int fnn_select_isa(int isa)
{
    if (isa < 0 || isa >= FNN_ISA_COUNT)
        return FNN_EINVAL;
    if (!fnn_isa_supported(isa) || kernels_by_isa[isa] == NULL)
        return FNN_EUNSUPPORTED;
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
