"""Every kernel equal to the oracle: forward, backward (clipped), Adagrad, sampling, training,
evaluation; through the backend interface (``get_backend(name)``) for B = 1 and B = 3 streams,
and the single-stream CPU kernels (``fastrnn.kernels.cpu``) where their own workspaces matter."""

import numpy as np
import pytest

from fastrnn import optim, reference
from fastrnn.backends import get_backend
from fastrnn.kernels import cpu
from fastrnn.spec import Spec
from tests.helpers import NAMES, as64, assert_close, assert_weights_close, random_chunk, random_weights

# (The numpy backend calls the oracle: its cases check its interface, outputs written in
# place and the state carried, not its arithmetic.)
BACKENDS = ["numba", "numpy"]
DTYPES = [np.float64, np.float32]
STREAMS = [1, 3]
ADAGRAD = optim.get("adagrad")

# Edge sizes (H=1, V=2, T=1, T=200, H not a multiple of the SIMD width) plus random shapes.
EDGE_SHAPES = [(1, 2, 1), (1, 2, 9), (2, 3, 1), (3, 2, 200), (37, 11, 200), (100, 65, 25),
               (64, 8, 5), (33, 67, 3)]
RANDOM_SHAPES = [tuple(int(x) for x in np.random.default_rng(s).integers((1, 2, 1), (80, 90, 60)))
                 for s in range(12)]
SHAPES = EDGE_SHAPES + RANDOM_SHAPES


def spec(w):
    return reference.spec_of(w)


def problem(H, V, T, dtype, seed=0, scale=0.1, B=1):
    """Weights, a chunk x, y (B, T) and a non-zero state (1, 1, B, H)."""
    rng = np.random.default_rng([H, V, T, B, seed])
    w = random_weights(rng, H, V, dtype, scale)
    x, y = random_chunk(rng, T, V, B)
    state = (rng.standard_normal((1, 1, B, H)) * 0.5).astype(dtype)
    return w, x, y, state


def run_forward(backend, w, x, y, state):
    """backend.forward, its outputs copied (they may be the backend's scratch)."""
    loss, hs, ps = get_backend(backend).forward(w, x, y, state)
    return loss, np.array(hs), np.array(ps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,V,T", SHAPES)
@pytest.mark.parametrize("B", STREAMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_backward_match_reference(backend, B, H, V, T, dtype):
    w, x, y, state = problem(H, V, T, dtype, scale=0.5 if T < 5 else 0.1, B=B)
    state_before = state.copy()
    loss, hs, ps = run_forward(backend, w, x, y, state)
    loss_ref, (hs_ref, ps_ref) = reference.forward(as64(w), x, y, state.astype(np.float64))
    assert hs.shape == (1, T + 1, 1, B, H) and ps.shape == (T, B, V)
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(hs, hs_ref, dtype, "hs")
    assert_close(ps, ps_ref, dtype, "ps")
    assert np.array_equal(state, state_before), "forward must not change the state it is given"

    g = spec(w).zeros(dtype)
    g.flat[...] = np.nan  # poisoned: every element must be written
    get_backend(backend).backward(w, x, y, hs, ps, g)
    expected = reference.backward(as64(w), x, y, (hs_ref, ps_ref))
    for name, a in spec(w).named(g).items():
        assert a.dtype == dtype, "d" + name
    assert_weights_close(g, expected, dtype, prefix="d")


@pytest.mark.parametrize("B", STREAMS)
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("cell,L,dropout", [("rnn", 2, 0.0), ("rnn", 3, 0.5), ("lstm", 1, 0.0),
                                            ("lstm", 2, 0.5), ("gru", 1, 0.0), ("gru", 2, 0.5)])
def test_every_cell_and_layer_count_through_the_backend_interface(cell, L, dropout, backend, B):
    """forward and backward of the backend interface (the state (L, S, B, H), the activations
    (L, T+1, S, B, H), dropout masks) against the oracle, gradients written into g. (Their
    clip is tested where gradients pass the bound: test_backward_clips_to_five, and
    test_batch.py's kernels for every cell.)"""
    rng = np.random.default_rng([B, L, 2])
    w = random_weights(rng, 6, 5, np.float64, 0.5, num_layers=L, cell=cell)
    x, y = random_chunk(rng, 4, 5, B)
    S = 2 if cell == "lstm" else 1
    state = rng.standard_normal((L, S, B, 6)) * 0.5
    masks = reference.dropout_masks(rng, dropout, (L - 1, 4, B, 6), np.float64) if dropout else None
    kern = get_backend(backend)
    loss, hs, ps = kern.forward(w, x, y, state, masks)
    loss_ref, (hs_ref, ps_ref) = reference.forward(w, x, y, state, masks)
    assert hs.shape == (L, 5, S, B, 6)
    assert_close(loss, loss_ref, np.float64, "loss")
    assert_close(hs, hs_ref, np.float64, "hs")
    assert_close(ps, ps_ref, np.float64, "ps")
    g = spec(w).zeros(np.float64)
    g.flat[...] = np.nan
    kern.backward(w, x, y, hs, ps, g, masks)
    expected = reference.backward(w, x, y, (hs_ref, ps_ref), masks=masks)
    assert_weights_close(g, expected, np.float64, prefix="d")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gates_saturated_far_past_exps_range_match_the_oracle(cell):
    """Gate pre-activations of -800 and +800, past where e**x overflows a float64: the
    sigmoid of -800 is 1 / (1 + e**709), ~1e-308, where the oracle's is 0 (the float64 exp
    built 2**k from bits that wrapped into the sign above 709: a closed gate came out open,
    1.0, or outside [0, 1])."""
    rng = np.random.default_rng(3)
    w = random_weights(rng, 6, 5, np.float64, 0.5, cell=cell)
    H = 6
    w.layers[0].bh[:H] = 800.0        # lstm: input gate; gru: reset gate (open)
    w.layers[0].bh[H:2 * H] = -800.0  # lstm: forget gate; gru: update gate (closed: h = n)
    x, y = random_chunk(rng, 4, 5, 3)
    S = 2 if cell == "lstm" else 1
    state = rng.standard_normal((1, S, 3, H)) * 0.5
    loss, hs, ps = get_backend("numba").forward(w, x, y, state)
    loss_ref, (hs_ref, ps_ref) = reference.forward(w, x, y, state)
    assert_close(loss, loss_ref, np.float64, "loss")
    assert_close(hs, hs_ref, np.float64, "hs")
    g = spec(w).zeros(np.float64)
    get_backend("numba").backward(w, x, y, hs, ps, g)
    assert_weights_close(g, reference.backward(w, x, y, (hs_ref, ps_ref)), np.float64,
                         prefix="d")


@pytest.mark.parametrize("B", STREAMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_clips_to_five(backend, B):
    # Large enough weights for gradients beyond the bound, small enough to keep tanh out of deep
    # saturation, where 1 - h*h cancels and fast-math's fused multiply-add rounds differently.
    w, x, y, state = problem(30, 7, 40, np.float64, scale=0.3, B=B)
    _, hs, ps = run_forward(backend, w, x, y, state)
    g = spec(w).zeros(np.float64)
    get_backend(backend).backward(w, x, y, hs, ps, g)
    unclipped = reference.backward(w, x, y, (hs, ps), clip=None)
    assert np.abs(unclipped.flat).max() > 5, "the test must exceed the clip bound"
    expected = spec(w).view(np.clip(unclipped.flat, -5, 5))
    assert_weights_close(g, expected, np.float64, prefix="d")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 64, 1000, 16513])
@pytest.mark.parametrize("backend", BACKENDS)
def test_adagrad_matches_reference(backend, n, dtype):
    rng = np.random.default_rng(n)
    w = rng.standard_normal(n).astype(dtype)
    g = np.clip(rng.standard_normal(n) * 3, -5, 5).astype(dtype)
    g[::5] = 0  # untouched entries must stay exactly as they are
    m = (rng.random(n) * 10 ** rng.uniform(-12, 2, n)).astype(dtype)
    w0 = w.copy()
    w_ref, g_ref, m_ref = (a.astype(np.float64) for a in (w, g, m))
    get_backend(backend).update(ADAGRAD, w, g, [m], 0.1, 1, 0)
    reference.adagrad([w_ref], [g_ref], [m_ref], 0.1)
    assert_close(m, m_ref, dtype, "memory")
    assert_close(w, w_ref, dtype, "weights")
    assert np.array_equal(w[::5], w0[::5]), "a zero gradient must leave its weight exactly"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_adagrad_of_all_parameters(backend, dtype):
    w, *_ = problem(13, 6, 1, dtype)
    rng = np.random.default_rng(1)
    s = spec(w)
    g = s.view(rng.standard_normal(s.size).astype(dtype))
    m = s.view(rng.random(s.size).astype(dtype))
    expected_w, expected_m = as64(w), as64(m)
    reference.adagrad(s.arrays(expected_w), s.arrays(as64(g)), s.arrays(expected_m), 0.05)
    get_backend(backend).update(ADAGRAD, w.flat, g.flat, [m.flat], 0.05, 1, 0)
    assert_weights_close(w, expected_w, dtype)
    assert_weights_close(m, expected_m, dtype, prefix="m")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 15, 16, 17, 100, 1003])
def test_values_fit_finds_every_value_that_does_not(n, dtype):
    """The check before every training call (``cpu.values_fit``, one pass over the weights
    and both optimizer states) says what ``reference.values_fit`` says: a NaN, an infinity
    or (in the sums of squares) a negative value, however small, at the first, a middle or
    the last element (past the vectorised loop's last whole vector) of any of the three
    buffers; not -0.0. Finite values whose sum overflows may say False (the caller then
    checks exactly), never True where a value does not fit."""
    rng = np.random.default_rng(n)
    kernel = get_backend("numba")
    tiny = -np.finfo(dtype).smallest_subnormal
    huge = np.finfo(dtype).max
    for which in range(3):
        for e in sorted({0, n // 2, n - 1}):
            for value in (np.nan, np.inf, -np.inf, -1.0, tiny, -0.0, huge):
                flats = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
                flats[2] = np.abs(flats[2])
                flats[which][e] = value
                if value == huge:
                    flats[(which + 1) % 3][e] = huge  # (finite, their sum is not)
                expected = reference.values_fit(flats, 2)
                fits = cpu.values_fit(*flats)
                assert kernel.values_fit(flats, 2) == fits
                if value == huge:
                    assert expected and not fits, (which, e)
                else:
                    assert fits == expected == (value == -0.0 or (which < 2 and value in
                                                                   (-1.0, tiny))), (which, e, value)
            for value in (np.nan, -1.0, 0.5):  # an optimizer of one state, its sums of squares
                one_state = [rng.standard_normal(n).astype(dtype), np.full(n, 0.25, dtype)]
                one_state[1][e] = value
                assert kernel.values_fit(one_state, 1) == (value == 0.5)
                four = one_state + one_state  # (no kernel for three states: NumPy's passes)
                assert kernel.values_fit(four, 1) == (value == 0.5)
    with pytest.raises(ValueError, match=r"^values_fit: buffers of shapes"):  # (read past)
        kernel.values_fit([np.zeros(n + 1, dtype), np.zeros(n, dtype)], 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature,greedy", [(1.0, False), (0.6, False), (1.7, False), (1.0, True)])
@pytest.mark.parametrize("H,V", [(1, 2), (30, 11), (100, 65)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sample_matches_reference(backend, H, V, temperature, greedy, dtype):
    # Small weights keep the recurrence contractive: in a chaotic one, rounding differences
    # between any two implementations grow until a draw lands on the other side of a boundary.
    w, _, _, state0 = problem(H, V, 1, dtype, scale=0.05)
    n = 300
    uniforms = np.random.default_rng(H).random(n)
    state = state0.copy()
    ixes = np.full(n, -1, np.int64)
    get_backend(backend).sample(w, state, 1, uniforms, temperature, greedy, ixes)
    expected, state_ref = reference.sample(as64(w), state0.astype(np.float64), 1, uniforms,
                                           temperature=temperature, greedy=greedy)
    if dtype == np.float32:  # float32 probabilities may move a draw that falls within
        # rounding of a boundary from the float64 oracle's, so: the oracle in float32 too
        agree = np.mean(ixes == np.array(expected))
        assert agree > 0.9, f"only {agree:.0%} of float32 draws agree with the float64 oracle"
        expected, state_ref = reference.sample(w, state0.copy(), 1, uniforms,
                                               temperature=temperature, greedy=greedy)
    assert ixes.tolist() == expected
    assert_close(state, state_ref, dtype, "state")


def encoded(text, n):
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    return np.array([index[c] for c in text[:n]], np.uint8), len(chars)


def run_train(backend, data, w, states, state, position, lr, T, n_steps, step=0):
    """n_steps of the backend's training on copies; returns (losses, w, states, state, position)."""
    s = spec(w)
    w, states, state = s.copy(w), [s.copy(m) for m in states], state.copy()
    losses = np.full(n_steps, np.nan)
    position = get_backend(backend).train(w, s.zeros(w.Why.dtype), ADAGRAD, states, data, position,
                                          state, lr, T, step, losses, 1)
    return losses, w, states, state, position


def start(V, H, B, dtype="float64", seed=1):
    """Initial weights, Adagrad memory and a zero state of B streams."""
    s = Spec("rnn", V, H)
    return s.init(seed, dtype), [s.zeros(dtype)], np.zeros((1, 1, B, H), dtype)


@pytest.mark.parametrize("B", STREAMS)
@pytest.mark.parametrize("H,lr,n_chars", [(100, 0.01, 20_000), (16, 0.1, 20_000), (24, 0.01, 600)])
def test_training_trajectory_matches_reference(text, H, lr, n_chars, B):
    """A free-running multi-step trajectory on real text: losses and final parameters.

    (600 characters make the position wrap around, resetting the state, every 23 chunks for
    one stream, every 7 for three.)
    """
    data, V = encoded(text, n_chars)
    T, n = 25, 300
    w0, states0, state0 = start(V, H, B)
    losses, w, states, state, pos = run_train("numba", data, w0, states0, state0, 0, lr, T, n)
    w_ref, states_ref = spec(w0).copy(w0), [spec(w0).copy(m) for m in states0]
    losses_ref, pos_ref, state_ref = reference.train(w_ref, ADAGRAD, states_ref, data, 0,
                                                     state0.copy(), lr, T, n)
    assert pos == pos_ref
    assert_close(losses, losses_ref, np.float64, "losses")
    assert_close(state, state_ref, np.float64, "state")
    assert_weights_close(w, w_ref, np.float64)
    assert_weights_close(states[0], states_ref[0], np.float64, prefix="m")


@pytest.mark.parametrize("B", STREAMS)
def test_every_step_of_default_training_matches_reference(text, B):
    """min-char-rnn's defaults (H=100, lr=0.1) amplify rounding differences by orders of
    magnitude per step early on (Adagrad's first steps are ~lr*sign(g)), so two correct
    implementations drift apart after ~10 free-running steps. Here each step starts from the
    oracle's state and must reproduce the oracle's next state (the weights with atol 1e-11,
    not 1e-12: an update that a gradient's cancelling sum leaves tiny misses rtol 1e-10 by its
    rounding, 3 of 5,300 elements of Wxh at step 4 on the tests' generated text, 2.8e-12 off)."""
    data, V = encoded(text, 50_000)
    H, T, lr = 100, 25, 0.1
    w, states, state = start(V, H, B)
    pos = 0
    for step in range(60):
        losses, k_w, k_states, k_state, k_pos = run_train("numba", data, w, states, state, pos,
                                                          lr, T, 1, step)
        (loss,), pos, state = reference.train(w, ADAGRAD, states, data, pos, state, lr, T, 1, step)
        assert k_pos == pos, f"position at step {step}"
        assert_close(losses[0], loss, np.float64, f"loss at step {step}")
        assert_close(k_state, state, np.float64, f"state at step {step}")
        for (name, a), e in zip(spec(w).named(k_w).items(), spec(w).arrays(w)):
            np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-11, err_msg=f"step {step}: {name}")
        assert_weights_close(k_states[0], states[0], np.float64, prefix=f"step {step}: m")


@pytest.mark.parametrize("B", STREAMS)
def test_float32_training_follows_float64_reference(text, B):
    data, V = encoded(text, 20_000)
    H, T, lr, n = 32, 25, 0.05, 100
    w, states, state = start(V, H, B, "float32")
    losses, *_ = run_train("numba", data, w, states, state, 0, lr, T, n)
    w64, states64, state64 = start(V, H, B)
    expected, *_ = reference.train(w64, ADAGRAD, states64, data, 0, state64, lr, T, n)
    np.testing.assert_allclose(losses, expected, rtol=1e-3, err_msg="losses")
    assert losses[-20:].mean() < losses[:20].mean() - 10, "the model did not learn"


@pytest.mark.parametrize("which", NAMES + ("state",))
@pytest.mark.parametrize("B", STREAMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_anywhere_gives_a_nan_loss(backend, B, which):
    w, x, y, state = problem(20, 9, 10, np.float64, B=B)
    if which == "state":
        state[0, 0, -1, -1] = np.nan  # the last stream's last unit
    else:
        a = spec(w).named(w)[which]
        a[(-1,) + (0,) * (a.ndim - 1)] = np.nan  # last row, column 0
    x[:] = 0  # so that column 0 of Wxh, poisoned when which == "Wxh", is read
    loss, _, _ = run_forward(backend, w, x, y, state)
    assert np.isnan(loss), f"NaN in {which}"


@pytest.mark.parametrize("B", STREAMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nan_logit_reaches_the_gradients(backend, B):
    """NaN probabilities are not flushed to 0 with the subnormal ones: the gradients are NaN
    where the oracle's are (numba's were finite, the NaN hidden from the optimizer)."""
    w, x, y, state = problem(20, 9, 10, np.float64, B=B)
    w.by[0] = np.nan
    _, hs, ps = run_forward(backend, w, x, y, state)
    assert np.isnan(ps).all()
    g = spec(w).zeros(np.float64)
    get_backend(backend).backward(w, x, y, hs, ps, g)
    expected = reference.backward(w, x, y, (hs, ps))
    assert np.isnan(expected.flat).any()
    np.testing.assert_array_equal(np.isnan(g.flat), np.isnan(expected.flat))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("B", STREAMS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_infinite_logit_gives_a_non_finite_loss(backend, B):
    w, x, y, state = problem(20, 9, 10, np.float64, B=B)
    w.by[2] = np.inf
    loss, _, _ = run_forward(backend, w, x, y, state)
    assert not np.isfinite(loss)


def evaluation_problem(H, V, n, dtype):
    rng = np.random.default_rng([H, V, n])
    w = random_weights(rng, H, V, dtype, min(0.3, 0.5 / np.sqrt(H)))  # contractive: errors stay ulps
    data = rng.integers(0, V, n).astype(np.uint16 if V > 256 else np.uint8)
    state = (rng.standard_normal((1, 1, 1, H)) * 0.5).astype(dtype)
    return w, data, state


EVALUATIONS = [(1, 2, 2), (7, 5, 50), (37, 11, 300), (100, 65, 1001), (16, 300, 120)]  # H, V, n


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,V,n", EVALUATIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_matches_reference(backend, H, V, n, dtype):
    w, data, state0 = evaluation_problem(H, V, n, dtype)
    loss_ref, state_ref = reference.evaluate(as64(w), data, state0.astype(np.float64))
    state = state0.copy()
    loss = get_backend(backend).evaluate(w, data, state)
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(state, state_ref, dtype, "state")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,V,n,L", [(1, 2, 2, 1), (7, 5, 50, 8), (37, 11, 300, 64),
                                     (100, 65, 1001, 256), (16, 300, 120, 256)])
def test_evaluate_kernel_reads_the_text_L_steps_at_a_time(H, V, n, L, dtype):
    """cpu.evaluate with a workspace of L steps (poisoned: nothing stale may be read)."""
    w, data, state0 = evaluation_problem(H, V, n, dtype)
    loss_ref, state_ref = reference.evaluate(as64(w), data, state0.astype(np.float64))
    h = state0[0, 0, 0].copy()
    hs, ps = np.full((L + 1, H), np.nan, dtype), np.full((L, V), np.nan, dtype)
    loss = cpu.evaluate(data, h, w, (hs, ps))
    assert_close(loss, loss_ref, dtype, "loss")
    assert_close(h, state_ref[0, 0, 0], dtype, "h")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_long_text_is_evaluated_in_calls_with_the_same_bits(dtype, monkeypatch):
    """min-char-rnn's model reads a long held-out text in kernel calls of EVAL_CALL_STEPS
    steps (Ctrl-C is heard between them), each going on from the last one's loss and state:
    the same bits as one call."""
    from fastrnn.backends import numba as numba_backend
    w, data, state0 = evaluation_problem(37, 11, 1300, dtype)
    kern = get_backend("numba")
    one = state0.copy()
    whole = kern.evaluate(w, data, one)
    monkeypatch.setattr(numba_backend, "EVAL_CALL_STEPS", 256)  # (1299 steps: six calls)
    calls = []
    real = cpu.evaluate
    monkeypatch.setattr(kern.cpu, "evaluate", lambda *a: calls.append(1) or real(*a))
    split = state0.copy()
    assert kern.evaluate(w, data, split) == whole and len(calls) == 6
    assert np.array_equal(split, one)
