"""Every kernel equal to the oracle: forward, backward (clipped), Adagrad, sampling, training."""

import numpy as np
import pytest

from fastrnn import reference
from fastrnn.backends import evaluate_workspace, get_backend, sample_workspace, workspace
from fastrnn.params import init_params, kernel_view
from tests.helpers import assert_close, random_chunk, random_model

BACKENDS = ["numba", "numpy"]
DTYPES = [np.float64, np.float32]
NAMES = ("dWxh", "dWhh", "dWhy", "dbh", "dby")

# Edge sizes (H=1, V=2, T=1, T=200, H not a multiple of the SIMD width) plus random shapes.
EDGE_SHAPES = [(1, 2, 1), (1, 2, 9), (2, 3, 1), (3, 2, 200), (37, 11, 200), (100, 65, 25),
               (64, 8, 5), (33, 67, 3)]
RANDOM_SHAPES = [tuple(int(x) for x in np.random.default_rng(s).integers((1, 2, 1), (80, 90, 60)))
                 for s in range(12)]
SHAPES = EDGE_SHAPES + RANDOM_SHAPES


def problem(H, V, T, dtype, seed=0, scale=0.1):
    rng = np.random.default_rng([H, V, T, seed])
    params = random_model(rng, H, V, dtype, scale)
    inputs, targets = random_chunk(rng, T, V)
    hprev = (rng.standard_normal((H, 1)) * 0.5).astype(dtype)
    return params, inputs, targets, hprev


def as64(arrays):
    return tuple(np.asarray(a, np.float64) for a in arrays)


def run_forward(kern, params, inputs, targets, hprev):
    H, V = params[0].shape
    hs, ps, *_ = workspace(len(inputs), H, V, params[0].dtype)
    loss = kern.forward(inputs, targets, hprev.reshape(-1), kernel_view(params), hs, ps)
    return loss, hs, ps


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,V,T", SHAPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_backward_match_reference(backend, H, V, T, dtype):
    params, inputs, targets, hprev = problem(H, V, T, dtype, scale=0.5 if T < 5 else 0.1)
    kern = get_backend(backend)
    loss, hs, ps = run_forward(kern, params, inputs, targets, hprev)
    loss_ref, hs_ref, ps_ref = reference.forward(inputs, targets, *as64((hprev,) + params))
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(hs, hs_ref, dtype, "hs")
    assert_close(ps, ps_ref, dtype, "ps")

    grads = tuple(np.full_like(p, np.nan) for p in params)  # poisoned: every element must be written
    _, _, dys, dhs, dh_next = workspace(T, H, V, dtype)
    kern.backward(inputs, targets, hs, ps, kernel_view(params), kernel_view(grads), (dys, dhs, dh_next))
    expected = reference.backward(inputs, targets, hs_ref, ps_ref, *as64(params[:3]))
    for name, g, e in zip(NAMES, grads, expected):
        assert g.dtype == dtype, name
        assert_close(g, e, dtype, name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_clips_to_five(backend):
    params, inputs, targets, hprev = problem(30, 7, 40, np.float64, scale=1.0)
    kern = get_backend(backend)
    _, hs, ps = run_forward(kern, params, inputs, targets, hprev)
    grads = tuple(np.empty_like(p) for p in params)
    kern.backward(inputs, targets, hs, ps, kernel_view(params), kernel_view(grads),
                  workspace(40, 30, 7, np.float64)[2:])
    unclipped = reference.backward(inputs, targets, hs, ps, *params[:3], clip=None)
    assert max(np.abs(g).max() for g in unclipped) > 5, "the test must exceed the clip bound"
    for name, g, e in zip(NAMES, grads, unclipped):
        assert_close(g, np.clip(e, -5, 5), np.float64, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 64, 1000, 16513])
@pytest.mark.parametrize("backend", BACKENDS)
def test_adagrad_matches_reference(backend, n, dtype):
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(dtype)
    g = np.clip(rng.standard_normal(n) * 3, -5, 5).astype(dtype)
    g[::5] = 0  # untouched entries must stay exactly as they are
    m = (rng.random(n) * 10 ** rng.uniform(-12, 2, n)).astype(dtype)
    w_ref, g_ref, m_ref = (w.copy(), g.copy(), m.copy()) if dtype == np.float64 else as64((w, g, m))
    get_backend(backend).adagrad_update(w, g, m, 0.1)
    reference.adagrad([w_ref], [g_ref], [m_ref], 0.1)
    assert_close(m, m_ref, dtype, "memory")
    assert_close(w, w_ref, dtype, "weights")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_adagrad_of_all_parameters(backend, dtype):
    params, *_ = problem(13, 6, 1, dtype)
    rng = np.random.default_rng(1)
    grads = tuple(rng.standard_normal(p.shape).astype(dtype) for p in params)
    mems = tuple(rng.random(p.shape).astype(dtype) for p in params)
    expected_p, expected_m = list(as64(params)), list(as64(mems))
    reference.adagrad(expected_p, as64(grads), expected_m, 0.05)
    get_backend(backend).adagrad(kernel_view(params), kernel_view(grads), kernel_view(mems), 0.05)
    for name, a, e in zip(("Wxh", "Whh", "Why", "bh", "by"), params + mems, expected_p + expected_m):
        assert_close(a, e, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature,greedy", [(1.0, False), (0.6, False), (1.7, False), (1.0, True)])
@pytest.mark.parametrize("H,V", [(1, 2), (30, 11), (100, 65)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_matches_reference(backend, H, V, temperature, greedy, dtype):
    # Small weights keep the recurrence contractive: in a chaotic one, rounding differences
    # between any two implementations grow until a draw lands on the other side of a boundary.
    params, _, _, h0 = problem(H, V, 1, dtype, scale=0.05)
    n = 300
    uniforms = np.random.default_rng(H).random(n)
    h = h0.reshape(-1).copy()
    ixes = np.full(n, -1, np.int64)
    get_backend(backend).sample(h, 1, uniforms, kernel_view(params), temperature, greedy, ixes,
                                sample_workspace(H, V, dtype))
    expected, h_ref = reference.sample(*as64((h0,)), 1, uniforms, *as64(params),
                                       temperature=temperature, greedy=greedy)
    if dtype == np.float64:
        assert ixes.tolist() == expected
        assert_close(h, h_ref[:, 0], dtype, "h")
    else:  # float32 probabilities may move a draw that falls within rounding of a boundary
        agree = np.mean(ixes == np.array(expected))
        assert agree > 0.9, f"only {agree:.0%} of float32 draws agree with the float64 oracle"


def encoded(text, n):
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    return np.array([index[c] for c in text[:n]], np.uint8), len(chars)


def run_train(backend, data, V, H, T, lr, n_steps, dtype, seed=1, state=None):
    """n_steps of the fused training kernel; returns (losses, params, mems, h, position)."""
    params, mems, h, pos = state or (init_params(H, V, seed, dtype), None, np.zeros(H, dtype), 0)
    params = tuple(p.copy() for p in params)
    mems = tuple(np.zeros_like(p) for p in params) if mems is None else tuple(m.copy() for m in mems)
    h = h.copy()
    losses = np.empty(n_steps)
    grads = tuple(np.empty_like(p) for p in params)
    pos = get_backend(backend).train(data, pos, h, kernel_view(params), kernel_view(grads),
                                     kernel_view(mems), lr, T, losses, workspace(T, H, len(params[4]), dtype))
    return losses, params, mems, h, pos


@pytest.mark.parametrize("H,lr,n_chars", [(100, 0.01, 20_000), (16, 0.1, 20_000), (24, 0.01, 600)])
def test_training_trajectory_matches_reference(text, H, lr, n_chars):
    """A free-running multi-step trajectory on real text: losses and final parameters.

    (600 characters make the position wrap around, resetting h, every 23 chunks.)
    """
    data, V = encoded(text, n_chars)
    T, n = 25, 300
    params = init_params(H, V, 1)
    mems = tuple(np.zeros_like(p) for p in params)
    expected_params, expected_mems = [p.copy() for p in params], [m.copy() for m in mems]
    losses_ref, pos_ref, h_ref = reference.train(data, 0, np.zeros((H, 1)), expected_params,
                                                 expected_mems, lr, T, n)
    losses, params, mems, h, pos = run_train("numba", data, V, H, T, lr, n, np.float64)
    assert pos == pos_ref
    assert_close(losses, losses_ref, np.float64, "losses")
    assert_close(h, h_ref[:, 0], np.float64, "h")
    for name, a, e in zip(("Wxh", "Whh", "Why", "bh", "by"), params, expected_params):
        assert_close(a, e, np.float64, name)
    for name, a, e in zip(("mWxh", "mWhh", "mWhy", "mbh", "mby"), mems, expected_mems):
        assert_close(a, e, np.float64, name)


def test_every_step_of_default_training_matches_reference(text):
    """min-char-rnn's defaults (H=100, lr=0.1) amplify rounding differences by orders of
    magnitude per step early on (Adagrad's first steps are ~lr*sign(g)), so two correct
    implementations drift apart after ~10 free-running steps. Here each step starts from the
    oracle's state and must reproduce the oracle's next state."""
    data, V = encoded(text, 50_000)
    H, T, lr = 100, 25, 0.1
    params = [p.copy() for p in init_params(H, V, 1)]
    mems = [np.zeros_like(p) for p in params]
    h, pos = np.zeros((H, 1)), 0
    for step in range(60):
        losses, k_params, k_mems, k_h, k_pos = run_train(
            "numba", data, V, H, T, lr, 1, np.float64, state=(params, mems, h[:, 0], pos))
        (loss,), pos, h = reference.train(data, pos, h, params, mems, lr, T, 1)
        assert k_pos == pos
        assert_close(losses[0], loss, np.float64, f"loss at step {step}")
        assert_close(k_h, h[:, 0], np.float64, f"h at step {step}")
        for name, a, e in zip(("Wxh", "Whh", "Why", "bh", "by"), k_params + k_mems, params + mems):
            assert_close(a, e, np.float64, f"{name} at step {step}")


def test_float32_training_follows_float64_reference(text):
    data, V = encoded(text, 20_000)
    H, T, lr, n = 32, 25, 0.05, 100
    losses, *_ = run_train("numba", data, V, H, T, lr, n, np.float32)
    expected, *_ = reference.train(data, 0, np.zeros((H, 1)), [p.copy() for p in init_params(H, V, 1)],
                                   [np.zeros_like(p) for p in init_params(H, V, 1)], lr, T, n)
    np.testing.assert_allclose(losses, expected, rtol=1e-3)
    assert losses[-20:].mean() < losses[:20].mean() - 10, "the model did not learn"


@pytest.mark.parametrize("which", range(6))
@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_anywhere_gives_a_nan_loss(backend, which):
    params, inputs, targets, hprev = problem(20, 9, 10, np.float64)
    arrays = params + (hprev,)
    arrays[which][-1, 0] = np.nan
    inputs[:] = 0  # so that column 0 of Wxh, poisoned when which == 0, is read
    loss, _, _ = run_forward(get_backend(backend), params, inputs, targets, hprev)
    assert np.isnan(loss)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("backend", BACKENDS)
def test_infinite_logit_gives_a_non_finite_loss(backend):
    params, inputs, targets, hprev = problem(20, 9, 10, np.float64)
    params[4][2, 0] = np.inf
    loss, _, _ = run_forward(get_backend(backend), params, inputs, targets, hprev)
    assert not np.isfinite(loss)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,V,n,L", [(1, 2, 2, 1), (7, 5, 50, 8), (37, 11, 300, 64),
                                     (100, 65, 1001, 256), (16, 300, 120, 256)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_matches_reference(backend, H, V, n, L, dtype):
    rng = np.random.default_rng([H, V, n])
    params = random_model(rng, H, V, dtype, min(0.3, 0.5 / np.sqrt(H)))  # contractive: errors stay ulps
    data = rng.integers(0, V, n).astype(np.uint16 if V > 256 else np.uint8)
    hprev = (rng.standard_normal((H, 1)) * 0.5).astype(dtype)
    loss_ref, h_ref = reference.evaluate(data, *as64((hprev,) + params))
    h = hprev.reshape(-1).copy()
    hs, ps = evaluate_workspace(L, H, V, dtype)
    hs[:], ps[:] = np.nan, np.nan
    loss = get_backend(backend).evaluate(data, h, kernel_view(params), (hs, ps))
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(h, h_ref[:, 0], dtype, "h")
