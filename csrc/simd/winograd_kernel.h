/* winograd_kernel.h: the input and output transforms of Winograd's F(m x m, 3 x 3),
 * m = 2 or 4 (winograd.c), and their transposes (the gradients' tiles), on one tile,
 * FNN_WINO_VEC channels per vector (channels are the innermost dimension on both sides,
 * as in NNPACK and ncnn), compiled once per ISA by simd/isa_*.c, which may set
 * FNN_WINO_VEC to a multiple of FNN_WINO_LANES (then the channels, padded, must be a
 * multiple of it). Each 1-D transform is a few additions per point: Lavin & Gray's
 * minimal algorithms on the points 0, +-1 (F(2x2)) or 0, +-1, +-2 (F(4x4)), and infinity.
 * Every lane is computed alone, so the width does not change the bits. */

#ifndef FNN_WINO_VEC
#define FNN_WINO_VEC FNN_WINO_LANES
#endif

typedef float wino_vf __attribute__((vector_size(FNN_WINO_VEC * 4)));
typedef float wino_vf_u __attribute__((vector_size(FNN_WINO_VEC * 4), aligned(4)));

/* B^T d along one axis: a points d[k*ds] to a points o[k*os]. */
static inline __attribute__((always_inline)) void
wino_bt(int m, const wino_vf *d, int ds, wino_vf *o, int os)
{
    if (m == 2) {
        o[0] = d[0] - d[2 * ds];
        o[os] = d[ds] + d[2 * ds];
        o[2 * os] = d[2 * ds] - d[ds];
        o[3 * os] = d[ds] - d[3 * ds];
        return;
    }
    wino_vf t1 = d[4 * ds] - 4.0f * d[2 * ds], t2 = d[3 * ds] - 4.0f * d[ds];  /* +-1 */
    wino_vf t3 = d[4 * ds] - d[2 * ds], t4 = 2.0f * (d[3 * ds] - d[ds]);       /* +-2 */
    o[0] = 4.0f * d[0] - 5.0f * d[2 * ds] + d[4 * ds];
    o[os] = t1 + t2;
    o[2 * os] = t1 - t2;
    o[3 * os] = t3 + t4;
    o[4 * os] = t3 - t4;
    o[5 * os] = 4.0f * d[ds] - 5.0f * d[3 * ds] + d[5 * ds];
}

/* B x along one axis (the transpose of wino_bt): a points to a. */
static inline __attribute__((always_inline)) void
wino_b(int m, const wino_vf *x, int xs, wino_vf *o, int os)
{
    if (m == 2) {
        o[0] = x[0];
        o[os] = x[xs] - x[2 * xs] + x[3 * xs];
        o[2 * os] = x[xs] + x[2 * xs] - x[0];
        o[3 * os] = -x[3 * xs];
        return;
    }
    wino_vf s1 = x[xs] + x[2 * xs], d1 = x[xs] - x[2 * xs];
    wino_vf s2 = x[3 * xs] + x[4 * xs], d2 = x[3 * xs] - x[4 * xs];
    o[0] = 4.0f * x[0];
    o[os] = 4.0f * (x[5 * xs] - d1) - 2.0f * d2;
    o[2 * os] = -5.0f * x[0] - 4.0f * s1 - s2;
    o[3 * os] = d1 + 2.0f * d2 - 5.0f * x[5 * xs];
    o[4 * os] = x[0] + s1 + s2;
    o[5 * os] = x[5 * xs];
}

/* A^T x along one axis: a points to m. */
static inline __attribute__((always_inline)) void
wino_at(int m, const wino_vf *x, int xs, wino_vf *o, int os)
{
    if (m == 2) {
        o[0] = x[0] + x[xs] + x[2 * xs];
        o[os] = x[xs] - x[2 * xs] - x[3 * xs];
        return;
    }
    wino_vf s1 = x[xs] + x[2 * xs], d1 = x[xs] - x[2 * xs];
    wino_vf s2 = x[3 * xs] + x[4 * xs], d2 = x[3 * xs] - x[4 * xs];
    o[0] = x[0] + s1 + s2;
    o[os] = d1 + 2.0f * d2;
    o[2 * os] = s1 + 4.0f * s2;
    o[3 * os] = d1 + 8.0f * d2 + x[5 * xs];
}

/* A x along one axis (the transpose of wino_at): m points to a. */
static inline __attribute__((always_inline)) void
wino_a(int m, const wino_vf *x, int xs, wino_vf *o, int os)
{
    if (m == 2) {
        o[0] = x[0];
        o[os] = x[0] + x[xs];
        o[2 * os] = x[0] - x[xs];
        o[3 * os] = -x[xs];
        return;
    }
    wino_vf e1 = x[0] + x[2 * xs], f1 = x[xs] + x[3 * xs];                  /* +-1 */
    wino_vf e2 = x[0] + 4.0f * x[2 * xs], f2 = 2.0f * x[xs] + 8.0f * x[3 * xs]; /* +-2 */
    o[0] = x[0];
    o[os] = e1 + f1;
    o[2 * os] = e1 - f1;
    o[3 * os] = e2 + f2;
    o[4 * os] = e2 - f2;
    o[5 * os] = x[3 * xs];
}

/* G^T x along one axis (the weight gradient's filter transform): a points to 3 taps. */
static inline __attribute__((always_inline)) void
wino_gt(int m, const wino_vf *x, int xs, wino_vf *o, int os)
{
    if (m == 2) {
        wino_vf s1 = x[xs] + x[2 * xs];
        o[0] = x[0] + 0.5f * s1;
        o[os] = 0.5f * (x[xs] - x[2 * xs]);
        o[2 * os] = 0.5f * s1 + x[3 * xs];
        return;
    }
    const float c6 = 1.0f / 6, c12 = 1.0f / 12, c24 = 1.0f / 24;  /* rounded once */
    wino_vf s1 = x[xs] + x[2 * xs], d1 = x[xs] - x[2 * xs];
    wino_vf s2 = x[3 * xs] + x[4 * xs], d2 = x[3 * xs] - x[4 * xs];
    o[0] = 0.25f * x[0] - c6 * s1 + c24 * s2;
    o[os] = c12 * d2 - c6 * d1;
    o[2 * os] = c6 * (s2 - s1) + x[5 * xs];
}

/* The k x k patch at src (pixel (i, j) at src + i*ld + j*cp, channels contiguous, cp a
 * multiple of FNN_WINO_VEC) through the 1-D transform t (k points to a) along its rows,
 * then its columns: position xi of channel c to out[xi*os + c], c < cp. */
typedef void (*wino_1d)(int m, const wino_vf *x, int xs, wino_vf *o, int os);
static inline __attribute__((always_inline)) void
wino_patch_m(int m, int k, wino_1d t, const float *src, int64_t ld, int64_t cp, float *out,
             int64_t os)
{
    const int a = m + 2;
    for (int64_t c = 0; c < cp; c += FNN_WINO_VEC) {
        wino_vf d[36], r[36], o[36];
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                d[i * k + j] = *(const wino_vf_u *)(src + i * ld + j * cp + c);
        for (int i = 0; i < k; i++)  /* rows: d T^T */
            t(m, d + i * k, 1, r + i * a, 1);
        for (int j = 0; j < a; j++)  /* columns: T (d T^T) */
            t(m, r + j, a, o + j, a);
        for (int xi = 0; xi < a * a; xi++)
            *(wino_vf_u *)(out + xi * os + c) = o[xi];
    }
}

typedef unsigned wino_vu __attribute__((vector_size(FNN_WINO_VEC * 4)));

/* One tile's output from in[xi*is + c] plus bias[c] (c < cp, a multiple of FNN_WINO_VEC):
 * pixel (i, j) of channel c to out[i*ld + j*cp + c]. Returns nonzero if one is inf or NaN: bit
 * 31 of (exponent bits + 1), as fnn_all_finite tests them. */
static inline __attribute__((always_inline)) int
wino_output_m(int m, const float *in, int64_t is, int64_t cp, const float *bias, float *out,
              int64_t ld)
{
    const int a = m + 2;
    wino_vu bad = {0};
    for (int64_t c = 0; c < cp; c += FNN_WINO_VEC) {
        wino_vf d[36], r[24], o[16];
        for (int xi = 0; xi < a * a; xi++)
            d[xi] = *(const wino_vf_u *)(in + xi * is + c);
        for (int i = 0; i < a; i++)  /* rows: x A */
            wino_at(m, d + i * a, 1, r + i * m, 1);
        for (int j = 0; j < m; j++)  /* columns: A^T (x A) */
            wino_at(m, r + j, m, o + j, m);
        wino_vf b = *(const wino_vf_u *)(bias + c);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
                wino_vf v = o[i * m + j] + b;
                bad |= ((wino_vu)v & 0x7f800000u) + 0x00800000u;
                *(wino_vf_u *)(out + i * ld + j * cp + c) = v;
            }
    }
    unsigned any = 0;
    for (int l = 0; l < FNN_WINO_VEC; l++)
        any |= bad[l];
    return (int)(any >> 31);
}

/* One tile's input gradient, B x B^T of in[xi*is + c] (c < cp, a multiple of
 * FNN_WINO_VEC), added to the a x a patch: pixel (i, j) of channel c at
 * out[i*ld + j*cp + c] (the transpose of wino_input: the input gradient taken as the
 * forward's transpose). */
static inline __attribute__((always_inline)) void
wino_input_t_m(int m, const float *in, int64_t is, int64_t cp, float *out, int64_t ld)
{
    const int a = m + 2;
    for (int64_t c = 0; c < cp; c += FNN_WINO_VEC) {
        wino_vf d[36], r[36], o[36];
        for (int xi = 0; xi < a * a; xi++)
            d[xi] = *(const wino_vf_u *)(in + xi * is + c);
        for (int i = 0; i < a; i++)  /* rows: x B^T */
            wino_b(m, d + i * a, 1, r + i * a, 1);
        for (int j = 0; j < a; j++)  /* columns: B (x B^T) */
            wino_b(m, r + j, a, o + j, a);
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++)
                *(wino_vf_u *)(out + i * ld + j * cp + c) += o[i * a + j];
    }
}

/* B^T d B of the a x a patch (the input tiles) */
static void wino_input(int m, const float *src, int64_t ld, int64_t cp, float *out, int64_t os)
{
    if (m == 2)
        wino_patch_m(2, 4, wino_bt, src, ld, cp, out, os);
    else
        wino_patch_m(4, 6, wino_bt, src, ld, cp, out, os);
}

static int wino_output(int m, const float *in, int64_t is, int64_t cp, const float *bias,
                       float *out, int64_t ld)
{
    return m == 2 ? wino_output_m(2, in, is, cp, bias, out, ld)
                  : wino_output_m(4, in, is, cp, bias, out, ld);
}

static void wino_input_t(int m, const float *in, int64_t is, int64_t cp, float *out,
                         int64_t ld)
{
    if (m == 2)
        wino_input_t_m(2, in, is, cp, out, ld);
    else
        wino_input_t_m(4, in, is, cp, out, ld);
}

/* A g A^T of the m x m patch (the weight gradient's output-gradient tiles) */
static void wino_output_t(int m, const float *src, int64_t ld, int64_t cp, float *out,
                          int64_t os)
{
    if (m == 2)
        wino_patch_m(2, 2, wino_a, src, ld, cp, out, os);
    else
        wino_patch_m(4, 4, wino_a, src, ld, cp, out, os);
}

/* G^T S G of FNN_WINO_VEC lanes: point (i, j) of lane e at s[(i*a + j)*ss + e], tap
 * (i, j) to o[(i*3 + j)*os + e]; S's columns, then its rows. */
static inline __attribute__((always_inline)) void
wino_filter_t_m(int m, const float *s, int64_t ss, float *o, int64_t os)
{
    const int a = m + 2;
    wino_vf d[36], r[18], t[9];
    for (int xi = 0; xi < a * a; xi++)
        d[xi] = *(const wino_vf_u *)(s + xi * ss);
    for (int j = 0; j < a; j++)  /* columns: G^T x */
        wino_gt(m, d + j, a, r + j, a);
    for (int i = 0; i < 3; i++)  /* rows: (G^T x) G */
        wino_gt(m, r + i * a, 1, t + i * 3, 1);
    for (int k = 0; k < 9; k++)
        *(wino_vf_u *)(o + k * os) = t[k];
}

/* G^T S G of len lanes (the weight gradient's filter taps from its a x a positions, lane
 * e a pair of channels), whole vectors, the last one flush with the end (its overlap
 * computed twice, to the same values); fewer lanes than a vector through zero-padded
 * copies. */
static void wino_filter_t(int m, const float *s, int64_t ss, float *o, int64_t os, int64_t len)
{
    const int a = m + 2;
    if (len >= FNN_WINO_VEC) {
        for (int64_t e = 0; e < len; e += FNN_WINO_VEC) {
            int64_t at = FNN_MIN(e, len - FNN_WINO_VEC);
            if (m == 2)
                wino_filter_t_m(2, s + at, ss, o + at, os);
            else
                wino_filter_t_m(4, s + at, ss, o + at, os);
        }
        return;
    }
    float sp[36 * FNN_WINO_VEC] = {0}, op[9 * FNN_WINO_VEC];
    for (int xi = 0; xi < a * a; xi++)
        memcpy(sp + xi * FNN_WINO_VEC, s + xi * ss, (size_t)len * sizeof(float));
    if (m == 2)
        wino_filter_t_m(2, sp, FNN_WINO_VEC, op, FNN_WINO_VEC);
    else
        wino_filter_t_m(4, sp, FNN_WINO_VEC, op, FNN_WINO_VEC);
    for (int k = 0; k < 9; k++)
        memcpy(o + k * os, op + k * FNN_WINO_VEC, (size_t)len * sizeof(float));
}

/* The 2x2, stride-2 max pool of two channels-last rows r0, r1 (pixel j of channel c at
 * r[j*cp + c]) into ow outputs: the max to y[j*cp + c], its window position (0-3 in
 * row-major order) to pos[j*cp + c]. As pool.c: the first maximum wins a tie, a NaN wins
 * (the last NaN of the window). */
typedef int wino_vi __attribute__((vector_size(FNN_WINO_VEC * 4)));
static void wino_pool_2x2(const float *r0, const float *r1, int64_t ow, int64_t cp, float *y,
                          uint8_t *pos)
{
    for (int64_t j = 0; j < ow; j++)
        for (int64_t c = 0; c < cp; c += FNN_WINO_VEC) {
            const float *at[4] = {r0 + 2 * j * cp + c, r0 + (2 * j + 1) * cp + c,
                                  r1 + 2 * j * cp + c, r1 + (2 * j + 1) * cp + c};
            wino_vf m = *(const wino_vf_u *)at[0];
            wino_vi k = {0};
            for (int q = 1; q < 4; q++) {
                wino_vf v = *(const wino_vf_u *)at[q];
                wino_vi take = (v > m) | (v != v);
                m = (wino_vf)(((wino_vi)v & take) | ((wino_vi)m & ~take));
                k = (k & ~take) | (q & take);
            }
            *(wino_vf_u *)(y + j * cp + c) = m;
            for (int l = 0; l < FNN_WINO_VEC; l++)
                pos[j * cp + c + l] = (uint8_t)k[l];
        }
}

#define FNN_WINO_KERNELS                                                                   \
    {.lanes = FNN_WINO_VEC, .input = wino_input, .input_t = wino_input_t,                  \
     .output = wino_output, .output_t = wino_output_t, .filter_t = wino_filter_t,          \
     .pool_2x2 = wino_pool_2x2}
