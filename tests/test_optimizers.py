"""The optimizers: the oracle against transcriptions of char-rnn's and PyTorch's code, the fused
kernels against the oracle (every registered optimizer has its kernel loop), and training with
them on every path."""

import math

import numpy as np
import pytest

from fastrnn import CharRNN, optim, reference
from fastrnn.backends import get_backend
from fastrnn.config import ADAM_BETA1, ADAM_BETA2, CLIP, RMSPROP_DECAY
from fastrnn.kernels import cpu
from fastrnn.spec import Spec
from tests.helpers import as64, assert_close, assert_weights_close, random_weights


def test_adam_is_pytorchs_adam():
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(7), [rng.standard_normal(7) * 3 for _ in range(4)]
    w, m, v = w0.copy(), np.zeros(7), np.zeros(7)
    for step, g in enumerate(grads, 1):
        reference.adam([w], [g], [m], [v], 0.01, step)
    # torch.optim.Adam's single-tensor update (lr=0.01, betas=(0.9, 0.999), eps=1e-8), transcribed:
    param, exp_avg, exp_avg_sq = w0.copy(), np.zeros(7), np.zeros(7)
    for step, grad in enumerate(grads, 1):
        exp_avg += (grad - exp_avg) * (1 - 0.9)                    # exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq = exp_avg_sq * 0.999 + (1 - 0.999) * grad * grad  # mul_(beta2).addcmul_(...)
        step_size = 0.01 / (1 - 0.9 ** step)
        denom = np.sqrt(exp_avg_sq) / math.sqrt(1 - 0.999 ** step) + 1e-8
        param = param - step_size * exp_avg / denom                # addcdiv_(exp_avg, denom, -step_size)
    np.testing.assert_allclose(w, param, rtol=1e-13, err_msg="param")
    np.testing.assert_allclose(m, exp_avg, rtol=1e-13, err_msg="exp_avg")
    np.testing.assert_allclose(v, exp_avg_sq, rtol=1e-13, err_msg="exp_avg_sq")


def test_rmsprop_is_char_rnns_rmsprop():
    rng = np.random.default_rng(1)
    w0, grads = rng.standard_normal(6), [rng.standard_normal(6) for _ in range(3)]
    w, ms = w0.copy(), np.zeros(6)
    for g in grads:
        reference.rmsprop([w], [g], [ms], 0.002)
    # optim.rmsprop (torch7), alpha = decay_rate = 0.95, epsilon = 1e-8, transcribed:
    x, m = w0.copy(), np.zeros(6)
    for dfdx in grads:
        m = m * 0.95 + (1 - 0.95) * dfdx * dfdx        # state.m:mul(alpha):addcmul(1-alpha, dfdx, dfdx)
        x = x - 0.002 * dfdx / (np.sqrt(m) + 1e-8)    # x:addcdiv(-lr, dfdx, sqrt(m) + epsilon)
    np.testing.assert_allclose(w, x, rtol=1e-13, err_msg="x")
    np.testing.assert_allclose(ms, m, rtol=1e-13, err_msg="m")


def test_the_registry_names_each_optimizers_reference():
    """Each entry's reference is the oracle's function of its name, with its own state buffers."""
    rng = np.random.default_rng(4)
    w0, g = rng.standard_normal(5), rng.standard_normal(5)
    direct = {"adagrad": lambda w, s: reference.adagrad([w], [g], [s[0]], 0.01),
              "rmsprop": lambda w, s: reference.rmsprop([w], [g], [s[0]], 0.01),
              "adam": lambda w, s: reference.adam([w], [g], [s[0]], [s[1]], 0.01, 2)}
    assert set(optim.OPTIMIZERS) == set(direct)
    for name, opt in optim.OPTIMIZERS.items():
        assert optim.get(name) is opt and opt.name == name
        # the buffer named as the squares' is the one a step from zeros makes g*g times a
        # constant of (the other, Adam's m, follows g's sign)
        zero = [np.zeros(5) for _ in opt.states]
        opt.reference([w0.copy()], [g], [[s] for s in zero], 0.01, 1)
        for state, buffer in zip(opt.states, zero):
            ratio = buffer / (g * g)
            squares = bool(np.allclose(ratio, ratio[0]) and ratio[0] > 0)
            assert squares == (state == opt.squares), (name, state)
        w1, s1 = w0.copy(), [np.full(5, 0.5) for _ in opt.states]
        w2, s2 = w0.copy(), [np.full(5, 0.5) for _ in opt.states]
        opt.reference([w1], [g], [[s] for s in s1], 0.01, 2)
        direct[name](w2, s2)
        np.testing.assert_array_equal(w1, w2, err_msg=name)
        for state, a, b in zip(opt.states, s1, s2):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} {state}")


def update_problem(optimizer, dtype, seed=2):
    """Weights, gradients beyond the clip bound and non-negative optimizer state."""
    rng = np.random.default_rng(seed)
    w = random_weights(rng, 9, 5, dtype, 1.0)
    g = random_weights(rng, 9, 5, dtype, 4.0)  # beyond the clip bound
    states = [random_weights(rng, 9, 5, dtype, 0.5) for _ in optimizer.states]
    for s in states:
        np.abs(s.flat, out=s.flat)
    return w, g, states


def reference_update(optimizer, w, g, states, lr, step, clip):
    """The oracle's update on float64 copies: (weights, gradients, states), the gradients
    clipped to [-clip, clip] first (0: not)."""
    w, g, states = as64(w), as64(g), [as64(s) for s in states]
    if clip:
        assert np.abs(g.flat).max() > clip, "the test must exceed the clip bound"
        np.clip(g.flat, -clip, clip, out=g.flat)
    reference.update(optimizer, w, g, states, lr, step)
    return w, g, states


def assert_update_close(optimizer, actual, expected, dtype):
    (w, g, states), (w_ref, g_ref, states_ref) = actual, expected
    assert_weights_close(w, w_ref, dtype)
    assert_weights_close(g, g_ref, dtype, prefix="clipped d")
    for name, s, e in zip(optimizer.states, states, states_ref):
        assert_weights_close(s, e, dtype, prefix=f"{name} of ")


@pytest.mark.parametrize("clip", [CLIP, 1.5, 0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_fused_kernel_matches_the_oracle(name, dtype, clip):
    optimizer = optim.get(name)
    w, g, states = update_problem(optimizer, dtype)
    expected = reference_update(optimizer, w, g, states, 0.01, 3, clip)
    cpu.update(optimizer.state([s.flat for s in states]), w.flat, g.flat, 0.01, 3, clip > 0,
               cpu.clip_limit(clip))
    assert_update_close(optimizer, (w, g, states), expected, dtype)


@pytest.mark.parametrize("name", ["rmsprop", "adam"])
def test_float32_moments_take_one_minus_beta_rounded_once(name):
    """A float32 moment from zeros is (1 - beta) g (g*g for the squares) within 3 ulp, as
    the oracle and PyTorch compute it: 1 - beta rounded to float32 once, not 1 - float32(beta)
    (for Adam's 0.999, 1.3e-5 of it too small: a bias in every update)."""
    optimizer = optim.get(name)
    decay = {"rmsprop": {"m": RMSPROP_DECAY}, "adam": {"m": ADAM_BETA1, "v": ADAM_BETA2}}[name]
    g = np.random.default_rng(0).uniform(0.5, 2.0, 1000).astype(np.float32)
    states = [np.zeros_like(g) for _ in optimizer.states]
    cpu.update(optimizer.state(states), np.zeros_like(g), g.copy(), 0.01, 1, False, np.inf)
    for state, s in zip(optimizer.states, states):
        g64 = g.astype(np.float64)
        exact = (1 - decay[state]) * (g64 * g64 if state == optimizer.squares else g64)
        ulps = np.abs(s - exact) / np.spacing(np.float32(exact))
        assert ulps.max() <= 3, (state, ulps.max())


@pytest.mark.parametrize("clip", [CLIP, 0])
@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_every_optimizer_has_its_kernel_loop(name, clip):
    """The numba backend's update of every registered optimizer equals its reference, over
    several steps (an optimizer added without its loop in the kernels fails here)."""
    optimizer = optim.get(name)
    w, g, states = update_problem(optimizer, np.float64, seed=5)
    w_ref, states_ref = as64(w), [as64(s) for s in states]
    backend = get_backend("numba")
    for step in range(1, 4):
        g_step = Spec("rnn", 5, 9).view(g.flat * step)  # a new gradient every step
        g_ref = as64(g_step)
        w_ref, g_ref, states_ref = reference_update(optimizer, w_ref, g_ref, states_ref, 0.02,
                                                    step, clip)
        backend.update(optimizer, w.flat, g_step.flat, [s.flat for s in states], 0.02, step,
                       clip)
        assert_update_close(optimizer, (w, g_step, states), (w_ref, g_ref, states_ref),
                            np.float64)


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("optimizer", list(optim.OPTIMIZERS))  # (one added: trained here too)
def test_training_with_each_optimizer_matches_the_oracle(optimizer, batch_size):
    data = np.random.default_rng(3).integers(0, 10, 2000)
    models = {b: CharRNN(10, hidden_size=12, seq_length=8, learning_rate=0.002, optimizer=optimizer,
                         batch_size=batch_size, backend=b) for b in ("numba", "numpy")}
    for m in models.values():
        m.train(data, 7)
        m.train(data, 13)  # a second call continues the step count (Adam's bias correction)
    a, b = models["numba"], models["numpy"]
    assert a.step == b.step == 20
    assert_weights_close(a.weights, b.weights, np.float64)
    assert len(a.states) == len(b.states) == len(optim.get(optimizer).states)
    for name, x, e in zip(a.optimizer.states, a.states, b.states):
        assert_weights_close(x, e, np.float64, prefix=f"{name} of ")
    assert_close(a.state, b.state, np.float64, "state")


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="unknown optimizer 'bogus': choose one of adagrad, "
                                         "rmsprop, adam"):
        CharRNN(5, optimizer="bogus")
