"""numpy vs numba: a full training iteration and each kernel, at min-char-rnn's sizes.

Cases: (H=100, T=25, float64) -- min-char-rnn's setting --, (H=100, float32), (H=512, float32),
V from the corpus (65 for tinyshakespeare). Every case first checks the kernel against the
oracle (at ``fastrnn.config.TOLERANCES``, the tests' table: ``checks.py``), then times it;
compilation happens in that check, outside the timed region.
Run: ``pytest benchmarks --benchmark-only``.
"""

import platform

import numba
import numpy as np
import pytest

import fastrnn
from fastrnn import optim, reference
from fastrnn.backends import get_backend
from fastrnn.spec import Spec
from benchmarks.checks import assert_close as check, check_first_update

CONFIGS = [(100, 25, "float64"), (100, 25, "float32"), (512, 25, "float32")]
BACKENDS = ["numpy", "numba"]
CHUNKS_PER_CALL = 8
ADAGRAD = optim.get("adagrad")


def flops_per_char(H, V, passes=3):
    """A character's floating-point operations in its products: the forward pass's two
    (h Whh^T and Why h, 2 H^2 + 2 V H; Wxh's is a column gather), and twice that backward
    (the gradients of the weights and of the input of each): ``passes`` 1 forward, 2
    backward, 3 both."""
    return passes * (2 * H * H + 2 * V * H)


class Case:
    """A model at one size (min-char-rnn's initialisation) with its gradients, Adagrad memory,
    one-stream state (1, 1, 1, H) and a chunk x, y (1, T), on one backend."""

    def __init__(self, corpus, H, T, dtype, backend):
        vocab, data, self.source = corpus
        self.V, self.H, self.T, self.dtype = len(vocab), H, T, np.dtype(dtype)
        self.data = data
        self.kern = get_backend(backend)
        self.spec = Spec("rnn", self.V, H)
        self.w = self.spec.init(seed=0, dtype=dtype)
        self.g = self.spec.zeros(dtype)
        self.mems = [self.spec.zeros(dtype) for _ in ADAGRAD.states]
        self.state = np.zeros((1, 1, 1, H), dtype)
        self.x = data[1000:1000 + T].astype(np.intp)[None]
        self.y = data[1001:1001 + T].astype(np.intp)[None]

    def info(self, name, chars, passes=3):
        """The case's record; ``chars`` None: a call that reads no characters (an optimizer
        update), whose table row has no characters per second or GFLOP/s."""
        return dict(case=f"{name} H={self.H} T={self.T} {self.dtype}", backend=self.kern.name,
                    chars_per_call=chars or 0, flops_per_char=flops_per_char(self.H, self.V,
                                                                             passes),
                    H=self.H, T=self.T, V=self.V, dtype=str(self.dtype), corpus=self.source,
                    numpy=np.__version__, numba=numba.__version__,
                    cpu=platform.processor() or platform.machine())

    def oracle_weights(self):
        """The weights in float64 (a copy), for the oracle."""
        return self.spec.view(self.w.flat.astype(np.float64))

    def zero_state64(self):
        return np.zeros((1, 1, 1, self.H))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_train_iteration(benchmark, corpus, backend, H, T, dtype):
    """forward + backward + clip + Adagrad, CHUNKS_PER_CALL chunks per call. Checked first:
    two chunks' losses, and in float64 the state, parameters and Adagrad memory after them; in
    float32 those after one chunk (``checks.check_first_update`` says why)."""
    c = Case(corpus, H, T, dtype, backend)
    if dtype == "float32":
        check_first_update(c.kern, c.spec, c.w, ADAGRAD, c.state, c.data, 0.1, T, 1)
    losses = np.empty(2)
    w64, mem64 = c.oracle_weights(), c.spec.zeros(np.float64)
    expected, position, state64 = reference.train(w64, ADAGRAD, [mem64], c.data, 0,
                                                  c.zero_state64(), 0.1, T, 2)
    assert c.kern.train(c.w, c.g, ADAGRAD, c.mems, c.data, 0, c.state, 0.1, T, 0, losses,
                        1) == position
    check(losses, expected, dtype, "losses")
    if dtype == "float64":
        check(c.state, state64, dtype, "state")
        for (name, p), e in zip(c.spec.named(c.w).items(), c.spec.arrays(w64)):
            check(p, e, dtype, name)
        check(c.mems[0].flat, mem64.flat, dtype, "adagrad memory")
    losses = np.empty(CHUNKS_PER_CALL)
    run_state = {"pos": position, "step": 2}

    def run():
        run_state["pos"] = c.kern.train(c.w, c.g, ADAGRAD, c.mems, c.data, run_state["pos"],
                                        c.state, 0.1, T, run_state["step"], losses, 1)
        run_state["step"] += CHUNKS_PER_CALL

    benchmark.extra_info.update(c.info("train iteration", CHUNKS_PER_CALL * T))
    benchmark(run)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_forward(benchmark, corpus, backend, H, T, dtype):
    c = Case(corpus, H, T, dtype, backend)
    loss, hs, ps = c.kern.forward(c.w, c.x, c.y, c.state)
    loss_ref, (hs_ref, ps_ref) = reference.forward(c.oracle_weights(), c.x, c.y, c.zero_state64())
    check(loss, loss_ref, dtype, "loss")
    check(hs, hs_ref, dtype, "hs")
    check(ps, ps_ref, dtype, "ps")
    benchmark.extra_info.update(c.info("forward", T, passes=1))
    benchmark(c.kern.forward, c.w, c.x, c.y, c.state)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_backward(benchmark, corpus, backend, H, T, dtype):
    c = Case(corpus, H, T, dtype, backend)
    _, hs, ps = c.kern.forward(c.w, c.x, c.y, c.state)
    c.kern.backward(c.w, c.x, c.y, hs, ps, c.g)
    expected = reference.backward(c.oracle_weights(), c.x, c.y,
                                  (hs.astype(np.float64), ps.astype(np.float64)))
    for (name, g), e in zip(c.spec.named(c.g).items(), c.spec.arrays(expected)):
        check(g, e, dtype, "d" + name)
    benchmark.extra_info.update(c.info("backward", T, passes=2))
    benchmark(c.kern.backward, c.w, c.x, c.y, hs, ps, c.g)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_adagrad(benchmark, corpus, backend, H, T, dtype):
    c = Case(corpus, H, T, dtype, backend)
    rng = np.random.default_rng(0)
    c.g.flat[...] = rng.uniform(-5, 5, c.spec.size)
    mems = [m.flat for m in c.mems]
    expected_p, expected_m = c.w.flat.astype(np.float64), mems[0].astype(np.float64)
    reference.adagrad([expected_p], [c.g.flat.astype(np.float64)], [expected_m], 0.1)
    c.kern.update(ADAGRAD, c.w.flat, c.g.flat, mems, 0.1, 1, 0)
    for (name, p), e in zip(c.spec.named(c.w).items(), c.spec.arrays(c.spec.view(expected_p))):
        check(p, e, dtype, name)
    check(mems[0], expected_m, dtype, "memory")
    benchmark.extra_info.update(c.info("adagrad (all parameters)", None))
    benchmark(c.kern.update, ADAGRAD, c.w.flat, c.g.flat, mems, 1e-6, 1, False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H,T,dtype", CONFIGS)
def test_sample(benchmark, corpus, backend, H, T, dtype):
    c = Case(corpus, H, T, dtype, backend)
    n = 100
    uniforms = np.random.default_rng(0).random(n)
    ixes = np.empty(n, np.int64)
    state = c.state.copy()
    c.kern.sample(c.w, state, 0, uniforms, 1.0, False, ixes)
    expected, state64 = reference.sample(c.oracle_weights(), c.zero_state64(), 0, uniforms)
    # float32 too: the same ids. At the initial weights (scale 0.01) the probabilities are
    # near 1/V and the recurrence contractive, so float32 rounding (~1e-7) moves a draw only if
    # its uniform falls that close to a cumulative-probability boundary, which none of these
    # fixed 100 does (measured: every id equal, the state within 1e-8).
    first = next((i for i, (a, e) in enumerate(zip(ixes.tolist(), expected)) if a != e), None)
    assert first is None, (f"{dtype} sampled id {first} is {ixes[first]}, the oracle's "
                           f"{expected[first]}")
    check(state, state64, dtype, "state")
    benchmark.extra_info.update(c.info("sample (per call of 100)", n, passes=1))
    benchmark(c.kern.sample, c.w, c.state.copy(), 0, uniforms, 1.0, False, ixes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropin_python_loop(benchmark, corpus, backend):
    """min-char-rnn's loop body: lossFun + adagrad from Python, lists of ids as inputs."""
    vocab, data, source = corpus
    H, T, V = 100, 25, len(vocab)
    params = list(fastrnn.init_params(H, V, seed=0))
    mems = [np.zeros_like(p) for p in params]
    inputs, targets = data[:T].tolist(), data[1:T + 1].tolist()
    out = fastrnn.lossFun(inputs, targets, np.zeros((H, 1)), *params, backend=backend)
    expected = reference.loss_fun(inputs, targets, np.zeros((H, 1)), *params)
    for name, a, e in zip(("loss", "dWxh", "dWhh", "dWhy", "dbh", "dby", "h"), out, expected):
        check(a, e, "float64", name)
    names = ("Wxh", "Whh", "Why", "bh", "by")  # min-char-rnn's order
    grads = list(expected[1:6])
    updated, memories = [p.copy() for p in params], [m.copy() for m in mems]
    fastrnn.adagrad(updated, grads, memories, 0.1, backend=backend)
    oracle, oracle_mems = [p.copy() for p in params], [m.copy() for m in mems]
    reference.adagrad(oracle, grads, oracle_mems, 0.1)
    for name, a, e, m, em in zip(names, updated, oracle, memories, oracle_mems):
        check(a, e, "float64", f"adagrad's {name}")
        check(m, em, "float64", f"adagrad's memory of {name}")
    hprev = np.zeros((H, 1))

    def step():
        loss, dWxh, dWhh, dWhy, dbh, dby, h = fastrnn.lossFun(inputs, targets, hprev, *params,
                                                              backend=backend)
        fastrnn.adagrad(params, [dWxh, dWhh, dWhy, dbh, dby], mems, 0.1, backend=backend)

    benchmark.extra_info.update(dict(case=f"drop-in lossFun+adagrad H={H} T={T} float64",
                                     backend=backend, chars_per_call=T,
                                     flops_per_char=flops_per_char(H, V), corpus=source))
    benchmark(step)
