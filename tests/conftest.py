"""Shared fixtures: run kernel tests on every ISA variant this CPU supports, and
restore the thread count and ISA each test found."""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import fastnn

if "libasan" in os.environ.get("LD_PRELOAD", ""):
    # TensorFlow aborts at import under AddressSanitizer's preloaded runtime (ASan's
    # __cxa_throw interceptor finds no real one): in the sanitizer run, tests that
    # compare with Keras skip (importorskip sees the import fail) instead of dying.
    sys.modules["tensorflow"] = None
    sys.modules["keras"] = None


@pytest.fixture(params=fastnn.supported_isas())
def isa(request):
    """Run the test once per instruction-set variant (the others are skipped by the CPU)."""
    before = fastnn.get_isa()
    fastnn.set_isa(request.param)
    yield request.param
    fastnn.set_isa(before)


@pytest.fixture
def threads():
    """Set the thread count inside a test; the old count comes back afterwards."""
    before = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(before)


@pytest.fixture
def traced_peak():
    """peak(fn, times): the peak of memory traced while fn() runs times times (Python
    objects and NumPy data together), after two untraced warm-up calls. The collector
    is off from before the warm-ups to the end: a full collection empties CPython's
    free lists (their refill then counts as allocation), and one that starts inside
    fn runs the finalizers of earlier tests' garbage; either made this test's peak
    depend on what ran before it (a CI run once counted 1.4 KiB more). With the
    collector off, a cycle fn leaves behind stays counted instead of being freed."""
    def peak(fn, times):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            fn()
            fn()
            tracemalloc.start()
            for _ in range(times):
                fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            if was_enabled:
                gc.enable()
    return peak


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (minutes-long training runs)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: minutes of training; run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
