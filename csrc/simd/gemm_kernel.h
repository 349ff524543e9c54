/* gemm_kernel.h: GEMM packing, macro-kernel and register micro-kernel, written once
 * with GCC/Clang vector extensions and compiled once per ISA by simd/isa_*.c, which
 * set the target and define:
 *   FNN_VEC  floats per SIMD register (16 AVX-512, 8 AVX2, 4 SSE2/NEON)
 *   FNN_MR   rows of the register tile
 *   FNN_NR   columns of the register tile, a multiple of FNN_VEC
 * The tile uses MR*NR/VEC accumulators + NR/VEC B registers + 1 broadcast of A.
 * Every element of C is summed over k in increasing order, one FMA at a time. */

#define FNN_NV (FNN_NR / FNN_VEC)

typedef float vfloat __attribute__((vector_size(FNN_VEC * 4)));
typedef float vfloat_u __attribute__((vector_size(FNN_VEC * 4), aligned(4)));

#if FNN_VEC >= 8
/* 8-lane vectors (ymm) in the AVX-512 variant too: a 16-lane transpose would need 16 rows. */
typedef float vfloat8 __attribute__((vector_size(32)));
typedef float vfloat8_u __attribute__((vector_size(32), aligned(4)));
typedef int vint8 __attribute__((vector_size(32)));

/* r[l] lane q -> r[q] lane l: an 8 x 8 block transposed in registers (a scalar copy
 * would move one float at a time, to a different cache line each). */
static inline __attribute__((always_inline)) void gemm_transpose8(vfloat8 r[8])
{
    const vint8 lo1 = {0, 8, 1, 9, 4, 12, 5, 13}, hi1 = {2, 10, 3, 11, 6, 14, 7, 15};
    const vint8 lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const vint8 lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    vfloat8 t[8], u[8];
    for (int l = 0; l < 8; l += 2) {
        t[l] = __builtin_shuffle(r[l], r[l + 1], lo1);
        t[l + 1] = __builtin_shuffle(r[l], r[l + 1], hi1);
    }
    for (int l = 0; l < 8; l += 4)
        for (int h = 0; h < 2; h++) {
            u[l + 2 * h] = __builtin_shuffle(t[l + h], t[l + h + 2], lo2);
            u[l + 2 * h + 1] = __builtin_shuffle(t[l + h], t[l + h + 2], hi2);
        }
    /* u[q], u[q + 4]: columns q and q + 4 of rows 0-3 and of rows 4-7 */
    for (int q = 0; q < 4; q++) {
        r[q] = __builtin_shuffle(u[q], u[q + 4], lo4);
        r[q + 4] = __builtin_shuffle(u[q], u[q + 4], hi4);
    }
}

/* dst[q*ld + l] = src[l*ls + q] (+ add[q] when add is set) for an 8 x 8 block. */
static inline __attribute__((always_inline)) void
gemm_transpose_8x8(const float *src, int64_t ls, const float *add, float *dst, int64_t ld)
{
    vfloat8 r[8];
    for (int l = 0; l < 8; l++)
        r[l] = *(const vfloat8_u *)(src + l * ls);
    gemm_transpose8(r);
    for (int q = 0; q < 8; q++)
        *(vfloat8_u *)(dst + q * ld) = add != NULL ? r[q] + add[q] : r[q];
}

/* Columns [0, kc8) of a full panel of R lanes (rows of op(A) or columns of op(B)),
 * lane l's column p at src[l*ls + p] (the panel's lanes strided, their elements
 * contiguous: A = X or B = W^T, a linear layer's input or weight), in 8x8 blocks of up
 * to 8 lanes (those past R zero, their lanes not stored). Returns kc8, a multiple of 8. */
static inline __attribute__((always_inline)) int64_t
gemm_pack_t8(int64_t kc, const float *src, int64_t ls, int R, float *dst)
{
    int64_t kc8 = kc / 8 * 8;
    for (int64_t p = 0; p < kc8; p += 8)
        for (int l0 = (R - 1) / 8 * 8; l0 >= 0; l0 -= 8) {
            const int w = FNN_MIN(8, R - l0);
            vfloat8 r[8];
            for (int l = 0; l < 8; l++)
                r[l] = l < w ? *(const vfloat8_u *)(src + (l0 + l) * ls + p) : (vfloat8){0};
            gemm_transpose8(r);
            /* whole vectors: a short block's last 8 - w lanes land on the next column's
             * first lanes, which the blocks after it (l0 descending, q ascending) or the
             * scalar tail write again; past the panel's last column only w are stored */
            for (int q = 0; q < 8; q++)
                if (w == 8 || p + q + 1 < kc)
                    *(vfloat8_u *)(dst + (p + q) * R + l0) = r[q];
                else
                    memcpy(dst + (p + q) * R + l0, &r[q], (size_t)w * sizeof(float));
        }
    return kc8;
}
#endif

/* gemm_transpose element by element, the longer side inner (a copy stays a copy:
 * -0 + 0 would be +0). */
static void gemm_transpose_elems(int64_t rows, int64_t cols, const float *src, int64_t ls,
                                 const float *add, float *dst, int64_t ld)
{
    int rows_inner = rows >= cols;
    int64_t n_out = rows_inner ? cols : rows, n_in = rows_inner ? rows : cols;
    for (int64_t i = 0; i < n_out; i++)
        for (int64_t j = 0; j < n_in; j++) {
            int64_t r = rows_inner ? j : i, c = rows_inner ? i : j;
            dst[c * ld + r] = add ? src[r * ls + c] + add[c] : src[r * ls + c];
        }
}

/* dst[c*ld + r] = src[r*ls + c] (+ add[c] when add is set), r < rows, c < cols: the
 * layout changes between channels-first and channels-last images (conv.c, winograd.c),
 * in 8 x 8 register blocks where the ISA has 8 lanes and both sides have 8 or more;
 * element by element otherwise. */
static void gemm_transpose(int64_t rows, int64_t cols, const float *src, int64_t ls,
                           const float *add, float *dst, int64_t ld)
{
#if FNN_VEC == 8
    if (rows >= 8 && cols >= 8) {
        /* 8 rows of dst at a time, each written start to end: when dst is the
         * channels-first image (in memory, not cache), 8 write streams rather than one
         * per channel. A side that is not a multiple of 8 ends with a block flush with
         * its edge, overlapping the one before: the overlap is written twice with the
         * same values (11- and 13-pixel rows: a third of them went element by element). */
        for (int64_t c = 0; c < cols; c += 8) {
            int64_t c0 = FNN_MIN(c, cols - 8);
            for (int64_t r = 0; r < rows; r += 8) {
                int64_t r0 = FNN_MIN(r, rows - 8);
                gemm_transpose_8x8(src + r0 * ls + c0, ls, add ? add + c0 : NULL,
                                   dst + c0 * ld + r0, ld);
            }
        }
        return;
    }
#endif
    gemm_transpose_elems(rows, cols, src, ls, add, dst, ld);
}

/* The image's rows between planes and channels-last (fnn_gemm_kernels.planes_rows), 8
 * channels at a time through every row: the planes (in memory, not cache) are read or
 * written in 8 streams rather than one per channel (0.5-0.65x the time of a 32-channel
 * convolution's forward and input gradient). Reading planes, the next 8 channels' rows
 * are fetched into L2 meanwhile: a few short rows per plane (a Winograd band) give the
 * hardware prefetcher no stream to follow, and the loads' misses took most of the time. */
static void gemm_planes_rows(int to_planes, int64_t C, int64_t rows, int64_t cols,
                             const float *src, float *dst, int64_t plane, int64_t prow,
                             int64_t crow, int64_t ld)
{
    for (int64_t c0 = 0; c0 < C; c0 += 8) {
        int64_t nc = FNN_MIN(8, C - c0);
        if (!to_planes)
            for (int64_t c = c0 + 8; c < FNN_MIN(c0 + 16, C); c++)
                for (int64_t i = 0; i < rows; i++)
                    for (int64_t j = 0; j < cols; j += 16)  /* a line a time */
                        __builtin_prefetch(src + c * plane + i * prow + j, 0, 2);
        for (int64_t i = 0; i < rows; i++) {
            int64_t p = c0 * plane + i * prow, q = i * crow + c0;
            if (to_planes)
                gemm_transpose(cols, nc, src + q, ld, NULL, dst + p, plane);
            else
                gemm_transpose(nc, cols, src + p, plane, NULL, dst + q, ld);
        }
    }
}

/* Lanes [0, n) x columns [0, kc) into panels of R lanes, zero-padded past n: element
 * (l, p) at src[l*ls + p*ks] to panel[p*R + l]. The panels of A (lanes its rows) and of B
 * (lanes its columns). */
static inline __attribute__((always_inline)) void
gemm_pack(int64_t n, int64_t kc, const float *src, int64_t ls, int64_t ks, int R, float *dst)
{
    for (int64_t l0 = 0; l0 < n; l0 += R, dst += R * kc) {
        int nl = (int)FNN_MIN(R, n - l0);
        const float *s = src + l0 * ls;
        if (ls == 1 && nl == R) {            /* lanes contiguous: plain vector copies */
            for (int64_t p = 0; p < kc; p++)
                for (int l = 0; l < R; l++)
                    dst[p * R + l] = s[p * ks + l];
        } else if (ls == 1) {
            for (int64_t p = 0; p < kc; p++)
                for (int l = 0; l < R; l++)
                    dst[p * R + l] = l < nl ? s[p * ks + l] : 0.0f;
        } else {
            int64_t p0 = 0;
#if FNN_VEC >= 8
            if (ks == 1 && nl == R)
                p0 = gemm_pack_t8(kc, s, ls, R, dst);
#endif
            for (int l = 0; l < R; l++)
                for (int64_t p = p0; p < kc; p++)
                    dst[p * R + l] = l < nl ? s[l * ls + p * ks] : 0.0f;
        }
    }
}

/* op(A) rows [0, mc) x columns [0, kc) into panels of MR rows, zero-padded. */
static void gemm_pack_a(int64_t mc, int64_t kc, const float *a, int64_t rs, int64_t cs, float *ap)
{
    gemm_pack(mc, kc, a, rs, cs, FNN_MR, ap);
}

/* op(B) rows [0, kc) x columns [0, nc) into panels of NR columns, zero-padded. */
static void gemm_pack_b(int64_t kc, int64_t nc, const float *b, int64_t rs, int64_t cs, float *bp)
{
    gemm_pack(nc, kc, b, cs, rs, FNN_NR, bp);
}

/* Rows [0, kc) x columns [0, nc) of B[p][q] = b[roff[p] + coff[q]] into panels of NR
 * columns, zero-padded: a convolution's im2col read straight from a channels-last image.
 * A panel whose column offsets are consecutive is copied as whole vectors. */
static void gemm_pack_b_gather(int64_t kc, int64_t nc, const float *b, const int64_t *roff,
                               const int64_t *coff, float *bp)
{
    for (int64_t j0 = 0; j0 < nc; j0 += FNN_NR, bp += FNN_NR * kc, coff += FNN_NR) {
        int nr = (int)FNN_MIN(FNN_NR, nc - j0), run = nr == FNN_NR;
        for (int j = 1; j < nr && run; j++)
            run = coff[j] == coff[0] + j;
        if (run) {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = b + roff[p] + coff[0];
                _Pragma("GCC unroll 16") for (int v = 0; v < FNN_NV; v++)
                    *(vfloat *)(bp + p * FNN_NR + v * FNN_VEC) = *(const vfloat_u *)(src + v * FNN_VEC);
            }
        } else {
            for (int64_t p = 0; p < kc; p++)
                for (int j = 0; j < FNN_NR; j++)
                    bp[p * FNN_NR + j] = j < nr ? b[roff[p] + coff[j]] : 0.0f;
        }
    }
}

/* C[0:mr, 0:nr] = alpha * acc + beta * C (C not read when beta == 0), from the first R
 * rows and V vectors of acc; an edge tile goes through a buffer, so the accumulators stay
 * in registers. */
static inline __attribute__((always_inline)) void
gemm_store(const int R, const int V, vfloat acc[FNN_MR][FNN_NV], int mr, int nr, float alpha,
           float beta, float *c, int64_t ldc)
{
    if (mr == R && nr == V * FNN_VEC) {
        _Pragma("GCC unroll 16") for (int i = 0; i < R; i++)
            _Pragma("GCC unroll 16") for (int j = 0; j < V; j++) {
                vfloat_u *cij = (vfloat_u *)(c + i * ldc + j * FNN_VEC);
                vfloat r = alpha * acc[i][j];
                if (beta != 0.0f)
                    r += beta * *cij;
                *cij = r;
            }
        return;
    }
    float tile[FNN_MR][FNN_NR] __attribute__((aligned(FNN_ALIGN)));
    _Pragma("GCC unroll 16") for (int i = 0; i < R; i++)
        _Pragma("GCC unroll 16") for (int j = 0; j < V; j++)
            *(vfloat *)&tile[i][j * FNN_VEC] = acc[i][j];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float r = alpha * tile[i][j];
            if (beta != 0.0f)
                r += beta * c[i * ldc + j];
            c[i * ldc + j] = r;
        }
}

/* Where the micro-kernel reads its A panel: row i at a + roff[i] (roff NULL: a + i * rs),
 * rows past mr re-reading row mr-1 (always valid memory; their results are dropped); K in
 * nseg runs of seglen, run s at offset soff[s] of the row (soff NULL: one run at 0),
 * element t of a run at t * cs. A packed panel is one run with rs = 1, cs = FNN_MR; a
 * convolution's channels-last pixels are one run per kernel row (gemm_macro_rows). */
typedef struct {
    const float *a;
    const int64_t *roff;
    int64_t rs, cs, nseg, seglen;
    const int64_t *soff;
} gemm_panel;

/* C[0:mr, 0:nr] = alpha * A-panel * B-panel + beta * C on the first R rows and V vectors
 * of the tile (R, V constants after inlining). B's row t at bp + t * b_rs, or where b_rs
 * is 0 packed: rows FNN_NR apart, aligned. */
static inline __attribute__((always_inline)) void
gemm_micro_rv(const int R, const int V, gemm_panel A, int mr, const float *bp, int64_t b_rs,
              int nr, float alpha, float beta, float *c, int64_t ldc)
{
    vfloat acc[FNN_MR][FNN_NV];
    const float *row[FNN_MR];
    _Pragma("GCC unroll 16") for (int i = 0; i < R; i++) {
        int64_t r = i < mr ? i : mr - 1;
        row[i] = A.a + (A.roff != NULL ? A.roff[r] : r * A.rs);
        _Pragma("GCC unroll 16") for (int j = 0; j < V; j++) acc[i][j] = (vfloat){0};
        /* C is touched once per tile, long after its last use: fetch it early. */
        __builtin_prefetch(c + i * ldc, 1);
        __builtin_prefetch(c + i * ldc + V * FNN_VEC - 1, 1);
    }
    const int64_t b_step = b_rs != 0 ? b_rs : FNN_NR;
    for (int64_t s = 0; s < A.nseg; s++) {
        const float *seg[FNN_MR];
        _Pragma("GCC unroll 16") for (int i = 0; i < R; i++)
            seg[i] = row[i] + (A.soff != NULL ? A.soff[s] : 0);
        _Pragma("GCC unroll 4") for (int64_t t = 0; t < A.seglen; t++, bp += b_step) {
            vfloat b[FNN_NV];
            _Pragma("GCC unroll 16") for (int j = 0; j < V; j++)
                b[j] = b_rs == 0 ? *(const vfloat *)(bp + j * FNN_VEC)
                                 : *(const vfloat_u *)(bp + j * FNN_VEC);
            _Pragma("GCC unroll 16") for (int i = 0; i < R; i++) {
                float ai = seg[i][t * A.cs];
                _Pragma("GCC unroll 16") for (int j = 0; j < V; j++) acc[i][j] += ai * b[j];
            }
        }
    }
    gemm_store(R, V, acc, mr, nr, alpha, beta, c, ldc);
}

/* The tile, or half its rows or vectors where the edge leaves no more (the 12x32 tile's
 * 64-row and N = 10 products do the 6x16 tile's work, not 1.1x and 2x of it). Every
 * element is summed in the same order whichever runs it. */
static inline __attribute__((always_inline)) void
gemm_micro(gemm_panel A, int mr, const float *bp, int64_t b_rs, int nr, float alpha,
           float beta, float *c, int64_t ldc)
{
    enum { R2 = FNN_MR / 2, V2 = FNN_NV / 2 };
    if (mr > R2 && nr > V2 * FNN_VEC)
        gemm_micro_rv(FNN_MR, FNN_NV, A, mr, bp, b_rs, nr, alpha, beta, c, ldc);
    else if (nr > V2 * FNN_VEC)
        gemm_micro_rv(R2, FNN_NV, A, mr, bp, b_rs, nr, alpha, beta, c, ldc);
    else if (mr > R2)
        gemm_micro_rv(FNN_MR, V2, A, mr, bp, b_rs, nr, alpha, beta, c, ldc);
    else
        gemm_micro_rv(R2, V2, A, mr, bp, b_rs, nr, alpha, beta, c, ldc);
}

/* gemm_macro's loops, B packed (b_rs 0: panels FNN_NR * kc apart) or in place (its rows
 * b_rs apart, panels FNN_NR). */
static inline __attribute__((always_inline)) void
gemm_macro_b(int64_t mc, int64_t nc, int64_t kc, float alpha, const float *a, int64_t rs,
             int64_t cs, int64_t ps, const float *bp, int64_t b_rs, float beta, float *c,
             int64_t ldc)
{
    for (int64_t j = 0; j < nc; j += FNN_NR) {
        int nr = (int)FNN_MIN(FNN_NR, nc - j);
        for (int64_t i = 0; i < mc; i += FNN_MR) {
            int mr = (int)FNN_MIN(FNN_MR, mc - i);
            const float *ai = a + (i / FNN_MR) * ps, *bj = bp + (b_rs != 0 ? j : j * kc);
            float *cij = c + i * ldc + j;
            if (rs == 1 && cs == FNN_MR)  /* packed A: constant strides */
                gemm_micro((gemm_panel){.a = ai, .rs = 1, .cs = FNN_MR, .nseg = 1, .seglen = kc},
                           mr, bj, b_rs, nr, alpha, beta, cij, ldc);
            else
                gemm_micro((gemm_panel){.a = ai, .rs = rs, .cs = cs, .nseg = 1, .seglen = kc},
                           mr, bj, b_rs, nr, alpha, beta, cij, ldc);
        }
    }
}

/* C[0:mc, 0:nc] (+)= A-block * packed B-block (panels of FNN_NR columns). jr outside ir:
 * one B micro-panel stays in L1 while the A panels stream from L2. */
static void gemm_macro(int64_t mc, int64_t nc, int64_t kc, float alpha, const float *a,
                       int64_t rs, int64_t cs, int64_t ps, const float *bp, float beta,
                       float *c, int64_t ldc)
{
    gemm_macro_b(mc, nc, kc, alpha, a, rs, cs, ps, bp, 0, beta, c, ldc);
}

/* The same with B read in place, its rows ldb apart (gemm.c: products of one row
 * block). A function of its own: in one with the packed case, whose strides are constants,
 * the packed tiles lost registers to spills (1.05-1.2x the time). */
static void gemm_macro_in_place(int64_t mc, int64_t nc, int64_t kc, float alpha,
                                const float *a, int64_t rs, int64_t cs, int64_t ps,
                                const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    gemm_macro_b(mc, nc, kc, alpha, a, rs, cs, ps, b, ldb, beta, c, ldc);
}

/* C (m x n, row stride ldc) = A * packed B, where row i of A is read in place at
 * a + roff[i] in nseg runs of seglen: A[i][s*seglen + t] = a[roff[i] + soff[s] + t].
 * That is im2col^T of a channels-last image, one run per kernel row: a convolution's
 * output pixels by its channels, with no im2col. B: the K = nseg*seglen rows packed whole.
 * Every element of C is summed over K in increasing order. */
static void gemm_macro_rows(int64_t m, int64_t n, const float *a, const int64_t *roff,
                            int64_t nseg, const int64_t *soff, int64_t seglen, const float *bp,
                            float *c, int64_t ldc)
{
    int64_t k = nseg * seglen;
    for (int64_t j = 0; j < n; j += FNN_NR, bp += FNN_NR * k) {
        int nr = (int)FNN_MIN(FNN_NR, n - j);
        for (int64_t i = 0; i < m; i += FNN_MR) {
            gemm_panel A = {.a = a, .roff = roff + i, .cs = 1, .nseg = nseg, .seglen = seglen,
                            .soff = soff};
            gemm_micro(A, (int)FNN_MIN(FNN_MR, m - i), bp, 0, nr, 1.0f, 0.0f, c + i * ldc + j,
                       ldc);
        }
    }
}

/* Few rows of A (a batch-1 or small-batch linear layer) with B read in place: packing B
 * would copy all of it for a handful of multiply-adds per element. Columns [j0, j1) of
 * C = alpha * A * B + beta * C, C not read when beta == 0.
 *
 * rows_dot: B's columns are contiguous (b[j*ldb + p], a linear layer's W), and so are
 * A's rows. FNN_VEC columns at a time, their rows of B stay in L1 across the rows of A;
 * each dot product runs in FNN_VEC lanes (element p to lane p % FNN_VEC), and the
 * FNN_VEC accumulators are added lane-pairwise into one vector of FNN_VEC sums
 * (gemm_sum_lanes), then the tail, and stored as one vector. Kept in registers (no lane
 * indexed by a variable, which sent the accumulators through the stack), the end of a
 * block took a 64-wide dot product's time down by a tenth to a quarter (Zen 5, 1 thread:
 * 1x64x784 2.6 -> 2.3 us, 1x128x1600 9.4-9.8 -> 8.4 us, 1x10x128 0.56 -> 0.40 us). */
/* Shuffle patterns of gemm_sum_lanes: within each 128-bit block of 4 lanes, the even (odd)
 * lanes of two vectors, [x0 x2 y0 y2] (vshufps); and the even (odd) blocks of two
 * vectors, x's then y's (vperm2f128, vshuff32x4). Lanes across blocks (vpermd, vpermt2ps)
 * cost more: 1x64x784 with B's columns contiguous took 1.1-1.2x the time (Zen 4). */
#if FNN_VEC == 4
typedef int vidx __attribute__((vector_size(16)));
#define FNN_EVEN_IN_BLOCKS {0, 2, 4, 6}
#elif FNN_VEC == 8
typedef int vidx __attribute__((vector_size(32)));
#define FNN_EVEN_IN_BLOCKS {0, 2, 8, 10, 4, 6, 12, 14}
#define FNN_EVEN_BLOCKS {0, 1, 2, 3, 8, 9, 10, 11}
#define FNN_ODD_BLOCKS {4, 5, 6, 7, 12, 13, 14, 15}
#else
typedef int vidx __attribute__((vector_size(64)));
#define FNN_EVEN_IN_BLOCKS {0, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28, 30}
#define FNN_EVEN_BLOCKS {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27}
#define FNN_ODD_BLOCKS {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31}
#endif

/* v[t] (t < FNN_VEC) into v[0], whose lane t becomes the sum of v[t]'s lanes, added
 * pairwise (lanes 0+1 and 2+3, then those two sums, then block 0 + block 1, ...) in the
 * same order every call: two levels within the 128-bit blocks, then levels across them. */
static inline __attribute__((always_inline)) void gemm_sum_lanes(vfloat v[FNN_VEC])
{
    const vidx even = FNN_EVEN_IN_BLOCKS, odd = even + 1;
    int count = FNN_VEC;
    for (int level = 0; level < 2; level++, count /= 2)
        _Pragma("GCC unroll 16") for (int t = 0; t < count / 2; t++)
            v[t] = __builtin_shuffle(v[2 * t], v[2 * t + 1], even) +
                   __builtin_shuffle(v[2 * t], v[2 * t + 1], odd);
#if FNN_VEC > 4
    const vidx even_blocks = FNN_EVEN_BLOCKS, odd_blocks = FNN_ODD_BLOCKS;
    for (; count > 1; count /= 2)
        _Pragma("GCC unroll 16") for (int t = 0; t < count / 2; t++)
            v[t] = __builtin_shuffle(v[2 * t], v[2 * t + 1], even_blocks) +
                   __builtin_shuffle(v[2 * t], v[2 * t + 1], odd_blocks);
#endif
}

static void gemm_rows_dot(int64_t m, int64_t j0, int64_t j1, int64_t k, float alpha,
                          const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                          float *c, int64_t ldc)
{
    int64_t kv = k / FNN_VEC * FNN_VEC;
    for (int64_t j = j0; j < j1; j += FNN_VEC) {
        int nj = (int)FNN_MIN(FNN_VEC, j1 - j);
        const float *bj[FNN_VEC];
        for (int t = 0; t < FNN_VEC; t++)
            bj[t] = b + FNN_MIN(j + t, j1 - 1) * ldb;  /* columns past j1: dropped */
        for (int64_t i = 0; i < m; i++) {
            const float *ai = a + i * lda;
            vfloat acc[FNN_VEC];
            _Pragma("GCC unroll 16") for (int t = 0; t < FNN_VEC; t++) acc[t] = (vfloat){0};
            for (int64_t p = 0; p < kv; p += FNN_VEC) {
                vfloat av = *(const vfloat_u *)(ai + p);
                _Pragma("GCC unroll 16") for (int t = 0; t < FNN_VEC; t++)
                    acc[t] += av * *(const vfloat_u *)(bj[t] + p);
            }
            gemm_sum_lanes(acc);
            vfloat s = acc[0];  /* lane t: column j + t (in registers: no lane indexed) */
            for (int64_t p = kv; p < k; p++) {
                vfloat bp;
                _Pragma("GCC unroll 16") for (int t = 0; t < FNN_VEC; t++) bp[t] = bj[t][p];
                s += ai[p] * bp;
            }
            float *ci = c + i * ldc + j;
            if (nj == FNN_VEC) {  /* a whole vector of columns: one store */
                vfloat r = alpha * s;
                *(vfloat_u *)ci = beta == 0.0f ? r : r + beta * *(const vfloat_u *)ci;
                continue;
            }
            for (int t = 0; t < nj; t++)
                ci[t] = beta == 0.0f ? alpha * s[t] : alpha * s[t] + beta * ci[t];
        }
    }
}

/* rows_axpy: B's rows are contiguous (b[p*ldb + j], a linear layer's forward x W^T with W
 * stored transposed, or its input gradient g W); A any layout. An R x NV register tile:
 * per p, NV vectors of B's row p are loaded once and added, times a[i][p], into each of
 * the R rows' accumulators, so B is read once for up to 8 rows of A (row by row it was
 * read once per row: 8x512x10 took 4.5x NumPy's time). Every element sums over p in
 * increasing order, as the packed micro-kernel does, but in a tile of fewer than 4
 * accumulators: there every S-th p goes to one of S = 4 / accumulators sums, added at the
 * end, so that 4 chains of dependent FMAs run at once (1x128x10: 0.33 -> 0.26 us with
 * avx512 and avx2, Zen 5; one chain had been slower than generic's separate multiplies
 * and adds). The last columns of a row run as a vector flush with its end: the tile's
 * last vector starts `shift` columns early, overlapping the one before, and its lanes
 * below shift (computed twice, alike) are not stored. */
static inline __attribute__((always_inline)) void
gemm_axpy_step(const int R, const int NV, int shift, const float *a, int64_t a_rs,
               const float *b, vfloat acc[8][8])
{
    vfloat bv[8];
    _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
        bv[v] = *(const vfloat_u *)(b + v * FNN_VEC - (v == NV - 1 ? shift : 0));
    _Pragma("GCC unroll 8") for (int i = 0; i < R; i++)
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[i][v] += a[i * a_rs] * bv[v];
}

static inline __attribute__((always_inline)) void
gemm_axpy_tile(const int R, const int NV, int shift, int64_t k, float alpha, const float *a,
               int64_t a_rs, int64_t a_cs, const float *b, int64_t ldb, float beta, float *c,
               int64_t ldc)
{
    const int S = R * NV >= 3 ? 1 : 4 / (R * NV);
    vfloat acc[4][8][8];
    _Pragma("GCC unroll 4") for (int h = 0; h < S; h++)
        _Pragma("GCC unroll 8") for (int i = 0; i < R; i++)
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[h][i][v] = (vfloat){0};
    int64_t p = 0;
    for (; p + S <= k; p += S)
        _Pragma("GCC unroll 4") for (int h = 0; h < S; h++)
            gemm_axpy_step(R, NV, shift, a + (p + h) * a_cs, a_rs, b + (p + h) * ldb, acc[h]);
    for (; p < k; p++)
        gemm_axpy_step(R, NV, shift, a + p * a_cs, a_rs, b + p * ldb, acc[0]);
    _Pragma("GCC unroll 8") for (int i = 0; i < R; i++)
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {
            if (S == 4)
                acc[0][i][v] = (acc[0][i][v] + acc[1][i][v]) + (acc[2][i][v] + acc[3][i][v]);
            else if (S == 2)
                acc[0][i][v] += acc[1][i][v];
        }
    _Pragma("GCC unroll 8") for (int i = 0; i < R; i++)
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {
            int lo = v == NV - 1 ? shift : 0;
            float *cv = c + i * ldc + v * FNN_VEC - lo;
            if (lo == 0) {
                vfloat r = alpha * acc[0][i][v];
                if (beta != 0.0f)
                    r += beta * *(vfloat_u *)cv;
                *(vfloat_u *)cv = r;
            } else {
                for (int t = lo; t < FNN_VEC; t++)
                    cv[t] = beta == 0.0f ? alpha * acc[0][i][v][t]
                                         : alpha * acc[0][i][v][t] + beta * cv[t];
            }
        }
}

/* Columns [j0, j1) for R rows: tiles of NV vectors, then of half as many down to 2, then
 * the rest (under 2 vectors) flush with j1, in one tile of 2 vectors where R x 2 fits the
 * registers, else of 1 (or, in a row narrower than a vector, one element at a time). Two
 * vectors side by side run two chains of FMAs at once: 1x128x10 took 0.75-0.85x the time
 * of one vector and then the flush one (Zen 4). */
static inline __attribute__((always_inline)) void
gemm_rows_axpy_rv(const int R, const int NV, int64_t j0, int64_t j1, int64_t k, float alpha,
                  const float *a, int64_t a_rs, int64_t a_cs, const float *b, int64_t ldb,
                  float beta, float *c, int64_t ldc)
{
    int64_t j = j0;
    for (; j + NV * FNN_VEC <= j1; j += NV * FNN_VEC)
        gemm_axpy_tile(R, NV, 0, k, alpha, a, a_rs, a_cs, b + j, ldb, beta, c + j, ldc);
    _Pragma("GCC unroll 4") for (int nv = NV / 2; nv >= 2; nv /= 2)
        if (j + nv * FNN_VEC <= j1) {
            gemm_axpy_tile(R, nv, 0, k, alpha, a, a_rs, a_cs, b + j, ldb, beta, c + j, ldc);
            j += nv * FNN_VEC;
        }
    /* the last vector flush with j1 (NV >= 2 ? 2 : 1: no 2-vector tile where NV is 1) */
    if (NV >= 2 && j1 - j > FNN_VEC) {
        gemm_axpy_tile(R, NV >= 2 ? 2 : 1, (int)(j + 2 * FNN_VEC - j1), k, alpha, a, a_rs,
                       a_cs, b + j, ldb, beta, c + j, ldc);
    } else if (j < j1 && j1 >= FNN_VEC) {
        gemm_axpy_tile(R, 1, (int)(j + FNN_VEC - j1), k, alpha, a, a_rs, a_cs, b + j, ldb,
                       beta, c + j, ldc);
    } else if (j < j1) {
        for (int i = 0; i < R; i++)
            for (int64_t q = j; q < j1; q++) {
                float sum = 0.0f;
                for (int64_t p = 0; p < k; p++)
                    sum += a[i * a_rs + p * a_cs] * b[p * ldb + q];
                float *cq = c + i * ldc + q;
                *cq = beta == 0.0f ? alpha * sum : alpha * sum + beta * *cq;
            }
    }
}

/* Up to 8 rows of A a tile (8 accumulators or fewer, 8 for every count but 3 and 5-7). */
static void gemm_rows_axpy(int64_t m, int64_t j0, int64_t j1, int64_t k, float alpha,
                           const float *a, int64_t a_rs, int64_t a_cs, const float *b,
                           int64_t ldb, float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i += 8, a += 8 * a_rs, c += 8 * ldc) {
#define FNN_AXPY(R, NV)                                                                    \
    case R:                                                                                \
        gemm_rows_axpy_rv(R, NV, j0, j1, k, alpha, a, a_rs, a_cs, b, ldb, beta, c, ldc);   \
        break
        switch (FNN_MIN(8, m - i)) {
            FNN_AXPY(1, 8);
            FNN_AXPY(2, 4);
            FNN_AXPY(3, 2);
            FNN_AXPY(4, 2);
            FNN_AXPY(5, 1);
            FNN_AXPY(6, 1);
            FNN_AXPY(7, 1);
            FNN_AXPY(8, 1);
        }
#undef FNN_AXPY
    }
}

#define FNN_GEMM_KERNELS(MC, KC, NC)                                                   \
    {                                                                                  \
        .mr = FNN_MR, .nr = FNN_NR, .mc = (MC), .kc = (KC), .nc = (NC),                \
        .pack_a = gemm_pack_a, .pack_b = gemm_pack_b,                                 \
        .pack_b_gather = gemm_pack_b_gather, .macro = gemm_macro,                      \
        .macro_in_place = gemm_macro_in_place,                                         \
        .macro_rows = gemm_macro_rows, .rows_dot = gemm_rows_dot,                      \
        .rows_axpy = gemm_rows_axpy, .transpose = gemm_transpose,                      \
        .planes_rows = gemm_planes_rows                                                \
    }
