"""Benchmark plumbing: explicit thread counts per library, Keras' times from its own
process, and a closing table that puts fastnn, NumPy, PyTorch and Keras side by side
with ratios from the same run.

Each benchmark calls `record(benchmark, op=..., shape=..., library=..., threads=...,
flops=... or bytes=...)`; the table groups rows by (op, shape, threads) and divides
every library's time by fastnn's. The same fields go into each benchmark's extra_info
and the probed ceilings into the JSON's machine_info["fastnn"], so
`python -m benchmarks.report --json FILE` rebuilds the table from a saved run.

FASTNN_BENCH_QUICK=1 shrinks the suite (small sizes, the default ISA only) for the
report's --quick mode and CI."""
import contextlib
import os
import time
from collections import defaultdict

import numpy as np
import pytest

import fastnn
from fastnn import _core
from fastnn.profiling import peak_gflops

from . import keras_runner

QUICK = os.environ.get("FASTNN_BENCH_QUICK") == "1"
# 1..N in powers of two, and N itself (1, 2 on the 2-core development VM)
THREADS = sorted({2 ** i for i in range(os.cpu_count().bit_length())
                  if 2 ** i <= os.cpu_count()} | {os.cpu_count()})
ISAS = fastnn.supported_isas()[-1:] if QUICK else fastnn.supported_isas()

_rows = []


@contextlib.contextmanager
def setting(get, set_, value):
    """set_(value) for the duration of the block, then the value get() gave before."""
    before = get()
    set_(value)
    try:
        yield
    finally:
        set_(before)


@contextlib.contextmanager
def library_threads(library, n):
    """Limit `library` to n threads for the duration of the block."""
    if library == "fastnn":
        with setting(fastnn.get_num_threads, fastnn.set_num_threads, n):
            yield
    elif library == "torch":
        import torch
        with setting(torch.get_num_threads, torch.set_num_threads, n):
            yield
    else:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(n, user_api="blas"):
            yield


@contextlib.contextmanager
def inference_threads(library, n):
    """library_threads, and for PyTorch torch.inference_mode too: its eval-mode calls."""
    with library_threads(library, n):
        if library != "torch":
            yield
            return
        import torch
        with torch.inference_mode():
            yield


def fastnn_isa(name):
    """fastnn on instruction-set variant `name` for the duration of the block."""
    return setting(fastnn.get_isa, fastnn.set_isa, name)


# OpenBLAS's workers poll for work 2^28 cycles (~0.1 s) after a call before they sleep
OPENBLAS_SPIN_SECONDS = 0.12


@contextlib.contextmanager
def library_setting(library, threads, isa=None):
    """library_threads, with fastnn on variant `isa` if given: a block of `alternate`.
    After multi-threaded NumPy the block idles until OpenBLAS's workers sleep, or they
    take cores from the next block's library."""
    with library_threads(library, threads), (
            fastnn_isa(isa) if isa else contextlib.nullcontext()):
        yield
    if library == "numpy" and threads > 1:
        time.sleep(OPENBLAS_SPIN_SECONDS)


@pytest.fixture
def record():
    def _record(benchmark, *, op, shape, library, threads, flops=None, nbytes=None, isa=None,
                **extra):
        """`extra`: plot coordinates such as size= (GEMM sweep) or batch= (epochs)."""
        info = dict(op=op, shape=shape, library=library, threads=threads, flops=flops,
                    nbytes=nbytes, isa=isa or (fastnn.get_isa() if library == "fastnn" else ""),
                    **extra)
        benchmark.extra_info.update({k: v for k, v in info.items() if v is not None})
        _rows.append((benchmark, info))
    return _record


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0")


@pytest.fixture(scope="session")
def keras_times(request):
    """times(keras_case, threads): the seconds per round of a Keras case (a dict, see
    benchmarks.keras_runner). The first call for a thread count runs every selected test's
    `keras_case` parameter of that thread count in one Keras process. With
    --benchmark-disable (a smoke test) only the CNN's cases run, on the top thread count,
    one round of one batch each."""
    reason = keras_runner.missing()
    disabled = request.config.getoption("benchmark_disable")
    runs = {}

    def wanted(case, threads):
        return not disabled or (threads == THREADS[-1] and case["model"] == "cnn")

    def adjust(case):
        return dict(case, rounds=1, samples=case["batch"]) if disabled else case

    def times(case, threads):
        if reason:
            pytest.skip(reason)
        if not wanted(case, threads):
            pytest.skip("--benchmark-disable: Keras runs the CNN on the top thread count only")
        if threads not in runs:
            params = [getattr(item, "callspec", None) for item in request.session.items]
            cases = [adjust(p.params["keras_case"]) for p in params
                     if p and "keras_case" in p.params and p.params.get("threads") == threads
                     and wanted(p.params["keras_case"], threads)]
            try:
                runs[threads] = keras_runner.run(threads, cases)
            except RuntimeError as e:  # reported by each case, run once
                runs[threads] = e
        if isinstance(runs[threads], RuntimeError):
            raise runs[threads]
        return runs[threads][keras_runner.key(adjust(case))]
    return times


def replay(benchmark, seconds):
    """Hand times measured in another process (Keras') to pytest-benchmark as its
    rounds: pytest-benchmark takes no external times, so its fixture's timer becomes a
    clock that each round advances by one measured time."""
    clock, rounds = [0.0], iter(seconds)

    def other_process_clock():
        return clock[0]

    def advance():
        clock[0] += next(rounds)

    benchmark._timer = other_process_clock
    benchmark.pedantic(advance, rounds=len(seconds), iterations=1)


# A time below this is the mean of a batch of back-to-back calls lasting about as long:
# alone, a sub-microsecond call's time was set by the clock reads and the loop around it
# (the same GEMM on two variants 0.4 and 0.6 us, 0.35 us each timed 2000 in a row).
BATCH_SECONDS = 20e-6


def alternate(runs, blocks, calls=None, budget=0.02, settle=0.02):
    """Seconds per call of each of `runs`, the runs taking turns block by block (which goes
    first alternates), so that drift on a shared VM (a co-tenant taking a core for a
    while) hits all of them alike; pytest-benchmark alone times one case after the other.
    runs: {key: (context, warm, run)}; each block enters context() (the library's thread
    count), then calls warm() unmeasured for `settle` seconds and at least a tenth as many
    times as it times run(), then times `calls` calls of run() (None: as many as take
    ~`budget` seconds by a warm call's time, 5 to 200, each time the mean of a batch of
    calls lasting ~BATCH_SECONDS where one call is shorter). The settling is the
    steady state a program that uses one library sees: on the 2-vCPU VM a call right
    after PyTorch's took 1.4-1.6x as long, until the other runtime's idle threads
    stopped spinning on the cores and this one's were awake (~10 ms)."""
    times, counts, keys = {key: [] for key in runs}, {}, list(runs)
    for block in range(blocks):
        for key in keys if block % 2 == 0 else keys[::-1]:
            context, warm, run = runs[key]
            with context():
                start = time.perf_counter()
                warm()
                if calls:
                    counts[key] = (calls, 1)
                elif key not in counts:  # by the faster of two calls (the first may be cold)
                    second = time.perf_counter()
                    warm()
                    one = max(min(second - start, time.perf_counter() - second), 1e-9)
                    counts[key] = (int(min(max(budget / one, 5), 200)),
                                   max(1, int(BATCH_SECONDS / one)))
                n, batch = counts[key]
                warmed = 1
                while warmed < n * batch // 10 or time.perf_counter() - start < settle:
                    warm()
                    warmed += 1
                for _ in range(n):
                    start = time.perf_counter()
                    for _ in range(batch):
                        run()
                    times[key].append((time.perf_counter() - start) / batch)
    return times


@pytest.fixture(scope="session")
def alternating(request):
    """times(group, key, candidates, blocks, calls=None): the seconds per call of run `key`
    of `group`, timed by `alternate` with the group's other runs whose tests this session
    selected. candidates: {key: (test function, its parameters, make)}, make() ->
    (context, warm, run); a run is selected when a selected test of that function has
    those parameters. The first call for a group times all of its runs; the other tests
    of the group replay their share. With --benchmark-disable (a smoke test) each run is
    called twice."""
    done, disabled = {}, request.config.getoption("benchmark_disable")
    selected = defaultdict(list)
    for item in request.session.items:
        spec = getattr(item, "callspec", None)
        selected[getattr(item, "originalname", item.name)].append(spec.params if spec else {})

    def chosen(test, params):
        return any(all(p.get(k) == v for k, v in params.items()) for p in selected[test])

    def times(group, key, candidates, blocks, calls=None):
        if disabled:
            blocks, calls = 1, 1
        if group not in done:
            done[group] = alternate({k: make() for k, (test, params, make) in candidates.items()
                                     if chosen(test, params)}, blocks, calls)
        return done[group][key]
    return times


def has_torch():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


# blocks per op case: ~20 ms of calls each, every run of the case taking turns
OP_BLOCKS = 1 if QUICK else 7


def op_runs(*libraries):
    """The (library, isa) runs of an op's benchmark: fastnn on every variant, then each of
    `libraries` ("torch-foreach" is PyTorch run another way)."""
    return [("fastnn", isa) for isa in ISAS] + [(library, None) for library in libraries]


def run_ids(runs):
    """pytest ids of op_runs: "fastnn-avx2", "torch"."""
    return [f"{library}-{isa}" if isa else library for library, isa in runs]


def op_candidates(test, params, call, runs):
    """alternating's candidates for one case of an op: the selected runs of `test` (a
    function parametrized by library, isa and threads) whose parameters include `params`.
    call(library) -> a function making one call of the op, its operands made once. A
    library is named by its label before any "-"."""
    candidates = {}
    for label, isa in runs:
        library = label.split("-")[0]
        if library == "torch" and not has_torch():
            continue
        for threads in THREADS:
            def make(label=label, library=library, threads=threads, isa=isa):
                once = call(label)
                return (lambda: library_setting(library, threads, isa)), once, once
            candidates[(label, isa, threads)] = (
                test, dict(params, library=label, isa=isa, threads=threads), make)
    return candidates


def time_op(benchmark, alternating, group, key, candidates):
    """Time run `key` = (label, isa, threads) of an op's case, alternating with the case's
    other runs (op_candidates) in OP_BLOCKS blocks."""
    if key[0].startswith("torch") and not has_torch():
        pytest.skip("PyTorch not installed: pip install torch==2.13.0")
    replay(benchmark, alternating(group, key, candidates, OP_BLOCKS))


_peaks = {}
_load = []  # the 1-minute load average at the session's start (others' work shows in it)


def pytest_sessionstart(session):
    """Probe the ceilings first, before other libraries' thread pools exist and can
    steal cores from the probe."""
    _load.append(os.getloadavg()[0])
    for threads in THREADS:
        peak(threads)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Save the ceilings with the run, so a report from the JSON alone has % of peak."""
    machine_info["fastnn"] = {
        "version": fastnn.__version__, "isas": list(fastnn.supported_isas()),
        "default_isa": _core.default_isa(), "cpu_count": os.cpu_count(), "quick": QUICK,
        "peaks": {str(t): {"fma_gflops": peak(t)[0], "copy_gbs": peak(t)[1]} for t in THREADS},
        "load_average": {"start": _load[0] if _load else None, "end": os.getloadavg()[0]}}


def peak(threads):
    """(FMA GFLOP/s, copy GB/s) of this machine on `threads` threads with the best ISA,
    measured once per run by fastnn's own probes."""
    if threads not in _peaks:
        with library_threads("fastnn", threads):
            _peaks[threads] = (peak_gflops(), _core.copy_bandwidth())
    return _peaks[threads]


def _rate(info, seconds):
    if info["flops"]:
        return f"{info['flops'] / seconds / 1e9:7.1f} GFLOP/s"
    if info["nbytes"]:
        return f"{info['nbytes'] / seconds / 1e9:7.2f} GB/s"
    return ""


def pytest_terminal_summary(terminalreporter):
    groups = defaultdict(list)
    for bench, info in _rows:
        stats = getattr(bench, "stats", None)
        if not stats or not getattr(stats, "stats", None):
            continue  # --benchmark-disable: nothing measured
        seconds = stats.stats.median
        groups[(info["op"], info["shape"], info["threads"])].append((info, seconds))
    if not groups:
        return
    tr = terminalreporter
    tr.section("fastnn vs NumPy vs PyTorch vs Keras (median times, one run)")
    for threads in sorted({key[2] for key in groups}):
        gflops, gbs = peak(threads)
        tr.write_line(f"machine ceiling, {threads} thread(s), {fastnn.supported_isas()[-1]}: "
                      f"FMA {gflops:.1f} GFLOP/s, copy {gbs:.1f} GB/s (fastnn probes)")
    tr.write_line(f"{'op':<22}{'shape':<22}{'thr':>4}  {'library':<16}{'time':>11}  {'rate':<16}"
                  f"{'% peak':>7}  {'vs fastnn':>9}")
    for (op, shape, threads), entries in groups.items():
        fast = [s for i, s in entries if i["library"] == "fastnn"]
        best_fast = min(fast) if fast else None
        for info, seconds in sorted(entries, key=lambda e: (e[0]["library"] != "fastnn", e[1])):
            name = info["library"] + (f"[{info['isa']}]" if info["library"] == "fastnn" else "")
            pct = ""
            if info["flops"]:
                pct = f"{100 * info['flops'] / seconds / 1e9 / peak(threads)[0]:6.1f}%"
            elif info["nbytes"]:
                pct = f"{100 * info['nbytes'] / seconds / 1e9 / peak(threads)[1]:6.1f}%"
            ratio = (f"{seconds / best_fast:8.2f}x" if best_fast and info["library"] != "fastnn"
                     else "")
            tr.write_line(f"{op:<22}{shape:<22}{threads:>4}  {name:<16}{seconds * 1e3:9.3f}ms  "
                          f"{_rate(info, seconds):<16}{pct:>7}  {ratio:>9}")


def geomean(values):
    return float(np.exp(np.mean(np.log(values))))
