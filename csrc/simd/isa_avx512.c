/* isa_avx512.c: the AVX-512 variant: 16-lane elementwise loops (activations, softmax,
 * dropout, the optimizer steps), a 12x32 GEMM tile (24 zmm accumulators + 2 B + 1 A of
 * the 32 registers), a 4 x 32-pixel convolution tile and Winograd transforms on 16
 * channels a vector, with AVX2's 6x16 GEMM tile, convolution tile and transforms beside
 * them.
 *
 * 16 lanes pay only where all of them are busy. Narrow image rows (13 or 5 pooled
 * pixels), N = 10 classifier products and short panels waste most of a zmm register, and
 * on CPUs that run AVX-512 on 256-bit units (AMD Zen 4) a zmm operation costs two ymm
 * ones, so there the wide code would be slower. So the 2x2 max pool is AVX2's (its 4-
 * and 8-lane rows), and gemm.c, conv.c and winograd.c take the wide tiles only where
 * they do no more work than AVX2's: then they cost about the same on Zen 4 (its training
 * steps measured 0.97x AVX2's time) and half as much on CPUs with 512-bit units (Zen 5,
 * Intel servers). */
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
#define FNN_CONV_NV 2  /* 32 pixels a tile: the reference CNN's 676 pad to 704, AVX2's to 696 */
#define FNN_CONV_POOL_MR 4    /* 16 accumulators of the 32 registers */
#define FNN_WINO_VEC 16
/* AVX2's 2x2 max pool: compiled for AVX-512, its 4- and 8-lane rows compare into mask
 * registers and back, and a 128x64x10x10 pool with its backward took 1.3x the time (Zen 5) */
#define FNN_EW_MAX_POOL_2X2 fnn_max_pool_2x2_avx2
#include "gemm_kernel.h"
#include "probe_kernel.h"
#include "elementwise_kernel.h"
#include "conv_kernel.h"
#include "winograd_kernel.h"

static const fnn_gemm_kernels gemm_wide = FNN_GEMM_KERNELS(192, 256, 4096);
static const fnn_elementwise_kernels ew = FNN_EW_KERNELS;
static const fnn_conv_kernels conv_wide = FNN_CONV_KERNELS;
static const fnn_wino_kernels wino_wide = FNN_WINO_KERNELS;
static const fnn_probe_kernels probe = FNN_PROBE_KERNELS;

const fnn_kernels fnn_kernels_avx512 = {
    .name = "avx512", .gemm = &fnn_gemm_avx2, .gemm_wide = &gemm_wide, .probe = &probe,
    .ew = &ew, .conv = &fnn_conv_avx2, .conv_wide = &conv_wide, .wino = &fnn_wino_avx2,
    .wino_wide = &wino_wide,
};

#include "target_end.h"
#endif
