"""The oracle itself: a finite-difference gradient check and min-char-rnn's published code."""

import numpy as np
import pytest

from fastrnn import reference
from tests.helpers import random_chunk, random_model


def total_loss(inputs, targets, hprev, params):
    return reference.forward(inputs, targets, hprev, *params)[0]


@pytest.mark.parametrize("H,V,T,seed", [(5, 4, 6, 0), (3, 7, 1, 1), (8, 2, 12, 2), (1, 3, 4, 3)])
def test_backward_matches_central_differences(H, V, T, seed):
    rng = np.random.default_rng(seed)
    params = random_model(rng, H, V, np.float64, scale=0.5)
    inputs, targets = random_chunk(rng, T, V)
    hprev = rng.standard_normal((H, 1)) * 0.5
    _, hs, ps = reference.forward(inputs, targets, hprev, *params)
    grads = reference.backward(inputs, targets, hs, ps, *params[:3], clip=None)
    eps = 1e-6
    for name, p, g in zip(("Wxh", "Whh", "Why", "bh", "by"), params, grads):
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = total_loss(inputs, targets, hprev, params)
            p[idx] = old - eps
            down = total_loss(inputs, targets, hprev, params)
            p[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def min_char_rnn_lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by):
    """Karpathy's min-char-rnn lossFun, transcribed (one-hot column vectors, dicts, np.dot)."""
    vocab_size = Wxh.shape[1]
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


@pytest.mark.parametrize("scale", [0.01, 1.0])  # 1.0 saturates and exercises clipping
def test_loss_fun_matches_min_char_rnn(scale):
    rng = np.random.default_rng(7)
    H, V, T = 20, 11, 25
    params = random_model(rng, H, V, np.float64, scale=scale)
    inputs, targets = random_chunk(rng, T, V)
    hprev = rng.standard_normal((H, 1)) * 0.3
    ours = reference.loss_fun(inputs, targets, hprev, *params)
    theirs = min_char_rnn_lossFun(inputs, targets, hprev, *params)
    if scale == 1.0:
        assert any(np.abs(g).max() == 5.0 for g in ours[1:6]), "clipping was not exercised"
    for name, a, b in zip(("loss", "dWxh", "dWhh", "dWhy", "dbh", "dby", "h"), ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=name)


def test_adagrad_matches_min_char_rnn():
    rng = np.random.default_rng(3)
    params = [rng.standard_normal((4, 3)), rng.standard_normal((4, 1))]
    grads = [rng.standard_normal(p.shape) for p in params]
    mems = [rng.random(p.shape) for p in params]
    expected = []
    for p, g, m in zip(params, grads, mems):
        m2 = m + g * g
        expected.append((p + -0.1 * g / np.sqrt(m2 + 1e-8), m2))
    reference.adagrad(params, grads, mems, 0.1)
    for (p_exp, m_exp), p, m in zip(expected, params, mems):
        np.testing.assert_array_equal(p, p_exp)
        np.testing.assert_array_equal(m, m_exp)


def test_choose_is_numpy_random_choice_with_the_same_uniform():
    rng = np.random.default_rng(11)
    for seed in range(200):
        p = rng.dirichlet(np.ones(9) * 0.5)
        expected = np.random.RandomState(seed).choice(9, p=p)
        u = np.random.RandomState(seed).random_sample()
        assert reference.choose(p, u) == expected


def test_sample_greedy_follows_the_argmax_and_leaves_h_alone():
    rng = np.random.default_rng(5)
    H, V = 16, 6
    params = random_model(rng, H, V, np.float64, scale=0.8)
    h0 = rng.standard_normal((H, 1))
    ixes, h_last = reference.sample(h0, 2, np.full(10, 0.5), *params, greedy=True)
    h, ix = h0[:, 0], 2
    for got in ixes:
        h = np.tanh(params[0][:, ix] + params[1] @ h + params[3][:, 0])
        ix = int(np.argmax(params[2] @ h + params[4][:, 0]))
        assert got == ix
    np.testing.assert_allclose(h_last[:, 0], h)


def test_low_temperature_tends_to_greedy_and_high_to_uniform():
    rng = np.random.default_rng(9)
    H, V = 12, 5
    params = random_model(rng, H, V, np.float64, scale=1.0)
    h0 = np.zeros((H, 1))
    u = rng.random(300)
    greedy, _ = reference.sample(h0, 0, u, *params, greedy=True)
    cold, _ = reference.sample(h0, 0, u, *params, temperature=1e-3)
    assert cold == greedy
    hot, _ = reference.sample(h0, 0, u, *params, temperature=1e3)
    counts = np.bincount(hot, minlength=V)
    assert counts.min() > 30  # near-uniform over 5 characters (expected 60 each)


def test_evaluate_is_the_loss_of_one_long_forward_pass():
    rng = np.random.default_rng(5)
    params = random_model(rng, 12, 7, np.float64, 0.4)
    data = rng.integers(0, 7, 230)
    hprev = rng.standard_normal((12, 1)) * 0.3
    whole, hs, _ = reference.forward(data[:-1], data[1:], hprev, *params)
    for chunk in (1, 7, 100, 229, 500):
        loss, h = reference.evaluate(data, hprev, *params, chunk=chunk)
        np.testing.assert_allclose(loss, whole, rtol=1e-12, err_msg=f"chunk={chunk}")
        np.testing.assert_allclose(h[:, 0], hs[-1], rtol=1e-12, err_msg=f"chunk={chunk}")
    loss, h = reference.evaluate(data[:1], hprev, *params)
    assert loss == 0.0 and np.array_equal(h, hprev)  # one character: nothing to predict
