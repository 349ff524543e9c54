"""add and concatenate (the merging ops of residual and concatenating graphs).

add sums in float32 in list order, ((x0 + x1) + x2) + ..., exactly what NumPy does for
the same expression, so it must equal it bitwise on every ISA and thread count.
concatenate and its backward only copy: exact.
"""
import numpy as np
import pytest

from fastnn import functional as F, nn

SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4, 5), (0, 4), (1031,), (3, 4100)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_add_is_numpy_in_list_order(isa, rng, shape, count):
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
    want = xs[0].copy()
    for x in xs[1:]:
        want = want + x
    y = F.add(xs)
    assert y.dtype == np.float32 and y.shape == want.shape
    np.testing.assert_array_equal(y, want)
    for k in range(count):  # in place into any input, even one read after the first two
        xk = xs[k].copy()
        assert F.add(xs[:k] + [xk] + xs[k + 1:], out=xk) is xk
        np.testing.assert_array_equal(xk, want)


def test_add_thread_count_does_not_change_bits(isa, rng, threads):
    xs = [rng.standard_normal((64, 32, 17, 15)).astype(np.float32) for _ in range(3)]
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append(F.add(xs))
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_add_layouts_and_torch(rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    b = np.asfortranarray(rng.standard_normal((4, 6)).astype(np.float32))
    np.testing.assert_array_equal(F.add((a, b, a[::-1, ::-1])), a + b + a[::-1, ::-1])
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(F.add([a, b]), (torch.from_numpy(a) + torch.from_numpy(
        np.ascontiguousarray(b))).numpy())


@pytest.mark.parametrize("shapes, axis", [
    ([(2, 3, 4, 4), (2, 5, 4, 4)], 1),
    ([(2, 3, 4, 4), (2, 1, 4, 4), (2, 2, 4, 4)], 1),
    ([(2, 3), (4, 3)], 0),
    ([(2, 3), (2, 0), (2, 4)], -1),
    ([(5,)], 0),
    ([(1, 2, 3, 1), (1, 2, 3, 2)], 3),
])
def test_concatenate_and_backward(rng, shapes, axis):
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    y = F.concatenate(xs, axis)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis))
    assert y.flags.c_contiguous
    sizes = [s[axis] for s in shapes]
    grads = F.concatenate_backward(y, sizes, axis)
    assert len(grads) == len(xs)
    for g, x in zip(grads, xs):
        np.testing.assert_array_equal(g, x)
        assert g.flags.c_contiguous and g.dtype == np.float32
    out = [np.empty_like(x) for x in xs]
    assert all(a is b for a, b in zip(F.concatenate_backward(y, sizes, axis, out=out), out))
    buf = np.empty_like(y)
    assert F.concatenate(xs, axis, out=buf) is buf


def test_concatenate_matches_torch(rng):
    torch = pytest.importorskip("torch")
    xs = [rng.standard_normal((2, c, 3, 3)).astype(np.float32) for c in (1, 4, 2)]
    leaves = [torch.tensor(x, requires_grad=True) for x in xs]
    ty = torch.cat(leaves, 1)
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(F.concatenate(xs), ty.detach().numpy())
    for mine, leaf in zip(F.concatenate_backward(g, [1, 4, 2]), leaves):
        np.testing.assert_array_equal(mine, leaf.grad.numpy())


A = np.zeros((2, 3), np.float32)


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: F.add([]), ValueError, "inputs must hold at least one array"),
    (lambda: F.add(A), TypeError, "inputs must be a list or tuple"),
    (lambda: F.add([A, A.astype(np.float64)]), TypeError, r"inputs\[1\] must be a float32"),
    (lambda: F.add([A, np.zeros((3, 2), np.float32)]), ValueError,
     r"inputs\[1\] must have the shape of inputs\[0\] \(2, 3\)"),
    (lambda: F.add([A, [[1.0], [2.0, 3.0]]]), TypeError, r"inputs\[1\] must be an array"),
    (lambda: F.add([A, A], out=np.zeros((2, 3))), TypeError, "out must be a float32"),
    (lambda: F.add([A, A], out=np.zeros((3, 2), np.float32)), ValueError,
     r"out must have shape \(2, 3\)"),
    (lambda: F.add([A, A.copy()], out=A.reshape(-1)[:3]), ValueError, "out must have shape"),
    (lambda: F.concatenate([]), ValueError, "inputs must hold at least one array"),
    (lambda: F.concatenate([A, np.zeros((3, 3), np.float32)]), ValueError,
     r"inputs\[1\] of shape \(3, 3\) does not match inputs\[0\] \(2, 3\) outside axis 1"),
    (lambda: F.concatenate([A, np.zeros(3, np.float32)]), ValueError, r"inputs\[1\]"),
    (lambda: F.concatenate([A, A], axis=2), ValueError, r"axis must be in \[-2, 2\)"),
    (lambda: F.concatenate([A, A], axis=1.0), TypeError, "axis must be an int"),
    (lambda: F.concatenate([np.float32(1)]), ValueError, "at least one dimension"),
    (lambda: F.concatenate([A, A.astype(np.int32)]), TypeError, r"inputs\[1\] must be a float32"),
    (lambda: F.concatenate([A, A], out=np.zeros((2, 6), np.float32)[:, ::-1]), ValueError,
     "C-contiguous"),
    (lambda: F.concatenate([A, A], out=A), ValueError, r"out must have shape \(2, 6\)"),
    (lambda: F.concatenate_backward(A, [1, 1]), ValueError, r"sizes \[1, 1\] must add up to"),
    (lambda: F.concatenate_backward(A, [4, -1]), ValueError, "sizes must be >= 0"),
    (lambda: F.concatenate_backward(A, 3), TypeError, "sizes must be a non-empty list of ints"),
    (lambda: F.concatenate_backward(A, []), TypeError, "sizes must be a non-empty list"),
    (lambda: F.concatenate_backward(A, [1.5, 1.5]), TypeError, "sizes must be"),
    (lambda: F.concatenate_backward(A.astype(np.float64), [3]), TypeError,
     "grad_y must be a float32"),
    (lambda: F.concatenate_backward(A, [1, 2], axis=-3), ValueError, "axis must be in"),
    (lambda: F.concatenate_backward(A, [1, 2], out=[np.zeros((2, 1), np.float32)]), TypeError,
     "out must be a list of 2 arrays"),
    (lambda: F.concatenate_backward(A, [1, 2], out=[np.zeros((2, 1), np.float32),
                                                    np.zeros((2, 3), np.float32)]),
     ValueError, r"out\[1\] must have shape \(2, 2\)"),
    (lambda: F.concatenate_backward(A, [3], axis=1, out=[A]), ValueError, r"out\[0\] overlaps"),
])
def test_bad_inputs_raise_clear_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


@pytest.mark.parametrize("axis", [4, -4, -5])
def test_concatenate_layer_names_an_axis_out_of_range(axis):
    """It said the inputs 'must have the same shape except along axis 4' of inputs of the
    same shape (the batch axis -4 or a missing one was the problem)."""
    x = np.ones((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=rf"axis {axis} is the batch or out of range for "
                                         r"inputs of 4 dimensions"):
        nn.Concatenate(axis=axis)([x, x])


ELEMENTWISE = {  # layer -> torch's function of a list of tensors
    "Subtract": lambda t: t[0] - t[1],
    "Multiply": lambda t: t[0] * t[1] * t[2],
    "Average": lambda t: (t[0] + t[1] + t[2]) / 3,
    "Maximum": lambda t: __import__("torch").maximum(__import__("torch").maximum(t[0], t[1]),
                                                     t[2]),
    "Minimum": lambda t: __import__("torch").minimum(__import__("torch").minimum(t[0], t[1]),
                                                     t[2]),
}


@pytest.mark.parametrize("kind", sorted(ELEMENTWISE))
def test_elementwise_merges_match_torch(rng, kind):
    """Keras' elementwise merges: forward and every input's gradient as torch's (no
    ties here: torch splits a tie's gradient, TensorFlow gives it to the first input)."""
    torch = pytest.importorskip("torch")
    k = 2 if kind == "Subtract" else 3
    xs = [rng.standard_normal((3, 2, 4)).astype(np.float32) for _ in range(k)]
    g = rng.standard_normal((3, 2, 4)).astype(np.float32)
    layer = getattr(nn, kind)()
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    want = ELEMENTWISE[kind](ts)
    want.backward(torch.tensor(g))
    np.testing.assert_allclose(layer(xs), want.detach().numpy(), rtol=1e-6)
    for got, t in zip(layer.backward(g), ts):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-6)
    assert layer.backward(g, need_input_grad=False) == [None] * k


def test_extremum_ties_go_to_the_first_input():
    a, b = np.array([[1, 2, 3]], np.float32), np.array([[1, 5, 3]], np.float32)
    for kind in (nn.Maximum, nn.Minimum):
        layer = kind()
        layer([a, b, a])
        g = np.ones_like(a)
        dx = layer.backward(g)
        total = sum(dx)
        np.testing.assert_array_equal(total, g)  # each element's gradient once
        np.testing.assert_array_equal(dx[0], [[1, 0, 1]] if kind is nn.Maximum else [[1, 1, 1]])


def test_elementwise_merges_check_their_inputs():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="Subtract: takes exactly 2 inputs"):
        nn.Subtract()([x, x, x])
    with pytest.raises(ValueError, match="Multiply: inputs must all have the same shape"):
        nn.Multiply()([x, np.ones((2, 4), np.float32)])
    with pytest.raises(TypeError, match="float32"):
        nn.Maximum()([x, x.astype(np.float64)])
    with pytest.raises(TypeError, match="at least two"):
        nn.Average()([x])
    with pytest.raises(RuntimeError, match="call the layer on a batch first"):
        nn.Minimum().backward(x)
