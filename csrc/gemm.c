/* gemm.c: the SGEMM driver: Goto/BLIS cache blocking around the ISA's packing routines
 * and macro-kernel (simd/gemm_kernel.h), as jobs on the thread pool (threads.c).
 *
 *   for jc in N by NC:             B block kc x nc, packed once, shared by all tasks
 *     for pc in K by KC:           (all K at once when B is small: whole_b)
 *       job: pack B panels         (tasks split the panels)
 *       job: for ic in a task's rows by MC:
 *              A block mc x kc, packed per slot (or read in place); macro-kernel
 *
 * Tasks split the rows of C (or the columns, when M is too short for that or B is
 * much larger than A: then a task packs its own B panels), never K, so each element of
 * C is summed in the same order whatever the thread count. A product of a few rows (a
 * small batch through a linear layer) skips all of this and reads B in place: see
 * gemm_few_rows. */
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
    int split_rows;  /* tasks take rows of C (else columns, each packing its own B) */
    int pack_a;      /* copy A blocks into panels (else the micro-kernel reads A in place) */
    int pack_b;      /* copy B blocks into panels (else read in place, its rows contiguous) */
    int whole_b;     /* all K blocks of B packed at once: one job per N block */
    int dot;         /* few rows of A: rows_dot (else rows_axpy) */
    int64_t kc;      /* K block: K split into equal blocks of at most g->kc */
    float *bp;       /* shared packed B: kc (whole_b: k) x ncr */
    float *ap;       /* packed A blocks, mc x kc per slot */
    /* what the running job covers: N block [jc, jc + nc) (ncr: rounded up to nr) and
     * K blocks [pc, pc + pk); `per` units (panels or row tiles) per task */
    int64_t jc, nc, ncr, pc, pk, units, per;
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

/* The packed K block that starts at row pc of B. */
static float *b_block(const gemm_plan *P, int64_t pc)
{
    return P->bp + (P->whole_b ? pc * P->ncr : 0);
}

/* Panels [q0, q1) of the N block, over the job's K blocks. */
static void pack_panels(const gemm_plan *P, int64_t q0, int64_t q1)
{
    int64_t nr = P->g->nr, col_lo = q0 * nr, col_hi = FNN_MIN(q1 * nr, P->nc);
    for (int64_t pc = P->pc; pc < P->pc + P->pk && col_hi > col_lo; pc += P->kc) {
        int64_t kc = FNN_MIN(P->kc, P->k - pc);
        pack_b(P, pc, kc, P->jc + col_lo, col_hi - col_lo, b_block(P, pc) + col_lo * kc);
    }
}

/* Rows [r0, r1) x columns [c0, c1) of the N block of C, over the job's K blocks: each
 * element summed over K in increasing order, however the job is split. */
static void compute(const gemm_plan *P, int64_t r0, int64_t r1, int64_t c0, int64_t c1, int slot)
{
    const fnn_gemm_kernels *g = P->g;
    float *ap = P->ap + (size_t)slot * g->mc * P->kc;
    for (int64_t ic = r0; ic < r1; ic += g->mc) {
        int64_t mc = FNN_MIN(g->mc, r1 - ic);
        float *c = P->c + ic * P->ldc + P->jc + c0;
        for (int64_t pc = P->pc; pc < P->pc + P->pk; pc += P->kc) {
            int64_t kc = FNN_MIN(P->kc, P->k - pc);
            float beta = pc == 0 ? P->beta : 1.0f;
            const float *a = P->a + ic * P->a_rs + pc * P->a_cs;
            int64_t rs = P->a_rs, cs = P->a_cs, ps = g->mr * P->a_rs;
            if (P->pack_a) {
                g->pack_a(mc, kc, a, P->a_rs, P->a_cs, ap);
                a = ap, rs = 1, cs = g->mr, ps = (int64_t)g->mr * kc;
            }
            if (P->pack_b)
                g->macro(mc, c1 - c0, kc, P->alpha, a, rs, cs, ps, b_block(P, pc) + c0 * kc,
                         beta, c, P->ldc);
            else
                g->macro_in_place(mc, c1 - c0, kc, P->alpha, a, rs, cs, ps,
                                  P->b.b + pc * P->b.rs + P->jc + c0, P->b.rs, beta, c,
                                  P->ldc);
        }
    }
}

static void pack_task(void *ctx, int64_t i, int slot)
{
    const gemm_plan *P = ctx;
    (void)slot;
    pack_panels(P, i * P->per, FNN_MIN((i + 1) * P->per, P->units));
}

static void rows_task(void *ctx, int64_t i, int slot)
{
    const gemm_plan *P = ctx;
    int64_t mr = P->g->mr;
    compute(P, i * P->per * mr, FNN_MIN((i + 1) * P->per * mr, P->m), 0, P->nc, slot);
}

static void cols_task(void *ctx, int64_t i, int slot)
{
    const gemm_plan *P = ctx;
    int64_t q0 = i * P->per, q1 = FNN_MIN((i + 1) * P->per, P->units), nr = P->g->nr;
    if (P->pack_b)
        pack_panels(P, q0, q1);
    compute(P, 0, P->m, q0 * nr, FNN_MIN(q1 * nr, P->nc), slot);
}

/* Run `task` over `units` in at most `tasks` tasks on nth threads. */
static void gemm_job(gemm_plan *P, int64_t units, int64_t tasks, int nth, fnn_task_fn task)
{
    tasks = FNN_MIN(units, tasks);
    P->units = units;
    P->per = (units + tasks - 1) / tasks;
    fnn_run((units + P->per - 1) / P->per, nth, task, P);
}

/* The Goto/BLIS loops over N and K blocks, each block one or two jobs. Row jobs take
 * 4 tasks per thread (a thread that runs late costs a quarter of a share); column jobs
 * 2, since each packs A again. */
static void gemm_blocks(gemm_plan *P, int nth)
{
    const fnn_gemm_kernels *g = P->g;
    int64_t row_tiles = (P->m + g->mr - 1) / g->mr;
    for (P->jc = 0; P->jc < P->n; P->jc += g->nc) {
        P->nc = FNN_MIN(g->nc, P->n - P->jc);
        P->ncr = fnn_round_up(P->nc, g->nr);
        int64_t panels = P->ncr / g->nr;
        for (P->pc = 0; P->pc < P->k; P->pc += P->pk) {
            P->pk = P->whole_b ? P->k : FNN_MIN(P->kc, P->k - P->pc);
            if (P->split_rows) {
                if (P->pack_b)
                    gemm_job(P, panels, nth == 1 ? 1 : 2 * nth, nth, pack_task);
                gemm_job(P, row_tiles, nth == 1 ? 1 : 4 * nth, nth, rows_task);
            } else {
                gemm_job(P, panels, nth == 1 ? 1 : 2 * nth, nth, cols_task);
            }
        }
    }
}

/* C = beta * C, where K == 0 or alpha == 0 leaves nothing else to add. */
static void scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

/* x rounded up to the tile's t, or to t / 2 where the edge leaves no more (gemm_micro
 * runs half a tile there). */
static int64_t tile_padded(int64_t x, int t)
{
    int64_t r = x % t;
    return x - r + (r == 0 ? 0 : r <= t / 2 ? t / 2 : t);
}

/* The active ISA's wide tile (AVX-512's 12x32) where it fills its lanes (fnn_wide_slack).
 * The convolutions' GEMMs ask here too. */
const fnn_gemm_kernels *fnn_gemm_tile(int64_t m, int64_t n)
{
    const fnn_gemm_kernels *g = fnn_active->gemm, *w = fnn_active->gemm_wide;
    if (w != NULL && (double)tile_padded(m, w->mr) * tile_padded(n, w->nr) <=
                         fnn_wide_slack() * tile_padded(m, g->mr) * tile_padded(n, g->nr))
        return w;
    return g;
}

/* A product with at most this many rows reads B in place (rows_dot / rows_axpy). */
#define GEMM_FEW_ROWS 8

/* Columns [lo, hi) of a few-rows product (ctx: its gemm_plan, packing fields unused). */
static void few_rows_part(int64_t lo, int64_t hi, void *ctx)
{
    const gemm_plan *P = ctx;
    if (P->dot)
        P->g->rows_dot(P->m, lo, hi, P->k, P->alpha, P->a, P->a_rs, P->b.b, P->b.cs, P->beta,
                       P->c, P->ldc);
    else
        P->g->rows_axpy(P->m, lo, hi, P->k, P->alpha, P->a, P->a_rs, P->a_cs, P->b.b, P->b.rs,
                        P->beta, P->c, P->ldc);
}

/* Few rows of A and B contiguous along K (dot products, A's rows too) or along N: threads
 * split the columns of C. Reading B dominates, so the work is counted as if A had at least
 * 16 rows: a second thread from 128K weights (1x1600x128: 0.66x the time on 2 threads,
 * 1x784x512: 0.83x). Along N, the wide ISA's rows_axpy from one wide tile's 128 columns:
 * it reads B in half as many passes (Zen 5, 1 thread, its speed / the narrow one's:
 * 1x1600x128 1.3x, 1x784x512 1.3x, 8x512x512 1.9x); the dot products stay narrow (16-lane
 * sums cost more than they save: 1x784x512 0.8x). Returns 0 if the product does not
 * qualify. */
static int gemm_few_rows(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                         int64_t a_rs, int64_t a_cs, const fnn_operand_b *b, float beta,
                         float *c, int64_t ldc)
{
    int dot = b->rs == 1 && a_cs == 1;
    if (m > GEMM_FEW_ROWS || b->roff != NULL || !(dot || b->cs == 1))
        return 0;
    const fnn_gemm_kernels *w = fnn_active->gemm_wide;
    gemm_plan P = {.g = !dot && n >= 128 && w != NULL ? w : fnn_active->gemm, .m = m, .n = n,
                   .k = k, .alpha = alpha, .beta = beta, .a = a, .a_rs = a_rs, .a_cs = a_cs,
                   .b = *b, .c = c, .ldc = ldc, .dot = dot};
    fnn_parallel_range(n, (double)FNN_MAX(m, 16) * n * k, 64, few_rows_part, &P);
    return 1;
}

/* An m x n product's work on the tile fnn_gemm_tile gives it, edges padded. */
static double tile_work(int64_t m, int64_t n)
{
    const fnn_gemm_kernels *g = fnn_gemm_tile(m, n);
    return (double)tile_padded(m, g->mr) * tile_padded(n, g->nr);
}

/* A product runs transposed, C^T = op(B)^T op(A)^T, where that pads the tile this much
 * less: an N = 10 classifier's products fill 10 of the 6x16 tile's 16 columns, and 10 of
 * 12 rows transposed. */
#define GEMM_TRANSPOSED_WORK 0.8

/* dst[c*ld + r] = src[r*ls + c] for r < rows, c < cols, threads splitting the columns. */
typedef struct {
    int64_t rows, ls, ld;
    const float *src;
    float *dst;
} transposition;

static void transpose_part(int64_t lo, int64_t hi, void *ctx)
{
    const transposition *T = ctx;
    fnn_active->gemm->transpose(T->rows, hi - lo, T->src + lo, T->ls, NULL, T->dst + lo * T->ld,
                                T->ld);
}

static void transpose(int64_t rows, int64_t cols, const float *src, int64_t ls, float *dst,
                      int64_t ld)
{
    transposition T = {.rows = rows, .ls = ls, .ld = ld, .src = src, .dst = dst};
    fnn_parallel_range(cols, 2.0 * FNN_COST_MEM * (double)rows * cols, 8, transpose_part, &T);
}

/* C = alpha * op(A) op(B) + beta * C as (C^T = alpha * op(B)^T op(A)^T + beta * C^T)^T
 * through a buffer: each element is summed in the same order as untransposed. */
static int gemm_transposed(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                           int64_t a_rs, int64_t a_cs, const fnn_operand_b *b, float beta,
                           float *c, int64_t ldc)
{
    float *ct = fnn_workspace(FNN_WS_GEMM_C, (size_t)m * n * sizeof(float));
    if (ct == NULL)
        return FNN_ENOMEM;
    if (beta != 0.0f)
        transpose(m, n, c, ldc, ct, m);
    fnn_operand_b at = {.b = a, .rs = a_cs, .cs = a_rs};
    int status = fnn_sgemm_ex(n, m, k, alpha, b->b, b->cs, b->rs, &at, beta, ct, m);
    if (status == FNN_OK)
        transpose(n, m, ct, m, c, ldc);
    return status;
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
    /* ... where op(A)^T is then read in place: by the micro-kernel along its rows, or by
     * gemm_few_rows's dot products (a transposing copy of A costs what the tile saves) */
    int a_in_place = a_rs == 1 || (n <= GEMM_FEW_ROWS && a_cs == 1 && b->rs == 1);
    if (b->roff == NULL && a_in_place &&
        tile_work(n, m) <= GEMM_TRANSPOSED_WORK * tile_work(m, n))
        return gemm_transposed(m, n, k, alpha, a, a_rs, a_cs, b, beta, c, ldc);
    const fnn_gemm_kernels *g = fnn_gemm_tile(m, n);
    /* A quarter of the usual work per thread (~5 us at peak): the two jobs below cost
     * ~1 us each with the workers awake. 128x64x64 (0.5M multiply-adds) then takes
     * 10 us on 2 threads against 16 on 1; the reference MLP's step 0.95-0.96x the time
     * (Zen 3, interleaved). */
    int nth = fnn_threads_for(4.0 * m * n * k);
    int64_t row_tiles = (m + g->mr - 1) / g->mr, col_tiles = (n + g->nr - 1) / g->nr;
    gemm_plan P = {
        .g = g, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta,
        .a = a, .a_rs = a_rs, .a_cs = a_cs, .b = *b,
        .c = c, .ldc = ldc,
        /* Rows, unless B is much the larger operand: then each task packs and reads
         * only its own columns of it. */
        .split_rows = row_tiles >= col_tiles || (row_tiles >= 2 * nth && 4 * m >= n),
        /* In place, A is re-read once per B panel; packing pays off when there are
         * many panels or A's rows are not contiguous (up to 8 panels in place: 1.1x
         * on 128x1600x128, 1 thread, EPYC Zen 3). */
        .pack_a = col_tiles > 8 || (a_cs != 1 && a_rs != 1),
        /* In place while the rows of A fit one row block: its panels are read from L1
         * across that block's row tiles, and packing would cost a pass over B (fwd
         * 128x64x64 0.95x the time, 0.80x on 2 threads, Zen 4). Over several blocks a
         * panel re-read from afar is better packed (1024^3 1.2x the time in place: rows 4
         * KB apart alias in L1). A panel at the edge would read past B's end, and a row
         * stride of 0, a broadcast, packs too: the micro-kernel takes 0 for packed. */
        .pack_b = m > g->mc || b->cs != 1 || b->rs == 0 || b->roff != NULL ||
                  n % g->nr != 0,
    };
    /* Equal K blocks: a short last block would pay a full C update for little work. */
    int64_t k_blocks = (k + g->kc - 1) / g->kc;
    P.kc = (k + k_blocks - 1) / k_blocks;
    /* B packed whole (or read in place) when that takes no more room than one K block of
     * the widest N block: then one or two jobs per N block instead of per K block. */
    size_t ncr = (size_t)fnn_round_up(FNN_MIN(g->nc, n), g->nr);
    P.whole_b = !P.pack_b || (size_t)k * ncr <= (size_t)g->kc * g->nc;
    size_t b_elems = P.pack_b ? (P.whole_b ? (size_t)k : (size_t)P.kc) * ncr : 0;
    size_t a_elems = P.pack_a ? (size_t)g->mc * P.kc : 0, elems = b_elems + a_elems * nth;
    float *ws = elems > 0 ? fnn_workspace(FNN_WS_GEMM, elems * sizeof(float)) : NULL;
    if (elems > 0 && ws == NULL)
        return FNN_ENOMEM;
    P.bp = ws;
    P.ap = P.pack_a ? ws + b_elems : NULL;
    gemm_blocks(&P, nth);
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
