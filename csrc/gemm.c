/* gemm.c: the SGEMM driver: Goto/BLIS cache blocking and the OpenMP split around the
 * ISA's packing routines and macro-kernel (simd/gemm_kernel.h).
 *
 *   for jc in N by NC:             B block kc x nc, packed once, shared by all threads
 *     for pc in K by KC:           (beta applies on the first K block only)
 *       pack B panels              (threads split the panels)
 *       for ic in my rows by MC:   A block mc x kc, packed per thread (or read in place)
 *         macro-kernel
 *
 * Threads split the rows of C (or the columns, when M is too short for that or B is
 * much larger than A), never K, so each element of C is summed in the same order
 * whatever the thread count. A product of a few rows (a small batch through a linear
 * layer) skips all of this and reads B in place: see gemm_few_rows. */
#include "internal.h"

typedef struct {
    const fnn_gemm_kernels *g;
    int64_t m, n, k;
    float alpha, beta;
    const float *a;
    int64_t a_rs, a_cs;
    fnn_operand_b b;
    float *c;
    int64_t ldc;
    int split_rows;  /* threads split the rows of C (else the columns) */
    int pack_a;      /* copy A blocks into panels (else the micro-kernel reads A in place) */
    int64_t kc;      /* K block: K split into equal blocks of at most g->kc */
    int whole_b;     /* all K blocks of B packed at once: one barrier per N block */
    float *bp;       /* shared packed B: kc (whole_b: k) x round_up(nc, nr) */
    float *ap;       /* per-thread packed A blocks: mc x kc each */
} gemm_plan;

/* Rows [pc, pc+kc) x columns [jc, jc+nc) of op(B) into panels at bp. */
static void pack_b(const gemm_plan *P, int64_t pc, int64_t kc, int64_t jc, int64_t nc, float *bp)
{
    const fnn_operand_b *B = &P->b;
    if (B->roff != NULL)
        P->g->pack_b_gather(kc, nc, B->b, B->roff + pc, B->coff + jc, bp);
    else
        P->g->pack_b(kc, nc, B->b + pc * B->rs + jc * B->cs, B->rs, B->cs, bp);
}

static void gemm_thread(const gemm_plan *P, int ith, int nth)
{
    const fnn_gemm_kernels *g = P->g;
    float *ap = P->pack_a ? P->ap + (size_t)ith * g->mc * P->kc : NULL;
    int64_t row_lo = 0, row_hi = P->m;
    if (P->split_rows) {  /* whole MR-row tiles per thread */
        fnn_split((P->m + g->mr - 1) / g->mr, ith, nth, &row_lo, &row_hi);
        row_lo *= g->mr;
        row_hi = FNN_MIN(row_hi * g->mr, P->m);
    }
    for (int64_t jc = 0; jc < P->n; jc += g->nc) {
        int64_t nc = FNN_MIN(g->nc, P->n - jc), ncr = fnn_round_up(nc, g->nr);
        int64_t panels = ncr / g->nr, q_lo, q_hi;
        fnn_split(panels, ith, nth, &q_lo, &q_hi);
        int64_t col_lo = q_lo * g->nr, col_hi = FNN_MIN(q_hi * g->nr, nc);
        if (P->whole_b) {  /* block pc at bp + pc * ncr */
            for (int64_t pc = 0; pc < P->k && col_hi > col_lo; pc += P->kc) {
                int64_t kc = FNN_MIN(P->kc, P->k - pc);
                pack_b(P, pc, kc, jc + col_lo, col_hi - col_lo, P->bp + pc * ncr + col_lo * kc);
            }
            FNN_BARRIER(nth);
        }
        for (int64_t pc = 0; pc < P->k; pc += P->kc) {
            int64_t kc = FNN_MIN(P->kc, P->k - pc);
            float beta = pc == 0 ? P->beta : 1.0f;
            const float *bp = P->whole_b ? P->bp + pc * ncr : P->bp;
            if (!P->whole_b) {
                if (col_hi > col_lo)
                    pack_b(P, pc, kc, jc + col_lo, col_hi - col_lo, P->bp + col_lo * kc);
                FNN_BARRIER(nth);
            }
            int64_t c0 = P->split_rows ? 0 : col_lo, c1 = P->split_rows ? nc : col_hi;
            for (int64_t ic = row_lo; ic < row_hi && c1 > c0; ic += g->mc) {
                int64_t mc = FNN_MIN(g->mc, row_hi - ic);
                const float *a = P->a + ic * P->a_rs + pc * P->a_cs;
                if (P->pack_a) {
                    g->pack_a(mc, kc, a, P->a_rs, P->a_cs, ap);
                    g->macro(mc, c1 - c0, kc, P->alpha, ap, 1, g->mr, (int64_t)g->mr * kc,
                             bp + c0 * kc, beta, P->c + ic * P->ldc + jc + c0, P->ldc);
                } else {
                    g->macro(mc, c1 - c0, kc, P->alpha, a, P->a_rs, P->a_cs, g->mr * P->a_rs,
                             bp + c0 * kc, beta, P->c + ic * P->ldc + jc + c0, P->ldc);
                }
            }
            if (!P->whole_b)
                FNN_BARRIER(nth);  /* B block is overwritten next */
        }
        if (P->whole_b && jc + nc < P->n)
            FNN_BARRIER(nth);
    }
}

/* C = beta * C, where K == 0 or alpha == 0 leaves nothing else to add. */
static void scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

/* The active ISA's wide tile (AVX-512) only for products that fill it: at least 4 tiles
 * each way, at most 3% more padded lanes than the narrow tile, and K long enough to
 * amortise packing. With n > 4 NR, A is packed (see pack_a below), so the wide
 * micro-kernel never reads 12 strided rows of A in place. Everything else runs the
 * narrow (AVX2) tile. */
static const fnn_gemm_kernels *gemm_tile(int64_t m, int64_t n, int64_t k)
{
    const fnn_gemm_kernels *g = fnn_active->gemm, *w = fnn_active->gemm_wide;
    if (w != NULL && m >= 4 * w->mr && n > 4 * w->nr && k >= 64 &&
        (double)fnn_round_up(m, w->mr) * fnn_round_up(n, w->nr) <=
            1.03 * fnn_round_up(m, g->mr) * fnn_round_up(n, g->nr))
        return w;
    return g;
}

/* A product with at most this many rows reads B in place (rows_dot / rows_axpy). */
#define GEMM_FEW_ROWS 8

/* Columns [lo, hi) of a few-rows product (ctx: its gemm_plan, packing fields unused). */
static void few_rows_part(int64_t lo, int64_t hi, void *ctx)
{
    const gemm_plan *P = ctx;
    if (P->b.rs == 1 && P->a_cs == 1)
        P->g->rows_dot(P->m, lo, hi, P->k, P->alpha, P->a, P->a_rs, P->b.b, P->b.cs, P->beta,
                       P->c, P->ldc);
    else
        P->g->rows_axpy(P->m, lo, hi, P->k, P->alpha, P->a, P->a_rs, P->a_cs, P->b.b, P->b.rs,
                        P->beta, P->c, P->ldc);
}

/* Few rows of A and B contiguous along K (dot products, A's rows too) or along N: threads
 * split the columns of C. Returns 0 if the product does not qualify. */
static int gemm_few_rows(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                         int64_t a_rs, int64_t a_cs, const fnn_operand_b *b, float beta,
                         float *c, int64_t ldc)
{
    if (m > GEMM_FEW_ROWS || b->roff != NULL || !((b->rs == 1 && a_cs == 1) || b->cs == 1))
        return 0;
    gemm_plan P = {.g = fnn_active->gemm, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta,
                   .a = a, .a_rs = a_rs, .a_cs = a_cs, .b = *b, .c = c, .ldc = ldc};
    fnn_parallel_range(n, (double)m * n * k, 64, few_rows_part, &P);
    return 1;
}

int fnn_sgemm_ex(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a_rs,
                 int64_t a_cs, const fnn_operand_b *b, float beta, float *c, int64_t ldc)
{
    if (m < 0 || n < 0 || k < 0 || (m > 1 && ldc < n))
        return FNN_EINVAL;
    if (m == 0 || n == 0)
        return FNN_OK;
    if (c == NULL || (k > 0 && (a == NULL || b->b == NULL)))
        return FNN_EINVAL;
    if (k == 0 || alpha == 0.0f) {
        scale_c(m, n, beta, c, ldc);
        return FNN_OK;
    }
    if (gemm_few_rows(m, n, k, alpha, a, a_rs, a_cs, b, beta, c, ldc))
        return FNN_OK;
    const fnn_gemm_kernels *g = gemm_tile(m, n, k);
    int nth = fnn_threads_for((double)m * n * k);
    int64_t row_tiles = (m + g->mr - 1) / g->mr, col_tiles = (n + g->nr - 1) / g->nr;
    gemm_plan P = {
        .g = g, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta,
        .a = a, .a_rs = a_rs, .a_cs = a_cs, .b = *b,
        .c = c, .ldc = ldc,
        /* Rows, unless B is much the larger operand: then each thread packs and reads
         * only its own columns of it. */
        .split_rows = row_tiles >= col_tiles || (row_tiles >= 2 * nth && 4 * m >= n),
        /* In place, A is re-read once per B panel; packing pays off when there are
         * many panels or A's rows are not contiguous. */
        .pack_a = col_tiles > 4 || (a_cs != 1 && a_rs != 1),
    };
    /* Equal K blocks: a short last block would pay a full C update for little work. */
    int64_t k_blocks = (k + g->kc - 1) / g->kc;
    P.kc = (k + k_blocks - 1) / k_blocks;
    /* B packed whole when that takes no more room than one K block of the widest N
     * block: then the threads meet once per N block instead of twice per K block. */
    size_t ncr = (size_t)fnn_round_up(FNN_MIN(g->nc, n), g->nr);
    P.whole_b = (size_t)k * ncr <= (size_t)g->kc * g->nc;
    size_t b_elems = (P.whole_b ? (size_t)k : (size_t)P.kc) * ncr;
    size_t a_elems = P.pack_a ? (size_t)g->mc * P.kc : 0;
    float *ws = fnn_workspace(FNN_WS_GEMM, (b_elems + a_elems * nth) * sizeof(float));
    if (ws == NULL)
        return FNN_ENOMEM;
    P.bp = ws;
    P.ap = ws + b_elems;
    if (nth == 1) {
        gemm_thread(&P, 0, 1);
        return FNN_OK;
    }
#pragma omp parallel num_threads(nth)
    gemm_thread(&P, omp_get_thread_num(), omp_get_num_threads());
    return FNN_OK;
}

int fnn_sgemm_strided(int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t a_rs, int64_t a_cs,
                      const float *b, int64_t b_rs, int64_t b_cs,
                      float beta, float *c, int64_t ldc)
{
    fnn_operand_b op = {.b = b, .rs = b_rs, .cs = b_cs};
    return fnn_sgemm_ex(m, n, k, alpha, a, a_rs, a_cs, &op, beta, c, ldc);
}

int fnn_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
              float *c, int64_t ldc)
{
    /* A stored m x k (lda >= k), or k x m when transposed (lda >= m); likewise B. */
    if (lda < (trans_a ? m : k) || ldb < (trans_b ? k : n) || lda < 1 || ldb < 1)
        return FNN_EINVAL;
    return fnn_sgemm_strided(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1,
                             b, trans_b ? 1 : ldb, trans_b ? ldb : 1, beta, c, ldc);
}
