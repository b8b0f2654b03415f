"""Mini-batch training: fastrnn's batched kernels (all cores) vs the batched NumPy reference
(one thread), and the machine's float32 matmul peak measured in the same run.

Cases from the mini-batch issue: (B=32, H=256, T=50) and (B=64, H=512, T=50), float32, V from the
corpus. One call = one chunk of every stream (B*T characters): forward, backward, clip,
Adagrad. Each case is first checked against the float64 oracle (compilation happens there): the
losses of two chunks, and the state, every parameter and the Adagrad memory after the first
(``checks.check_first_update``, at ``fastrnn.config.TOLERANCES``, says why after one).
Run: ``pytest benchmarks/bench_batch.py --benchmark-only``.
"""

import os
import platform
import time

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastrnn import optim, reference
from fastrnn.backends import get_backend
from fastrnn.spec import Spec
from benchmarks.checks import assert_close, check_first_update

CONFIGS = [(32, 256, 50), (64, 512, 50)]


def flops_per_char(H, V):
    return 6 * H * H + 6 * V * H


@pytest.fixture(scope="module")
def peak(request):
    """GFLOP/s of a 2048^3 float32 np.matmul on all cores (the BLAS's best kernels for this CPU)."""
    n = 2048 if request.config.getoption("benchmark_only", False) else 256
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    c = np.empty_like(a)
    with threadpool_limits(os.cpu_count(), user_api="blas"):
        np.matmul(a, a, out=c)
        times = []
        for _ in range(7):
            t = time.perf_counter()
            np.matmul(a, a, out=c)
            times.append(time.perf_counter() - t)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("B,H,T", CONFIGS)
def test_batch_train_iteration(benchmark, corpus, peak, backend, B, H, T):
    vocab, data, source = corpus
    V, dtype = len(vocab), np.dtype(np.float32)
    kern = get_backend(backend)
    threads = numba.config.NUMBA_NUM_THREADS if backend == "numba" else 1
    adagrad = optim.get("adagrad")
    spec = Spec("rnn", V, H)
    w = spec.init(0, dtype)
    g = spec.zeros(dtype)
    mems = [spec.zeros(dtype) for _ in adagrad.states]
    state = np.zeros((1, 1, B, H), dtype)
    check_first_update(kern, spec, w, adagrad, state, data, 0.1, T, threads)
    losses = np.empty(2)
    oracle = spec.view(w.flat.astype(np.float64))
    expected, position, _ = reference.train(oracle, adagrad, [spec.zeros(np.float64)], data, 0,
                                            np.zeros((1, 1, B, H)), 0.1, T, 2)
    with threadpool_limits(1, user_api="blas"):
        assert kern.train(w, g, adagrad, mems, data, 0, state, 0.1, T, 0, losses,
                          threads) == position
    assert_close(losses, expected, dtype, "losses of two chunks")
    one = np.empty(1)
    run_state = {"pos": position, "step": 2}

    def run():
        run_state["pos"] = kern.train(w, g, adagrad, mems, data, run_state["pos"], state, 0.1, T,
                                      run_state["step"], one, threads)
        run_state["step"] += 1

    benchmark.extra_info.update(
        case=f"batch train B={B} H={H} T={T} float32", backend=backend, chars_per_call=B * T,
        flops_per_char=flops_per_char(H, V), peak_gflops=peak, threads=threads, B=B, H=H, T=T,
        V=V, corpus=source, numpy=np.__version__, numba=numba.__version__,
        cpu=platform.processor() or platform.machine())
    with threadpool_limits(1, user_api="blas"):  # the reference: one thread
        benchmark(run)
