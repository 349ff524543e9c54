/* isa_generic.c: the portable variant, for the compiler's baseline target
 * (SSE2 on x86-64, NEON on arm64): 6x8 tile in 16-byte vectors. */
#include "../internal.h"

#define FNN_VEC 4
#define FNN_MR 6
#define FNN_NR 8
#include "gemm_kernel.h"
#include "probe_kernel.h"
#include "elementwise_kernel.h"
#include "conv_kernel.h"
#include "winograd_kernel.h"

static const fnn_gemm_kernels gemm = FNN_GEMM_KERNELS(120, 256, 4096);
static const fnn_probe_kernels probe = FNN_PROBE_KERNELS;
static const fnn_elementwise_kernels ew = FNN_EW_KERNELS;
static const fnn_conv_kernels conv = FNN_CONV_KERNELS;
static const fnn_wino_kernels wino = FNN_WINO_KERNELS;

const fnn_kernels fnn_kernels_generic = {
    .name = "generic", .gemm = &gemm, .probe = &probe, .ew = &ew, .conv = &conv, .wino = &wino,
};
