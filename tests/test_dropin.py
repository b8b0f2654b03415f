"""The min-char-rnn drop-in API: same results as the oracle, clear errors for bad arguments."""

import re

import numpy as np
import pytest

import fastrnn
from fastrnn import dropin, reference, validate
from tests.helpers import assert_close, random_chunk

NAMES = ("loss", "dWxh", "dWhh", "dWhy", "dbh", "dby", "h")


def random_model(rng, H, V, dtype, scale=0.1):
    """Random parameters in min-char-rnn's shapes (non-zero biases, so every term is tested)."""
    shapes = ((H, V), (H, H), (V, H), (H, 1), (V, 1))
    return tuple((rng.standard_normal(s) * scale).astype(dtype) for s in shapes)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_lossfun_matches_reference(backend, dtype):
    rng = np.random.default_rng(0)
    params = random_model(rng, 50, 20, dtype)
    inputs, targets = (a[0] for a in random_chunk(rng, 25, 20))
    hprev = (rng.standard_normal((50, 1)) * 0.3).astype(dtype)
    out = fastrnn.lossFun(list(inputs), targets, hprev, *params, backend=backend)
    expected = reference.loss_fun(inputs, targets, hprev.astype(np.float64),
                                  *(p.astype(np.float64) for p in params))
    for name, a, e in zip(NAMES, out, expected):
        if name != "loss":
            assert a.dtype == dtype and a.shape == e.shape, name
        assert_close(a, e, dtype, name)


def test_lossfun_gradients_take_the_parameters_shapes():
    # biases given as vectors (H,), (V,) get their gradients as vectors, so adagrad takes them
    rng = np.random.default_rng(1)
    Wxh, Whh, Why, bh, by = random_model(rng, 8, 5, np.float64)
    bh, by = bh.ravel().copy(), by.ravel().copy()
    out = fastrnn.lossFun([1, 2], [2, 3], np.zeros((8, 1)), Wxh, Whh, Why, bh, by)
    assert out[4].shape == (8,) and out[5].shape == (5,)
    params = [Wxh, Whh, Why, bh, by]
    fastrnn.adagrad(params, list(out[1:6]), [np.zeros_like(p) for p in params], 0.1)
    # an hprev given as (H,) is taken as (H, 1) (README); the state returned is (H, 1)
    h = rng.standard_normal(8) * 0.1
    flat = fastrnn.lossFun([1, 2], [2, 3], h, *params)
    column = fastrnn.lossFun([1, 2], [2, 3], h.reshape(8, 1), *params)
    assert flat[6].shape == (8, 1)
    for a, b in zip(flat, column):
        np.testing.assert_array_equal(a, b)


def test_lossfun_returns_fresh_arrays_each_call():
    rng = np.random.default_rng(1)
    params = random_model(rng, 8, 5, np.float64)
    first = fastrnn.lossFun([1, 2], [2, 3], np.zeros((8, 1)), *params)
    kept = [a.copy() for a in first[1:]]
    fastrnn.lossFun([4, 0, 1], [0, 1, 2], np.ones((8, 1)), *params)
    for a, b in zip(first[1:], kept):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_adagrad_in_place_matches_reference(backend):
    rng = np.random.default_rng(2)
    params = [p for p in random_model(rng, 10, 6, np.float64)]
    grads = [rng.standard_normal(p.shape) for p in params]
    mems = [rng.random(p.shape) for p in params]
    exp_p, exp_m = [p.copy() for p in params], [m.copy() for m in mems]
    reference.adagrad(exp_p, grads, exp_m, 0.1)
    fastrnn.adagrad(params, grads, mems, 0.1, backend=backend)
    for a, e in zip(params + mems, exp_p + exp_m):
        assert_close(a, e, np.float64, "adagrad")


def test_min_char_rnn_loop_is_the_same_with_either_backend(text):
    """min-char-rnn's main loop, unchanged except for the two calls."""
    chars = sorted(set(text))
    ix = {c: i for i, c in enumerate(chars)}
    V, H, T, lr = len(chars), 16, 25, 0.1  # (larger H at lr=0.1 is chaotic: see test_kernels)
    runs = {}
    for backend in ("numpy", "numba"):
        Wxh, Whh, Why, bh, by = fastrnn.init_params(H, V, seed=3)
        mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
        mbh, mby = np.zeros_like(bh), np.zeros_like(by)
        p, hprev, losses = 0, np.zeros((H, 1)), []
        for n in range(40):
            if p + T + 1 >= len(text) or n == 0:
                hprev, p = np.zeros((H, 1)), 0
            inputs = [ix[ch] for ch in text[p:p + T]]
            targets = [ix[ch] for ch in text[p + 1:p + T + 1]]
            loss, dWxh, dWhh, dWhy, dbh, dby, hprev = fastrnn.lossFun(
                inputs, targets, hprev, Wxh, Whh, Why, bh, by, backend=backend)
            fastrnn.adagrad([Wxh, Whh, Why, bh, by], [dWxh, dWhh, dWhy, dbh, dby],
                            [mWxh, mWhh, mWhy, mbh, mby], lr, backend=backend)
            losses.append(loss)
            p += T
        runs[backend] = (losses, Whh)
    assert_close(runs["numba"][0], runs["numpy"][0], np.float64, "losses")
    assert_close(runs["numba"][1], runs["numpy"][1], np.float64, "Whh")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_sample_is_reproducible_and_the_same_on_every_backend(backend):
    rng = np.random.default_rng(4)
    params = random_model(rng, 40, 12, np.float64, scale=0.05)
    h = rng.standard_normal((40, 1)) * 0.1
    h_before = h.copy()
    ours = dropin.sample(h, 3, 200, *params, rng=np.random.default_rng(9), backend=backend)
    again = dropin.sample(h, 3, 200, *params, rng=np.random.default_rng(9), backend=backend)
    expected, _ = reference.sample(reference.weights(*params), h.reshape(1, 1, 1, -1), 3,
                                   np.random.default_rng(9).random(200))
    assert ours == again == expected
    np.testing.assert_array_equal(h, h_before)
    assert dropin.sample(h, 3, 0, *params) == []


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_sample_at_a_vanishing_temperature_is_greedy(backend):
    # logits / 1e-320 overflow float64: the text must be the greedy one, not NaN's choice
    rng = np.random.default_rng(4)
    params = random_model(rng, 40, 12, np.float64, scale=0.05)
    h = rng.standard_normal((40, 1)) * 0.1
    greedy = dropin.sample(h, 3, 50, *params, greedy=True, backend=backend)
    assert dropin.sample(h, 3, 50, *params, rng=np.random.default_rng(9), temperature=1e-320,
                         backend=backend) == greedy
    assert len(set(greedy)) > 1  # (a text, not one character repeated)


def good_args():
    rng = np.random.default_rng(5)
    params = list(random_model(rng, 6, 4, np.float64))
    return [[0, 1, 2], [1, 2, 3], np.zeros((6, 1))] + params


# (argument index, bad value, words the message must contain)
BAD_LOSSFUN_ARGS = [
    (3, np.zeros((6, 5)), "Wxh has shape"),                      # not used: see below
    (4, np.zeros((5, 6)), "Whh has shape (5, 6), expected (6, 6)"),
    (5, np.zeros((4, 7)), "Why has shape (4, 7), expected (4, 6)"),
    (6, np.zeros((7, 1)), "bh has shape (7, 1), expected (6, 1)"),
    (7, np.zeros((4, 2)), "by has shape (4, 2), expected (4, 1)"),
    # (a Wxh of 5 characters, not 4: "Why has shape (4, 6), expected (5, 6)" named only Why)
    (3, np.zeros((6, 5)), "Why has shape (4, 6), expected (5, 6): hidden_size 6 and vocab_size "
                          "5, as Wxh's shape (6, 5) says"),
    (2, np.zeros((5, 1)), "hprev has shape (5, 1), expected (6, 1)"),
    (4, np.zeros((6, 6), np.float32), "Whh has dtype float32 but the other parameters are float64"),
    (3, np.zeros((6, 4), np.float32), "Wxh has dtype float32 but the other parameters are float64"),
    (2, np.zeros((6, 1), np.float32), "hprev has dtype float32"),
    (3, np.zeros((6, 4), np.int64), "Wxh has dtype int64"),
    (4, np.zeros((6, 12))[:, ::2], "Whh is not C-contiguous"),
    # (Wxh.T: named transposed, not "not C-contiguous", which fixed led to "Whh has shape")
    (3, np.zeros((4, 6)), "Wxh has shape (4, 6), expected (6, 4), as the other parameters say "
                          "(hidden_size 6, vocab_size 4): a transposed Wxh?"),
    (3, np.zeros((6, 4)).T, "Wxh has shape (4, 6), expected (6, 4), as the other"),
    (5, [[0.0] * 6] * 4, "Why must be a NumPy array"),
    (4, np.zeros((6, 6)).view(np.matrix), "Whh is a numpy.matrix: pass np.asarray(Whh), an array"),
    (2, np.zeros((6, 1)).view(np.matrix), "hprev is a numpy.matrix: pass np.asarray(hprev)"),
    (0, [0, 4, 1], "inputs holds id 4, outside the vocabulary [0, 4)"),
    (1, [0, -1, 1], "targets holds id -1"),
    (0, [], "inputs is empty"),
    (0, [0.5, 1, 2], "inputs must hold integer character ids"),
    (0, np.array([[0, 1, 2]]), "inputs must be one-dimensional"),
    (1, [1, 2], "inputs has 3 ids but targets has 2"),
]


@pytest.mark.parametrize("index,value,message", BAD_LOSSFUN_ARGS[1:])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_lossfun_rejects_bad_arguments_clearly(backend, index, value, message):
    args = good_args()
    args[index] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        fastrnn.lossFun(*args, backend=backend)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_lossfun_checks_the_memory_a_chunk_needs(backend, monkeypatch):
    """(a chunk of 10**8 characters at H = 100 was NumPy's MemoryError from inside)"""
    inputs, targets, *rest = good_args()
    monkeypatch.setattr(validate, "LARGE", 0)
    monkeypatch.setattr(validate, "available_memory", lambda: 100 * 2 * (6 + 4) * 8 - 1)
    with pytest.raises(validate.NotEnoughMemory, match="a chunk of 100 characters needs about"):
        fastrnn.lossFun([0] * 100, [1] * 100, *rest, backend=backend)
    assert np.isfinite(fastrnn.lossFun([0] * 99, [1] * 99, *rest, backend=backend)[0])


def test_the_array_of_the_odd_dtype_is_named():
    """The first array's dtype was taken for the parameters': Whh was named when Wxh was the
    odd one; with two of five in another dtype, one of them is named, against most."""
    args = good_args()
    args[3], args[4] = args[3].astype(np.float32), args[4].astype(np.float32)
    with pytest.raises(ValueError, match="Wxh has dtype float32 but most of the parameters are "
                                         "float64: use one dtype for every array"):
        fastrnn.lossFun(*args)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        fastrnn.lossFun(*good_args(), backend="fortran")


def test_adagrad_rejects_bad_arguments_clearly():
    w, g, m = np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2))
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        fastrnn.adagrad([w], [g], [m], 0.0)
    with pytest.raises(ValueError, match=r"params\[0\] has shape \(3, 2\) but its gradient has \(2, 3\)"):
        fastrnn.adagrad([w], [np.zeros((2, 3))], [m], 0.1)
    with pytest.raises(ValueError, match="as many gradients and memories"):
        fastrnn.adagrad([w, w], [g], [m], 0.1)
    with pytest.raises(ValueError, match=r"mems\[0\] has dtype float32"):
        fastrnn.adagrad([w], [g], [m.astype(np.float32)], 0.1)
    with pytest.raises(ValueError, match="learning_rate 1e\\+300 is infinite in float32"):
        fastrnn.adagrad([w.astype(np.float32)], [g.astype(np.float32)],
                        [m.astype(np.float32)], 1e300)
    with pytest.raises(ValueError, match=r"params\[0\] is a numpy.matrix"):
        fastrnn.adagrad([w.view(np.matrix)], [g], [m], 0.1)
    # one dtype: the learning rate is checked in the first's (1e-50 would move no float32)
    with pytest.raises(ValueError, match=r"params\[1\] has dtype float32 but the parameters "
                                         r"are float64: use one dtype for every array"):
        fastrnn.adagrad([w, w.astype(np.float32)], [g, g.astype(np.float32)],
                        [m, m.astype(np.float32)], 1e-50)
    # one array given for two of a parameter's (the backends disagreed, or it went NaN)
    for grads, mems, names in (([g], [g], "grads.0. and mems.0."), ([g], [w], "params.0. and "
                                                                              "mems.0."),
                               ([w[:2]], [m[:2]], "params.0. and grads.0.")):
        params = [w[:2]] if names.startswith("params.0. and grads") else [w]
        with pytest.raises(ValueError, match=f"^{names} share memory: adagrad updates "
                                             f"params.0. and mems.0. in place from grads.0., "
                                             f"each an array of its own$"):
            fastrnn.adagrad(params, grads, mems, 0.1)
    w.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        fastrnn.adagrad([w], [g], [m], 0.1)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_adagrad_reads_a_read_only_gradient(backend):
    g = np.frombuffer(np.full(3, 0.5).tobytes())  # (a read-only buffer: numba's typing refused it)
    w, m = np.ones(3), np.zeros(3)
    fastrnn.adagrad([w], [g], [m], 0.1, backend=backend)
    np.testing.assert_allclose(w, 1 - 0.1 * 0.5 / np.sqrt(0.25 + 1e-8))
    np.testing.assert_array_equal(m, 0.25)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adagrad_with_an_overflowed_memory_moves_nothing_on_every_backend(dtype):
    """A memory that has overflowed to inf: g / sqrt(inf) is 0, the parameter stays (numba's
    float32 update made it NaN, numpy's kept it)."""
    huge = np.finfo(dtype).max ** 0.5 * 2  # (its square overflows)
    results = []
    for backend in ("numpy", "numba"):
        w, m = np.ones(19, dtype), np.full(19, np.inf, dtype)
        g = np.linspace(-5, 5, 19).astype(dtype)
        m[-2:], g[-2:] = 0, (huge, 1)
        with np.errstate(over="ignore"):
            fastrnn.adagrad([w], [g], [m], 0.1, backend=backend)
        results.append((w, m))
    for w, m in results:
        assert (w[:-2] == 1).all() and w[-2] == 1 and np.isinf(m[:-1]).all()
    np.testing.assert_array_equal(results[0][0], results[1][0])


def test_sample_rejects_bad_arguments_clearly():
    _, _, h, *params = good_args()
    with pytest.raises(ValueError, match=r"seed_ix must be a character id in \[0, 4\)"):
        dropin.sample(h, 4, 5, *params)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        dropin.sample(h, 0, -1, *params)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        dropin.sample(h, 0, 5, *params, temperature=0)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        dropin.sample(h, 0, 5, *params, rng=42)
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match=r"^greedy=True takes the most likely character: "
                                         r"temperature=0.5 would change nothing \(drop it, or "):
        dropin.sample(h, 0, 5, *params, rng=rng, greedy=True, temperature=0.5)
    assert rng.random() == np.random.default_rng(3).random()  # (refused before drawing)
    assert dropin.sample(h, 0, 5, *params, greedy=True, temperature=1) == \
        dropin.sample(h, 0, 5, *params, greedy=True)
    with pytest.raises(ValueError, match=r"h is a numpy.matrix: pass np.asarray\(h\)"):
        dropin.sample(h.view(np.matrix), 0, 5, *params)
    with pytest.raises(ValueError, match="sampling 1,000,000,000,000,000 characters needs"):
        dropin.sample(h, 0, 10 ** 15, *params)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_sampling_from_nan_is_refused(backend):
    """(it returned the last character again and again)"""
    _, _, h, *params = good_args()
    for k, name in enumerate(("Wxh", "Whh", "Why", "bh", "by")):
        bad = list(params)
        bad[k] = np.full_like(bad[k], np.nan)
        with pytest.raises(ValueError, match=f"{name} holds NaN or infinite values"):
            dropin.sample(h, 0, 5, *bad, backend=backend)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="h holds NaN or infinite values"):
        dropin.sample(np.full_like(h, np.inf), 0, 5, *params, backend=backend, rng=rng)
    assert rng.random() == np.random.default_rng(0).random()  # (a refused call drew nothing)


def test_the_numpy_backends_lossfun_has_no_numpy_warnings_on_inf():
    import warnings
    inputs, targets, h, Wxh, Whh, Why, bh, by = good_args()
    Why = np.full_like(Why, np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = fastrnn.lossFun(inputs, targets, h, Wxh, Whh, Why, bh, by, backend="numpy")[0]
    assert not np.isfinite(loss)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_init_params_are_the_models_initial_weights_in_min_char_rnn_shapes(dtype):
    H, V = 7, 5
    params = fastrnn.init_params(H, V, seed=11, dtype=dtype)
    model = fastrnn.CharRNN(V, hidden_size=H, seed=11, dtype=dtype)
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    for name, a in zip(("Wxh", "Whh", "Why", "bh", "by"), params):
        assert a.shape == shapes[name] and a.dtype == dtype, name
        np.testing.assert_array_equal(a.reshape(model.params[name].shape), model.params[name],
                                      err_msg=name)
        assert not np.shares_memory(a, model.weights.flat), name
    assert not params[3].any() and not params[4].any()  # biases start at 0, as min-char-rnn's
    for dtype, named in ((np.float16, "float16"), ("floot", "'floot'")):  # (numpy's TypeError)
        with pytest.raises(ValueError, match=f"dtype must be float32 or float64, got "
                                             f"{re.escape(named)}$"):
            fastrnn.init_params(H, V, dtype=dtype)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        fastrnn.init_params(0, V)  # (not zero-size arrays that fail at the first lossFun)
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 2, got 2.5"):
        fastrnn.init_params(H, 2.5)
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 2, got 1"):
        fastrnn.init_params(H, 1)  # (lossFun and sample refuse one character)


def test_the_package_exports_the_drop_in_functions():
    assert fastrnn.lossFun is dropin.lossFun
    assert fastrnn.adagrad is dropin.adagrad
    assert fastrnn.init_params is dropin.init_params
