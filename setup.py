"""Build fastnn's one extension, fastnn._core: the C kernels in csrc/ behind Cython.

Environment switches:
  FASTNN_NO_OPENMP=1  build without OpenMP (serial kernels)
  FASTNN_SANITIZE=1   build with -fsanitize=address,undefined (for CI's sanitizer run;
                      run Python with LD_PRELOAD set to the compiler's libasan)
  FASTNN_AVX512_ON_AVX2=1  test build: the AVX-512 variant's code compiled to AVX2
                      instructions, so its tiling logic can be tested on a CPU without AVX-512
No -march or global -m flag is ever passed: the SIMD variants carry per-function
target attributes (csrc/simd/) and the fastest one the CPU supports is picked at import.
"""
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from glob import glob

import numpy

from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n == omp_get_max_threads());
    return n == omp_get_max_threads() ? 0 : 1;
}
"""

# Flag sets to try, compile flags then link flags: GCC/Clang, then Apple clang + libomp.
OPENMP_CANDIDATES = [
    (["-fopenmp"], ["-fopenmp"]),
    (["-Xpreprocessor", "-fopenmp"], ["-lomp"]),
]


def warn(msg):
    print(f"\n*** fastnn setup: {msg}\n", file=sys.stderr)


def openmp_flags():
    """Compile, link and run a tiny OpenMP program; return the flags that worked, or None."""
    if os.environ.get("FASTNN_NO_OPENMP") == "1":
        warn("FASTNN_NO_OPENMP=1: building WITHOUT OpenMP; every kernel runs on one thread.")
        return None
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "probe.c"), os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        for cflags, lflags in OPENMP_CANDIDATES:
            try:
                subprocess.run(cc + cflags + [src, "-o", exe] + lflags, check=True,
                               capture_output=True, timeout=120)
                subprocess.run([exe], check=True, capture_output=True, timeout=60)
                return cflags, lflags
            except (OSError, subprocess.SubprocessError):
                continue
    warn("no working OpenMP found (tried " + ", ".join(" ".join(c) for c, _ in OPENMP_CANDIDATES)
         + "): building a SERIAL extension; fastnn will use one thread. Install libgomp "
           "(GCC) or libomp (Clang) and rebuild to get parallel kernels.")
    return None


def extension():
    compile_args = ["-O3", "-std=gnu11", "-Wall", "-Wno-unknown-pragmas", "-pthread"]
    link_args = ["-pthread"]
    omp = openmp_flags()
    if omp:
        compile_args += omp[0]
        link_args += omp[1]
    macros = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]
    if os.environ.get("FASTNN_AVX512_ON_AVX2") == "1":
        macros.append(("FNN_AVX512_ON_AVX2", "1"))
    if os.environ.get("FASTNN_SANITIZE") == "1":
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
               "-fno-omit-frame-pointer", "-g"]
        compile_args += san
        link_args += san
    sources = ["fastnn/_core.pyx"] + sorted(glob("csrc/*.c")) + sorted(glob("csrc/simd/*.c"))
    return Extension("fastnn._core", sources=sources, include_dirs=["csrc", numpy.get_include()],
                     define_macros=macros,
                     extra_compile_args=compile_args,
                     extra_link_args=link_args, depends=glob("csrc/**/*.h", recursive=True) + glob("fastnn/*.pxi"))


setup(
    ext_modules=cythonize(
        [extension()],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "initializedcheck": False, "cdivision": True},
    ),
)
