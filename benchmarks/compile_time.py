"""Numba compile time for every kernel of one dtype: cold, then loaded from the cache.

Runs two fresh Python processes that share an empty cache directory: the first compiles
(cold), the second loads the machine code from the cache (warm). Prints both in seconds.

    python benchmarks/compile_time.py [float64|float32]
"""

import os
import subprocess
import sys
import tempfile
import time

WARM_UP = """
import numpy as np, fastrnn
from fastrnn.backends import get_backend, workspace, sample_workspace
from fastrnn.params import init_params, kernel_view
dtype = np.dtype('{dtype}')
k = get_backend('numba')
H, V, T = 8, 5, 4
P = kernel_view(init_params(H, V, 0, dtype)); G = tuple(np.zeros_like(p) for p in P)
M = tuple(np.zeros_like(p) for p in P); w = workspace(T, H, V, dtype)
x = np.arange(T, dtype=np.intp) % V
k.forward(x, x, np.zeros(H, dtype), P, w[0], w[1])
k.backward(x, x, w[0], w[1], P, G, w[2:])
k.adagrad(P, G, M, 0.1)
k.adagrad_update(P[0].reshape(-1), G[0].reshape(-1), M[0].reshape(-1), 0.1)
k.sample(np.zeros(H, dtype), 0, np.random.default_rng(0).random(3), P, 1.0, False,
         np.zeros(3, np.int64), sample_workspace(H, V, dtype))
k.train(np.arange(50, dtype=np.uint8) % V, 0, np.zeros(H, dtype), P, G, M, 0.1, T, np.zeros(2), w)
fastrnn.lossFun([0, 1], [1, 2], np.zeros((H, 1), dtype), *init_params(H, V, 0, dtype))
"""


def timed_process(code, env):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - start


def main(dtype="float64"):
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        baseline = timed_process("import numpy, numba, fastrnn", env)
        cold = timed_process(WARM_UP.format(dtype=dtype), env)
        warm = timed_process(WARM_UP.format(dtype=dtype), env)
    print(f"{dtype}: import {baseline:.2f} s; all kernels cold (compile) {cold - baseline:.2f} s; "
          f"from cache {warm - baseline:.2f} s (process totals {cold:.2f} s / {warm:.2f} s)")


if __name__ == "__main__":
    main(*sys.argv[1:])
