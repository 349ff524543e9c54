"""valgrind memcheck of one training step (forward, loss, backward, Adam) of each reference
model, fastnn.models.mlp, fastnn.models.cnn and a small fastnn.models.resnet (graph,
BatchNorm, Add, global pooling), and of a functional graph with Concatenate and
Conv2d(padding="same"), on every ISA variant this CPU runs; then the resnet in eval mode.

    python .ci/valgrind.py            # runs itself under valgrind, exits 1 on any report

Only reports whose stack passes through fastnn's extension (fastnn/_core*.so) count: the
interpreter and NumPy have their own (suppressed by nobody, and not ours). Definite leaks
count too. PYTHONMALLOC=malloc makes every Python allocation visible to memcheck."""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET


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

    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 4)
    for isa in fastnn.supported_isas():
        fastnn.set_isa(isa)
        for make in (models.mlp, models.cnn, resnet, graph):
            model = make(seed=0)
            opt = optim.Adam(model.parameters())
            loss_fn = losses.CrossEntropyLoss()
            loss = loss_fn(model(x), y)
            model.backward(loss_fn.backward(), need_input_grad=True)
            opt.step()
            assert np.isfinite(loss), loss
            print(f"{isa} {make.__name__}: one step, loss {loss:.4f}", flush=True)
        assert np.isfinite(model.eval()(x)).all()


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
