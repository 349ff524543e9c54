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
 * gw[(i*k + q)*FNN_VEC + l] (+)= lane l of sum_{p<n} g[i*ldg + p] * cols[q*ldcols + p],
 * pixel p in lane p % FNN_VEC (the last, partial vector's in the first lanes), as
 * FNN_CONV_WG_M x FNN_CONV_WG_K tiles of vector dot products. The lanes are left to the
 * caller to add up once for many images: a horizontal sum per element and image cost as
 * much as the products (the reference CNN's 1->32 conv). */
#define FNN_CONV_WG_M 4
#define FNN_CONV_WG_K 3
static void conv_wgrad(int64_t m, int64_t k, int64_t n, const float *g, int64_t ldg,
                       const float *cols, int64_t ldcols, int add, float *gw)
{
    enum { WM = FNN_CONV_WG_M, WK = FNN_CONV_WG_K, V = FNN_VEC };
    for (int64_t i0 = 0; i0 < m; i0 += WM)
        for (int64_t q0 = 0; q0 < k; q0 += WK) {
            const float *gr[WM], *cr[WK];
            conv_vf acc[WM][WK];
            /* Rows past the edge re-read the last one; their sums are dropped. */
            _Pragma("GCC unroll 8") for (int r = 0; r < WM; r++)
                gr[r] = g + FNN_MIN(i0 + r, m - 1) * ldg;
            _Pragma("GCC unroll 8") for (int s = 0; s < WK; s++)
                cr[s] = cols + FNN_MIN(q0 + s, k - 1) * ldcols;
            _Pragma("GCC unroll 8") for (int r = 0; r < WM; r++)
                _Pragma("GCC unroll 8") for (int s = 0; s < WK; s++)
                    acc[r][s] = (conv_vf){0};
            for (int64_t p = 0; p < n; p += V) {
                conv_vf gv[WM], cv[WK];
                if (p + V <= n) {
                    _Pragma("GCC unroll 8") for (int r = 0; r < WM; r++)
                        gv[r] = *(const conv_vf_u *)(gr[r] + p);
                    _Pragma("GCC unroll 8") for (int s = 0; s < WK; s++)
                        cv[s] = *(const conv_vf_u *)(cr[s] + p);
                } else {  /* the last pixels, in the first lanes */
                    _Pragma("GCC unroll 8") for (int r = 0; r < WM; r++) {
                        gv[r] = (conv_vf){0};
                        memcpy(&gv[r], gr[r] + p, (size_t)(n - p) * sizeof(float));
                    }
                    _Pragma("GCC unroll 8") for (int s = 0; s < WK; s++) {
                        cv[s] = (conv_vf){0};
                        memcpy(&cv[s], cr[s] + p, (size_t)(n - p) * sizeof(float));
                    }
                }
                _Pragma("GCC unroll 8") for (int r = 0; r < WM; r++)
                    _Pragma("GCC unroll 8") for (int s = 0; s < WK; s++)
                        acc[r][s] += gv[r] * cv[s];
            }
            _Pragma("GCC unroll 8") for (int r = 0; r < WM; r++)
                _Pragma("GCC unroll 8") for (int s = 0; s < WK; s++)
                    if (i0 + r < m && q0 + s < k) {
                        conv_vf *dst = (conv_vf *)(gw + ((i0 + r) * k + q0 + s) * V);
                        *dst = add ? *dst + acc[r][s] : acc[r][s];
                    }
        }
}

/* ---- A convolution and the 2x2 max pool after it, in one pass ----
 * cols in pool order: row 4p + d (ldc apart, FNN_ALIGN-aligned) holds im2col row p at the
 * conv pixels in window position d (0 to 3, row-major) of the pooled pixels, in order. A
 * row tile's accumulators then hold the four positions of FNN_VEC windows side by side,
 * and the pool is three vector compares: the conv output is never stored or read back.
 * Rows FNN_CONV_POOL_MR at a time: 4 x 4 accumulators fill 16 of AVX-512's 32
 * registers, 2 x 4 AVX2's 16. */
#ifndef FNN_CONV_POOL_MR
#define FNN_CONV_POOL_MR 2
#endif
typedef int32_t conv_vi __attribute__((vector_size(FNN_VEC * 4)));
typedef uint8_t conv_vq __attribute__((vector_size(FNN_VEC)));

static inline conv_vf conv_take(conv_vi s, conv_vf v, conv_vf m)
{
    return (conv_vf)((s & (conv_vi)v) | (~s & (conv_vi)m));
}

/* y (ldy apart, rows of n pooled pixels) and pos (window positions) of rows [0, m) of W
 * packed as for conv_macro: each position summed as conv_macro sums it, the window
 * scanned as the pool scans it (a later element replaces the maximum when larger or
 * NaN), then relu's x < 0 ? 0 : x if relu; so bitwise the conv, the pool and the relu. */
static void conv_pool_macro(int64_t m, int64_t n, int64_t k, const float *wp, const float *cols,
                            int64_t ldc, const float *bias, int relu, float *y, int64_t ldy,
                            uint8_t *pos)
{
    enum { MR = FNN_CONV_POOL_MR, V = FNN_VEC };
    for (int64_t j = 0; j < n; j += V) {
        int nr = (int)FNN_MIN(V, n - j);
        for (int64_t i = 0; i < m; i += MR) {
            int mr = (int)FNN_MIN(MR, m - i);
            const float *a = wp + i / FNN_CONV_MR * FNN_CONV_MR * k + i % FNN_CONV_MR;
            const float *b = cols + j;
            conv_vf acc[MR][4];
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
                float b0 = bias ? bias[i + (r < mr ? r : mr - 1)] : 0.0f;
                _Pragma("GCC unroll 4") for (int d = 0; d < 4; d++)
                    acc[r][d] = (conv_vf){0} + b0;
            }
            _Pragma("GCC unroll 4") for (int64_t p = 0; p < k;
                                         p++, a += FNN_CONV_MR, b += 4 * ldc) {
                conv_vf bv[4];
                _Pragma("GCC unroll 4") for (int d = 0; d < 4; d++)
                    bv[d] = *(const conv_vf *)(b + d * ldc);
                _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                    _Pragma("GCC unroll 4") for (int d = 0; d < 4; d++)
                        acc[r][d] += a[r] * bv[d];
            }
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
                if (r == mr)
                    break;
                conv_vf mx = acc[r][0];
                conv_vi at = {0};
                _Pragma("GCC unroll 4") for (int d = 1; d < 4; d++) {
                    conv_vi s = (acc[r][d] > mx) | (acc[r][d] != acc[r][d]);
                    mx = conv_take(s, acc[r][d], mx);
                    at = (s & d) | (~s & at);
                }
                if (relu)
                    mx = conv_take(mx < 0.0f, (conv_vf){0}, mx);
                conv_vq q = __builtin_convertvector(at, conv_vq);
                float *yo = y + (i + r) * ldy + j;
                uint8_t *po = pos ? pos + (i + r) * ldy + j : NULL;
                if (nr == V) {
                    *(conv_vf_u *)yo = mx;
                    if (po)
                        memcpy(po, &q, V);
                } else {
                    memcpy(yo, &mx, (size_t)nr * sizeof(float));
                    if (po)
                        memcpy(po, &q, (size_t)nr);
                }
            }
        }
    }
}

/* Its output gradient, of one image: rows [0, m) of gy (n pooled pixels each), passed
 * where y > 0 if y is set (relu's backward: a NaN passes), each at its window position
 * pos and zeros at the other three, as unpooling leaves them, into g in pool order (row
 * i's position d at g + (4i + d)*ldg, zeros from n to ldg, a multiple of FNN_VEC); so
 * conv_wgrad's products with cols in pool order are those of the unpooled gradient.
 * gb[i*FNN_VEC + l] (+)= lane l of row i's sum. Nonzero if a position is past 3. */
static int conv_pool_ungrad(int64_t m, int64_t n, const float *gy, const float *y,
                            const uint8_t *pos, float *g, int64_t ldg, int add, float *gb)
{
    enum { V = FNN_VEC };
    conv_vi bad = {0}, lane;
    for (int l = 0; l < V; l++)
        lane[l] = l;
    for (int64_t i = 0; i < m; i++, gy += n, y = y ? y + n : NULL, pos += n, g += 4 * ldg) {
        conv_vf sum = {0};
        for (int64_t j = 0; j < n; j += V) {
            /* A row's last vector ends at n, over lanes done already (not summed again),
             * after zeros for the padding; rows under one vector are read lane by lane. */
            int64_t at = n >= V ? FNN_MIN(j, n - V) : 0;
            conv_vf gv = {0}, yv = {0};
            conv_vi k = {0};
            if (n >= V) {
                gv = *(const conv_vf_u *)(gy + at);
                if (y)
                    yv = *(const conv_vf_u *)(y + at);
                for (int l = 0; l < V; l++)
                    k[l] = pos[at + l];
            } else {
                for (int l = 0; l < n; l++) {
                    gv[l] = gy[l];
                    yv[l] = y ? y[l] : 0.0f;
                    k[l] = pos[l];
                }
            }
            if (y)
                gv = conv_take(yv <= 0.0f, (conv_vf){0}, gv);
            bad |= k > 3;
            sum += conv_take(lane >= (conv_vi){0} + (int32_t)(j - at), gv, (conv_vf){0});
            _Pragma("GCC unroll 4") for (int d = 0; d < 4; d++) {
                if (j + V > n)
                    *(conv_vf *)(g + d * ldg + ldg - V) = (conv_vf){0};
                *(conv_vf_u *)(g + d * ldg + at) = conv_take(k == d, gv, (conv_vf){0});
            }
        }
        conv_vf *dst = (conv_vf *)(gb + i * V);
        *dst = add ? *dst + sum : sum;
    }
    int any = 0;
    for (int l = 0; l < V; l++)
        any |= bad[l];
    return any != 0;
}

#define FNN_CONV_KERNELS                                                                   \
    {.nr = FNN_CONV_NR, .lanes = FNN_VEC, .macro = conv_macro, .wgrad = conv_wgrad,         \
     .pool_macro = conv_pool_macro, .pool_ungrad = conv_pool_ungrad}
