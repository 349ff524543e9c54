"""python -m fastnn.train on tiny synthetic IDX files written to tmp_path."""
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_idx(path, array):
    """An IDX file (gzipped) of uint8 data: magic 0x0000 08 ndim, big-endian dims."""
    header = struct.pack(f">4B{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_split(root, name, split, n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28))
    images[np.arange(n), labels * 2 + 3, 4:24] = 255  # a class-dependent bright row
    prefix = "train" if split == "train" else "t10k"
    os.makedirs(root / name, exist_ok=True)
    write_idx(root / name / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(root / name / f"{prefix}-labels-idx1-ubyte.gz", labels)


def run_cli(tmp_path, *args):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    env.pop("FASTNN_DATA", None)
    return subprocess.run([sys.executable, "-m", "fastnn.train", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


@pytest.mark.parametrize("model,conv", [("mlp", "auto"), ("cnn", "direct"), ("cnn", "winograd")])
def test_cli_trains_reports_and_saves(tmp_path, model, conv):
    write_split(tmp_path, "fashion-mnist", "train", 300, 0)
    write_split(tmp_path, "fashion-mnist", "test", 100, 1)
    save = tmp_path / "out.fnn"
    proc = run_cli(tmp_path, "--model", model, "--dataset", "fashion-mnist", "--epochs", "1",
                   "--batch-size", "16", "--optimizer", "sgd", "--lr", "0.05", "--threads", "1",
                   "--seed", "3", "--limit", "64", "--data-root", str(tmp_path), "--save",
                   str(save), "--no-download", "--conv-algorithm", conv)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "64 training and 64 test samples" in out and f"conv algorithm {conv}" in out
    assert "Epoch 1/1 - loss " in out and "accuracy" in out and "samples/s" in out
    assert "test accuracy" in out and f"saved to {save}" in out
    assert fastnn.load(save).predict(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 10)


def test_cli_mnist_without_training_split_uses_the_test_split(tmp_path):
    write_split(tmp_path, "mnist", "test", 200, 2)
    proc = run_cli(tmp_path, "--dataset", "mnist", "--data-root", str(tmp_path), "--epochs", "2",
                   "--no-progress", "--no-download")
    assert proc.returncode == 0, proc.stderr
    assert "training split not found; training on the first 160 test-split images and " \
           "evaluating on the remaining 40" in proc.stdout
    assert "Epoch 2/2" in proc.stdout and "test accuracy" in proc.stdout


def test_cli_missing_data_exits_with_a_message(tmp_path):
    proc = run_cli(tmp_path, "--dataset", "mnist", "--data-root", str(tmp_path / "none"),
                   "--no-download")
    assert proc.returncode == 2
    assert "error: cannot load mnist" in proc.stderr and "FASTNN_DATA" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_rejects_bad_arguments(tmp_path):
    proc = run_cli(tmp_path, "--batch-size", "0")
    assert proc.returncode == 2 and "must be a positive integer" in proc.stderr
    proc = run_cli(tmp_path, "--model", "vgg")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = run_cli(tmp_path, "--conv-algorithm", "fft")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    # refused before any data is loaded: --lr 0 fell back to the default, the others raised
    # tracebacks from the optimizer, the model's seed or set_num_threads
    for lr in ("0", "-1", "nan", "inf"):
        proc = run_cli(tmp_path, "--lr", lr, "--no-download")
        assert proc.returncode == 2 and "--lr: must be a positive finite number" in proc.stderr
    proc = run_cli(tmp_path, "--seed", "-1", "--no-download")
    assert proc.returncode == 2 and "--seed: must be a non-negative integer" in proc.stderr
    proc = run_cli(tmp_path, "--threads", str(fastnn._core.max_threads() + 1), "--no-download")
    assert proc.returncode == 2 and "--threads: must be at most" in proc.stderr
    # a text that is no number read "invalid _positive value: 'abc'"
    for flag in ("--epochs", "--seed", "--lr"):
        proc = run_cli(tmp_path, flag, "abc", "--no-download")
        assert proc.returncode == 2 and f"{flag}: must be a" in proc.stderr \
            and "got abc" in proc.stderr and "_positive" not in proc.stderr


def test_cli_refuses_a_bad_output_path_before_training(tmp_path):
    """--save or --export-onnx into a directory that does not exist, or over one, failed
    only after the whole training run (the trained model lost); refused up front now."""
    for flag in ("--save", "--export-onnx"):
        for path in (tmp_path / "none" / "out", tmp_path):
            proc = run_cli(tmp_path, flag, str(path), "--data-root", str(tmp_path / "none"),
                           "--no-download")
            assert proc.returncode == 2 and f"argument {flag}: {path} is a directory or its " \
                "directory does not exist" in proc.stderr, proc.stderr
            assert "cannot load" not in proc.stderr
