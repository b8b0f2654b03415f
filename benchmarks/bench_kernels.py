"""numpy vs numba: a full training iteration and each kernel, at min-char-rnn's sizes.

Cases: (H=100, T=25, float64) -- min-char-rnn's setting --, (H=100, float32), (H=512, float32),
V from the corpus (65 for tinyshakespeare). Every case first checks the kernel against the
oracle, then times it; compilation happens in that check, outside the timed region.
Run: ``pytest benchmarks --benchmark-only``.
"""

import platform

import numba
import numpy as np
import pytest

import fastrnn
from fastrnn import reference
from fastrnn.backends import get_backend, sample_workspace, workspace
from fastrnn.params import init_params, kernel_view

CONFIGS = [(100, 25, "float64"), (100, 25, "float32"), (512, 25, "float32")]
BACKENDS = ["numpy", "numba"]
TOL = {"float64": dict(rtol=1e-9), "float32": dict(rtol=1e-3)}
CHUNKS_PER_CALL = 8


def flops_per_char(H, V):
    return 6 * H * H + 6 * V * H


class Case:
    """A model at one size with the buffers every kernel needs, in kernel layout."""

    def __init__(self, corpus, H, T, dtype, backend):
        vocab, data, self.source = corpus
        self.V, self.H, self.T, self.dtype = len(vocab), H, T, np.dtype(dtype)
        self.data = data
        self.kern = get_backend(backend)
        self.params = kernel_view(init_params(H, self.V, seed=0, dtype=dtype))
        self.grads = tuple(np.zeros_like(p) for p in self.params)
        self.mems = tuple(np.zeros_like(p) for p in self.params)
        self.h = np.zeros(H, dtype)
        self.work = workspace(T, H, self.V, self.dtype)
        self.inputs, self.targets = data[1000:1000 + T].astype(np.intp), data[1001:1001 + T].astype(np.intp)

    def info(self, name, chars):
        return dict(case=f"{name} H={self.H} T={self.T} {self.dtype}", backend=self.kern.name,
                    chars_per_call=chars, flops_per_char=flops_per_char(self.H, self.V),
                    H=self.H, T=self.T, V=self.V, dtype=str(self.dtype), corpus=self.source,
                    numpy=np.__version__, numba=numba.__version__, cpu=platform.processor() or platform.machine())

    def oracle_params(self):
        Wxh, Whh, Why, bh, by = (p.astype(np.float64) for p in self.params)
        return Wxh, Whh, Why, bh.reshape(-1, 1), by.reshape(-1, 1)


def check(actual, expected, dtype, name):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, err_msg=name, atol=1e-7,
                               **TOL[str(dtype)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_train_iteration(benchmark, corpus, backend, H, T, dtype):
    """forward + backward + clip + Adagrad, CHUNKS_PER_CALL chunks per call."""
    c = Case(corpus, H, T, dtype, backend)
    losses = np.empty(2)
    expected, _, _ = reference.train(c.data, 0, np.zeros((H, 1)), list(c.oracle_params()),
                                     [np.zeros_like(p) for p in c.oracle_params()], 0.1, T, 2)
    c.kern.train(c.data, 0, c.h, c.params, c.grads, c.mems, 0.1, T, losses, c.work)
    check(losses, expected, dtype, "losses")
    losses = np.empty(CHUNKS_PER_CALL)
    state = {"pos": c.T * 2}

    def run():
        state["pos"] = c.kern.train(c.data, state["pos"], c.h, c.params, c.grads, c.mems, 0.1, T,
                                    losses, c.work)

    benchmark.extra_info.update(c.info("train iteration", CHUNKS_PER_CALL * T))
    benchmark(run)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_forward(benchmark, corpus, backend, H, T, dtype):
    c = Case(corpus, H, T, dtype, backend)
    hs, ps = c.work[:2]
    loss = c.kern.forward(c.inputs, c.targets, c.h, c.params, hs, ps)
    loss_ref, hs_ref, _ = reference.forward(c.inputs, c.targets, np.zeros((H, 1)), *c.oracle_params())
    check(loss, loss_ref, dtype, "loss")
    check(hs, hs_ref, dtype, "hs")
    benchmark.extra_info.update(c.info("forward", T))
    benchmark(c.kern.forward, c.inputs, c.targets, c.h, c.params, hs, ps)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_backward(benchmark, corpus, backend, H, T, dtype):
    c = Case(corpus, H, T, dtype, backend)
    hs, ps, dys, dhs, dh = c.work
    c.kern.forward(c.inputs, c.targets, c.h, c.params, hs, ps)
    c.kern.backward(c.inputs, c.targets, hs, ps, c.params, c.grads, (dys, dhs, dh))
    expected = reference.backward(c.inputs, c.targets, hs.astype(np.float64), ps.astype(np.float64),
                                  *c.oracle_params()[:3])
    for name, g, e in zip(("dWxh", "dWhh", "dWhy", "dbh", "dby"), c.grads, expected):
        check(g, e.reshape(g.shape), dtype, name)
    benchmark.extra_info.update(c.info("backward", T))
    benchmark(c.kern.backward, c.inputs, c.targets, hs, ps, c.params, c.grads, (dys, dhs, dh))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_adagrad(benchmark, corpus, backend, H, T, dtype):
    c = Case(corpus, H, T, dtype, backend)
    rng = np.random.default_rng(0)
    grads = tuple(rng.uniform(-5, 5, p.shape).astype(dtype) for p in c.params)
    expected_p, expected_m = [p.astype(np.float64) for p in c.params], [m.astype(np.float64) for m in c.mems]
    reference.adagrad(expected_p, [g.astype(np.float64) for g in grads], expected_m, 0.1)
    c.kern.adagrad(c.params, grads, c.mems, 0.1)
    for p, e in zip(c.params, expected_p):
        check(p, e, dtype, "parameters")
    benchmark.extra_info.update(c.info("adagrad (all parameters)", T))
    benchmark(c.kern.adagrad, c.params, grads, c.mems, 1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_sample(benchmark, corpus, backend, H, T, dtype):
    c = Case(corpus, H, T, dtype, backend)
    n = 100
    uniforms = np.random.default_rng(0).random(n)
    ixes = np.empty(n, np.int64)
    work = sample_workspace(H, c.V, c.dtype)
    c.kern.sample(c.h.copy(), 0, uniforms, c.params, 1.0, False, ixes, work)
    expected, _ = reference.sample(np.zeros((H, 1)), 0, uniforms, *c.oracle_params())
    if dtype == "float64":
        assert ixes.tolist() == expected
    benchmark.extra_info.update(c.info("sample (per call of 100)", n))
    benchmark(c.kern.sample, c.h.copy(), 0, uniforms, c.params, 1.0, False, ixes, work)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropin_python_loop(benchmark, corpus, backend):
    """min-char-rnn's loop body: lossFun + adagrad from Python, lists of ids as inputs."""
    vocab, data, source = corpus
    H, T, V = 100, 25, len(vocab)
    params = list(init_params(H, V, seed=0))
    mems = [np.zeros_like(p) for p in params]
    inputs, targets = data[:T].tolist(), data[1:T + 1].tolist()
    out = fastrnn.lossFun(inputs, targets, np.zeros((H, 1)), *params, backend=backend)
    check(out[0], reference.loss_fun(inputs, targets, np.zeros((H, 1)), *params)[0], "float64", "loss")
    hprev = np.zeros((H, 1))

    def step():
        loss, dWxh, dWhh, dWhy, dbh, dby, h = fastrnn.lossFun(inputs, targets, hprev, *params, backend=backend)
        fastrnn.adagrad(params, [dWxh, dWhh, dWhy, dbh, dby], mems, 0.1, backend=backend)

    benchmark.extra_info.update(dict(case=f"drop-in lossFun+adagrad H={H} T={T} float64", backend=backend,
                                     chars_per_call=T, flops_per_char=flops_per_char(H, V), corpus=source))
    benchmark(step)
