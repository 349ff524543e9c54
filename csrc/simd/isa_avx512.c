/* isa_avx512.c: the AVX-512 variant: 12x32 tile = 24 zmm accumulators + 2 B + 1 A
 * of the 32 registers. */
#include "../internal.h"

#ifdef FNN_X86
#ifdef FNN_AVX512_ON_AVX2
/* Test build (setup.py FASTNN_AVX512_ON_AVX2=1): the same 12x32 tiles and 16-wide
 * vectors, compiled to AVX2 instructions, so CI runs this variant's logic on any AVX2 CPU. */
#define FNN_TARGET "avx2,fma"
#else
#define FNN_TARGET "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"
#endif
#include "target_begin.h"

#define FNN_VEC 16
#define FNN_MR 12
#define FNN_NR 32
#include "gemm_kernel.h"
#include "probe_kernel.h"
#include "elementwise_kernel.h"
#include "conv_kernel.h"

const fnn_kernels fnn_kernels_avx512 = {
    .name = "avx512",
    .gemm = FNN_GEMM_KERNELS(192, 256, 4096),
    .probe = FNN_PROBE_KERNELS,
    .ew = FNN_EW_KERNELS,
    .conv = FNN_CONV_KERNELS,
};

#include "target_end.h"
#endif
