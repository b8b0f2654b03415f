"""Loaded by pytest before any test module imports NumPy.

Benchmarks compare one core against one core: NumPy's BLAS is limited to one thread here
(unless the caller set the variables), as the Numba kernels of the single-stream model use one.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
