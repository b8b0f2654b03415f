"""RMSprop and Adam: the oracle against transcriptions of char-rnn's and PyTorch's code, the fused
kernels against the oracle, and training with them on every path."""

import math

import numpy as np
import pytest

from fastrnn import CharRNN, reference
from fastrnn.kernels import cpu
from fastrnn.params import kernel_view
from tests.helpers import assert_close, random_model

NAMES = ("Wxh", "Whh", "Why", "bh", "by")


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
    np.testing.assert_allclose(w, param, rtol=1e-13)
    np.testing.assert_allclose(m, exp_avg, rtol=1e-13)
    np.testing.assert_allclose(v, exp_avg_sq, rtol=1e-13)


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
    np.testing.assert_allclose(w, x, rtol=1e-13)
    np.testing.assert_allclose(ms, m, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", ["adagrad", "rmsprop", "adam"])
def test_fused_kernel_matches_the_oracle(optimizer, dtype):
    rng = np.random.default_rng(2)
    params = random_model(rng, 9, 5, dtype, 1.0)
    grads = random_model(rng, 9, 5, dtype, 4.0)  # beyond the clip bound
    s1 = tuple(np.abs(a) for a in random_model(rng, 9, 5, dtype, 0.5))
    s2 = tuple(np.abs(a) for a in random_model(rng, 9, 5, dtype, 0.5))
    ref = [[np.array(a, np.float64) for a in arrays] for arrays in (params, grads, s1, s2)]
    for g in ref[1]:
        np.clip(g, -5, 5, out=g)
    reference.optimize(optimizer, ref[0], ref[1], (ref[2], ref[3]), 0.01, 3)
    p, g, a, b = ([x.copy() for x in arrays] for arrays in (params, grads, s1, s2))
    cpu.optimize(kernel_view(p), kernel_view(g), kernel_view(a), kernel_view(b),
                 reference.OPTIMIZERS.index(optimizer), 0.01, 3, True)
    for name, x, e in zip(NAMES, p, ref[0]):
        assert_close(x, e, dtype, name)
    for name, x, e in zip(NAMES, g, ref[1]):
        assert_close(x, e, dtype, "clipped d" + name)
    for name, x, e in zip(NAMES, a, ref[2]):
        assert_close(x, e, dtype, "state of " + name)
    if optimizer == "adam":
        for name, x, e in zip(NAMES, b, ref[3]):
            assert_close(x, e, dtype, "v of " + name)


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_training_with_each_optimizer_matches_the_oracle(optimizer, batch_size):
    data = np.random.default_rng(3).integers(0, 10, 2000)
    models = {b: CharRNN(10, hidden_size=12, seq_length=8, learning_rate=0.002, optimizer=optimizer,
                         batch_size=batch_size, backend=b) for b in ("numba", "numpy")}
    for m in models.values():
        m.train(data, 7)
        m.train(data, 13)  # a second call continues the step count (Adam's bias correction)
    a, b = models["numba"], models["numpy"]
    assert a.step == b.step == 20
    for name, x, e in zip(NAMES * 2, [*a.params, *a.mems], [*b.params, *b.mems]):
        assert_close(x, e, np.float64, name)
    if optimizer == "adam":
        for name, x, e in zip(NAMES, a.mems2, b.mems2):
            assert_close(x, e, np.float64, "v of " + name)
    assert_close(a.h, b.h, np.float64, "h")


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="optimizer must be one of adagrad, rmsprop, adam"):
        CharRNN(5, optimizer="sgd")
