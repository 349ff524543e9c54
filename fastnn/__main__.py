"""python -m fastnn: print the configuration and run a checked matmul."""
import time

import numpy as np

import fastnn


def main():
    fastnn.show_config()
    rng = np.random.default_rng(0)
    n = 1024
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    fastnn.matmul(a, b, out=out)
    start = time.perf_counter()
    fastnn.matmul(a, b, out=out)
    seconds = time.perf_counter() - start
    err = np.max(np.abs(out - a.astype(np.float64) @ b.astype(np.float64)))
    print(f"matmul {n}x{n}x{n}: {2 * n ** 3 / seconds / 1e9:.1f} GFLOP/s, "
          f"max abs error vs float64 {err:.2e}")


if __name__ == "__main__":
    main()
