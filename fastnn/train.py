"""Train a reference model on MNIST or Fashion-MNIST from the command line:

    python -m fastnn.train --model cnn --dataset fashion-mnist --epochs 3 --batch-size 128
    mpirun -n 2 python -m fastnn.train --distributed --model cnn --dataset fashion-mnist

prints the loss, accuracy, time and samples/s of every epoch and the final test accuracy.
If the MNIST training split is not available locally but its test split is (as in a
copy holding only t10k-*), it trains on the first 8,000 test images and evaluates on
the last 2,000 (80 % / 20 % of a smaller file), and says so. With --distributed (under
mpirun) the ranks train data-parallel on the global --batch-size; rank 0 alone prints and
saves."""
import argparse
import builtins
import math
import os
import sys
import time

import fastnn
from fastnn import datasets, distributed as dist, models, onnx, optim


def _checked(convert, ok, expected):
    """An argparse type: the text converted and checked, else "must be <expected>, got
    <text>" (a text convert refuses, e.g. --epochs abc, read "invalid _positive value")."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value
    return parse


_positive = _checked(int, lambda v: v > 0, "a positive integer")
_non_negative = _checked(int, lambda v: v >= 0, "a non-negative integer")
# checked here, not after the data is loaded
_learning_rate = _checked(float, lambda v: 0 < v < math.inf, "a positive finite number")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastnn.train", description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("mlp", "cnn", "resnet"), default="mlp")
    p.add_argument("--dataset", choices=datasets.DATASETS, default="mnist")
    p.add_argument("--epochs", type=_positive, default=1)
    p.add_argument("--batch-size", type=_positive, default=128)
    p.add_argument("--optimizer", choices=("sgd", "adam", "rmsprop"), default="adam")
    p.add_argument("--lr", type=_learning_rate, default=None,
                   help="learning rate (default: 1e-3 for adam and rmsprop, 0.05 for sgd with "
                        "momentum 0.9)")
    p.add_argument("--threads", type=_positive, default=None,
                   help="kernel threads (default: OpenMP's choice)")
    p.add_argument("--seed", type=_non_negative, default=0)
    p.add_argument("--conv-algorithm", choices=("auto", "direct", "winograd", "winograd4x4"),
                   default="auto", help="default algorithm of the convolutions (see "
                   "fastnn.set_conv_algorithm)")
    p.add_argument("--save", metavar="PATH", help="write the trained model here")
    p.add_argument("--export-onnx", metavar="PATH",
                   help="write the trained model as ONNX here (needs the onnx package)")
    p.add_argument("--data-root", metavar="DIR",
                   help="look for <DIR>/<dataset>/*-idx?-ubyte[.gz] first")
    p.add_argument("--limit", type=_positive, default=None,
                   help="use at most N training and N test samples")
    p.add_argument("--no-download", action="store_true",
                   help="never download: fail if the files are not found locally")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar, only a line per epoch")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of an MPI job (run under mpirun; "
                        "needs mpi4py)")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads > fastnn._core.max_threads():
        p.error(f"argument --threads: must be at most {fastnn._core.max_threads()} "
                f"(fastnn._core.max_threads()), got {args.threads}")
    # checked before the data is loaded and the model trained: a bad path failed after it
    for flag, path in (("--save", args.save), ("--export-onnx", args.export_onnx)):
        if path is not None and (os.path.isdir(path) or
                                 not os.path.isdir(os.path.dirname(os.path.abspath(path)))):
            p.error(f"argument {flag}: {path} is a directory or its directory does not exist")
    if args.export_onnx:
        try:
            onnx._onnx()
        except ImportError as e:
            p.error(f"argument --export-onnx: {e}")
    return args


def _quiet(*args, **kwargs):
    pass


def main(argv=None):
    args = parse_args(argv)
    if args.distributed:
        dist.init()
    if args.threads:
        fastnn.set_num_threads(args.threads)
    print = builtins.print if dist.is_main() else _quiet  # only rank 0 prints
    fastnn.set_conv_algorithm(args.conv_algorithm)
    try:
        with dist.main_rank_first():  # rank 0 downloads, the others find its copy
            (x, y), (xt, yt), note = datasets.load_splits(
                args.dataset, args.data_root, not args.no_download)
    except (FileNotFoundError, ValueError) as e:
        builtins.print(f"error: cannot load {args.dataset}: {e}", file=sys.stderr)
        return 2
    if note:
        print(f"note: {note}")
    if args.limit:
        x, y, xt, yt = x[:args.limit], y[:args.limit], xt[:args.limit], yt[:args.limit]

    model = getattr(models, args.model)(seed=args.seed)
    if args.optimizer == "adam":
        opt = optim.Adam(model.parameters(), lr=1e-3 if args.lr is None else args.lr)
    elif args.optimizer == "rmsprop":
        opt = optim.RMSprop(model.parameters(), lr=1e-3 if args.lr is None else args.lr)
    else:
        opt = optim.SGD(model.parameters(), lr=0.05 if args.lr is None else args.lr,
                        momentum=0.9)
    print(f"{args.model} on {args.dataset}: {len(x):,} training and {len(xt):,} test samples, "
          f"{opt}, batch {args.batch_size}, {fastnn.get_num_threads()} threads, "
          f"ISA {fastnn.get_isa()}, conv algorithm {fastnn.get_conv_algorithm()}" +
          (f", {dist.world_size()} ranks (data-parallel; the batch is split across them)"
           if args.distributed else ""))
    start = time.perf_counter()
    model.fit(x, y, optimizer=opt, epochs=args.epochs, batch_size=args.batch_size,
              seed=args.seed, verbose=2 if args.no_progress else 1,
              distributed=args.distributed)
    seconds = time.perf_counter() - start
    result = model.evaluate(xt, yt, distributed=args.distributed)
    print(f"test loss {result['loss']:.4f} - test accuracy {result['accuracy']:.4f} "
          f"({len(xt):,} samples; training took {seconds:.1f}s)")
    if args.save and dist.is_main():
        try:
            model.save(args.save)
        except OSError as e:
            print(f"error: cannot save the model to {args.save}: {e}", file=sys.stderr)
            return 1
        print(f"saved to {args.save}")
    if args.export_onnx and dist.is_main():  # as --save: every rank wrote the file
        try:
            onnx.export(model, args.export_onnx, input_shape=(1, 28, 28))
        except OSError as e:
            print(f"error: cannot export the model to {args.export_onnx}: {e}", file=sys.stderr)
            return 1
        print(f"exported to {args.export_onnx} (ONNX opset {onnx.DEFAULT_OPSET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
