"""Every cell: fastrnn's numba kernels against the NumPy oracle, one training chunk per call.

Cases: the LSTM, the GRU and two tanh layers, at B = 1 stream (one thread) and B = 32 streams
(all cores), H = 256, T = 50, float32, Adam, V from the corpus. One call = one chunk of every
stream (B*T characters): forward, backward, clip, update. Each case is first checked against
the float64 oracle (compilation happens there): the losses of two chunks, and the state, every
parameter and Adam's moments after the first (``checks.check_first_update``, at
``fastrnn.config.TOLERANCES``, says why after one). A plain ``pytest`` run executes
each case once at H = 64 (a correctness check); timing:
``pytest benchmarks/bench_cells.py --benchmark-only``. PyTorch's cells side by side:
``benchmarks/cells_vs_torch.py``.
"""

import platform

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastrnn import optim, reference
from fastrnn.backends import get_backend
from fastrnn.spec import Spec
from benchmarks.checks import assert_close, check_first_update

MODELS = [("lstm", 1), ("gru", 1), ("rnn", 2)]
STREAMS = [1, 32]
T = 50


def flops_per_char(G, H, V, L):
    """Forward + backward of the recurrent and the layer-to-layer products and the output layer
    (benchmarks/cells_vs_torch.py explains the count)."""
    return 6 * G * H * H * (2 * L - 1) + 6 * V * H


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("B", STREAMS)
@pytest.mark.parametrize("cell,L", MODELS, ids=[f"{c}-L{n}" for c, n in MODELS])
def test_cell_train_chunk(benchmark, request, corpus, backend, cell, L, B):
    vocab, data, source = corpus
    H = 256 if request.config.getoption("benchmark_only", False) else 64
    V, dtype = len(vocab), np.dtype(np.float32)
    kern = get_backend(backend)
    threads = numba.config.NUMBA_NUM_THREADS if backend == "numba" and B > 1 else 1
    adam = optim.get("adam")
    spec = Spec(cell, V, H, L)
    w = spec.init(0, dtype)
    g = spec.zeros(dtype)
    moments = [spec.zeros(dtype) for _ in adam.states]
    state = np.zeros((L, len(spec.cell.STATES), B, H), dtype)
    check_first_update(kern, spec, w, adam, state, data, 0.002, T, threads)
    losses = np.empty(2)
    oracle = spec.view(w.flat.astype(np.float64))
    expected, position, _ = reference.train(oracle, adam, [spec.zeros(np.float64)
                                                           for _ in adam.states], data, 0,
                                            state.astype(np.float64), 0.002, T, 2)
    with threadpool_limits(1, user_api="blas"):
        assert kern.train(w, g, adam, moments, data, 0, state, 0.002, T, 0, losses,
                          threads) == position
    assert_close(losses, expected, dtype, "losses of two chunks")
    one = np.empty(1)
    run_state = {"pos": position, "step": 2}

    def run():
        run_state["pos"] = kern.train(w, g, adam, moments, data, run_state["pos"], state, 0.002,
                                      T, run_state["step"], one, threads)
        run_state["step"] += 1

    benchmark.extra_info.update(
        case=f"{cell} L={L} train B={B} H={H} T={T} float32 adam", backend=backend,
        chars_per_call=B * T, flops_per_char=flops_per_char(spec.cell.GATES, H, V, L),
        threads=threads, B=B, H=H, T=T, V=V, corpus=source, numpy=np.__version__,
        numba=numba.__version__, cpu=platform.processor() or platform.machine())
    with threadpool_limits(1, user_api="blas"):  # the reference: one thread
        benchmark(run)
