/* isa_avx2.c: the AVX2+FMA variant: 6x16 tile = 12 ymm accumulators + 2 B + 1 A
 * of the 16 registers. Blocks for a 32 KiB L1, 1 MiB L2, large L3. */
#include "../internal.h"

#ifdef FNN_X86
#define FNN_TARGET "avx2,fma"
#include "target_begin.h"

#define FNN_VEC 8
#define FNN_MR 6
#define FNN_NR 16
#include "gemm_kernel.h"
#include "probe_kernel.h"
#include "elementwise_kernel.h"
#include "conv_kernel.h"
#include "winograd_kernel.h"

const fnn_gemm_kernels fnn_gemm_avx2 = FNN_GEMM_KERNELS(144, 256, 4096);
void fnn_max_pool_2x2_avx2(int64_t oh, int64_t ow, int w, const float *x, int64_t base, float *y,
                           int64_t *idx, uint8_t *pos)
{
    ew_max_pool_2x2(oh, ow, w, x, base, y, idx, pos);
}
static const fnn_elementwise_kernels ew = FNN_EW_KERNELS;
const fnn_conv_kernels fnn_conv_avx2 = FNN_CONV_KERNELS;
const fnn_wino_kernels fnn_wino_avx2 = FNN_WINO_KERNELS;
static const fnn_probe_kernels probe = FNN_PROBE_KERNELS;

const fnn_kernels fnn_kernels_avx2 = {
    .name = "avx2", .gemm = &fnn_gemm_avx2, .probe = &probe, .ew = &ew,
    .conv = &fnn_conv_avx2, .wino = &fnn_wino_avx2,
};

#include "target_end.h"
#endif
