"""The oracle itself: a finite-difference gradient check (one and two layers), min-char-rnn's
published code (its lossFun, its Adagrad, its training loop) and sampling and evaluation."""

import math

import numpy as np
import pytest

from fastrnn import optim, reference
from fastrnn.spec import Spec
from tests.helpers import random_chunk, random_weights


def gradient_check(H, V, T, seed, num_layers, B, cell="rnn", dropout=0.0):
    """reference.backward(clip=None) against central differences of reference.forward's loss,
    for every parameter (perturbed through the flat buffer its named tensors view); with
    ``dropout``, for one fixed draw of the masks (the loss is a function of the parameters
    for given masks, and backward must follow the same masks)."""
    rng = np.random.default_rng(seed)
    spec = Spec(cell, V, H, num_layers)
    w = random_weights(rng, H, V, np.float64, scale=0.5, num_layers=num_layers, cell=cell)
    x, y = random_chunk(rng, T, V, B)
    state = rng.standard_normal((num_layers, len(spec.cell.STATES), B, H)) * 0.5
    masks = None
    if dropout:
        masks = reference.dropout_masks(rng, dropout, (num_layers - 1, T, B, H), np.float64)
        assert 0 < (masks == 0).mean() < 1
    _, cache = reference.forward(w, x, y, state, masks)
    grads = reference.backward(w, x, y, cache, clip=None, masks=masks)
    eps = 1e-6
    numeric = spec.zeros(np.float64)
    for i in range(spec.size):
        old = w.flat[i]
        w.flat[i] = old + eps
        up = reference.forward(w, x, y, state, masks)[0]
        w.flat[i] = old - eps
        down = reference.forward(w, x, y, state, masks)[0]
        w.flat[i] = old
        numeric.flat[i] = (up - down) / (2 * eps)
    assert np.abs(numeric.flat).max() > 1e-3, "the loss must depend on the parameters"
    for (name, g), n in zip(spec.named(grads).items(), spec.arrays(numeric)):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("H,V,T,seed,B", [(5, 4, 6, 0, 1), (3, 7, 1, 1, 1), (8, 2, 12, 2, 1),
                                          (1, 3, 4, 3, 1), (4, 5, 5, 4, 3)])
def test_backward_matches_central_differences(H, V, T, seed, B):
    gradient_check(H, V, T, seed, num_layers=1, B=B)


@pytest.mark.parametrize("H,V,T,seed,B", [(4, 3, 5, 0, 1), (3, 6, 1, 1, 1), (1, 2, 4, 2, 1),
                                          (5, 4, 6, 3, 2)])
def test_two_layer_backward_matches_central_differences(H, V, T, seed, B):
    """The second layer reads the first's output: its Wxh is (H, H), and the first layer's
    gradient arrives through it as well as through its own recurrence."""
    gradient_check(H, V, T, seed, num_layers=2, B=B)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("H,V,T,seed,B,L", [(5, 4, 6, 0, 1, 1), (3, 7, 1, 1, 1, 1),
                                            (1, 3, 4, 3, 1, 1), (4, 5, 5, 4, 3, 1),
                                            (4, 3, 5, 0, 1, 2), (3, 4, 4, 5, 2, 3)])
def test_gated_cells_backward_matches_central_differences(cell, H, V, T, seed, B, L):
    """LSTM (state h and c: the gradient reaches c_{t-1} through the forget gate) and GRU (the
    reset gate scales Whh_n h + bhn), one to three layers."""
    gradient_check(H, V, T, seed, num_layers=L, B=B, cell=cell)


def _sigmoid(a):
    return 1 / (1 + math.exp(-a))


def _pytorch_step(cell, weight_ih, weight_hh, bias_ih, bias_hh, x, h, c):
    """One step of one stream as PyTorch's nn.LSTM / nn.GRU documentation writes it, unit by
    unit in Python floats (gate order i, f, g, o and r, z, n; two biases per gate): an
    account of the equations independent of the oracle's arrays."""
    H = len(h)

    def pre(k, j, with_input=True, with_hidden=True):  # gate k's pre-activation of unit j
        row = k * H + j
        total = 0.0
        if with_input:
            total += sum(weight_ih[row][i] * x[i] for i in range(len(x))) + bias_ih[row]
        if with_hidden:
            total += sum(weight_hh[row][i] * h[i] for i in range(H)) + bias_hh[row]
        return total

    if cell == "lstm":
        i = [_sigmoid(pre(0, j)) for j in range(H)]
        f = [_sigmoid(pre(1, j)) for j in range(H)]
        g = [math.tanh(pre(2, j)) for j in range(H)]
        o = [_sigmoid(pre(3, j)) for j in range(H)]
        c = [f[j] * c[j] + i[j] * g[j] for j in range(H)]
        return [o[j] * math.tanh(c[j]) for j in range(H)], c
    r = [_sigmoid(pre(0, j)) for j in range(H)]
    z = [_sigmoid(pre(1, j)) for j in range(H)]
    n = [math.tanh(pre(2, j, with_hidden=False) + r[j] * pre(2, j, with_input=False))
         for j in range(H)]
    return [(1 - z[j]) * n[j] + z[j] * h[j] for j in range(H)], None


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_are_pytorchs_equations_written_out(cell):
    """reference.forward of a two-layer model equals PyTorch's documented equations computed
    unit by unit (``_pytorch_step``), from PyTorch's parameters mapped as the cells' docstrings
    say (bh = b_ih + b_hh; the GRU's n gate keeps b_in in bh and b_hn as bhn): states and loss.
    (tests/test_torch.py checks the same against PyTorch itself where it is installed.)"""
    rng = np.random.default_rng(11)
    V, H, T, L = 4, 3, 5, 2
    spec = Spec(cell, V, H, L)
    G = spec.cell.GATES
    w = spec.zeros(np.float64)
    torch_params = []
    for l, layer in enumerate(w.layers):
        inputs = V if l == 0 else H
        p = [rng.uniform(-0.8, 0.8, shape) for shape in ((G * H, inputs), (G * H, H),
                                                           (G * H,), (G * H,))]
        layer.Wxh[...], layer.Whh[...] = p[0], p[1]
        if cell == "lstm":
            layer.bh[...] = p[2] + p[3]
        else:
            layer.bh[:2 * H] = p[2][:2 * H] + p[3][:2 * H]
            layer.bh[2 * H:], layer.bhn[...] = p[2][2 * H:], p[3][2 * H:]
        torch_params.append([a.tolist() for a in p])
    w.Why[...] = rng.uniform(-0.8, 0.8, w.Why.shape)
    w.by[...] = rng.uniform(-0.8, 0.8, w.by.shape)
    x, y = rng.integers(0, V, (1, T)), rng.integers(0, V, (1, T))
    state = rng.uniform(-0.5, 0.5, (L, len(spec.cell.STATES), 1, H))

    loss, (hs, _) = reference.forward(w, x, y, state)

    h = [list(state[l, 0, 0]) for l in range(L)]
    c = [list(state[l, 1, 0]) if cell == "lstm" else None for l in range(L)]
    expected = 0.0
    for t in range(T):
        below = [1.0 if i == x[0, t] else 0.0 for i in range(V)]
        for l in range(L):
            h[l], c[l] = _pytorch_step(cell, *torch_params[l], below, h[l], c[l])
            np.testing.assert_allclose(hs[l, t + 1, 0, 0], h[l], rtol=1e-12, err_msg=f"h{l}")
            if cell == "lstm":
                np.testing.assert_allclose(hs[l, t + 1, 1, 0], c[l], rtol=1e-12,
                                           err_msg=f"c{l}")
            below = h[l]
        logits = [sum(w.Why[v, j] * below[j] for j in range(H)) + w.by[v] for v in range(V)]
        expected -= logits[y[0, t]] - math.log(sum(math.exp(z) for z in logits))
    assert loss == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [0.35, 0.2, 0.5])
def test_dropout_masks_are_inverted_dropout_from_the_generator(p, dtype):
    """1/(1-p) (rounded once to the dtype) where the generator's uniform is >= p, else 0: the
    masks a run draws, whose bits resume and every backend rely on."""
    shape = (3, 7, 5, 11)
    masks = reference.dropout_masks(np.random.default_rng(3), p, shape, dtype)
    keep = np.random.default_rng(3).random(shape) >= p
    assert masks.dtype == dtype and masks.shape == shape
    assert np.array_equal(masks, np.where(keep, dtype(1.0 / (1.0 - p)), dtype(0)))
    assert 0 < keep.mean() < 1


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("L", [2, 3])
def test_backward_follows_the_dropout_masks(cell, L):
    """With masks between layers, backward is the gradient of the masked forward pass."""
    gradient_check(4, 5, 5, 7, num_layers=L, B=3, cell=cell, dropout=0.4)


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


def min_char_rnn_params(rng, H, V, scale):
    """Random parameters in min-char-rnn's shapes: Wxh, Whh, Why, bh (H, 1), by (V, 1)."""
    w = random_weights(rng, H, V, np.float64, scale=scale)
    rnn = w.layers[0]
    return rnn.Wxh, rnn.Whh, w.Why, rnn.bh.reshape(-1, 1), w.by.reshape(-1, 1)


@pytest.mark.parametrize("scale", [0.01, 1.0])  # 1.0 saturates and exercises clipping
def test_loss_fun_matches_min_char_rnn(scale):
    rng = np.random.default_rng(7)
    H, V, T = 20, 11, 25
    params = min_char_rnn_params(rng, H, V, scale)
    x, y = random_chunk(rng, T, V)
    inputs, targets = x[0], y[0]
    hprev = rng.standard_normal((H, 1)) * 0.3
    ours = reference.loss_fun(inputs, targets, hprev, *params)
    theirs = min_char_rnn_lossFun(inputs, targets, hprev, *params)
    if scale == 1.0:
        assert any(np.abs(g).max() == 5.0 for g in ours[1:6]), "clipping was not exercised"
    for name, a, b in zip(("loss", "dWxh", "dWhh", "dWhy", "dbh", "dby", "h"), ours, theirs):
        assert np.shape(a) == np.shape(b), name
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


def test_training_with_one_stream_is_min_char_rnns_loop():
    """reference.train with B = 1 is min-char-rnn's main loop, written out with its lossFun and
    Adagrad (reference.loss_fun and reference.adagrad, both tested against its code above)."""
    rng = np.random.default_rng(1)
    H, V, T, lr, n = 8, 6, 10, 0.05, 40
    data = rng.integers(0, V, 300)  # 29 chunks, then the position wraps around
    spec = Spec("rnn", V, H)
    w = random_weights(rng, H, V, np.float64, 0.1)
    params = [a.copy() for a in (w.layers[0].Wxh, w.layers[0].Whh, w.Why)] + \
        [w.layers[0].bh.reshape(-1, 1).copy(), w.by.reshape(-1, 1).copy()]
    mems = [np.zeros_like(p) for p in params]
    losses, p, hprev, wrapped = [], 0, None, 0
    for step in range(n):  # min-char-rnn's loop (smooth loss and sampling left out)
        if step == 0 or p + T + 1 >= len(data):
            wrapped += step > 0
            hprev = np.zeros((H, 1))
            p = 0
        inputs, targets = data[p:p + T], data[p + 1:p + T + 1]
        loss, dWxh, dWhh, dWhy, dbh, dby, hprev = reference.loss_fun(inputs, targets, hprev, *params)
        reference.adagrad(params, [dWxh, dWhh, dWhy, dbh, dby], mems, lr)
        losses.append(loss)
        p += T
    assert wrapped == 1, "the walk must wrap around once"

    states = [spec.zeros(np.float64)]
    ref_losses, position, state = reference.train(w, optim.get("adagrad"), states, data, 0,
                                                  np.zeros((1, 1, 1, H)), lr, T, n)
    assert position == p
    np.testing.assert_allclose(ref_losses, losses, rtol=1e-12, err_msg="losses")
    assert state.shape == (1, 1, 1, H)
    np.testing.assert_allclose(state[0, 0, 0], hprev[:, 0], rtol=1e-12, err_msg="h")
    ours = [w.layers[0].Wxh, w.layers[0].Whh, w.Why, w.layers[0].bh, w.by]
    m = states[0]
    our_mems = [m.layers[0].Wxh, m.layers[0].Whh, m.Why, m.layers[0].bh, m.by]
    for name, a, e in zip(("Wxh", "Whh", "Why", "bh", "by"), ours, params):
        np.testing.assert_allclose(a, e.reshape(a.shape), rtol=1e-12, err_msg=name)
    for name, a, e in zip(("mWxh", "mWhh", "mWhy", "mbh", "mby"), our_mems, mems):
        np.testing.assert_allclose(a, e.reshape(a.shape), rtol=1e-12, err_msg=name)


def test_choose_is_numpy_random_choice_with_the_same_uniform():
    rng = np.random.default_rng(11)
    for seed in range(200):
        p = rng.dirichlet(np.ones(9) * 0.5)
        expected = np.random.RandomState(seed).choice(9, p=p)
        u = np.random.RandomState(seed).random_sample()
        assert reference.choose(p, u) == expected


@pytest.mark.parametrize("num_layers", [1, 2])
def test_sample_greedy_follows_the_argmax_and_leaves_the_given_state_alone(num_layers):
    rng = np.random.default_rng(5)
    H, V = 16, 6
    w = random_weights(rng, H, V, np.float64, scale=0.8, num_layers=num_layers)
    state0 = rng.standard_normal((num_layers, 1, 1, H))
    given = state0.copy()
    ixes, state = reference.sample(w, state0, 2, np.full(10, 0.5), greedy=True)
    assert np.array_equal(state0, given), "sample must not change the state it is given"
    h, ix = [state0[l, 0, 0] for l in range(num_layers)], 2
    for got in ixes:
        below = None
        for l, layer in enumerate(w.layers):
            into = layer.Wxh[:, ix] if l == 0 else layer.Wxh @ below
            h[l] = np.tanh(into + layer.Whh @ h[l] + layer.bh)
            below = h[l]
        ix = int(np.argmax(w.Why @ below + w.by))
        assert got == ix
    for l in range(num_layers):
        np.testing.assert_allclose(state[l, 0, 0], h[l], err_msg=f"h of layer {l}")


def test_low_temperature_tends_to_greedy_and_high_to_uniform():
    rng = np.random.default_rng(9)
    H, V = 12, 5
    w = random_weights(rng, H, V, np.float64, scale=1.0)
    state0 = np.zeros((1, 1, 1, H))
    u = rng.random(300)
    greedy, _ = reference.sample(w, state0, 0, u, greedy=True)
    cold, _ = reference.sample(w, state0, 0, u, temperature=1e-3)
    assert cold == greedy
    hot, _ = reference.sample(w, state0, 0, u, temperature=1e3)
    counts = np.bincount(hot, minlength=V)
    assert counts.min() > 30  # near-uniform over 5 characters (expected 60 each)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_evaluate_is_the_loss_of_one_long_forward_pass(num_layers):
    rng = np.random.default_rng(5)
    w = random_weights(rng, 12, 7, np.float64, 0.4, num_layers=num_layers)
    data = rng.integers(0, 7, 230)
    state0 = rng.standard_normal((num_layers, 1, 1, 12)) * 0.3
    whole, (hs, _) = reference.forward(w, data[None, :-1], data[None, 1:], state0)
    for chunk in (1, 7, 100, 229, 500):
        loss, state = reference.evaluate(w, data, state0, chunk=chunk)
        np.testing.assert_allclose(loss, whole, rtol=1e-12, err_msg=f"loss, chunk={chunk}")
        assert state.shape == state0.shape
        np.testing.assert_allclose(state, hs[:, -1], rtol=1e-12, err_msg=f"state, chunk={chunk}")
    loss, state = reference.evaluate(w, data[:1], state0)
    assert loss == 0.0 and np.array_equal(state, state0)  # one character: nothing to predict
