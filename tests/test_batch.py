"""Mini-batches of B streams: the oracle's B streams against B single streams, the Numba batched
kernels (``fastrnn.kernels.batch``) against the oracle, and the model with batch_size > 1.
(The oracle's training with one stream is min-char-rnn's loop: tests/test_reference.py.)"""

import numpy as np
import pytest

from fastrnn import CharRNN, optim, reference
from fastrnn.kernels import batch
from fastrnn.spec import Spec
from tests.helpers import as64, assert_close, assert_weights_close, random_weights

DTYPES = [np.float64, np.float32]
SHAPES = [(1, 1, 1, 2), (3, 5, 7, 4), (8, 9, 16, 11), (17, 20, 33, 5), (5, 3, 64, 300)]  # B, T, H, V


def problem(B, T, H, V, dtype, seed=0):
    """Weights, a chunk x, y (B, T) and a non-zero state (1, 1, B, H)."""
    rng = np.random.default_rng([B, T, H, V, seed])
    w = random_weights(rng, H, V, dtype, min(0.5, 1.5 / np.sqrt(H)))
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    if V > 2:
        x[:, 0] = x[0, 0]  # streams sharing a character at the same step
    state = (rng.standard_normal((1, 1, B, H)) * 0.5).astype(dtype)
    return w, x, y, state


def test_the_oracles_b_streams_are_b_independent_streams():
    B, T, H, V = 4, 6, 9, 5
    w, x, y, state = problem(B, T, H, V, np.float64)
    spec = Spec("rnn", V, H)
    loss, (hs, ps) = reference.forward(w, x, y, state)
    grads = reference.backward(w, x, y, (hs, ps), clip=None)
    total_loss, total_grads = 0.0, spec.zeros(np.float64)
    for b in range(B):
        one = slice(b, b + 1)
        l1, (hs1, ps1) = reference.forward(w, x[one], y[one], state[:, :, one])
        np.testing.assert_allclose(hs[:, :, b], hs1[:, :, 0], rtol=1e-12, err_msg=f"hs of stream {b}")
        np.testing.assert_allclose(ps[:, b], ps1[:, 0], rtol=1e-12, err_msg=f"ps of stream {b}")
        total_loss += l1
        total_grads.flat[...] += reference.backward(w, x[one], y[one], (hs1, ps1), clip=None).flat
    np.testing.assert_allclose(loss, total_loss, rtol=1e-12, err_msg="loss")
    for (name, g), e in zip(spec.named(grads).items(), spec.arrays(total_grads)):
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-13, err_msg="d" + name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,H,V", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_match_the_oracle(B, T, H, V, dtype, threads):
    w, x, y, state = problem(B, T, H, V, dtype)
    spec = Spec("rnn", V, H)
    work = batch.Work(B, T, H, V, dtype)
    for g in work.groups:
        for a in (g.hs, g.ps, g.dys, g.dhout, g.draws, g.dWxhT, g.dWhh, g.dWhyT, g.dbh, g.dby):
            a[...] = np.nan  # every element must be written
    h = state[0, 0].copy()
    loss = batch.forward(x, y, h, w, work, threads)
    w64 = as64(w)
    loss_ref, (hs_ref, ps_ref) = reference.forward(w64, x, y, state.astype(np.float64))
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(work.hs(), hs_ref[0], dtype, "hs")
    assert_close(work.ps(), ps_ref, dtype, "ps")
    assert np.array_equal(h, state[0, 0]), "forward must not change h"
    grads = spec.zeros(dtype)
    grads.flat[...] = np.nan
    batch.gradients(w, grads, work, threads)
    expected = reference.backward(w64, x, y, (hs_ref, ps_ref), clip=None)
    for name, g in spec.named(grads).items():
        assert g.dtype == dtype, "d" + name
    assert_weights_close(grads, expected, dtype, prefix="d")
    clipped = spec.zeros(dtype)
    clipped.flat[...] = np.nan
    batch.backward(x, y, work.hs(), work.ps(), w, clipped, batch.Work(B, T, H, V, dtype), threads)
    assert_weights_close(clipped, spec.view(np.clip(expected.flat, -5, 5)), dtype, prefix="clipped d")


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_trajectory_matches_the_oracle(dtype):
    B, T, H, V, n = 4, 7, 24, 9, 60
    rng = np.random.default_rng(2)
    data = rng.integers(0, V, 700)          # 4 streams of 175 characters: they wrap around
    model = CharRNN(V, hidden_size=H, seq_length=T, learning_rate=0.01, dtype=dtype, batch_size=B)
    w = as64(model.weights)
    states = [model.spec.zeros(np.float64)]
    losses = np.concatenate([model.train(data, 25), model.train(data, n - 25)])
    ref_losses, ref_pos, ref_state = reference.train(w, optim.get("adagrad"), states, data, 0,
                                                     np.zeros((1, 1, B, H)), 0.01, T, n)
    assert model.position == ref_pos
    assert_close(losses, ref_losses, dtype, "losses")
    assert_close(model.state, ref_state, dtype, "state")
    assert_weights_close(model.weights, w, dtype)
    assert_weights_close(model.states[0], states[0], dtype, prefix="m")


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_kernel_matches_the_oracle_across_calls(dtype):
    """batch.train itself, called twice (the step count and h carried between calls)."""
    B, T, H, V = 3, 5, 10, 7
    w, _, _, state = problem(B, T, H, V, dtype)
    data = np.random.default_rng(5).integers(0, V, 150)  # streams of 50: wrap every 8 chunks
    spec, adam = Spec("rnn", V, H), optim.get("adam")
    w_ref, states_ref, state_ref = as64(w), [spec.zeros(np.float64) for _ in adam.states], \
        state.astype(np.float64)
    states = [spec.zeros(dtype) for _ in adam.states]
    g, work, h = spec.zeros(dtype), batch.Work(B, T, H, V, dtype), state[0, 0].copy()
    position, ref_position, step = 0, 0, 0
    for n in (4, 9):
        losses = np.full(n, np.nan)
        position = batch.train(data, position, h, w, g, adam.state([s.flat for s in states]),
                               0.01, T, step, losses, work, threads=2)
        ref_losses, ref_position, state_ref = reference.train(w_ref, adam, states_ref, data,
                                                              ref_position, state_ref, 0.01, T,
                                                              n, step)
        step += n
        assert position == ref_position, f"position after {step} steps"
        assert_close(losses, ref_losses, dtype, f"losses up to step {step}")
        assert_close(h, state_ref[0, 0], dtype, f"h after {step} steps")
    assert_weights_close(w, w_ref, dtype)
    for name, s, e in zip(adam.states, states, states_ref):
        assert_weights_close(s, e, dtype, prefix=name)


def test_thread_count_does_not_change_a_bit():
    data = np.random.default_rng(3).integers(0, 30, 20_000)
    runs = []
    for threads in (1, 2, 3):
        model = CharRNN(30, hidden_size=40, seq_length=12, batch_size=16, dtype="float32",
                        threads=threads)
        runs.append((model.train(data, 20), model))
    first = runs[0][1]
    for losses, model in runs[1:]:
        assert np.array_equal(losses, runs[0][0]), f"losses with {model.threads} threads"
        for name, a, b in [("weights", model.weights.flat, first.weights.flat),
                           ("optimizer state", model.states[0].flat, first.states[0].flat),
                           ("state", model.state, first.state)]:
            assert np.array_equal(a, b), f"{name} with {model.threads} threads"


def test_batched_model_on_both_backends_and_its_errors():
    data = np.random.default_rng(4).integers(0, 12, 3000)
    models = {b: CharRNN(12, hidden_size=10, seq_length=6, batch_size=5, learning_rate=0.01,
                         backend=b) for b in ("numba", "numpy")}
    losses = {b: m.train(data, 15) for b, m in models.items()}
    assert_close(losses["numba"], losses["numpy"], np.float64, "losses")
    assert models["numba"].h.shape == (5, 10)
    assert models["numba"].state.shape == (1, 1, 5, 10)
    with pytest.raises(ValueError, match="training with seq_length=6 in 5 streams needs at least 35"):
        models["numba"].train(data[:30], 1)
    with pytest.raises(ValueError, match="batch_size must be"):
        CharRNN(12, batch_size=0)
