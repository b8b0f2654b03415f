"""The CUDA backend's generic path (LSTM, GRU, stacked layers, dropout masks) equal to the NumPy
oracle: float64 tightly, float32 to rounding (``fastrnn.config.TOLERANCES``).

Sizes are tiny for the simulator (it runs every thread in Python), yet above its block of four
threads and the product's 4 x 4 tile where it matters: G*H = 12 gate rows, V = 5.
"""

import os

import numpy as np
import pytest

from fastrnn import CharRNN, cells, optim, reference
from fastrnn.backends import get_backend
from fastrnn.spec import Spec
from tests.helpers import as64, assert_close, assert_weights_close, random_weights

DTYPES = [np.float64, np.float32]
MODELS = [("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2), ("rnn", 2)]
H, V, T, B = 3, 5, 3, 2
DROP = 0.4
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


@pytest.fixture(scope="module")
def cuda():
    return get_backend("cuda")


def ids(params):
    return "-".join(str(p) for p in params)


def problem(cell, L, dtype, dropout=False, B=B, T=T, seed=0):
    """Random weights (scale 0.5), a chunk x, y (B, T), a state (L, S, B, H) and dropout masks
    (L-1, T, B, H) or None, every array float32-representable (the oracle runs in float64)."""
    rng = np.random.default_rng([len(cell), L, B, T, seed])
    w = random_weights(rng, H, V, dtype, 0.5, L, cell)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    S = len(cells.get(cell).STATES)
    state = (rng.standard_normal((L, S, B, H)) * 0.5).astype(dtype)
    masks = reference.dropout_masks(rng, DROP, (L - 1, T, B, H), dtype) if dropout else None
    return w, x, y, state, masks


def assert_states_close(a, b, optimizer, dtype):
    for name, sa, sb in zip(optimizer.states, a, b):
        assert_weights_close(sa, sb, dtype, name)


FORWARD_CASES = [("lstm", 1, False), ("lstm", 2, True), ("gru", 1, False),
                 ("gru", 2, False), ("gru", 2, True), ("rnn", 2, False), ("rnn", 2, True),
                 ("rnn", 1, True)]  # one layer given (empty) masks: the generic path's rnn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, L, dropout", FORWARD_CASES, ids=[ids(c) for c in FORWARD_CASES])
def test_forward_backward_match_reference(cuda, cell, L, dropout, dtype):
    w, x, y, state, masks = problem(cell, L, dtype, dropout)
    S = state.shape[1]
    before = state.copy()
    loss, hs, ps = cuda.forward(w, x, y, state, masks)
    loss_ref, (hs_ref, ps_ref) = reference.forward(as64(w), x, y, state.astype(np.float64), masks)
    assert np.array_equal(state, before), "forward must not change the state it is given"
    assert hs.shape == (L, T + 1, S, B, H) and ps.shape == (T, B, V), (hs.shape, ps.shape)
    assert hs.dtype == ps.dtype == dtype, (hs.dtype, ps.dtype)
    assert_close(loss, loss_ref, dtype, "loss")
    for l in range(L):
        for s, name in enumerate(cells.get(cell).STATES):
            assert_close(hs[l, :, s], hs_ref[l, :, s], dtype, f"hs layer {l} state {name}")
    assert_close(ps, ps_ref, dtype, "ps")
    g = Spec(cell, V, H, L).zeros(dtype)
    g.flat[...] = np.nan  # every gradient must be written
    cuda.backward(w, x, y, hs, ps, g, masks)
    expected = reference.backward(as64(w), x, y, (hs_ref, ps_ref), masks=masks)
    assert g.flat.dtype == dtype
    assert_weights_close(g, expected, dtype, "d")


def test_backward_clips_to_five(cuda):
    w, x, y, state, masks = problem("gru", 2, np.float64, True)
    w.flat[...] *= 6
    _, hs, ps = cuda.forward(w, x, y, state, masks)
    g = Spec("gru", V, H, 2).zeros(np.float64)
    cuda.backward(w, x, y, hs, ps, g, masks)
    unclipped = reference.backward(w, x, y, (hs, ps), clip=None, masks=masks)
    assert np.abs(unclipped.flat).max() > 5, "the test must exceed the clip bound"
    expected = Spec("gru", V, H, 2).copy(unclipped)
    np.clip(expected.flat, -5, 5, out=expected.flat)
    assert_weights_close(g, expected, np.float64, "d")


# each model with each optimizer in one dtype or the other, two of them with a clip of 0.1;
# and one with none (0), whose weights are ten times larger so that the default clip, 5, binds
TRAIN_CASES = [(cell, L, name, dtype, 0.1 if k + j in (1, 4) else 5.0)
               for k, (cell, L) in enumerate(MODELS)
               for j, name in enumerate(["adam", "adagrad"])
               for dtype in [DTYPES[(k + j) % 2]]] + [("rnn", 2, "adagrad", np.float64, 0.0)]


@pytest.mark.parametrize("cell, L, name, dtype, clip", TRAIN_CASES,
                         ids=[ids((c, L, n, np.dtype(d).name, f"clip{k:g}"))
                              for c, L, n, d, k in TRAIN_CASES])
def test_train_matches_reference_including_the_wrap(cuda, cell, L, name, dtype, clip):
    """Three chunks of two streams (the third wraps to position 0 with the state reset), with
    dropout masks between the layers: losses, position, final state, every weight and every
    optimizer state buffer, from a step count of 2; the gradients clipped to [-clip, clip]."""
    optimizer = optim.get(name)
    n, step, Tc = 3, 2, 2
    rng = np.random.default_rng([len(cell), L, len(name)])
    spec = Spec(cell, V, H, L)
    w = random_weights(rng, H, V, dtype, 3.0 if clip == 0 else 0.3, L, cell)
    data = rng.integers(0, V, 12).astype(np.uint8)  # streams of 6: chunk 2 wraps
    S = len(spec.cell.STATES)
    state0 = (rng.standard_normal((L, S, 2, H)) * 0.3).astype(dtype)
    masks = (reference.dropout_masks(rng, DROP, (n, L - 1, Tc, 2, H), dtype) if L > 1 else None)
    ref_w, ref_states = as64(w), [spec.zeros(np.float64) for _ in optimizer.states]
    ref_losses, ref_pos, ref_state = reference.train(
        ref_w, optimizer, ref_states, data, 0, state0.astype(np.float64), 0.05, Tc, n, step,
        masks, clip)
    if clip != 5:  # (the clip matters here)
        other = as64(w)
        reference.train(other, optimizer, [spec.zeros(np.float64) for _ in ref_states], data, 0,
                        state0.astype(np.float64), 0.05, Tc, n, step, masks)
        assert np.abs(other.flat - ref_w.flat).max() > 1e-3, "the clip mattered"
    p, g = spec.copy(w), spec.zeros(dtype)
    states = [spec.zeros(dtype) for _ in optimizer.states]
    state = state0.copy()
    losses = np.full(n, np.nan)
    pos = cuda.train(p, g, optimizer, states, data, 0, state, 0.05, Tc, step, losses, 1, masks,
                     clip)
    assert pos == ref_pos, "position"
    assert_close(losses, ref_losses, dtype, "losses")
    assert_close(state, ref_state, dtype, "state")
    assert_weights_close(p, ref_w, dtype)
    assert_states_close(states, ref_states, optimizer, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, L", MODELS, ids=[ids(m) for m in MODELS])
def test_evaluate_matches_reference(cuda, cell, L, dtype, monkeypatch):
    from fastrnn.backends import cuda as cb
    monkeypatch.setattr(cb, "EVAL_STEPS", 2)  # several passes, the last one shorter
    monkeypatch.setattr(cb._Reports, "EVERY", 2)  # progress after every two, and the last
    w, _, _, state, _ = problem(cell, L, dtype, B=1)
    data = np.random.default_rng(4).integers(0, V, 6).astype(np.uint8)
    before = state.astype(np.float64)
    said = []
    loss = cuda.evaluate(w, data, state, progress=said.append)
    assert said == [4, 1]
    loss_ref, state_ref = reference.evaluate(as64(w), data, before)
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(state, state_ref, dtype, "state")


SAMPLE_CASES = [(False, 1.0, 0, 1.0), (True, 1.0, 0, 1.0), (False, 0.7, 2, 0.9)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, L", MODELS, ids=[ids(m) for m in MODELS])
def test_sample_matches_reference(cuda, cell, L, dtype):
    """The same ids as the oracle for the same uniforms: drawn at temperature 1, greedy, and at
    0.7 with top-k and top-p; the state after."""
    w, _, _, state, _ = problem(cell, L, dtype, B=1, seed=1)
    uniforms = np.random.default_rng(5).random(3)
    for greedy, temperature, top_k, top_p in SAMPLE_CASES:
        ixes = np.full(3, -1, np.int64)
        out = state.copy()
        cuda.sample(w, out, 2, uniforms, temperature, greedy, ixes, top_k, top_p)
        ref, state_ref = reference.sample(as64(w), state.astype(np.float64), 2, uniforms,
                                          temperature, greedy, top_k, top_p)
        case = f"greedy={greedy} temperature={temperature} top_k={top_k} top_p={top_p}"
        assert ixes.tolist() == list(ref), f"ixes ({case})"
        assert_close(out, state_ref, dtype, f"state ({case})")


def test_errors_are_one_line_value_errors(cuda):
    w, x, y, state, masks = problem("lstm", 2, np.float64, True)
    with pytest.raises(ValueError, match=r"dropout masks have shape \(1, 3, 2, 2\), expected "
                                         r"\(1, 3, 2, 3\)"):
        cuda.forward(w, x, y, state, masks[..., :2])
    with pytest.raises(ValueError,
                       match=r"state has shape \(2, 1, 2, 3\), expected \(2, 2, 2, 3\)"):
        cuda.forward(w, x, y, state[:, :1], masks)
    with pytest.raises(ValueError, match="evaluates one stream, not 2"):
        cuda.evaluate(w, np.zeros(5, np.uint8), state)
    _, hs, ps = cuda.forward(w, x, y, state, masks)
    with pytest.raises(ValueError, match=r"hs has shape \(2, 3, 2, 2, 3\)"):
        cuda.backward(w, x, y, hs[:, 1:], ps, Spec("lstm", V, H, 2).zeros(np.float64), masks)
    with pytest.raises(ValueError, match="float32 or float64"):
        cuda.forward(Spec("lstm", V, H, 2).zeros(np.float16), x, y, state, masks)


def test_a_stacked_model_with_dropout_trains_evaluates_and_samples_like_the_oracle():
    """Through the model (CharRNN): a two-layer GRU with dropout, two streams, adam."""
    data = np.random.default_rng(7).integers(0, V, 20)
    models = {b: CharRNN(V, hidden_size=H, seq_length=2, dtype="float64", learning_rate=0.05,
                         optimizer="adam", cell="gru", num_layers=2, dropout=0.3, batch_size=2,
                         backend=b) for b in ("cuda", "numpy")}
    losses = {b: m.train(data, 2) for b, m in models.items()}
    a, b = models["cuda"], models["numpy"]
    assert_close(losses["cuda"], losses["numpy"], np.float64, "losses")
    assert_close(a.state, b.state, np.float64, "state")
    assert_weights_close(a.weights, b.weights, np.float64)
    (loss, state), (loss_ref, state_ref) = (m.evaluate(data[:7]) for m in (a, b))
    assert_close(loss, loss_ref, np.float64, "evaluate loss")
    assert_close(state, state_ref, np.float64, "evaluate state")
    samples = {k: m.sample(4, 1, rng=np.random.default_rng(6)) for k, m in models.items()}
    assert samples["cuda"][0] == samples["numpy"][0], "sampled ids"
    assert_close(samples["cuda"][1], samples["numpy"][1], np.float64, "state after sampling")


def norm_error(a, e):
    a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(e), 1e-300))


@pytest.mark.skipif(SIMULATOR, reason="sizes for a real GPU (many blocks, tiles and partial "
                                      "tiles of the default launch configuration); far too "
                                      "slow in the simulator")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, L", MODELS, ids=[ids(m) for m in MODELS])
def test_every_cell_at_sizes_spanning_many_blocks_on_a_gpu(cell, L, dtype):
    """Through the model, against the oracle (the numpy backend): H = 200 (G H = 800, 600 or
    200 gate rows, no multiple of a tile), V = 65, 24 streams, T = 16, Adam, dropout between
    layers, three chunks, then a validation and a sample. float64 to 1e-10 of each array's
    norm; float32 to 1e-3 (three Adam steps amplify rounding: the numba backend stands 4e-5
    from the oracle here; an indexing error is off by the array's own size)."""
    bound = 1e-10 if dtype == np.float64 else 1e-3
    data = np.random.default_rng(8).integers(0, 65, 20_000)
    models = {b: CharRNN(65, hidden_size=200, seq_length=16, batch_size=24, cell=cell,
                         num_layers=L, dropout=0.3 if L > 1 else 0.0, optimizer="adam",
                         learning_rate=0.002, dtype=np.dtype(dtype).name, seed=3, backend=b)
              for b in ("cuda", "numpy")}
    got = {b: (m.train(data, 3), m.evaluate(data[:1500])) for b, m in models.items()}
    a, e = models["cuda"], models["numpy"]
    for name, x, y in [("losses", got["cuda"][0], got["numpy"][0]),
                       ("weights", a.weights.flat, e.weights.flat),
                       ("state", a.state, e.state),
                       ("evaluate loss", got["cuda"][1][0], got["numpy"][1][0]),
                       ("evaluate state", got["cuda"][1][1], got["numpy"][1][1])]:
        assert norm_error(x, y) < bound, (name, norm_error(x, y))
    if dtype == np.float64:  # (float32 draws may fall on either side of a boundary)
        samples = {b: m.sample(300, 1, rng=np.random.default_rng(6)) for b, m in models.items()}
        assert samples["cuda"][0] == samples["numpy"][0], "sampled ids"
