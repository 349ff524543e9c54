"""benchmarks.report on a tiny hand-made pytest-benchmark JSON: the figures in its tables."""
import json

import pytest

from . import report


def bench(group, op, shape, library, threads, median, **info):
    return {"group": group, "stats": {"median": median},
            "extra_info": dict(op=op, shape=shape, library=library, threads=threads, **info)}


RUN = {
    "datetime": "2026-11-24T01:00:00", "machine_info": {
        "cpu": {"brand_raw": "Test CPU"}, "python_version": "3.11",
        "fastnn": {"version": "0", "isas": ["generic", "avx2", "avx512"], "default_isa": "avx2",
                   "cpu_count": 2, "quick": False, "load_average": {"start": 2.5, "end": 1.5},
                   "peaks": {"1": {"fma_gflops": 100.0, "copy_gbs": 20.0},
                             "2": {"fma_gflops": 200.0, "copy_gbs": 40.0}}}},
    "benchmarks": [
        bench("gemm", "gemm", "1000^3", "fastnn", 2, 0.02, isa="avx2", flops=2e9, size=1000),
        bench("gemm", "gemm", "1000^3", "fastnn", 2, 0.01, isa="generic", flops=2e9, size=1000),
        bench("gemm", "gemm", "1000^3", "fastnn", 2, 0.015, isa="avx512", flops=2e9, size=1000),
        bench("gemm", "gemm", "1000^3", "numpy", 2, 0.04, flops=2e9, size=1000),
        bench("gemm", "gemm", "1000^3", "torch", 2, 0.01, flops=2e9, size=1000),
        bench("activation", "relu fwd+bwd", "1000", "fastnn", 2, 1e-3, isa="avx2", nbytes=2e7),
        bench("activation", "relu fwd+bwd", "1000", "numpy", 1, 5e-3, nbytes=2e7),
        bench("optimizer", "adam step", "p", "torch", 2, 4e-3, nbytes=1e6),
        bench("optimizer", "adam step", "p", "torch-foreach", 2, 2e-3, nbytes=1e6),
        bench("optimizer", "adam step", "p", "fastnn", 2, 1e-3, isa="avx2", nbytes=1e6),
        bench("training step", "train step", "cnn b128", "fastnn", 2, 0.01, isa="avx2",
              flops=1e9, model="cnn", batch=128, samples=128),
        bench("training step", "train step", "cnn b128", "fastnn", 2, 0.0102, isa="avx512",
              flops=1e9, model="cnn", batch=128, samples=128),
        bench("training step", "train step", "cnn b128", "torch", 2, 0.02, flops=1e9,
              model="cnn", batch=128, samples=128),
        bench("training step", "train step", "cnn b128", "keras", 2, 0.015, flops=1e9,
              model="cnn", batch=128, samples=128),
    ] + [bench("training epoch", "train epoch", f"cnn b{b}", lib, t, speed / t / b, flops=1e9,
               model="cnn", batch=b, samples=1000, isa="avx2" if lib == "fastnn" else "")
         for b in (32, 64) for t in (1, 2)
         for lib, speed in (("fastnn", 1.0), ("torch", 1.0), ("keras", 2.0))
         ] + [bench(f"architecture {kind}", f"train {kind}", f"{model} b32", lib, 2, seconds,
                    isa="avx2" if lib == "fastnn" else "", flops=1e9, model=model, batch=32,
                    samples=32)
              for kind in ("step", "epoch")
              for model, lib, seconds in (("tinyvgg", "fastnn", 1e-3), ("tinyvgg", "torch", 2e-3),
                                          ("tinyvgg", "keras", 4e-3), ("lenet5", "fastnn", 1e-3),
                                          ("lenet5", "torch", 8e-3), ("lenet5", "keras", 1e-3))
              ] + [bench("inference", "infer", "cnn b1", lib, 2, seconds, flops=1e6, model="cnn",
                         batch=1, isa="avx2" if lib.startswith("fastnn") else "")
                   for lib, seconds in (("fastnn", 1e-4), ("fastnn-predict", 1.5e-4),
                                        ("torch", 2e-4), ("keras", 1e-3))],
}


def test_table_ratios_and_peaks(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(RUN))
    run, rows = report.load(path)
    text, _ = report.report(run, rows, tmp_path)
    lines = {line.split(" | ")[0] + " " + line.split(" | ")[1]: line
             for line in text.split("## Instruction-set")[0].splitlines()
             if line.startswith("| ") and " | 2 | " in line}
    # the default ISA (not the last); 2e9 FLOPs in 20 ms = 100 GFLOP/s, half the 2-thread peak
    assert lines["| gemm 1000^3"] == ("| gemm | 1000^3 | 2 | 20.00 ms | 40.00 ms | 10.00 ms |  "
                                      "| 2.00x | 0.50x |  | 100.0 GFLOP/s | 50% |")
    # NumPy's 1-thread time, flagged; 20 GB/s against the 40 GB/s copy ceiling
    assert lines["| relu fwd+bwd 1000"] == ("| relu fwd+bwd | 1000 | 2 | 1.00 ms | 5.00 ms ¹ "
                                            "|  |  | 5.00x ¹ |  |  | 20.0 GB/s | 50% |")
    # PyTorch: the faster of its variants
    assert "| 2.00 ms |" in lines["| adam step p"] and "| 2.00x |" in lines["| adam step p"]
    # a load average above the CPU count flags the run
    assert "load average at the start 2.5, at the end 1.5" in text
    assert "THE CORES WERE SHARED" in text
    # Keras: its column and ratio
    assert lines["| train step cnn b128"] == ("| train step | cnn b128 | 2 | 10.00 ms |  "
                                              "| 20.00 ms | 15.00 ms |  | 2.00x | 1.50x "
                                              "| 100.0 GFLOP/s | 50% |")
    # epoch scaling: samples/s per thread count and the speed-up, Keras at half the speed
    assert "| cnn | 32 | fastnn | 32,000 | 64,000 | 2.00x |" in text
    assert "| cnn | 32 | Keras | 16,000 | 32,000 | 2.00x |" in text
    # a 60,000-sample epoch at 64,000 samples/s: 0.94 s; Keras takes twice as long
    assert "| cnn | 32 | 0.94 s | 0.94 s | 1.88 s | 1.00x | 2.00x |" in text
    # architectures: per model, and the geometric mean of each peer's ratios
    assert "| tinyvgg | step | 32 | 2 | 1.00 ms | 2.00 ms | 4.00 ms | 2.00x | 4.00x |" in text
    assert "| **geometric mean** | step | 32 | 2 |  |  |  | **4.00x** | **2.00x** |" in text
    assert "| **geometric mean** | epoch | 32 | 2 |  |  |  | **4.00x** | **2.00x** |" in text
    # architecture and inference rows stay out of the op tables
    assert "| train step | tinyvgg b32 |" not in text and "| infer |" not in text
    # inference: fastnn's model(x) against the peers and predict
    assert ("| cnn | 1 | 2 | 100.0 µs | 150.0 µs | 200.0 µs | 1.00 ms | 2.00x | 10.00x "
            "| 1.50x |") in text
    # the variants: the default against the fastest, generic against the slowest SIMD one
    assert "| gemm | 1000^3 | 2 | 10.00 ms | 20.00 ms | 15.00 ms | 2.00x | 0.50x |" in text
    assert "| train step | cnn b128 | 2 |  | 10.00 ms | 10.20 ms | 1.00x |  |" in text
    assert ("2 cases. Default (avx2) within 3% of the fastest variant on 1 of 2; worst 2.00x "
            "(gemm 1000^3 2 thr). Every SIMD variant at least as fast as generic on 0 of 1; "
            "worst 0.50x (gemm 1000^3 2 thr).") in text
    assert (tmp_path / "report.md").read_text() == text


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "run.json"
    path.write_text(json.dumps(RUN))
    run, rows = report.load(path)
    _, files = report.report(run, rows, tmp_path)
    assert set(files) == {"gemm_gflops.png", "ops_vs_fastnn.png", "epoch_scaling.png",
                          "architectures.png"}
    assert all((tmp_path / f).stat().st_size > 0 for f in files)
