/* elementwise_kernel.h: the memory-bound activation loops and the 2x2/stride-2
 * max-pool row, written as plain branch-free loops that the compiler vectorises for
 * the ISA that simd/isa_*.c targets. Semantics are fastnn.reference's: NaN
 * propagates through relu (forward and backward: its gradient passes where x is NaN,
 * torch's threshold_backward rule "x <= 0 ? 0 : g"), and a NaN wins a max-pool window
 * (the last one). */

#include <math.h>

/* Selects on the bits: float compares feeding selects would keep GCC (under
 * -ftrapping-math) from vectorising these loops. */
static inline uint32_t ew_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static inline float ew_float(uint32_t u)
{
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void ew_relu(int64_t n, const float *x, float *y)
{
    /* y may alias x (in place): each element is read once, then written. */
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* AVX-512 compares give mask registers, and GCC folds a select that zeroes a loaded
 * vector into a masked load, which took 1.2-1.4x the time of a load and a masked move
 * (Zen 5): the backward passes keep gy's load whole with an empty asm. */
#ifdef __AVX512F__
#define EW_WHOLE_LOAD(v) __asm__("" : "+v"(v))
#else
#define EW_WHOLE_LOAD(v) ((void)0)
#endif
typedef uint32_t ew_vu32 __attribute__((vector_size(FNN_VEC * 4)));

static void ew_relu_backward(int64_t n, const float *restrict gy, const float *restrict x,
                             float *restrict gx)
{
    int64_t i = 0;
    for (; i + FNN_VEC <= n; i += FNN_VEC) {
        vfloat g = *(const vfloat_u *)(gy + i), v = *(const vfloat_u *)(x + i);
        EW_WHOLE_LOAD(g);
        /* torch's rule, x <= 0 ? 0 : g: a NaN x passes g */
        *(vfloat_u *)(gx + i) = (vfloat)((ew_vu32)g & ~(ew_vu32)(v <= 0.0f));
    }
    for (; i < n; i++)
        gx[i] = x[i] <= 0.0f ? 0.0f : gy[i];
}

/* FNN_VEC elements' bits at a time in 32-bit lanes; x * 0 keeps a NaN, as torch does. */
static void ew_dropout(int64_t n, uint32_t first, uint32_t k0, uint32_t k1, uint32_t thr,
                       float scale, const float *x, float *y)
{
    uint32_t scale_bits;
    memcpy(&scale_bits, &scale, sizeof scale_bits);
    ew_vu32 index;
    for (int t = 0; t < FNN_VEC; t++)
        index[t] = first + (uint32_t)t;
    for (int64_t i = 0; i < n; i += FNN_VEC, index += FNN_VEC) {
        ew_vu32 h = index ^ k0;
        FNN_MIX32(h);
        h ^= k1;
        FNN_MIX32(h);
        vfloat m = (vfloat)((ew_vu32)(h >= thr) & scale_bits);  /* scale or +0.0f */
        if (i + FNN_VEC <= n) {
            *(vfloat_u *)(y + i) = *(const vfloat_u *)(x + i) * m;
        } else {  /* the last elements through a whole vector */
            vfloat v = {0};
            memcpy(&v, x + i, (size_t)(n - i) * sizeof(float));
            v *= m;
            memcpy(y + i, &v, (size_t)(n - i) * sizeof(float));
        }
    }
}

/* A select on the bits: as a float select (v > 0 ? v : v * slope) GCC left this loop and
 * its backward scalar and branchy on AVX2 and SSE2, 40x the time (Zen 5, 1 thread). */
static void ew_leaky_relu(int64_t n, float slope, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        uint32_t pos = -(uint32_t)(v > 0.0f);
        y[i] = ew_float((ew_bits(v) & pos) | (ew_bits(v * slope) & ~pos));
    }
}

static void ew_leaky_relu_backward(int64_t n, float slope, const float *restrict gy,
                                   const float *restrict x, float *restrict gx)
{
    int64_t i = 0;
    for (; i + FNN_VEC <= n; i += FNN_VEC) {
        vfloat g = *(const vfloat_u *)(gy + i), v = *(const vfloat_u *)(x + i);
        EW_WHOLE_LOAD(g);
        ew_vu32 pos = (ew_vu32)(v > 0.0f);
        *(vfloat_u *)(gx + i) = (vfloat)(((ew_vu32)g & pos) | ((ew_vu32)(g * slope) & ~pos));
    }
    for (; i < n; i++)
        gx[i] = x[i] > 0.0f ? gy[i] : gy[i] * slope;
}

/* y = a + b; y may be a (an accumulator). */
static void ew_add(int64_t n, const float *a, const float *b, float *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

/* Logistic function without overflow: e = exp(-|x|) is at most 1; y = 1/(1+e) for
 * x >= 0 (sign bit clear), e/(1+e) otherwise. NaN propagates through e. */
static inline float ew_sigmoid1(float v)
{
    uint32_t ux = ew_bits(v);
    float e = fnn_expf(ew_float(ux | 0x80000000u));  /* exp(-|x|) */
    uint32_t neg = -(ux >> 31);
    return ew_float((ew_bits(e) & neg) | (ew_bits(1.0f) & ~neg)) / (1.0f + e);
}

static void ew_sigmoid(int64_t n, const float *restrict x, float *restrict y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = ew_sigmoid1(x[i]);
}

/* tanh as Cephes' tanhf: its odd polynomial for |x| < 0.625, else (1 - e) / (1 + e)
 * with e = exp(-2|x|); both computed, one kept, with x's sign. NaN takes the second. */
static void ew_tanh(int64_t n, const float *restrict x, float *restrict y)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], z = v * v;
        uint32_t ux = ew_bits(v), ua = ux & 0x7fffffffu;
        float p = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * v + v;
        float e = fnn_expf(-2.0f * ew_float(ua)), q = (1.0f - e) / (1.0f + e);
        uint32_t small = -(uint32_t)(ua < 0x3f200000u);  /* |x| < 0.625 */
        uint32_t mag = ((ew_bits(p) & small) | (ew_bits(q) & ~small)) & 0x7fffffffu;
        y[i] = ew_float(mag | (ux & 0x80000000u));  /* odd: x's sign, -0 included */
    }
}

/* The smooth activations (fnn_gelu, fnn_silu, fnn_elu) as branch-free per-element
 * functions of x (alpha: elu's), selects on the bits, so their loops vectorise. */

/* erfc(z) for any z by Numerical Recipes' erfcc (Chebyshev fit: relative error below
 * 1.2e-7 everywhere), t = 1/(1 + |z|/2): erfc(|z|) = t exp(-z^2 + P(t)), and
 * 2 - erfc(|z|) for z < 0. 1 + erf(x/sqrt2) as erfc(-x/sqrt2) keeps GELU's relative
 * precision for x < 0, where 1 + erf cancels.
 * As three passes over a block of EW_SPLIT elements: t and exp's argument P(t) - z^2
 * (ew_erfc_arg), its exp, then t exp(...) and the sign's select (ew_erfc_end). As one
 * loop, each element's chain of dependent operations was too long for the out-of-order
 * window to overlap enough elements (GELU, 64K elements in cache, 1 thread, Zen 5: 0.70
 * ns an element against PyTorch's 0.28; as three passes 0.48). */
static inline float ew_erfc_arg(float z, float *t_out)
{
    float a = ew_float(ew_bits(z) & 0x7fffffffu), t = 1.0f / (1.0f + 0.5f * a);
    /* Estrin's scheme: P's dependent chain 4 multiply-adds deep, not Horner's 9, in a
     * loop bound by its latency (GELU 128x32x26x26: 0.81x the time forward, 0.89x
     * backward, Zen 5, AVX-512) */
    float t2 = t * t, t4 = t2 * t2, t8 = t4 * t4;
    float q0 = 1.00002368f * t - 1.26551223f, q1 = 0.09678418f * t + 0.37409196f;
    float q2 = 0.27886807f * t - 0.18628806f, q3 = 1.48851587f * t - 1.13520398f;
    float q4 = 0.17087277f * t - 0.82215223f;
    float p = ((q0 + q1 * t2) + (q2 + q3 * t2) * t4) + q4 * t8;
    *t_out = t;
    return p - a * a;
}

static inline float ew_erfc_end(float z, float t, float e)
{
    float r = t * e;
    uint32_t neg = -(ew_bits(z) >> 31);
    return ew_float((ew_bits(2.0f - r) & neg) | (ew_bits(r) & ~neg));
}

#define EW_SQRT1_2 0.70710678118654752f
#define EW_SPLIT 256  /* elements per block of a loop run as several passes */
#define EW_INV_SQRT_2PI 0.39894228040143268f
#define EW_GELU_BETA 0.79788456080286536f  /* sqrt(2/pi) */
#define EW_GELU_KAPPA 0.044715f

/* The first two passes of erfc(-x/sqrt2) over len <= EW_SPLIT elements: t, and e = the
 * exp (ew_erfc_end takes both). */
static inline void ew_gelu_erfc_passes(const float *x, int64_t len, float *restrict t,
                                       float *restrict e)
{
    for (int64_t i = 0; i < len; i++)
        e[i] = ew_erfc_arg(-EW_SQRT1_2 * x[i], &t[i]);
    for (int64_t i = 0; i < len; i++)
        e[i] = fnn_expf(e[i]);
}

/* The tanh form's 0.5 (1 + tanh(u)), u = beta (x + kappa x^3), as sigmoid(2u): no
 * cancellation for x < 0 either. */
static inline float ew_gelu_tanh_s(float x)
{
    return ew_sigmoid1(2.0f * (EW_GELU_BETA * (x + EW_GELU_KAPPA * (x * x * x))));
}

/* expm1(x) for x <= 0: exp(x) - 1 below -ln2/2, else x (1 + x P(x)) with the
 * polynomial of fnn_expf (where its n is 0 and r is x): no cancellation, and -0 stays -0. */
static inline float ew_expm1(float x)
{
    float p = 1.9875691500e-4f;
    p = p * x + 1.3981999507e-3f;
    p = p * x + 8.3334519073e-3f;
    p = p * x + 4.1665795894e-2f;
    p = p * x + 1.6666665459e-1f;
    p = p * x + 5.0000001201e-1f;
    float small = x * (1.0f + x * p), large = fnn_expf(x) - 1.0f;
    uint32_t far = -(uint32_t)((ew_bits(x) & 0x7fffffffu) > 0x3eb17218u);  /* |x| > ln2/2 */
    return ew_float((ew_bits(large) & far) | (ew_bits(small) & ~far));
}

/* ELU's branch on x <= 0 (a NaN takes the x > 0 side, as torch's) as a mask. */
static inline uint32_t ew_not_positive(float x)
{
    uint32_t u = ew_bits(x), a = u & 0x7fffffffu;
    return -(uint32_t)(((u >> 31) | (a == 0)) & (a <= 0x7f800000u));
}

static void ew_smooth(int op, int64_t n, float alpha, const float *x, float *y)
{
    /* y may alias x (in place): each element is read once, then written. */
    switch (op) {
    case FNN_SMOOTH_GELU:
        for (int64_t b = 0; b < n; b += EW_SPLIT) {
            int64_t len = FNN_MIN(EW_SPLIT, n - b);
            float t[EW_SPLIT], e[EW_SPLIT];
            ew_gelu_erfc_passes(x + b, len, t, e);
            for (int64_t i = 0; i < len; i++)
                y[b + i] = 0.5f * x[b + i] * ew_erfc_end(-EW_SQRT1_2 * x[b + i], t[i], e[i]);
        }
        break;
    case FNN_SMOOTH_GELU_TANH:
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * ew_gelu_tanh_s(x[i]);
        break;
    case FNN_SMOOTH_SILU:
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * ew_sigmoid1(x[i]);
        break;
    default: /* FNN_SMOOTH_ELU */
        for (int64_t i = 0; i < n; i++) {
            float v = x[i], neg = alpha * ew_expm1(v);
            uint32_t m = ew_not_positive(v);
            y[i] = ew_float((ew_bits(neg) & m) | (ew_bits(v) & ~m));
        }
    }
}

/* Their gradients from the input x, in torch's forms: GELU gy (Phi(x) + x phi(x)); the
 * tanh form gy (s + 0.5 x (1 - tanh^2) beta (1 + 3 kappa x^2)), 1 - tanh^2 = 4 s (1 - s);
 * SiLU gy s (1 + x (1 - s)); ELU gy alpha exp(x) for x <= 0, else gy. */
static void ew_smooth_backward(int op, int64_t n, float alpha, const float *restrict gy,
                               const float *restrict x, float *restrict gx)
{
    switch (op) {
    case FNN_SMOOTH_GELU:
        for (int64_t b = 0; b < n; b += EW_SPLIT) {
            int64_t len = FNN_MIN(EW_SPLIT, n - b);
            float t[EW_SPLIT], e[EW_SPLIT];
            ew_gelu_erfc_passes(x + b, len, t, e);
            for (int64_t i = 0; i < len; i++) {
                float v = x[b + i];
                float cdf = 0.5f * ew_erfc_end(-EW_SQRT1_2 * v, t[i], e[i]);
                float pdf = EW_INV_SQRT_2PI * fnn_expf(-0.5f * v * v);
                gx[b + i] = gy[b + i] * (cdf + v * pdf);
            }
        }
        break;
    case FNN_SMOOTH_GELU_TANH:
        for (int64_t i = 0; i < n; i++) {
            float v = x[i], s = ew_gelu_tanh_s(v);
            float right = 0.5f * v * (4.0f * s * (1.0f - s)) *
                          (EW_GELU_BETA * (1.0f + 3.0f * EW_GELU_KAPPA * (v * v)));
            gx[i] = gy[i] * (s + right);
        }
        break;
    case FNN_SMOOTH_SILU:
        for (int64_t i = 0; i < n; i++) {
            float v = x[i], s = ew_sigmoid1(v);
            gx[i] = gy[i] * (s * (1.0f + v * (1.0f - s)));
        }
        break;
    default: /* FNN_SMOOTH_ELU */
        for (int64_t i = 0; i < n; i++) {
            float v = x[i], g = gy[i], neg = g * (alpha * fnn_expf(v));
            uint32_t m = ew_not_positive(v);
            gx[i] = ew_float((ew_bits(neg) & m) | (ew_bits(g) & ~m));
        }
    }
}

/* The largest of x[0..n), n >= 1, in FNN_VEC independent lanes (vectorised: the
 * maximum is the same in any order, but for the sign of a zero, which changes no exp). A
 * NaN may be passed over, as the first element's comparison passed it over before: no
 * caller minds, it makes its row's exps NaN anyway. */
static inline float ew_max(int64_t n, const float *x)
{
    float lane[FNN_VEC], m;
    int64_t j = 0;
    for (int l = 0; l < FNN_VEC; l++)
        lane[l] = x[0];
    for (; j + FNN_VEC <= n; j += FNN_VEC)
        for (int l = 0; l < FNN_VEC; l++)
            lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
    m = lane[0];
    for (int l = 1; l < FNN_VEC; l++)
        m = lane[l] > m ? lane[l] : m;
    for (; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

/* fnn_exp_sums (internal.h): rows shorter than FNN_EXP_PASS several at a time, so that
 * one vector pass covers many (alone, a row of 10 classes spent most of its ~70 ns
 * outside the vector loop), longer rows in chunks of FNN_EXP_PASS. The shifted values
 * are written first, then exponentiated in place: the same float operations as
 * fnn_expf(x - max). */
static void ew_exp_sums(int64_t rows, int64_t c, const float *x, float *max, float *out,
                        double *sums)
{
    float buf[FNN_EXP_PASS];
    double lane[FNN_EXP_PASS][4];  /* a row's element j adds to lane j % 4: four chains */
    int64_t group = fnn_exp_group(c);
    for (int64_t r0 = 0; r0 < rows; r0 += group) {
        int64_t nr = FNN_MIN(group, rows - r0);
        for (int64_t r = r0; r < r0 + nr; r++)
            max[r] = ew_max(c, x + r * c);
        for (int64_t j0 = 0; j0 < c; j0 += FNN_EXP_PASS) {  /* one pass when group > 1 */
            int64_t len = FNN_MIN(FNN_EXP_PASS, c - j0);
            float *e = out ? out + r0 * c + j0 : buf;
            for (int64_t r = 0; r < nr; r++)
                for (int64_t t = 0; t < len; t++)
                    e[r * len + t] = x[(r0 + r) * c + j0 + t] - max[r0 + r];
            for (int64_t t = 0; t < nr * len; t++)  /* vectorised */
                e[t] = fnn_expf(e[t]);
            for (int64_t r = 0; r < nr; r++) {
                double *l = lane[r];
                const float *er = e + r * len;
                int64_t t = 0;
                if (j0 == 0)
                    l[0] = l[1] = l[2] = l[3] = 0.0;
                for (; t + 4 <= len; t += 4)
                    for (int q = 0; q < 4; q++)
                        l[q] += er[t + q];
                for (; t < len; t++)  /* a chunk starts at a multiple of 4 */
                    l[t & 3] += er[t];
            }
        }
        for (int64_t r = 0; r < nr; r++)
            sums[r0 + r] = (lane[r][0] + lane[r][1]) + (lane[r][2] + lane[r][3]);
    }
}

/* Channel sums of batch normalization (internal.h): NORM_LANES lanes of double,
 * element j into lane j % NORM_LANES on every ISA (held in NORM_PARTS registers of
 * NORM_VD doubles; the tail element by element with the same operations), the lanes
 * added in a fixed tree. */
#define NORM_LANES 8
#define NORM_VD (FNN_VEC / 2)
#define NORM_PARTS (NORM_LANES / NORM_VD)
typedef double norm_vd __attribute__((vector_size(NORM_VD * 8)));
typedef float norm_vh __attribute__((vector_size(NORM_VD * 4), aligned(4)));
typedef uint32_t norm_vu __attribute__((vector_size(NORM_VD * 4)));

/* NORM_VD floats at x widened to double (a macro: no vector crosses a call). */
#define NORM_WIDEN(x) __builtin_convertvector(*(const norm_vh *)(x), norm_vd)

static inline double norm_total(const double *v)
{
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

/* s = sum of d = x - shift, q = sum of d*d: the shifted one-pass variance. */
static void ew_sums(int64_t n, const float *x, float shift, double *s, double *q)
{
    norm_vd vs[NORM_PARTS] = {{0}}, vq[NORM_PARTS] = {{0}};
    double ls[NORM_LANES], lq[NORM_LANES];
    int64_t j = 0;
    for (; j + NORM_LANES <= n; j += NORM_LANES)
        for (int p = 0; p < NORM_PARTS; p++) {
            norm_vd d = NORM_WIDEN(x + j + p * NORM_VD) - (double)shift;
            vs[p] += d;
            vq[p] += d * d;
        }
    memcpy(ls, vs, sizeof ls);
    memcpy(lq, vq, sizeof lq);
    for (int l = 0; j + l < n; l++) {
        double d = (double)x[j + l] - (double)shift;
        ls[l] += d;
        lq[l] += d * d;
    }
    *s = norm_total(ls);
    *q = norm_total(lq);
}

/* s = sum of g, q = sum of g * (x - shift): the batch-norm backward's two sums, g = gy
 * gated by y_act where it is given (relu_backward's rule: y_act <= 0 ? 0 : gy). */
static void ew_dot_sums(int64_t n, const float *gy, const float *y_act, const float *x,
                        float shift, double *s, double *q)
{
    norm_vd vs[NORM_PARTS] = {{0}}, vq[NORM_PARTS] = {{0}};
    double ls[NORM_LANES], lq[NORM_LANES];
    int64_t j = 0;
    for (; j + NORM_LANES <= n; j += NORM_LANES)
        for (int p = 0; p < NORM_PARTS; p++) {
            norm_vh g = *(const norm_vh *)(gy + j + p * NORM_VD);
            if (y_act) {  /* relu_backward's select (EW_WHOLE_LOAD) */
                EW_WHOLE_LOAD(g);
                g = (norm_vh)((norm_vu)g &
                              ~(norm_vu)(*(const norm_vh *)(y_act + j + p * NORM_VD) <= 0.0f));
            }
            norm_vd vg = __builtin_convertvector(g, norm_vd);
            vs[p] += vg;
            vq[p] += vg * (NORM_WIDEN(x + j + p * NORM_VD) - (double)shift);
        }
    memcpy(ls, vs, sizeof ls);
    memcpy(lq, vq, sizeof lq);
    for (int l = 0; j + l < n; l++) {
        double vg = y_act && y_act[j + l] <= 0.0f ? 0.0f : gy[j + l];
        ls[l] += vg;
        lq[l] += vg * ((double)x[j + l] - (double)shift);
    }
    *s = norm_total(ls);
    *q = norm_total(lq);
}

/* Batch normalisation's elementwise passes over one plane of a channel (norm.c):
 * y = (x - mean) * a + b, relu'd if relu (relu's rule: x < 0 ? 0 : x), and its input
 * gradient gx = ((g - b) - (x - mean) * k) * a (in training; b = mean(g),
 * k = mean(g * (x - mean)) * invstd^2), g = gy gated by the relu'd output y_act where
 * it is given (relu_backward's rule: y_act <= 0 ? 0 : gy). */
static void ew_bn_normalise(int64_t n, const float *restrict x, float mean, float a, float b,
                            int relu, float *restrict y)
{
    if (relu) {
        for (int64_t i = 0; i < n; i++) {
            float v = (x[i] - mean) * a + b;
            y[i] = v < 0.0f ? 0.0f : v;
        }
        return;
    }
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] - mean) * a + b;
}

static void ew_bn_input_grad(int64_t n, const float *restrict gy, const float *restrict y_act,
                             const float *restrict x, float mean, float a, float b, float k,
                             float *restrict gx)
{
    int64_t i = 0;
    if (y_act) {  /* relu_backward's vectors (EW_WHOLE_LOAD), then the same tail */
        for (; i + FNN_VEC <= n; i += FNN_VEC) {
            vfloat g = *(const vfloat_u *)(gy + i), v = *(const vfloat_u *)(y_act + i);
            EW_WHOLE_LOAD(g);
            g = (vfloat)((ew_vu32)g & ~(ew_vu32)(v <= 0.0f));
            *(vfloat_u *)(gx + i) = ((g - b) - (*(const vfloat_u *)(x + i) - mean) * k) * a;
        }
        for (; i < n; i++)
            gx[i] = (((y_act[i] <= 0.0f ? 0.0f : gy[i]) - b) - (x[i] - mean) * k) * a;
        return;
    }
    for (; i < n; i++)
        gx[i] = ((gy[i] - b) - (x[i] - mean) * k) * a;
}

/* 2x2/stride-2 max pooling. Window (a b / c d) scanned in row-major order: a later
 * element replaces the running maximum when it is larger or NaN, exactly like the
 * generic window scan; k is the maximum's position 0 to 3 in the window, its offset
 * pool_offset(k, w) from a in a row of width w. A row goes L outputs at a time, the last
 * vector overlapping the one before (recomputing a few outputs the same way) instead of a
 * scalar tail, with L the widest vector (8 or 4 lanes) that the row fills: the CNN's
 * pooled rows are 13 and 5 wide, and a scalar loop over them is several times slower
 * than 4 lanes. The window columns are split by shuffles within 128-bit lanes (EVEN: as
 * vshufps takes them from two vectors), which leave the 8-lane windows in the order
 * 0 1 4 5 2 3 6 7; the maxima go out through one permutation back (ORDER) and the
 * positions' bytes are picked in that order (BYTES). A split across lanes costs AVX2 two
 * vpermd and a blend: the reference CNN's fused conv1 + pool forward took 1.15x the time
 * (EPYC Zen 3, 1 and 2 threads). */
static inline int64_t pool_offset(int k, int w) { return (k >> 1) * (int64_t)w + (k & 1); }

/* The window positions k (int lanes) as bytes at dst: each lane's low byte gathered by
 * one byte shuffle (AVX2: a fused 1->32 conv + pool in 0.9x the time of lane by lane),
 * or lane by lane where SSE2 has no byte shuffle (generic: the shuffle took 1.2x). */
#if FNN_VEC >= 8
#define POOL_STORE_POS(L, k, BYTES, dst)                                                   \
    do {                                                                                   \
        pool_vq##L kq_ = __builtin_shuffle((pool_vq##L)(k), BYTES);                        \
        memcpy(dst, &kq_, L);                                                              \
    } while (0)
#else
#define POOL_STORE_POS(L, k, BYTES, dst)                                                   \
    do {                                                                                   \
        for (int l_ = 0; l_ < L; l_++)                                                     \
            (dst)[l_] = (uint8_t)(k)[l_];                                                  \
    } while (0)
#endif

#define POOL_2X2_ROW(L, EVEN, ORDER, LO, HI, BYTES, IOTA)                                  \
    typedef float pool_vf##L __attribute__((vector_size(L * 4)));                         \
    typedef uint64_t pool_vl##L __attribute__((vector_size(L * 8)));                      \
    typedef float pool_vfu##L __attribute__((vector_size(L * 4), aligned(4)));            \
    typedef int32_t pool_vi##L __attribute__((vector_size(L * 4)));                       \
    typedef uint8_t pool_vq##L __attribute__((vector_size(L * 4)));                       \
    typedef uint32_t pool_vu##L __attribute__((vector_size(L * 4)));                      \
    static inline pool_vf##L pool_take##L(pool_vi##L s, pool_vf##L v, pool_vf##L m)       \
    {                                                                                      \
        return (pool_vf##L)(((pool_vi##L)v & s) | ((pool_vi##L)m & ~s));                  \
    }                                                                                      \
    /* One row of ow >= L outputs from the input rows r0, r1 (idx: row + offsets). */      \
    static inline void pool_2x2_row##L(const float *r0, const float *r1, int w,           \
                                       int64_t ow, int64_t row, float *y, int64_t *idx,    \
                                       uint8_t *pos)                                       \
    {                                                                                      \
        const pool_vi##L even = EVEN, odd = even + 1, order = ORDER;                       \
        for (int64_t j = 0; j < ow; j += L) {                                              \
            j = FNN_MIN(j, ow - L);                                                        \
            pool_vf##L x0 = *(const pool_vfu##L *)(r0 + 2 * j);                            \
            pool_vf##L x1 = *(const pool_vfu##L *)(r0 + 2 * j + L);                        \
            pool_vf##L x2 = *(const pool_vfu##L *)(r1 + 2 * j);                            \
            pool_vf##L x3 = *(const pool_vfu##L *)(r1 + 2 * j + L);                        \
            pool_vf##L b = __builtin_shuffle(x0, x1, odd), m = __builtin_shuffle(x0, x1, even); \
            pool_vf##L c = __builtin_shuffle(x2, x3, even), d = __builtin_shuffle(x2, x3, odd); \
            pool_vi##L k = {0}, s;                                                         \
            s = (b > m) | (b != b);                                                        \
            m = pool_take##L(s, b, m);                                                     \
            k = (s & 1) | (k & ~s);                                                        \
            s = (c > m) | (c != c);                                                        \
            m = pool_take##L(s, c, m);                                                     \
            k = (s & 2) | (k & ~s);                                                        \
            s = (d > m) | (d != d);                                                        \
            m = pool_take##L(s, d, m);                                                     \
            k = (s & 3) | (k & ~s);                                                        \
            *(pool_vfu##L *)(y + j) = __builtin_shuffle(m, order);                         \
            if (idx) { /* row + 2(j + l) + pool_offset(k, w), in vectors: (k >> 1) * w     \
                        * as a mask (k < 4), lane by lane the int64 stores took most of    \
                        * a 128x64x10x10 pool's forward */                                 \
                pool_vl##L kl = __builtin_convertvector((pool_vu##L)__builtin_shuffle(k, order), \
                                                        pool_vl##L);                       \
                pool_vl##L at = (uint64_t)(row + 2 * j) +                                  \
                                2 * __builtin_convertvector(IOTA, pool_vl##L) +            \
                                ((-(kl >> 1)) & (uint64_t)w) + (kl & 1);                   \
                memcpy(idx + j, &at, sizeof at);                                           \
            }                                                                              \
            if (pos)                                                                       \
                POOL_STORE_POS(L, k, BYTES, pos + j);                                      \
        }                                                                                  \
    }                                                                                      \
    /* The gradient of such a row through the positions pos: the rows r0, r1 of gx get    \
     * gy + 0 (-0 becomes +0, as added into zeros) at each window's position and zeros    \
     * around it, interleaved back (LO, HI); *bad gets the lanes of positions past 3.     \
     * With a relu output y, gy passes except where y <= 0 (relu_backward's rule). */    \
    static void unpool_2x2_row##L(const float *gy, const float *y, const uint8_t *pos,     \
                                  int64_t ow, float *r0, float *r1, pool_vi##L *bad)       \
    {                                                                                      \
        const pool_vi##L lo = LO, hi = HI;                                                 \
        const pool_vf##L zero = {0};                                                       \
        for (int64_t j = 0; j < ow; j += L) {                                              \
            j = FNN_MIN(j, ow - L);                                                        \
            pool_vf##L g = *(const pool_vfu##L *)(gy + j);                                 \
            if (y)                                                                         \
                g = pool_take##L(*(const pool_vfu##L *)(y + j) <= 0.0f, zero, g);          \
            g += 0.0f;                                                                     \
            pool_vi##L k;                                                                  \
            for (int l = 0; l < L; l++)                                                    \
                k[l] = pos[j + l];                                                         \
            *bad |= k > 3;                                                                 \
            pool_vf##L a = pool_take##L(k == 0, g, zero), b = pool_take##L(k == 1, g, zero); \
            pool_vf##L c = pool_take##L(k == 2, g, zero), d = pool_take##L(k == 3, g, zero); \
            *(pool_vfu##L *)(r0 + 2 * j) = __builtin_shuffle(a, b, lo);                    \
            *(pool_vfu##L *)(r0 + 2 * j + L) = __builtin_shuffle(a, b, hi);                \
            *(pool_vfu##L *)(r1 + 2 * j) = __builtin_shuffle(c, d, lo);                    \
            *(pool_vfu##L *)(r1 + 2 * j + L) = __builtin_shuffle(c, d, hi);                \
        }                                                                                  \
    }

POOL_2X2_ROW(4, ((pool_vi4){0, 2, 4, 6}), ((pool_vi4){0, 1, 2, 3}), ((pool_vi4){0, 4, 1, 5}),
             ((pool_vi4){2, 6, 3, 7}), ((pool_vq4){0, 4, 8, 12}), ((pool_vi4){0, 1, 2, 3}))
#if FNN_VEC >= 8
POOL_2X2_ROW(8, ((pool_vi8){0, 2, 8, 10, 4, 6, 12, 14}), ((pool_vi8){0, 1, 4, 5, 2, 3, 6, 7}),
             ((pool_vi8){0, 8, 1, 9, 2, 10, 3, 11}), ((pool_vi8){4, 12, 5, 13, 6, 14, 7, 15}),
             ((pool_vq8){0, 4, 16, 20, 8, 12, 24, 28}), ((pool_vi8){0, 1, 2, 3, 4, 5, 6, 7}))
#endif

/* (a variant may take another's: FNN_EW_MAX_POOL_2X2, see isa_avx512.c) */
#ifndef FNN_EW_MAX_POOL_2X2
#define FNN_EW_MAX_POOL_2X2 ew_max_pool_2x2
static void ew_max_pool_2x2(int64_t oh, int64_t ow, int w, const float *restrict x, int64_t base,
                            float *restrict y, int64_t *restrict idx, uint8_t *restrict pos)
{
    for (int64_t i = 0; i < oh; i++, y += ow, idx = idx ? idx + ow : NULL,
                 pos = pos ? pos + ow : NULL) {
        const float *restrict r0 = x + 2 * i * w, *restrict r1 = r0 + w;
        int64_t row = base + 2 * i * w;
#if FNN_VEC >= 8
        if (ow >= 8) {
            pool_2x2_row8(r0, r1, w, ow, row, y, idx, pos);
            continue;
        }
#endif
        if (ow >= 4) {
            pool_2x2_row4(r0, r1, w, ow, row, y, idx, pos);
            continue;
        }
        for (int64_t j = 0; j < ow; j++) {  /* rows of 1 to 3 outputs */
            float m = r0[2 * j], v;
            int kk = 0;
            v = r0[2 * j + 1];
            if (v > m || v != v) { m = v; kk = 1; }
            v = r1[2 * j];
            if (v > m || v != v) { m = v; kk = 2; }
            v = r1[2 * j + 1];
            if (v > m || v != v) { m = v; kk = 3; }
            y[j] = m;
            if (idx)
                idx[j] = row + 2 * j + pool_offset(kk, w);
            if (pos)
                pos[j] = (uint8_t)kk;
        }
    }
}
#endif

/* max_pool_2x2's gradient through its positions pos (oh x ow, with gy, and y, the pooled
 * relu output the gradient is masked by, or NULL) into the whole h x w plane gx, written
 * once (no zeroing, then adding): the rows and columns past the windows get zeros.
 * Nonzero if a position is past 3. */
static int ew_max_unpool_2x2(int64_t oh, int64_t ow, int64_t h, int w, const float *restrict gy,
                             const float *restrict y, const uint8_t *restrict pos,
                             float *restrict gx)
{
    pool_vi4 bad4 = {0};
#if FNN_VEC >= 8
    pool_vi8 bad8 = {0};
#endif
    int bad = 0;
    for (int64_t i = 0; i < oh; i++, gy += ow, y = y ? y + ow : NULL, pos += ow) {
        float *r0 = gx + 2 * i * w, *r1 = r0 + w;
#if FNN_VEC >= 8
        if (ow >= 8)
            unpool_2x2_row8(gy, y, pos, ow, r0, r1, &bad8);
        else
#endif
        if (ow >= 4) {
            unpool_2x2_row4(gy, y, pos, ow, r0, r1, &bad4);
        } else {
            for (int64_t j = 0; j < ow; j++) {  /* rows of 1 to 3 outputs */
                float g = (y != NULL && y[j] <= 0.0f ? 0.0f : gy[j]) + 0.0f;
                int k = pos[j];
                bad |= k > 3;
                r0[2 * j] = k == 0 ? g : 0.0f;
                r0[2 * j + 1] = k == 1 ? g : 0.0f;
                r1[2 * j] = k == 2 ? g : 0.0f;
                r1[2 * j + 1] = k == 3 ? g : 0.0f;
            }
        }
        for (int64_t j = 2 * ow; j < w; j++)
            r0[j] = r1[j] = 0.0f;
    }
    memset(gx + 2 * oh * w, 0, (size_t)((h - 2 * oh) * w) * sizeof(float));
    for (int l = 0; l < 4; l++)
        bad |= bad4[l];
#if FNN_VEC >= 8
    for (int l = 0; l < 8; l++)
        bad |= bad8[l];
#endif
    return bad;
}

/* The same on a channels-last image of C channels: window pixel k of each pooled pixel
 * gets its C values (gy + 0 where pos is k, else 0), L channels a vector, the last one
 * flush with C's end (an overlap writes the same values again). */
#define UNPOOL_2X2_HWC(L)                                                                  \
    static int unpool_2x2_hwc##L(int64_t C, const float *gy, const float *y,               \
                                 const uint8_t *pos, float *const px[4])                  \
    {                                                                                      \
        const pool_vf##L zero = {0};                                                       \
        pool_vi##L bad = {0};                                                              \
        for (int64_t c = 0; c < C; c += L) {                                               \
            c = FNN_MIN(c, C - L);                                                         \
            pool_vf##L g = *(const pool_vfu##L *)(gy + c);                                 \
            if (y)                                                                         \
                g = pool_take##L(*(const pool_vfu##L *)(y + c) <= 0.0f, zero, g);          \
            g += 0.0f;                                                                     \
            pool_vi##L k;                                                                  \
            for (int l = 0; l < L; l++)                                                    \
                k[l] = pos[c + l];                                                         \
            bad |= k > 3;                                                                  \
            for (int q = 0; q < 4; q++)                                                    \
                *(pool_vfu##L *)(px[q] + c) = pool_take##L(k == q, g, zero);               \
        }                                                                                  \
        int any = 0;                                                                       \
        for (int l = 0; l < L; l++)                                                        \
            any |= bad[l];                                                                 \
        return any;                                                                        \
    }
UNPOOL_2X2_HWC(4)
#if FNN_VEC >= 8
UNPOOL_2X2_HWC(8)
#endif

static int ew_max_unpool_2x2_hwc(int64_t oh, int64_t ow, int64_t h, int64_t w, int64_t C,
                                 const float *restrict gy, const float *restrict y,
                                 const uint8_t *restrict pos, float *restrict gx)
{
    int64_t row = w * C, done = 2 * ow * C;
    int bad = 0;
    for (int64_t i = 0; i < oh; i++) {
        float *r0 = gx + 2 * i * row, *r1 = r0 + row;
        for (int64_t j = 0; j < ow; j++) {
            int64_t q = (i * ow + j) * C;
            const float *yq = y ? y + q : NULL;
            float *const px[4] = {r0 + 2 * j * C, r0 + (2 * j + 1) * C, r1 + 2 * j * C,
                                  r1 + (2 * j + 1) * C};
#if FNN_VEC >= 8
            if (C >= 8) {
                bad |= unpool_2x2_hwc8(C, gy + q, yq, pos + q, px);
                continue;
            }
#endif
            if (C >= 4) {
                bad |= unpool_2x2_hwc4(C, gy + q, yq, pos + q, px);
                continue;
            }
            for (int64_t c = 0; c < C; c++) {  /* 1 to 3 channels */
                float g = (yq != NULL && yq[c] <= 0.0f ? 0.0f : gy[q + c]) + 0.0f;
                int k = pos[q + c];
                bad |= k > 3;
                for (int t = 0; t < 4; t++)
                    px[t][c] = k == t ? g : 0.0f;
            }
        }
        memset(r0 + done, 0, (size_t)(row - done) * sizeof(float));
        memset(r1 + done, 0, (size_t)(row - done) * sizeof(float));
    }
    memset(gx + 2 * oh * row, 0, (size_t)((h - 2 * oh) * row) * sizeof(float));
    return bad;
}

/* torch.optim.SGD's update in float32; the constants are copied to locals so that the
 * loop-invariant branches are hoisted and the loop vectorises. */
static void ew_sgd(int64_t n, float *restrict p, const float *restrict grad, float *restrict buf,
                   const fnn_sgd_consts *c)
{
    const float lr = c->lr, mom = c->momentum, damp1 = c->damp1, wd = c->wd;
    const int nesterov = c->nesterov, first = c->first_step;
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (wd != 0.0f)
            g = g + wd * p[i];
        if (mom != 0.0f) {
            float b = first ? g : mom * buf[i] + damp1 * g;
            buf[i] = b;
            g = nesterov ? g + mom * b : b;
        }
        p[i] -= lr * g;
    }
}

/* Adam runs on explicit vectors: sqrtf may set errno, which keeps GCC from
 * vectorising it, so the square root is the ISA's sqrtps. */
#if defined(FNN_X86) && FNN_VEC >= 8
typedef float adam_vec __attribute__((vector_size(32), aligned(4)));
#define ADAM_SQRT __builtin_ia32_sqrtps256
#elif defined(FNN_X86)
typedef float adam_vec __attribute__((vector_size(16), aligned(4)));
#define ADAM_SQRT __builtin_ia32_sqrtps
#else
typedef float adam_vec __attribute__((vector_size(16), aligned(4)));
static inline adam_vec ADAM_SQRT(adam_vec x)
{
    for (int l = 0; l < 4; l++)
        x[l] = sqrtf(x[l]);
    return x;
}
#endif
#define ADAM_LANES ((int64_t)(sizeof(adam_vec) / sizeof(float)))

/* torch.optim.Adam's (AdamW's when decoupled) update in float32 on ADAM_LANES
 * elements. Branch-free: the caller sets l2 = 0 unless weight decay is added to the
 * gradient and decay = 1 unless it is decoupled (x * 1 and g + 0 * p change no
 * finite value). */
static inline void adam_lanes(float *p, const float *grad, float *m, float *v,
                              const fnn_adam_consts *c)
{
    adam_vec pi = *(adam_vec *)p, g = *(const adam_vec *)grad + c->l2 * pi;
    adam_vec mi = c->beta1 * *(adam_vec *)m + c->c1 * g;
    adam_vec vi = c->beta2 * *(adam_vec *)v + c->c2 * g * g;
    *(adam_vec *)m = mi;
    *(adam_vec *)v = vi;
    *(adam_vec *)p = pi * c->decay - c->step_size * mi / (ADAM_SQRT(vi) / c->bc2_sqrt + c->eps);
}

static void ew_adam(int64_t n, float *p, const float *grad, float *m, float *v,
                    const fnn_adam_consts *c)
{
    int64_t i = 0;
    for (; i + ADAM_LANES <= n; i += ADAM_LANES)
        adam_lanes(p + i, grad + i, m + i, v + i, c);
    if (i == n)
        return;
    /* The tail through zero-padded copies (v = 0 pads give finite lanes). */
    float t[4][ADAM_LANES] = {{0}};
    size_t bytes = (size_t)(n - i) * sizeof(float);
    memcpy(t[0], p + i, bytes);
    memcpy(t[1], grad + i, bytes);
    memcpy(t[2], m + i, bytes);
    memcpy(t[3], v + i, bytes);
    adam_lanes(t[0], t[1], t[2], t[3], c);
    memcpy(p + i, t[0], bytes);
    memcpy(m + i, t[2], bytes);
    memcpy(v + i, t[3], bytes);
}

/* torch.optim.RMSprop's update in float32 on ADAM_LANES elements (Keras': eps_sq
 * under the square root, eps 0); gavg (centered) and buf (momentum) may be NULL. */
static inline void rmsprop_lanes(float *p, const float *grad, float *sq, float *gavg, float *buf,
                                 const fnn_rmsprop_consts *c)
{
    adam_vec pi = *(adam_vec *)p, g = *(const adam_vec *)grad + c->l2 * pi;
    adam_vec s = c->alpha * *(adam_vec *)sq + c->c1 * g * g, avg;
    *(adam_vec *)sq = s;
    if (gavg) {
        adam_vec ga = *(adam_vec *)gavg;
        ga = ga + c->c1 * (g - ga);
        *(adam_vec *)gavg = ga;
        avg = ADAM_SQRT(s - ga * ga + c->eps_sq) + c->eps;
    } else {
        avg = ADAM_SQRT(s + c->eps_sq) + c->eps;
    }
    if (buf) {
        adam_vec b = c->momentum * *(adam_vec *)buf + g / avg;
        *(adam_vec *)buf = b;
        *(adam_vec *)p = pi - c->lr * b;
    } else {
        *(adam_vec *)p = pi - c->lr * (g / avg);
    }
}

static void ew_rmsprop(int64_t n, float *p, const float *grad, float *sq, float *gavg,
                       float *buf, const fnn_rmsprop_consts *c)
{
    int64_t i = 0;
    for (; i + ADAM_LANES <= n; i += ADAM_LANES)
        rmsprop_lanes(p + i, grad + i, sq + i, gavg ? gavg + i : NULL, buf ? buf + i : NULL, c);
    if (i == n)
        return;
    /* The tail through zero-padded copies (sq = 0 pads give avg > 0: eps or sqrt(eps)). */
    float t[5][ADAM_LANES] = {{0}};
    float *const arrays[5] = {p, (float *)grad, sq, gavg, buf};
    size_t bytes = (size_t)(n - i) * sizeof(float);
    for (int k = 0; k < 5; k++)
        if (arrays[k])
            memcpy(t[k], arrays[k] + i, bytes);
    rmsprop_lanes(t[0], t[1], t[2], gavg ? t[3] : NULL, buf ? t[4] : NULL, c);
    for (int k = 0; k < 5; k++)
        if (arrays[k] && k != 1)
            memcpy(arrays[k] + i, t[k], bytes);
}

#define FNN_EW_KERNELS                                                                   \
    {                                                                                    \
        .relu = ew_relu, .relu_backward = ew_relu_backward, .leaky_relu = ew_leaky_relu, \
        .leaky_relu_backward = ew_leaky_relu_backward, .sigmoid = ew_sigmoid,            \
        .tanh = ew_tanh, .smooth = ew_smooth, .smooth_backward = ew_smooth_backward,     \
        .add = ew_add, .dropout = ew_dropout, .exp_sums = ew_exp_sums,                  \
        .sums = ew_sums, .dot_sums = ew_dot_sums, .bn_normalise = ew_bn_normalise,      \
        .bn_input_grad = ew_bn_input_grad, .max_pool_2x2 = FNN_EW_MAX_POOL_2X2,          \
        .sgd = ew_sgd, .max_unpool_2x2 = ew_max_unpool_2x2,                              \
        .max_unpool_2x2_hwc = ew_max_unpool_2x2_hwc, .adam = ew_adam,                    \
        .rmsprop = ew_rmsprop                                                            \
    }
