"""Winograd convolution (csrc/winograd.c): F(2x2, 3x3) ("winograd") and F(4x4, 3x3)
("winograd4x4"), forward, input gradient and weight gradient, against the float64 reference.

Error bound. Winograd computes, per m x m output tile,
    Y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A + bias
with the filter transform done in double and rounded once, the input transform B^T d B and
the output transform A^T M A in float32 additions (depth kB and kA: the longest chain of
roundings behind one value), the products and the sum over the C_in channels on the GEMM
(C_in + 1 roundings), and the bias (1). Each computed value is then the exact one with every
term perturbed by a factor (1 + t), |t| <= gamma_K, K = C_in + kB + kA + 3 (Higham 3.1 along
each path), so, per output element,
    |Y_float32 - Y| <= gamma_K * E,
    E = |A^T| [ sum_c (|G||g_c||G^T|) . (|B^T||d_c||B|) ] |A| + |b|
(the same transforms on absolute values, computed here in float64). kB = 2, kA = 4 for
F(2x2) (K = C_in + 9); kB = 6, kA = 6 for F(4x4) (K = C_in + 15).

The direct method's bound is gamma_{9 C_in + 1} * D with D = sum |g||d| + |b| (tests/test_conv.py).
E / D is the transforms' coefficient growth: 64/9 = 7.1 for F(2x2) (|G| rows sum to 1, 1.5,
1.5, 1; |B^T| rows to 2) and 2304/9 = 256 for F(4x4) (|B^T| rows sum to 10, 10, 10, 6, 6,
10; |A^T|'s last row to 19) on data of even magnitude (all ones: test_growth_factors). So
there Winograd's float32 error bound is about 7.1 / 9 < 1 (F(2x2): fewer roundings make up
for the growth) and 256 / 9 = 28x (F(4x4)) the direct method's for many channels; for one
channel the direct method's gamma_10 meets gamma_10 (F(2x2)) and gamma_16 (F(4x4)). E also
counts, for each output, products of tile pixels and taps that cancel out of it exactly: an
output much smaller than its tile's other terms gets a bound set by them, and E / D is
larger there (at single elements of random normal data up to ~90 for F(2x2) and ~18,000
for F(4x4); E, not D, is what the tests below hold each element to).

The input gradient is the same computation on the output gradient with the flipped,
transposed filters and padding 2 - p (same bound), except where the forward's tiles are
fewer than that convolution's (padding 0): there it is the forward's transpose, per
forward tile t
    dx_t = B [ sum_o (G g_o G^T) . (A gy_ot A^T) ] B^T,
the a x a tiles added where they overlap. Along a path: A gy A^T (depth kZ: 2 for F(2x2),
4 for F(4x4)), the filter's rounding (1), the products and the sum over C_out (C_out + 1),
B x B^T (kB': 4 for F(2x2), 6 for F(4x4)) and the overlap (2: a pixel sums at most two
tiles of a tile row, then two tile rows), so K = C_out + 10 (F(2x2)) or C_out + 14
(F(4x4)), against E_t, the same computation on absolute values (transposed_growth). The
bias gradient runs the direct method (and is checked against its bound).

The weight gradient is, over the T = N * tiles-per-image output tiles t (gy zero past the
output's edge),
    dW[o][c] = G^T [ sum_t (A gy_ot A^T) . (B^T d_ct B) ] G
with B^T d B (depth kB) and A gy A^T (depth kZ: 2 for F(2x2), 4 for F(4x4)) in float32,
the product (1) and the sum over the tiles on the GEMM (at most T additions along any
path, block after block of one chunk), G^T S G in float32 (kG: 2 per axis for F(2x2); 5 for
F(4x4), whose 1/6, 1/12, 1/24 are rounded too) and the sum of at most 16 chunk partials
(15). So |dW_float32 - dW| <= gamma_K * E_w, K = T + kB + kZ + kG + 16 (T + 26 for
F(2x2), T + 36 for F(4x4)),
    E_w = |G^T| [ sum_t (|A||gy_ot||A^T|) . (|B^T||d_ct||B|) ] |G|,
against the direct method's gamma_{N*OH*OW+16} * D_w, D_w = sum |gy||x|. The coefficient
growth E_w / D_w is 9 (F(2x2): |A| gy |A^T| row sums 1, 2, 2, 1 and |B^T| rows sum to 2,
met by |G|'s columns 3, 2, 3) and 1600/9 = 178 (F(4x4)) on data of even magnitude and whole
tiles (test_weight_gradient_growth; as above, more at single elements of other data: up to
~13 and ~300 on random normal data), while K is about m^2 times smaller (T = N*OH*OW / m^2
for whole tiles): Winograd's weight-gradient bound is then about 9 / 4 = 2.25x (F(2x2))
and 178 / 16 = 11x (F(4x4)) the direct method's, for many tiles.
"""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fastnn
from fastnn import functional as F
from fastnn import reference as R

U = 2.0 ** -24
ALGOS = {"winograd": 2, "winograd4x4": 4}
TRANSFORMS = {  # B^T, G, A^T
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], float)),
}
DEPTH = {2: 9, 4: 15}  # K - C_in
DEPTH_W = {2: 26, 4: 36}  # K - T for the weight gradient
DEPTH_T = {2: 10, 4: 14}  # K - C_out for the input gradient as the forward's transpose


def gamma(k):
    return k * U / (1 - k * U)


def shifted(x, p, rows, cols):
    """rows x cols planes whose pixel (i, j) is x's (i - p, j - p), zero outside x."""
    out = np.zeros(x.shape[:2] + (rows, cols))
    h, w = x.shape[2:]
    r0, c0 = max(p, 0), max(p, 0)
    r1, c1 = min(h + p, rows), min(w + p, cols)
    if r1 > r0 and c1 > c0:
        out[:, :, r0:r1, c0:c1] = x[:, :, r0 - p:r1 - p, c0 - p:c1 - p]
    return out


def winograd_growth(x, w, b, p, m):
    """E above, per output element: F(m x m, 3 x 3) on absolute values, in float64."""
    bt, g, at = (np.abs(t) for t in TRANSFORMS[m])
    a = m + 2
    oh, ow = x.shape[2] + 2 * p - 2, x.shape[3] + 2 * p - 2
    th, tw = -(-oh // m), -(-ow // m)
    xp = shifted(np.abs(x), p, th * m + 2, tw * m + 2)
    d = sliding_window_view(xp, (a, a), axis=(2, 3))[:, :, ::m, ::m][:, :, :th, :tw]
    v = np.einsum("ri,ncyxij,sj->ncyxrs", bt, d, bt)
    u = np.einsum("ri,ocij,sj->ocrs", g, np.abs(w), g)
    mm = np.einsum("ncyxrs,ocrs->noyxrs", v, u)
    y = np.einsum("ir,noyxrs,js->noyixj", at, mm, at).reshape(x.shape[0], w.shape[0],
                                                              th * m, tw * m)
    y = y[:, :, :oh, :ow]
    return y if b is None else y + np.abs(b)[None, :, None, None]


def weight_gradient_growth(g, x, p, m):
    """E_w above, per weight-gradient element, and T (the tiles), in float64."""
    bt, gm, at = (np.abs(t) for t in TRANSFORMS[m])
    a = m + 2
    n, o, oh, ow = g.shape
    th, tw = -(-oh // m), -(-ow // m)
    xp = shifted(np.abs(x), p, th * m + 2, tw * m + 2)
    d = sliding_window_view(xp, (a, a), axis=(2, 3))[:, :, ::m, ::m][:, :, :th, :tw]
    v = np.einsum("ri,ncyxij,sj->ncyxrs", bt, d, bt)
    gp = np.zeros((n, o, th * m, tw * m))
    gp[:, :, :oh, :ow] = np.abs(g)
    z = np.einsum("ir,noyixj,js->noyxrs", at, gp.reshape(n, o, th, m, tw, m), at)
    return np.einsum("rk,ocrs,sl->ockl", gm, np.einsum("noyxrs,ncyxrs->ocrs", z, v), gm), \
        n * th * tw


def runs_transposed(shape, p, m):
    """Whether the input gradient runs as the forward's transpose (csrc/winograd.c): the
    forward's tiles fewer than those over the input."""
    h, w = shape[2:]
    return -(-(h + 2 * p - 2) // m) * -(-(w + 2 * p - 2) // m) < -(-h // m) * -(-w // m)


def transposed_growth(g, w, x_shape, p, m):
    """E_t above, per input-gradient element, in float64."""
    bt, gm, at = (np.abs(t) for t in TRANSFORMS[m])
    n, o, oh, ow = g.shape
    th, tw = -(-oh // m), -(-ow // m)
    gp = np.zeros((n, o, th * m, tw * m))
    gp[:, :, :oh, :ow] = np.abs(g)
    z = np.einsum("ir,noyixj,js->noyxrs", at, gp.reshape(n, o, th, m, tw, m), at)
    u = np.einsum("ri,ocij,sj->ocrs", gm, np.abs(w), gm)
    t = np.einsum("ri,ncyxrs,sj->ncyxij", bt, np.einsum("noyxrs,ocrs->ncyxrs", z, u), bt)
    out = np.zeros((n, w.shape[1], th * m + 2, tw * m + 2))
    for i in range(m + 2):
        for j in range(m + 2):
            out[:, :, i:i + th * m:m, j:j + tw * m:m] += t[..., i, j]
    h, wd = x_shape[2:]
    return shifted(out, -p, h, wd)


def assert_within(out, ref, bound, k, what):
    err = np.abs(out.astype(np.float64) - ref)
    worst = np.max(err - gamma(k) * bound) if err.size else 0.0
    assert worst <= 0.0, f"{what}: error exceeds gamma_{k} * E by {worst}"


# (n, c_in, h, w, c_out, padding): 1 and many channels, channels off the vector width,
# odd and tiny images (1x1 with padding 1, 2x2), padding 0/1/2/3, batch 1
SHAPES = [(1, 1, 5, 5, 1, 1), (2, 3, 7, 9, 4, 0), (1, 1, 1, 1, 1, 1), (1, 2, 2, 2, 3, 2),
          (1, 1, 2, 2, 1, 1), (1, 5, 3, 3, 2, 0), (2, 7, 6, 6, 5, 2), (1, 9, 8, 8, 8, 1),
          (2, 33, 9, 7, 19, 1), (3, 16, 13, 13, 32, 0), (2, 20, 11, 10, 17, 1),
          (1, 64, 4, 4, 64, 1), (1, 2, 4, 5, 3, 3), (4, 1, 28, 28, 8, 1),
          (2, 8, 30, 30, 8, 0), (2, 4, 3, 17, 3, 0)]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_winograd_within_bound(isa, rng, algo, shape):
    n, c, h, w, o, p = shape
    m = ALGOS[algo]
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    x64, w64, b64 = x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64)
    y = F.conv2d(x, wt, b, 1, p, algorithm=algo)
    ref = R.conv2d(x64, w64, b64, 1, p)
    assert y.shape == ref.shape
    assert_within(y, ref, winograd_growth(x64, w64, b64, p, m), c + DEPTH[m], "y")
    g = rng.standard_normal(y.shape).astype(np.float32)
    g64 = g.astype(np.float64)
    gx, gw, gb = F.conv2d_backward(g, x, wt, 1, p, algorithm=algo)
    rx, rw, rb = R.conv2d_backward(g64, x64, w64, 1, p)
    if runs_transposed(x.shape, p, m):
        assert_within(gx, rx, transposed_growth(g64, w64, x.shape, p, m), o + DEPTH_T[m], "gx")
    else:
        flipped = w64.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        assert_within(gx, rx, winograd_growth(g64, flipped, None, 2 - p, m), o + DEPTH[m],
                      "gx")
    ew, tiles = weight_gradient_growth(g64, x64, p, m)
    assert_within(gw, rw, ew, tiles + DEPTH_W[m], "grad_w")
    _, _, bb = R.conv2d_backward(np.abs(g64), np.abs(x64), np.abs(w64), 1, p)
    assert_within(gb, rb, bb, n * y.shape[2] * y.shape[3] + 16, "grad_b")  # direct


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", [(1, 1, 5, 5, 1, 0), (2, 3, 7, 9, 4, 1), (1, 4, 2, 3, 2, 2),
                                   (3, 12, 10, 11, 6, 1), (1, 1, 1, 1, 2, 1)], ids=str)
def test_weight_gradient_agrees_with_torch(isa, rng, algo, shape):
    """The Winograd weight gradient against PyTorch's float64 autograd (grad-check style:
    d/dW of sum(conv2d(x, W) * g)), within the bound above; the fused max pool's too."""
    torch = pytest.importorskip("torch")
    n, c, h, w, o, p = shape
    m = ALGOS[algo]
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    g = rng.standard_normal((n, o, h + 2 * p - 2, w + 2 * p - 2)).astype(np.float32)
    tw = torch.tensor(wt.astype(np.float64), requires_grad=True)
    y = torch.nn.functional.conv2d(torch.tensor(x.astype(np.float64)), tw, padding=p)
    (y * torch.tensor(g.astype(np.float64))).sum().backward()
    _, gw, _ = F.conv2d_backward(g, x, wt, 1, p, bias=False, need_input_grad=False,
                                 algorithm=algo)
    ew, tiles = weight_gradient_growth(g.astype(np.float64), x.astype(np.float64), p, m)
    assert_within(gw, tw.grad.numpy(), ew, tiles + DEPTH_W[m], "grad_w vs torch")


def test_weight_gradient_growth():
    """E_w / D_w on all-ones data (many whole tiles): the figures stated above."""
    g, x = np.ones((1, 1, 8, 8)), np.ones((1, 1, 10, 10))
    direct = R.conv2d_backward(g, x, np.ones((1, 1, 3, 3)), 1, 0)[1]
    assert np.max(weight_gradient_growth(g, x, 0, 2)[0] / direct) == pytest.approx(9)
    assert np.max(weight_gradient_growth(g, x, 0, 4)[0] / direct) == pytest.approx(1600 / 9)


def test_growth_factors():
    """The coefficient growth stated above: E / D on all-ones inputs (even magnitude)."""
    x, w = np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3))
    direct = R.conv2d(x, w, None, 1, 0)
    assert np.max(winograd_growth(x, w, None, 0, 2) / direct) == pytest.approx(64 / 9)
    assert np.max(winograd_growth(x, w, None, 0, 4) / direct) == pytest.approx(256)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("pad", [1, 0])
def test_winograd_threads_bitwise(isa, threads, rng, algo, pad):
    """Many blocks of tile rows (and weight-gradient chunks), on 1, 2 and 3 threads: the
    same bits. Padding 0: the input gradient as the forward's transpose, blocks starting
    inside an image (the tile rows they share added after the blocks)."""
    x = rng.standard_normal((32, 16, 40, 40)).astype(np.float32)
    wt = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    g = rng.standard_normal((32, 16, 38 + 2 * pad, 38 + 2 * pad)).astype(np.float32)
    out = []
    for t in (1, 2, 3):
        threads(t)
        out.append((F.conv2d(x, wt, b, 1, pad, algorithm=algo),
                    *F.conv2d_backward(g, x, wt, 1, pad, algorithm=algo)))
    for results in zip(*out):
        assert all(np.array_equal(results[0], r) for r in results[1:])


# (n, c_in, h, w, c_out, padding): a 2x2 pool is taken in each tile row's band; odd
# outputs (the last tile row or column past the pooled ones), channels past the lanes,
# several blocks (4 x 20 x 24 x 24), 1x1 pooled
POOLED = [(3, 6, 11, 9, 5, 1), (4, 20, 24, 24, 37, 1), (2, 9, 15, 14, 16, 0),
          (1, 3, 4, 5, 2, 0), (5, 32, 13, 13, 64, 0)]


@pytest.mark.parametrize("shape", POOLED, ids=str)
@pytest.mark.parametrize("pool", [(2, None, 0), (3, 2, 1), (2, 1, 0)], ids=str)
@pytest.mark.parametrize("algo", ALGOS)
def test_winograd_max_pool_bitwise(isa, rng, algo, pool, shape):
    """The fused conv + max pool on a Winograd path gives the unfused results, bitwise."""
    n, c, h, w, o, pad = shape
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    from test_conv import check_fused_is_unfused
    check_fused_is_unfused(x, wt, b, (1, pad, 1), pool, algo, rng)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("c", [4, 5, 12])
def test_channels_short_of_the_lanes_take_winograd(isa, rng, algo, c):
    """Channels that do not fill the transforms' 8 lanes: the lanes past them are computed
    (zeros), never read as whatever the workspace held, so finite inputs take the Winograd
    path whatever ran before (an inf or NaN that an earlier call left there sent them to
    the direct method)."""
    x = rng.standard_normal((3, c, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
    g = rng.standard_normal((3, c, 12, 12)).astype(np.float32)
    direct = F.conv2d(x, wt, None, 1, 1, algorithm="direct")
    direct_dx = F.conv2d_backward(g, x, wt, 1, 1, algorithm="direct")[0]
    nan = np.full((3, 16, 12, 12), np.nan, np.float32)
    w16 = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    for run in range(2):
        with np.errstate(invalid="ignore"):
            F.conv2d(nan, w16, None, 1, 1, algorithm=algo)  # NaN all over the workspace
        y = F.conv2d(x, wt, None, 1, 1, algorithm=algo)
        F.conv2d(nan, w16, None, 1, 1, algorithm=algo)
        dx = F.conv2d_backward(g, x, wt, 1, 1, algorithm=algo)[0]
        assert not np.array_equal(y, direct) and not np.array_equal(dx, direct_dx)
        if run:
            assert np.array_equal(y, first[0]) and np.array_equal(dx, first[1])
        first = y, dx


def same_nonfinite(a, b):
    return all(np.array_equal(f(a), f(b)) for f in (np.isnan, np.isposinf, np.isneginf))


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("where", ["x", "weight", "grad_out"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_nonfinite_inputs_give_the_direct_methods_results(isa, rng, algo, where, value):
    """One inf or NaN: the transforms would spread NaN over its tile (inf - inf), also
    onto pixels its window never reaches. Each result it enters is the direct method's,
    bitwise (pooled or not), with the reference's infs and NaNs."""
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    gp = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)  # through the 2x2 pool
    pos = F.conv2d_max_pool2d(x, wt, None, 1, 1)[1]
    {"x": x, "weight": wt, "grad_out": g}[where].reshape(-1)[5] = value
    gp.reshape(-1)[5] = value if where == "grad_out" else gp.reshape(-1)[5]

    def pooled_backward(a):
        return F.conv2d_max_pool2d_backward(gp, pos, x, wt, 1, 1, algorithm=a)
    results = {  # name: (inputs it reads, algorithm -> result)
        "y": ("x weight", lambda a: F.conv2d(x, wt, None, 1, 1, algorithm=a)),
        "pooled": ("x weight", lambda a: F.conv2d_max_pool2d(x, wt, None, 1, 1, algorithm=a)[0]),
        "dx": ("grad_out weight", lambda a: F.conv2d_backward(g, x, wt, 1, 1, algorithm=a)[0]),
        "dw": ("grad_out x", lambda a: F.conv2d_backward(g, x, wt, 1, 1, algorithm=a)[1]),
        "pooled dx": ("grad_out weight", lambda a: pooled_backward(a)[0]),
        "pooled dw": ("grad_out x", lambda a: pooled_backward(a)[1])}
    with np.errstate(invalid="ignore"):
        x64, w64, g64 = x.astype(np.float64), wt.astype(np.float64), g.astype(np.float64)
        want = {"y": R.conv2d(x64, w64, None, 1, 1),
                "dx": R.conv2d_backward(g64, x64, w64, 1, 1)[0],
                "dw": R.conv2d_backward(g64, x64, w64, 1, 1)[1]}
    for name, (reads, run) in results.items():
        if where in reads.split():
            np.testing.assert_array_equal(run(algo), run("direct"))
        if name in want:
            assert same_nonfinite(run(algo), want[name]), name


@pytest.mark.parametrize("algo", [*ALGOS, "direct"])
def test_pooled_backward_refuses_positions_past_the_window(isa, rng, algo):
    """A position past 3 in a 2x2 window: a ValueError on every path (Winograd reads the
    positions itself, without unpooling first), whichever gradients are asked for."""
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y, pos = F.conv2d_max_pool2d(x, wt, None, 1, 1)
    pos[1, 3, 3, 3] = 4
    for need in ({}, {"need_input_grad": False}, {"need_weight_grad": False, "bias": False}):
        with pytest.raises(ValueError, match="indices"):
            F.conv2d_max_pool2d_backward(np.ones_like(y), pos, x, wt, 1, 1, algorithm=algo,
                                         **need)


def test_auto_is_one_of_the_algorithms(rng):
    for shape, wshape, pad in [((2, 32, 13, 13), (64, 32, 3, 3), 0),
                               ((2, 1, 28, 28), (32, 1, 3, 3), 0),
                               ((2, 8, 9, 9), (8, 8, 5, 5), 2)]:
        x = rng.standard_normal(shape).astype(np.float32)
        wt = rng.standard_normal(wshape).astype(np.float32)
        chosen = fastnn.conv2d_algorithm(shape, wshape, 1, pad)
        assert chosen in ("direct", "winograd", "winograd4x4")
        assert chosen == fastnn.conv2d_algorithm(shape, wshape, 1, pad, algorithm="auto")
        assert np.array_equal(F.conv2d(x, wt, None, 1, pad, algorithm="auto"),
                              F.conv2d(x, wt, None, 1, pad, algorithm=chosen))


@pytest.mark.parametrize("shape,c_out,pad,forward,inputs,weight", [
    ((2, 32, 13, 13), 64, 0, "direct", "winograd", "winograd4x4"),  # the reference CNN's conv2
    ((2, 32, 13, 13), 32, 0, "direct", "winograd", "winograd4x4"),
    ((1, 32, 13, 13), 32, 0, "direct", "direct", "direct"),    # 49 tiles: too few
    ((7, 32, 13, 13), 64, 0, "direct", "winograd", "winograd4x4"),  # 63 4x4 tiles
    ((8, 32, 13, 13), 64, 0, "winograd4x4", "winograd4x4", "winograd4x4"),  # 72
    ((64, 32, 13, 13), 64, 0, "winograd4x4", "winograd4x4", "winograd4x4"),
    ((2, 32, 28, 28), 32, 1, "winograd4x4", "winograd4x4", "winograd4x4"),  # TinyVGG
    ((4, 64, 16, 16), 64, 1, "winograd4x4", "winograd4x4", "winograd4x4"),  # VGG-CIFAR
    ((4, 64, 7, 7), 128, 1, "direct", "winograd", "winograd4x4"),  # 64 4x4 tiles
    ((64, 64, 7, 7), 128, 1, "winograd4x4", "winograd4x4", "winograd4x4"),
    ((64, 64, 7, 7), 160, 1, "winograd4x4", "winograd", "winograd4x4"),  # dx sums 160
    ((3, 64, 7, 7), 128, 1, "direct", "direct", "direct"),     # 12 4x4 tiles: too few
    ((2, 16, 16, 16), 32, 1, "direct", "direct", "winograd4x4"),
    ((2, 8, 16, 16), 8, 1, "direct", "direct", "winograd4x4"),  # dW from 4 in, 8 out
    ((2, 3, 16, 16), 16, 1, "direct", "direct", "direct"),
    ((2, 8, 16, 16), 4, 1, "direct", "direct", "direct"),
    # narrower layers: from 16 channels summed into 8, 16x16 images and 1024 tiles
    ((32, 16, 28, 28), 16, 1, "winograd4x4", "winograd4x4", "winograd4x4"),  # 1568 tiles
    ((16, 16, 28, 28), 16, 1, "direct", "direct", "winograd4x4"),  # 784 tiles
    ((128, 16, 14, 14), 16, 1, "direct", "direct", "winograd4x4"),  # 14x14
    ((32, 16, 28, 28), 8, 1, "winograd4x4", "direct", "winograd4x4"),  # dx sums 8
    ((32, 8, 28, 28), 16, 1, "direct", "winograd4x4", "winograd4x4"),  # y sums 8
    ((64, 16, 16, 16), 32, 1, "winograd4x4", "winograd4x4", "winograd4x4"),
    # past 128 channels summed per output F(4x4)'s error grows ~10x F(2x2)'s: F(2x2)
    ((4, 160, 16, 16), 160, 1, "winograd", "winograd", "winograd4x4"),
    ((4, 128, 16, 16), 160, 1, "winograd4x4", "winograd", "winograd4x4"),  # dx sums 160
    ((4, 160, 16, 16), 128, 1, "winograd", "winograd", "winograd4x4")])
def test_auto_per_direction(rng, shape, c_out, pad, forward, inputs, weight):
    """"auto" picks each direction's algorithm by its own rule (csrc/winograd.c), and its
    backward is bitwise the chosen algorithms' (input and weight gradients)."""
    wshape = (c_out, shape[1], 3, 3)
    assert fastnn.conv2d_algorithm(shape, wshape, 1, pad) == forward
    assert fastnn.conv2d_algorithm(shape, wshape, 1, pad, input_gradient=True) == inputs
    assert fastnn.conv2d_algorithm(shape, wshape, 1, pad, weight_gradient=True) == weight
    for direction in ("input_gradient", "weight_gradient"):
        for algo in ("direct", "winograd", "winograd4x4"):
            assert fastnn.conv2d_algorithm(shape, wshape, 1, pad, algorithm=algo,
                                           **{direction: True}) == algo
    x = rng.standard_normal(shape).astype(np.float32)
    wt = rng.standard_normal(wshape).astype(np.float32)
    g = rng.standard_normal((shape[0], c_out, shape[2] + 2 * pad - 2,
                             shape[3] + 2 * pad - 2)).astype(np.float32)
    gx, gw, gb = F.conv2d_backward(g, x, wt, 1, pad, algorithm="auto")
    assert np.array_equal(gx, F.conv2d_backward(g, x, wt, 1, pad, algorithm=inputs)[0])
    _, gw2, gb2 = F.conv2d_backward(g, x, wt, 1, pad, algorithm=weight)
    assert np.array_equal(gw, gw2) and np.array_equal(gb, gb2)
    with pytest.raises(ValueError, match="at most one of them"):
        fastnn.conv2d_algorithm(shape, wshape, 1, pad, input_gradient=True,
                                weight_gradient=True)


def test_auto_keeps_deep_layers_near_the_direct_error(rng):
    """On 160 channels summed per output "auto" takes F(2x2), not F(4x4): forward and input
    gradient stay within 2x the direct method's error against the float64 reference (F(4x4)
    would be ~10x)."""
    x = rng.standard_normal((4, 160, 16, 16)).astype(np.float32)
    wt = (rng.standard_normal((160, 160, 3, 3)) / np.sqrt(9 * 160)).astype(np.float32)
    g = rng.standard_normal((4, 160, 16, 16)).astype(np.float32)
    x64, w64, g64 = x.astype(np.float64), wt.astype(np.float64), g.astype(np.float64)
    want = R.conv2d(x64, w64, None, 1, 1), R.conv2d_backward(g64, x64, w64, 1, 1)[0]

    def errors(algo):
        got = (F.conv2d(x, wt, None, 1, 1, algorithm=algo),
               F.conv2d_backward(g, x, wt, 1, 1, algorithm=algo, need_weight_grad=False,
                                 bias=False)[0])
        return [np.abs(a - b).max() / np.abs(b).max() for a, b in zip(got, want)]
    direct, auto, w4 = errors("direct"), errors("auto"), errors("winograd4x4")
    for d, a, f in zip(direct, auto, w4):
        assert a <= 2 * d < f


def test_default_algorithm(rng):
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    wt = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    assert fastnn.get_conv_algorithm() == "auto"
    try:
        fastnn.set_conv_algorithm("winograd4x4")
        assert fastnn.get_conv_algorithm() == "winograd4x4"
        assert np.array_equal(F.conv2d(x, wt), F.conv2d(x, wt, algorithm="winograd4x4"))
        # a default Winograd cannot run falls back to direct; an explicit one raises
        assert np.array_equal(F.conv2d(x, wt, stride=2), F.conv2d(x, wt, stride=2,
                                                                    algorithm="direct"))
        assert fastnn.conv2d_algorithm(x.shape, wt.shape, 2) == "direct"
        with pytest.raises(ValueError, match="needs a 3x3 kernel, stride 1"):
            F.conv2d(x, wt, stride=2, algorithm="winograd")
        with pytest.raises(ValueError, match="algorithm must be one of"):
            fastnn.set_conv_algorithm("fft")
    finally:
        fastnn.set_conv_algorithm("auto")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        F.conv2d(x, wt, algorithm="Winograd")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        F.conv2d_backward(np.zeros((1, 4, 4, 4), np.float32), x, wt, algorithm=3)


def test_conv2d_layer_algorithm(rng):
    from fastnn import nn
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    direct = nn.Conv2d(3, 4, 3, padding=1, seed=0, algorithm="direct")
    wino = nn.Conv2d(3, 4, 3, padding=1, seed=0, algorithm="winograd")
    assert wino.config()["algorithm"] == "winograd" and "algorithm" not in nn.Conv2d(
        3, 4, 3).config()
    np.testing.assert_allclose(wino(x), direct(x), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(wino.backward(g), direct.backward(g), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="Conv2d: .*needs a 3x3 kernel"):
        nn.Conv2d(3, 4, 3, stride=2, algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        nn.Conv2d(3, 4, 3, algorithm="fast")
