"""The CPU kernels' own exp, tanh and 1/sqrt against NumPy's."""

import numpy as np
import pytest
from numba import njit

from fastrnn.config import NJIT
from fastrnn.kernels import vmath


@njit(**dict(NJIT, cache=False))  # numba's cache would not see changes to vmath
def _map(f_id, x, out):
    for i in range(x.shape[0]):
        if f_id == 0:
            out[i] = vmath.exp(x[i])
        elif f_id == 1:
            out[i] = vmath.tanh(x[i])
        else:
            out[i] = vmath.rsqrt(x[i])


def apply(f_id, x):
    out = np.empty(len(x), np.float64)
    _map(f_id, np.asarray(x, np.float64), out)
    return out


def test_exp_is_accurate_to_a_few_ulp():
    near = np.concatenate([np.linspace(-30, 30, 20001), np.random.default_rng(0).uniform(-1, 1, 5000)])
    np.testing.assert_allclose(apply(0, near), np.exp(near), rtol=4e-15)
    far = np.linspace(-700, 700, 20001)  # see vmath's docstring: fast-math range reduction
    np.testing.assert_allclose(apply(0, far), np.exp(far), rtol=3e-14)


def test_tanh_is_accurate_near_zero_and_saturates():
    x = np.concatenate([np.linspace(-20, 20, 40001), np.logspace(-300, 0, 3001),
                        -np.logspace(-300, 0, 3001), [0.0, 0.25, -0.25, 0.2499999999999]])
    np.testing.assert_allclose(apply(1, x), np.tanh(x), rtol=1e-15, atol=0)


def test_rsqrt_is_accurate_over_adagrads_range():
    x = np.logspace(-8, 30, 5000)
    np.testing.assert_allclose(apply(2, x), 1 / np.sqrt(x), rtol=1e-15)


@pytest.mark.parametrize("f_id,x,expected", [
    (0, np.nan, np.nan), (0, -np.inf, 0.0), (0, -1000.0, 0.0), (0, 0.0, 1.0),
    (1, np.nan, np.nan), (1, np.inf, 1.0), (1, -np.inf, -1.0), (1, 0.0, 0.0),
    (2, np.nan, np.nan), (2, np.inf, 0.0),
])
def test_special_values(f_id, x, expected):
    got = apply(f_id, [x])[0]
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-300)


def test_exp_above_its_range_is_clamped_not_wrapped():
    """Past 709, e**x is e**709 (finite and positive, as the float32 exp clamps at 88): it was
    built from an exponent field that overflowed into the sign bit (e**711 = -1.9e-308)."""
    got = apply(0, [709.5, 711.0, 1000.0, 1420.0, 2000.0, np.inf])
    np.testing.assert_allclose(got, np.exp(709.0), rtol=3e-14)


@njit(**dict(NJIT, cache=False))
def _map32(f_id, x, out):
    for i in range(x.shape[0]):
        out[i] = vmath.exp(x[i]) if f_id == 0 else vmath.tanh(x[i]) if f_id == 1 else \
            vmath.rsqrt(x[i])


def apply32(f_id, x):
    x = np.asarray(x, np.float32)
    out = np.empty(len(x), np.float32)
    _map32(f_id, x, out)
    return out, x.astype(np.float64)


def test_float32_exp_and_tanh_are_accurate_to_a_few_float32_ulp():
    got, x = apply32(0, np.concatenate([np.linspace(-80, 80, 40001), np.linspace(-1, 1, 5001)]))
    np.testing.assert_allclose(got, np.exp(x), rtol=6e-7)
    got, x = apply32(1, np.concatenate([np.linspace(-12, 12, 40001), np.logspace(-38, 0, 2001),
                                        -np.logspace(-38, 0, 2001), [0.25, -0.25, 0.2499999]]))
    np.testing.assert_allclose(got, np.tanh(x), rtol=6e-7, atol=0)


def test_float32_special_values():
    got, _ = apply32(0, [np.nan, -np.inf, -200.0, 0.0])
    assert np.isnan(got[0]) and got[1] == got[2] == pytest.approx(0.0, abs=1e-37) and got[3] == 1.0
    got, _ = apply32(1, [np.nan, np.inf, -np.inf, 0.0, -0.0])
    assert np.isnan(got[0]) and got[1] == 1.0 and got[2] == -1.0 and got[3] == got[4] == 0.0
    # rsqrt: 0 at inf (an Adagrad memory overflowed), as NumPy's 1 / sqrt; fastmath's estimate
    # and Newton step, in a loop LLVM vectorises, made it inf * 0 = NaN
    got, x = apply32(2, [np.inf] * 17 + [np.nan, 1e-8, 4.0, 3e38])
    assert (got[:17] == 0).all() and np.isnan(got[17])
    np.testing.assert_allclose(got[18:], 1 / np.sqrt(x[18:]), rtol=6e-7)
