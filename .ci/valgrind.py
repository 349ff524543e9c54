"""valgrind memcheck of one training step (forward, loss, backward, Adam) of each reference
model, fastnn.models.mlp, fastnn.models.cnn and a small fastnn.models.resnet (graph,
BatchNorm, Add, global pooling), of a functional graph with Concatenate and
Conv2d(padding="same") (then in eval mode), of a fastnn.keras graph (an NHWC and an
NCHW tensor merged, a concatenation along the columns, a shared Dense), of a VGG block whose convolutions run fused
with their ReLUs (and the pool) on each algorithm, and of a small residual block written with
fastnn.functional (batch norm, residual add, concatenation, global average pooling,
dropout, Winograd convolutions fused with a max pool, layer norm, GELU, SiLU, ELU), and of an
MLP with LayerNorm, GELU, SiLU and ELU layers, on every ISA variant this CPU runs.

    python .ci/valgrind.py            # runs itself under valgrind, exits 1 on any report

Only reports whose stack passes through fastnn's extension (fastnn/_core*.so) count: the
interpreter and NumPy have their own (suppressed by nobody, and not ours). Definite leaks
count too. PYTHONMALLOC=malloc makes every Python allocation visible to memcheck."""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET


def functional_step(rng):
    """One SGD step of conv -> batch norm -> relu -> add(x) -> concatenate(x) -> global
    average pooling -> linear, each backward by hand; then batch norm in eval mode."""
    import numpy as np

    import fastnn
    from fastnn import _core, functional as F

    x = rng.random((4, 3, 7, 7), dtype=np.float32)
    labels = rng.integers(0, 10, 4)
    w = rng.standard_normal((3, 3, 3, 3), dtype=np.float32) * 0.2
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    running_mean, running_var = np.zeros(3, np.float32), np.ones(3, np.float32)
    wl, bl = rng.standard_normal((10, 6), dtype=np.float32) * 0.2, np.zeros(10, np.float32)
    h = F.conv2d(x, w, None, padding=1)
    b, mean, invstd = F.batch_norm(h, running_mean, running_var, gamma, beta, training=True)
    r = F.relu(b)
    c = F.concatenate([F.add([r, x]), x])
    p = F.adaptive_avg_pool2d(c, 1).reshape(4, 6)
    loss, g = F.cross_entropy_with_grad(F.linear(p, wl, bl), labels)
    gp, gwl, gbl = F.linear_backward(g, p, wl)
    gc = F.adaptive_avg_pool2d_backward(gp.reshape(4, 6, 1, 1), c.shape)
    g_sum, _ = F.concatenate_backward(gc, [3, 3])  # add's backward: the identity
    gh, ggamma, gbeta = F.batch_norm_backward(F.relu_backward(g_sum, b), h, gamma, mean,
                                              invstd, training=True)
    _, gw, _ = F.conv2d_backward(gh, x, w, padding=1, bias=False, need_input_grad=False)
    xs = rng.random((34, 4, 9, 9), dtype=np.float32)  # 5x5 outputs: images in groups of 3
    ws = rng.standard_normal((5, 4, 3, 3), dtype=np.float32)
    F.conv2d_backward(F.conv2d(xs, ws, None, 2, 1), xs, ws, 2, 1, bias=False)
    # transposed convolution (grouped; output_padding past the stride, below the dilation)
    for out_channels, args in ((2, (2, 1, 1, 2, 1)), (3, (1, 0, 1, 1, 2))):
        wt = rng.standard_normal((4, out_channels, 3, 3), dtype=np.float32)
        yt = F.conv_transpose2d(xs[:3], wt, None, *args)
        F.conv_transpose2d_backward(yt, xs[:3], wt, *args)
    for algorithm in ("winograd", "winograd4x4"):  # the 2x2 pool taken in the tile rows
        py, pos = F.conv2d_max_pool2d(xs, ws, None, 1, 1, algorithm=algorithm, activation="relu")
        F.conv2d_max_pool2d_backward(py, pos, xs, ws, 1, 1, algorithm=algorithm,
                                     activation="relu", output=py)
    for direction in ({}, {"input_gradient": True}, {"weight_gradient": True}):
        fastnn.conv2d_algorithm((128, 32, 13, 13), (64, 32, 3, 3), **direction)
    _core.sgd_step([w, gamma, beta, wl, bl], [gw, ggamma, gbeta, gwl, gbl], None, lr=0.1,
                   first_step=True)
    y, mean, invstd = F.batch_norm(h, running_mean, running_var, gamma, beta, training=False)
    F.batch_norm_backward(y, h, gamma, mean, invstd, training=False)
    F.adaptive_avg_pool2d_backward(F.adaptive_avg_pool2d(c, (3, 5)), c.shape)
    F.batch_norm(p, None, None, None, None, training=True)  # (N, C): the column path
    for inp, train in ((h, False), (p, True)):  # fused with the relu: planes, columns
        fy, mean, invstd = F.batch_norm(inp, running_mean[:inp.shape[1]] if not train else None,
                                        running_var[:inp.shape[1]] if not train else None,
                                        None, None, training=train, activation="relu")
        F.batch_norm_backward(fy, inp, None, mean, invstd, training=train, activation="relu",
                              output=fy)
    d = c.reshape(-1)[:1173]  # 5 elements past whole vectors
    F.dropout(F.dropout(d, 0.3, 7), 0.3, 7, out=d)  # then in place
    # torch's pooling options: windows past the edge (ceil_mode), padding not counted
    for ceil, include in ((True, True), (True, False), (False, False)):
        a = F.avg_pool2d(x, 3, 2, 1, ceil, include)
        F.avg_pool2d_backward(a, x, 3, 2, 1, ceil, include)
        m = F.max_pool2d(x, 2, 2, 0, ceil_mode=ceil)
        F.max_pool2d_backward(m, x, 2, 2, 0, ceil_mode=ceil)
    # layer norm over odd rows (grad_weight's column chunks past 256), GELU, SiLU and ELU
    # on vector tails
    e = rng.standard_normal((3, 301), dtype=np.float32)
    ln, ln_mean, ln_rstd = F.layer_norm(e, 301, e[0], e[1])
    F.layer_norm_backward(ln, e, 301, ln_mean, ln_rstd, e[0], e[1])
    for act, args in ((F.gelu, ("none",)), (F.gelu, ("tanh",)), (F.silu, ()), (F.elu, (0.5,))):
        getattr(F, act.__name__ + "_backward")(act(e[:, :13], *args), e[:, :13], *args)
    # RMSprop with Keras' eps inside the square root, centered and with momentum
    params = [w.copy(), gamma.copy()]
    state = [[np.zeros_like(q) for q in params] for _ in range(3)]
    _core.rmsprop_step(params, [gw, ggamma], *state, lr=0.01, momentum=0.9, centered=True,
                       eps_inside=True)
    return loss


def workload():
    import numpy as np

    import fastnn
    from fastnn import losses, models, nn, optim

    def resnet(seed):
        return models.resnet(channels=(4, 8), blocks=(1, 1), seed=seed)

    def graph(seed):
        x = fastnn.Input(shape=(1, 28, 28))
        a = nn.Conv2d(1, 3, 4, padding="same", seed=seed)(x)   # even kernel: padded copy
        b = nn.BatchNorm2d(3)(nn.Conv2d(1, 3, 3, padding=1, seed=seed)(x))
        h = nn.AdaptiveAvgPool2d((3, 2))(nn.Concatenate()([nn.ReLU()(a), b]))
        return fastnn.Model(x, nn.Linear(36, 10, seed=seed)(nn.Flatten()(h)))

    def layer_norm_mlp(seed):  # LayerNorm (one and two dims, no bias), GELU, SiLU, ELU
        return nn.Sequential(nn.Flatten(2), nn.Linear(784, 33, seed=seed), nn.LayerNorm((1, 33)),
                             nn.GELU(), nn.Flatten(), nn.Linear(33, 17, seed=seed),
                             nn.LayerNorm(17, bias=False), nn.SiLU(), nn.ELU(0.5),
                             nn.GELU("tanh"), nn.Linear(17, 10, seed=seed),
                             input_shape=(1, 28, 28))

    def keras_graph(seed):  # fastnn.keras: the layouts merged, columns concatenated
        from fastnn import keras as fk
        fk.utils.set_random_seed(seed)
        inp = fk.Input((1, 28, 28))  # the NCHW batch read as one row of 28 channels
        a = fk.layers.Conv2D(28, (1, 3), padding="same")(inp)  # NCHW out
        s = fk.layers.Add()([inp, a])
        m = fk.layers.Concatenate(axis=2)([s, fk.layers.Maximum()([s, a])])
        h = fk.layers.Flatten()(m)
        dense = fk.layers.Dense(10)  # shared
        return fk.Model(inp, fk.layers.Average()([dense(h), dense(h)]))

    def vgg(seed):
        convs = [nn.Conv2d(c, 4, 3, padding=1, seed=seed, algorithm=algorithm, groups=groups)
                 for c, algorithm, groups in ((1, "winograd4x4", 1), (4, "direct", 2),
                                              (4, "winograd", 1))]
        return nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU(), convs[2], nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 14 * 14, 10, seed=seed),
                             input_shape=(1, 28, 28))

    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 4)
    for isa in fastnn.supported_isas():
        fastnn.set_isa(isa)
        for make in (models.mlp, models.cnn, resnet, graph, keras_graph, vgg, layer_norm_mlp):
            model = make(seed=0)
            opt = optim.Adam(model.parameters())
            loss_fn = losses.CrossEntropyLoss()
            loss = loss_fn(model(x), y)
            model.backward(loss_fn.backward(), need_input_grad=True)
            opt.step()
            assert np.isfinite(loss), loss
            print(f"{isa} {make.__name__}: one step, loss {loss:.4f}", flush=True)
        assert np.isfinite(model.eval()(x)).all()
        loss = functional_step(rng)
        assert np.isfinite(loss), loss
        print(f"{isa} functional residual block: one step, loss {loss:.4f}", flush=True)


def ours(error):
    return any("fastnn/_core" in (obj.text or "") for obj in error.iter("obj"))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = os.path.join(tmp, "memcheck.xml")
        cmd = ["valgrind", "--tool=memcheck", "--xml=yes", f"--xml-file={xml_path}",
               "--leak-check=full", "--show-leak-kinds=definite",
               "--errors-for-leak-kinds=definite",
               "--num-callers=40", "--track-origins=no", sys.executable, __file__, "--workload"]
        env = dict(os.environ, PYTHONMALLOC="malloc", OMP_NUM_THREADS="2")
        run = subprocess.run(cmd, env=env)
        if run.returncode != 0:
            sys.exit(f"valgrind: the workload failed (exit {run.returncode})")
        errors = ET.parse(xml_path).getroot().findall("error")
    mine = [e for e in errors if ours(e)]
    for e in mine:
        what = e.findtext("kind"), e.findtext("what") or e.findtext("xwhat/text")
        frames = [f"{f.findtext('fn')} ({os.path.basename(f.findtext('obj') or '?')})"
                  for f in e.iter("frame")][:8]
        print(f"{what[0]}: {what[1]}\n    " + "\n    ".join(frames))
    print(f"valgrind memcheck: {len(mine)} reports in fastnn's extension "
          f"({len(errors)} in the whole process)")
    sys.exit(1 if mine else 0)


if __name__ == "__main__":
    workload() if sys.argv[1:] == ["--workload"] else main()
