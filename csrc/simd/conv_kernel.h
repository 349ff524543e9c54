/* conv_kernel.h: the convolution tile loops, compiled once per ISA by simd/isa_*.c
 * (which define FNN_VEC, the floats per SIMD register, and may set FNN_CONV_NV).
 *
 * out[i][j] = bias[i] + sum_p W[i][p] * cols[p][j], register tile FNN_CONV_MR rows x
 * FNN_CONV_NV vectors of pixels: 12 accumulators + 3 B vectors + 1 broadcast of W. Unlike the
 * GEMM driver, there is no separate B packing: im2col writes its columns straight into
 * the packed panel layout, and the bias seeds the accumulators, so the output is
 * written exactly once. Every element is summed over p in increasing order. */

#ifndef FNN_CONV_NV
#define FNN_CONV_NV 3  /* vectors of pixels per tile (4 x 3 measured best of 6x2, 4x2, 4x3) */
#endif
#define FNN_CONV_NR (FNN_CONV_NV * FNN_VEC)

typedef float conv_vf __attribute__((vector_size(FNN_VEC * 4)));
typedef float conv_vf_u __attribute__((vector_size(FNN_VEC * 4), aligned(4)));

/* wp: W packed in panels of FNN_CONV_MR rows (panel t at wp + t*MR*k, element [p][r]),
 * rows past m zero. cols: panels of FNN_CONV_NR pixels (panel q at cols + q*NR*k,
 * element [p][jj], FNN_ALIGN-aligned), pixels past n zero. */
static void conv_macro(int64_t m, int64_t n, int64_t k, const float *wp, const float *cols,
                       const float *bias, float *out, int64_t ldo)
{
    /* Pixel panels outside: one k x NR panel of cols stays in L1 for every row tile. */
    for (int64_t j = 0; j < n; j += FNN_CONV_NR) {
        int nr = (int)FNN_MIN(FNN_CONV_NR, n - j);
        for (int64_t i = 0; i < m; i += FNN_CONV_MR) {
            int mr = (int)FNN_MIN(FNN_CONV_MR, m - i);
            const float *a = wp + i * k, *b = cols + j * k;
            conv_vf acc[FNN_CONV_MR][FNN_CONV_NV];
            _Pragma("GCC unroll 8") for (int r = 0; r < FNN_CONV_MR; r++) {
                float b0 = bias ? bias[i + (r < mr ? r : mr - 1)] : 0.0f;
                _Pragma("GCC unroll 8") for (int v = 0; v < FNN_CONV_NV; v++)
                    acc[r][v] = (conv_vf){0} + b0;
            }
            _Pragma("GCC unroll 4") for (int64_t p = 0; p < k; p++, a += FNN_CONV_MR, b += FNN_CONV_NR) {
                conv_vf bv[FNN_CONV_NV];
                _Pragma("GCC unroll 8") for (int v = 0; v < FNN_CONV_NV; v++)
                    bv[v] = *(const conv_vf *)(b + v * FNN_VEC);
                _Pragma("GCC unroll 8") for (int r = 0; r < FNN_CONV_MR; r++)
                    _Pragma("GCC unroll 8") for (int v = 0; v < FNN_CONV_NV; v++)
                        acc[r][v] += a[r] * bv[v];
            }
            float *o = out + i * ldo + j;
            if (mr == FNN_CONV_MR && nr == FNN_CONV_NR) {
                _Pragma("GCC unroll 8") for (int r = 0; r < FNN_CONV_MR; r++)
                    _Pragma("GCC unroll 8") for (int v = 0; v < FNN_CONV_NV; v++)
                        *(conv_vf_u *)(o + r * ldo + v * FNN_VEC) = acc[r][v];
                continue;
            }
            /* Edge tile: through a buffer, so the accumulators stay in registers. */
            float tile[FNN_CONV_MR][FNN_CONV_NR] __attribute__((aligned(FNN_ALIGN)));
            _Pragma("GCC unroll 8") for (int r = 0; r < FNN_CONV_MR; r++)
                _Pragma("GCC unroll 8") for (int v = 0; v < FNN_CONV_NV; v++)
                    *(conv_vf *)(tile[r] + v * FNN_VEC) = acc[r][v];
            for (int r = 0; r < mr; r++)
                memcpy(o + r * ldo, tile[r], (size_t)nr * sizeof(float));
        }
    }
}

/* Weight gradient for short im2col (k small: the GEMM would waste most of a tile on it):
 * gw[i][q] = (add ? gw[i][q] : 0) + sum_{p<n} g[i*n + p] * cols[q*ldcols + p], as
 * FNN_CONV_WG_M x FNN_CONV_WG_K tiles of vector dot products; lanes are added in order. */
#define FNN_CONV_WG_M 4
#define FNN_CONV_WG_K 3
static void conv_wgrad(int64_t m, int64_t k, int64_t n, const float *g, const float *cols,
                       int64_t ldcols, int add, float *gw)
{
    int64_t nv = n / FNN_VEC * FNN_VEC;
    for (int64_t i0 = 0; i0 < m; i0 += FNN_CONV_WG_M)
        for (int64_t q0 = 0; q0 < k; q0 += FNN_CONV_WG_K) {
            const float *gr[FNN_CONV_WG_M], *cr[FNN_CONV_WG_K];
            conv_vf acc[FNN_CONV_WG_M][FNN_CONV_WG_K];
            /* Rows past the edge re-read the last one; their sums are dropped. */
            _Pragma("GCC unroll 8") for (int r = 0; r < FNN_CONV_WG_M; r++)
                gr[r] = g + FNN_MIN(i0 + r, m - 1) * n;
            _Pragma("GCC unroll 8") for (int s = 0; s < FNN_CONV_WG_K; s++)
                cr[s] = cols + FNN_MIN(q0 + s, k - 1) * ldcols;
            _Pragma("GCC unroll 8") for (int r = 0; r < FNN_CONV_WG_M; r++)
                _Pragma("GCC unroll 8") for (int s = 0; s < FNN_CONV_WG_K; s++)
                    acc[r][s] = (conv_vf){0};
            for (int64_t p = 0; p < nv; p += FNN_VEC) {
                conv_vf gv[FNN_CONV_WG_M], cv[FNN_CONV_WG_K];
                _Pragma("GCC unroll 8") for (int r = 0; r < FNN_CONV_WG_M; r++)
                    gv[r] = *(const conv_vf_u *)(gr[r] + p);
                _Pragma("GCC unroll 8") for (int s = 0; s < FNN_CONV_WG_K; s++)
                    cv[s] = *(const conv_vf_u *)(cr[s] + p);
                _Pragma("GCC unroll 8") for (int r = 0; r < FNN_CONV_WG_M; r++)
                    _Pragma("GCC unroll 8") for (int s = 0; s < FNN_CONV_WG_K; s++)
                        acc[r][s] += gv[r] * cv[s];
            }
            float sums[FNN_CONV_WG_M][FNN_CONV_WG_K][FNN_VEC] __attribute__((aligned(FNN_ALIGN)));
            _Pragma("GCC unroll 8") for (int r = 0; r < FNN_CONV_WG_M; r++)
                _Pragma("GCC unroll 8") for (int s = 0; s < FNN_CONV_WG_K; s++)
                    *(conv_vf *)sums[r][s] = acc[r][s];
            for (int r = 0; r < FNN_CONV_WG_M && i0 + r < m; r++)
                for (int s = 0; s < FNN_CONV_WG_K && q0 + s < k; s++) {
                    float t = 0.0f;
                    for (int l = 0; l < FNN_VEC; l++)
                        t += sums[r][s][l];
                    for (int64_t p = nv; p < n; p++)
                        t += gr[r][p] * cr[s][p];
                    float *dst = gw + (i0 + r) * k + q0 + s;
                    *dst = add ? *dst + t : t;
                }
        }
}

#define FNN_CONV_KERNELS {.nr = FNN_CONV_NR, .macro = conv_macro, .wgrad = conv_wgrad}
