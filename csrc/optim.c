/* optim.c: one SGD, Adam or RMSprop step over every parameter array in one call.
 *
 * The arrays are treated as one concatenated element range split evenly over the
 * threads, so a model with one large and many small arrays still balances. Each
 * element's update is independent, in float32 with torch.optim's operation order
 * (simd/elementwise_kernel.h); scalars (1 - beta, bias corrections) are formed in
 * double once per call. */
#include <math.h>

#include "internal.h"

typedef struct {
    int64_t count;
    const int64_t *sizes;
    float *const *params, *const *bufs, *const *ms, *const *vs;  /* RMSprop: ms square */
    const float *const *grads;                                   /* averages, vs grad ones */
    fnn_sgd_consts sgd;
    fnn_adam_consts adam;
    fnn_rmsprop_consts rmsprop;
} optim_job;

typedef void (*optim_fn)(const optim_job *J, int64_t a, int64_t lo, int64_t hi);

static void sgd_array(const optim_job *J, int64_t a, int64_t lo, int64_t hi)
{
    fnn_active->ew->sgd(hi - lo, J->params[a] + lo, J->grads[a] + lo,
                       J->bufs ? J->bufs[a] + lo : NULL, &J->sgd);
}

static void adam_array(const optim_job *J, int64_t a, int64_t lo, int64_t hi)
{
    fnn_active->ew->adam(hi - lo, J->params[a] + lo, J->grads[a] + lo, J->ms[a] + lo,
                        J->vs[a] + lo, &J->adam);
}

static void rmsprop_array(const optim_job *J, int64_t a, int64_t lo, int64_t hi)
{
    fnn_active->ew->rmsprop(hi - lo, J->params[a] + lo, J->grads[a] + lo, J->ms[a] + lo,
                           J->vs ? J->vs[a] + lo : NULL, J->bufs ? J->bufs[a] + lo : NULL,
                           &J->rmsprop);
}

/* The part [lo, hi) of the concatenated range, array by array. */
static void walk(const optim_job *J, int64_t lo, int64_t hi, optim_fn f)
{
    int64_t start = 0;
    for (int64_t a = 0; a < J->count && start < hi; start += J->sizes[a], a++) {
        int64_t a_lo = FNN_MAX(lo - start, 0), a_hi = FNN_MIN(hi - start, J->sizes[a]);
        if (a_hi > a_lo)
            f(J, a, a_lo, a_hi);
    }
}

static void sgd_part(int64_t lo, int64_t hi, void *ctx) { walk(ctx, lo, hi, sgd_array); }
static void adam_part(int64_t lo, int64_t hi, void *ctx) { walk(ctx, lo, hi, adam_array); }
static void rmsprop_part(int64_t lo, int64_t hi, void *ctx) { walk(ctx, lo, hi, rmsprop_array); }

/* Total elements of all arrays; -1 if a size is negative, an array is missing or the
 * total overflows. */
static int64_t total_size(int64_t count, const int64_t *sizes, float *const *params,
                          const float *const *grads, float *const *x1, float *const *x2)
{
    int64_t total = 0;
    for (int64_t a = 0; a < count; a++) {
        if (sizes[a] < 0 || sizes[a] > INT64_MAX - total)
            return -1;
        if (sizes[a] > 0 && (!params[a] || !grads[a] || (x1 && !x1[a]) || (x2 && !x2[a])))
            return -1;
        total += sizes[a];
    }
    return total;
}

int fnn_sgd_step(int64_t count, const int64_t *sizes, float *const *params,
                 const float *const *grads, float *const *bufs, double lr, double momentum,
                 double dampening, int nesterov, double weight_decay, int first_step)
{
    if (count < 0 || (count > 0 && (!sizes || !params || !grads)) || !(lr >= 0.0) ||
        (momentum != 0.0 && !bufs) || (nesterov && (momentum <= 0.0 || dampening != 0.0)))
        return FNN_EINVAL;
    int64_t total = total_size(count, sizes, params, grads, momentum != 0.0 ? bufs : NULL, NULL);
    if (total < 0)
        return FNN_EINVAL;
    optim_job J = {.count = count, .sizes = sizes, .params = params, .grads = grads,
                   .bufs = momentum != 0.0 ? bufs : NULL,
                   .sgd = {.lr = (float)lr, .momentum = (float)momentum,
                           .damp1 = (float)(1.0 - dampening), .wd = (float)weight_decay,
                           .nesterov = nesterov, .first_step = first_step}};
    fnn_parallel_range(total, 4.0 * FNN_COST_MEM * (double)total, 16, sgd_part, &J);
    return FNN_OK;
}

int fnn_adam_step(int64_t count, const int64_t *sizes, float *const *params,
                  const float *const *grads, float *const *ms, float *const *vs, int64_t step,
                  double lr, double beta1, double beta2, double eps, double weight_decay,
                  int decoupled)
{
    if (count < 0 || (count > 0 && (!sizes || !params || !grads || !ms || !vs)) || step < 1 ||
        !(lr >= 0.0) || !(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0) ||
        !(eps > 0.0))
        return FNN_EINVAL;
    int64_t total = total_size(count, sizes, params, grads, ms, vs);
    if (total < 0)
        return FNN_EINVAL;
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    optim_job J = {.count = count, .sizes = sizes, .params = params, .grads = grads,
                   .ms = ms, .vs = vs,
                   .adam = {.beta1 = (float)beta1, .beta2 = (float)beta2,
                            .c1 = (float)(1.0 - beta1), .c2 = (float)(1.0 - beta2),
                            .step_size = (float)(lr / bc1), .bc2_sqrt = (float)sqrt(bc2),
                            .eps = (float)eps, .l2 = decoupled ? 0.0f : (float)weight_decay,
                            .decay = decoupled ? (float)(1.0 - lr * weight_decay) : 1.0f}};
    fnn_parallel_range(total, 16.0 * FNN_COST_MEM * (double)total, 16, adam_part, &J);
    return FNN_OK;
}

int fnn_rmsprop_step(int64_t count, const int64_t *sizes, float *const *params,
                     const float *const *grads, float *const *square_avgs,
                     float *const *grad_avgs, float *const *bufs, double lr, double alpha,
                     double eps, double weight_decay, double momentum, int centered,
                     int eps_inside)
{
    if (count < 0 || (count > 0 && (!sizes || !params || !grads || !square_avgs)) ||
        !(lr >= 0.0) || !(alpha >= 0.0 && alpha <= 1.0) || !(eps > 0.0) ||
        !(weight_decay >= 0.0) || !(momentum >= 0.0) || (centered && count > 0 && !grad_avgs) ||
        (momentum != 0.0 && count > 0 && !bufs))
        return FNN_EINVAL;
    float *const *gavg = centered ? grad_avgs : NULL, *const *buf = momentum != 0.0 ? bufs : NULL;
    int64_t total = total_size(count, sizes, params, grads, square_avgs, gavg);
    if (total < 0 || (buf && total_size(count, sizes, params, grads, buf, NULL) < 0))
        return FNN_EINVAL;
    optim_job J = {.count = count, .sizes = sizes, .params = params, .grads = grads,
                   .ms = square_avgs, .vs = gavg, .bufs = buf,
                   .rmsprop = {.alpha = (float)alpha, .c1 = (float)(1.0 - alpha),
                               .lr = (float)lr, .eps = eps_inside ? 0.0f : (float)eps,
                               .eps_sq = eps_inside ? (float)eps : 0.0f,
                               .l2 = (float)weight_decay, .momentum = (float)momentum}};
    fnn_parallel_range(total, 16.0 * (double)total, 16, rmsprop_part, &J);
    return FNN_OK;
}
