/* loss.c: cross-entropy, binary cross-entropy with logits and mean squared error,
 * each returning the mean loss and/or its gradient from one pass over the data.
 *
 * The sum runs in double over fixed blocks (rows or elements) whose partial sums are
 * added in block order, so the loss has the same bits for any thread count. */
#include <math.h>

#include "internal.h"

#define CE_BLOCK_ROWS 64
#define ELEM_BLOCK 4096

typedef struct {
    int64_t n, c, block;
    const float *a, *b;
    const int64_t *labels;
    float *grad;
    double *partial;  /* one sum per block */
    int bad_label, nonfinite;  /* set by any thread; every row is checked, so the
                                  error reported does not depend on the split */
} loss_job;

/* Per row: loss = log(sum exp(x - max)) - (x[label] - max);
 * grad = (softmax - onehot) / n. A block's maxima and exps in one fnn_exp_sums call
 * (the exps into grad when it is wanted), after every row's checks. */
static void ce_blocks(int64_t lo, int64_t hi, void *ctx)
{
    loss_job *J = ctx;
    int64_t c = J->c;
    float inv_n = 1.0f / (float)J->n, m[CE_BLOCK_ROWS];
    double s[CE_BLOCK_ROWS];
    for (int64_t blk = lo; blk < hi; blk++) {
        double sum = 0.0;
        int64_t r0 = blk * J->block, nr = FNN_MIN(J->block, J->n - r0), ok = 1;
        const float *xb = J->a + r0 * c;
        for (int64_t r = 0; r < nr; r++) {
            int64_t label = J->labels[r0 + r];
            if (label < 0 || label >= c || !fnn_all_finite(xb + r * c, c)) {
                fnn_store_status(label < 0 || label >= c ? &J->bad_label : &J->nonfinite, 1);
                ok = 0;
            }
        }
        if (!ok)  /* the call fails: its loss and gradient are not used */
            continue;
        float *gb = J->grad ? J->grad + r0 * c : NULL;
        fnn_exp_sums(nr, c, xb, m, gb, s);
        for (int64_t r = 0; r < nr; r++) {
            int64_t label = J->labels[r0 + r];
            sum += log(s[r]) - (double)(xb[r * c + label] - m[r]);
            if (gb) {  /* (e * inv - onehot) * inv_n, the label's term after the loop */
                float *g = gb + r * c, inv = (float)(1.0 / s[r]), e = g[label];
                for (int64_t j = 0; j < c; j++)  /* vectorised */
                    g[j] = g[j] * inv * inv_n;
                g[label] = (e * inv - 1.0f) * inv_n;
            }
        }
        J->partial[blk] = sum;
    }
}

/* max(x, 0) - x t + log1p(exp(-|x|)), in double; grad = (sigmoid(x) - t) / n. */
static void bce_blocks(int64_t lo, int64_t hi, void *ctx)
{
    loss_job *J = ctx;
    float inv_n = 1.0f / (float)J->n;
    for (int64_t blk = lo; blk < hi; blk++) {
        double sum = 0.0;
        int64_t i1 = FNN_MIN((blk + 1) * J->block, J->n);
        int64_t i0 = blk * J->block;
        for (int64_t i = i0; i < i1; i++) {
            double x = J->a[i], t = J->b[i];
            sum += fmax(x, 0.0) - x * t + log1p(exp(-fabs(x)));
        }
        if (J->grad) {  /* sigmoid(x) by the activation's kernel, then - t, / n */
            fnn_active->ew->sigmoid(i1 - i0, J->a + i0, J->grad + i0);
            for (int64_t i = i0; i < i1; i++)
                J->grad[i] = (J->grad[i] - J->b[i]) * inv_n;
        }
        J->partial[blk] = sum;
    }
}

/* (p - t)^2 in double; grad = 2 (p - t) / n. */
static void mse_blocks(int64_t lo, int64_t hi, void *ctx)
{
    loss_job *J = ctx;
    float scale = 2.0f / (float)J->n;
    for (int64_t blk = lo; blk < hi; blk++) {
        double sum = 0.0;
        int64_t i1 = FNN_MIN((blk + 1) * J->block, J->n);
        for (int64_t i = blk * J->block; i < i1; i++) {
            double d = (double)J->a[i] - (double)J->b[i];
            sum += d * d;
            if (J->grad)
                J->grad[i] = (J->a[i] - J->b[i]) * scale;
        }
        J->partial[blk] = sum;
    }
}

/* Split `items` (rows or elements) into blocks, run f, add the block sums in order. */
static int run_loss(loss_job *J, int64_t items, double work, fnn_range_fn f, double *loss)
{
    int64_t blocks = (items + J->block - 1) / J->block;
    J->partial = fnn_workspace(FNN_WS_OP, (size_t)FNN_MAX(blocks, 1) * sizeof(double));
    if (J->partial == NULL)
        return FNN_ENOMEM;
    fnn_parallel_range(blocks, work, 1, f, J);
    if (J->bad_label)
        return FNN_EINVAL;
    if (J->nonfinite)
        return FNN_ENONFINITE;
    if (loss) {
        double s = 0.0;
        for (int64_t b = 0; b < blocks; b++)
            s += J->partial[b];
        *loss = items > 0 ? s / (double)J->n : NAN;  /* mean of nothing, like torch */
    }
    return FNN_OK;
}

int fnn_cross_entropy(int64_t n, int64_t c, const float *logits, const int64_t *labels,
                      double *loss, float *grad)
{
    if (n < 0 || c < 1 || (n > 0 && (c > INT64_MAX / n || !logits || !labels)))
        return FNN_EINVAL;
    loss_job J = {.n = n, .c = c, .block = CE_BLOCK_ROWS, .a = logits, .labels = labels,
                  .grad = grad};
    return run_loss(&J, n, FNN_COST_EXP * (double)n * c, ce_blocks, loss);
}

int fnn_bce_with_logits(int64_t n, const float *logits, const float *targets, double *loss,
                        float *grad)
{
    if (n < 0 || (n > 0 && (!logits || !targets)))
        return FNN_EINVAL;
    loss_job J = {.n = n, .block = ELEM_BLOCK, .a = logits, .b = targets, .grad = grad};
    return run_loss(&J, n, 2 * FNN_COST_EXP * (double)n, bce_blocks, loss);
}

int fnn_mse_loss(int64_t n, const float *pred, const float *target, double *loss, float *grad)
{
    if (n < 0 || (n > 0 && (!pred || !target)))
        return FNN_EINVAL;
    loss_job J = {.n = n, .block = ELEM_BLOCK, .a = pred, .b = target, .grad = grad};
    return run_loss(&J, n, FNN_COST_MEM * (double)n, mse_blocks, loss);
}
