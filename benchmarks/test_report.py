"""benchmarks.report on a tiny hand-made pytest-benchmark JSON: the figures in the table."""
import json

from . import report


def bench(group, op, shape, library, threads, median, **info):
    return {"group": group, "stats": {"median": median},
            "extra_info": dict(op=op, shape=shape, library=library, threads=threads, **info)}


RUN = {
    "datetime": "2026-11-24T01:00:00", "machine_info": {
        "cpu": {"brand_raw": "Test CPU"}, "python_version": "3.11",
        "fastnn": {"version": "0", "isas": ["generic", "avx2"], "best_isa": "avx2",
                   "cpu_count": 2, "quick": False,
                   "peaks": {"1": {"fma_gflops": 100.0, "copy_gbs": 20.0},
                             "2": {"fma_gflops": 200.0, "copy_gbs": 40.0}}}},
    "benchmarks": [
        bench("gemm", "gemm", "1000^3", "fastnn", 2, 0.02, isa="avx2", flops=2e9, size=1000),
        bench("gemm", "gemm", "1000^3", "fastnn", 2, 0.01, isa="generic", flops=2e9, size=1000),
        bench("gemm", "gemm", "1000^3", "numpy", 2, 0.04, flops=2e9, size=1000),
        bench("gemm", "gemm", "1000^3", "torch", 2, 0.01, flops=2e9, size=1000),
        bench("activation", "relu fwd+bwd", "1000", "fastnn", 2, 1e-3, isa="avx2", nbytes=2e7),
        bench("activation", "relu fwd+bwd", "1000", "numpy", 1, 5e-3, nbytes=2e7),
        bench("optimizer", "adam step", "p", "torch", 2, 4e-3, nbytes=1e6),
        bench("optimizer", "adam step", "p", "torch-foreach", 2, 2e-3, nbytes=1e6),
        bench("optimizer", "adam step", "p", "fastnn", 2, 1e-3, isa="avx2", nbytes=1e6),
    ] + [bench("training epoch", "train epoch", f"cnn b{b}", lib, t, 1.0 / t / b, flops=1e9,
               model="cnn", batch=b, samples=1000, isa="avx2" if lib == "fastnn" else "")
         for b in (32, 64) for t in (1, 2) for lib in ("fastnn", "torch")],
}


def test_table_ratios_and_peaks(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(RUN))
    run, rows = report.load(path)
    text, _ = report.report(run, rows, tmp_path)
    lines = {line.split(" | ")[0] + " " + line.split(" | ")[1]: line
             for line in text.splitlines() if line.startswith("| ") and " | 2 | " in line}
    # the best ISA only; 2e9 FLOPs in 20 ms = 100 GFLOP/s, half the 2-thread peak
    assert lines["| gemm 1000^3"] == ("| gemm | 1000^3 | 2 | 20.00 ms | 40.00 ms | 10.00 ms "
                                      "| 2.00x | 0.50x | 100.0 GFLOP/s | 50% |")
    # NumPy's 1-thread time, flagged; 20 GB/s against the 40 GB/s copy ceiling
    assert lines["| relu fwd+bwd 1000"] == ("| relu fwd+bwd | 1000 | 2 | 1.00 ms | 5.00 ms ¹ |  "
                                            "| 5.00x ¹ |  | 20.0 GB/s | 50% |")
    # PyTorch: the faster of its variants
    assert "| 2.00 ms |" in lines["| adam step p"] and "| 2.00x |" in lines["| adam step p"]
    # epoch scaling: samples/s per thread count and the speed-up
    assert "| cnn | 32 | fastnn | 32,000 | 64,000 | 2.00x |" in text
    assert (tmp_path / "report.md").read_text() == text
