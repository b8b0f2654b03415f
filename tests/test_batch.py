"""Mini-batches of B streams: the batched oracle against B single streams, the Numba batched
kernels against the batched oracle, and the model and command line with --batch-size."""

import numpy as np
import pytest

from fastrnn import CharRNN, reference
from fastrnn.kernels import batch
from fastrnn.params import kernel_view
from tests.helpers import assert_close, random_model

NAMES = ("dWxh", "dWhh", "dWhy", "dbh", "dby")
DTYPES = [np.float64, np.float32]
SHAPES = [(1, 1, 1, 2), (3, 5, 7, 4), (8, 9, 16, 11), (17, 20, 33, 5), (5, 3, 64, 300)]  # B, T, H, V


def problem(B, T, H, V, dtype, seed=0):
    rng = np.random.default_rng([B, T, H, V, seed])
    params = random_model(rng, H, V, dtype, min(0.5, 1.5 / np.sqrt(H)))
    inputs, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    if V > 2:
        inputs[:, 0] = inputs[0, 0]  # streams sharing a character at the same step
    hprev = (rng.standard_normal((B, H)) * 0.5).astype(dtype)
    return params, inputs, targets, hprev


def test_batched_oracle_is_b_independent_streams():
    B, T, H, V = 4, 6, 9, 5
    params, inputs, targets, hprev = problem(B, T, H, V, np.float64)
    loss, hs, ps = reference.forward_batch(inputs, targets, hprev, *params)
    grads = reference.backward_batch(inputs, targets, hs, ps, *params[:3], clip=None)
    total_loss, total_grads = 0.0, [np.zeros_like(p) for p in params]
    for b in range(B):
        l1, hs1, ps1 = reference.forward(inputs[b], targets[b], hprev[b].reshape(-1, 1), *params)
        np.testing.assert_allclose(hs[:, b], hs1, rtol=1e-12, err_msg=f"hs of stream {b}")
        np.testing.assert_allclose(ps[:, b], ps1, rtol=1e-12, err_msg=f"ps of stream {b}")
        total_loss += l1
        for acc, g in zip(total_grads, reference.backward(inputs[b], targets[b], hs1, ps1,
                                                          *params[:3], clip=None)):
            acc += g
    np.testing.assert_allclose(loss, total_loss, rtol=1e-12)
    for name, g, e in zip(NAMES, grads, total_grads):
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-13, err_msg=name)


def test_batched_training_with_one_stream_is_min_char_rnn():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 6, 300)
    params = random_model(rng, 8, 6, np.float64, 0.1)
    p1, m1 = [p.copy() for p in params], [np.zeros_like(p) for p in params]
    pb, mb = [p.copy() for p in params], [np.zeros_like(p) for p in params]
    l1, pos1, h1 = reference.train(data, 0, np.zeros((8, 1)), p1, m1, 0.05, 10, 40)
    lb, posb, hb = reference.train_batch(data, 0, np.zeros((1, 8)), pb, mb, 0.05, 10, 40)
    assert pos1 == posb
    np.testing.assert_allclose(lb, l1, rtol=1e-12)
    np.testing.assert_allclose(hb[0], h1[:, 0], rtol=1e-12)
    for name, a, e in zip(NAMES, pb, p1):
        np.testing.assert_allclose(a, e, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,H,V", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_match_the_batched_oracle(B, T, H, V, dtype, threads):
    params, inputs, targets, hprev = problem(B, T, H, V, dtype)
    work = batch.Work(B, T, H, V, dtype)
    for g in work.groups:
        for a in (g.hs, g.ps, g.dys, g.dhout, g.draws, g.dWxhT, g.dWhh, g.dWhyT, g.dbh, g.dby):
            a[...] = np.nan  # every element must be written
    loss = batch.forward(inputs, targets, hprev, kernel_view(params), work, threads)
    p64 = [np.asarray(p, np.float64) for p in params]
    loss_ref, hs_ref, ps_ref = reference.forward_batch(inputs, targets, hprev.astype(np.float64), *p64)
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(work.hs(), hs_ref, dtype, "hs")
    assert_close(work.ps(), ps_ref, dtype, "ps")
    grads = tuple(np.full_like(p, np.nan) for p in params)
    batch.gradients(kernel_view(params), kernel_view(grads), work, threads)
    expected = reference.backward_batch(inputs, targets, hs_ref, ps_ref, *p64[:3], clip=None)
    for name, g, e in zip(NAMES, grads, expected):
        assert g.dtype == dtype, name
        assert_close(g, e, dtype, name)
    clipped = tuple(np.empty_like(p) for p in params)
    batch.backward(inputs, targets, work.hs(), work.ps(), kernel_view(params),
                   kernel_view(clipped), batch.Work(B, T, H, V, dtype), threads)
    for name, g, e in zip(NAMES, clipped, expected):
        assert_close(g, np.clip(e, -5, 5), dtype, name + " clipped")


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_trajectory_matches_the_oracle(dtype):
    B, T, H, V, n = 4, 7, 24, 9, 60
    rng = np.random.default_rng(2)
    data = rng.integers(0, V, 700)          # 4 streams of 175 characters: they wrap around
    model = CharRNN(V, hidden_size=H, seq_length=T, learning_rate=0.01, dtype=dtype, batch_size=B)
    start = [np.asarray(p, np.float64).copy() for p in model.params]
    losses = np.concatenate([model.train(data, 25), model.train(data, n - 25)])
    mems = [np.zeros_like(p) for p in start]
    ref_losses, ref_pos, ref_h = reference.train_batch(data, 0, np.zeros((B, H)), start, mems, 0.01, T, n)
    assert model.position == ref_pos
    tol = np.float64 if dtype == np.float64 else np.float32
    assert_close(losses, ref_losses, tol, "losses")
    assert_close(model.h, ref_h, tol, "h")
    for name, a, e in zip(NAMES, [*model.params, *model.mems], [*start, *mems]):
        assert_close(a, e, tol, name)


def test_thread_count_does_not_change_a_bit():
    data = np.random.default_rng(3).integers(0, 30, 20_000)
    runs = []
    for threads in (1, 2, 3):
        model = CharRNN(30, hidden_size=40, seq_length=12, batch_size=16, dtype="float32",
                        threads=threads)
        runs.append((model.train(data, 20), model))
    for losses, model in runs[1:]:
        assert np.array_equal(losses, runs[0][0])
        first = runs[0][1]
        for a, b in zip([*model.params, *model.mems, model.h], [*first.params, *first.mems, first.h]):
            assert np.array_equal(a, b)


def test_batched_model_on_both_backends_and_its_errors():
    data = np.random.default_rng(4).integers(0, 12, 3000)
    models = {b: CharRNN(12, hidden_size=10, seq_length=6, batch_size=5, learning_rate=0.01,
                         backend=b) for b in ("numba", "numpy")}
    losses = {b: m.train(data, 15) for b, m in models.items()}
    assert_close(losses["numba"], losses["numpy"], np.float64, "losses")
    assert models["numba"].h.shape == (5, 10)
    with pytest.raises(ValueError, match="training with seq_length=6 in 5 streams needs at least 35"):
        models["numba"].train(data[:30], 1)
    with pytest.raises(ValueError, match="batch_size must be"):
        CharRNN(12, batch_size=0)
