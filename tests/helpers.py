"""Test helpers: random problems and the tolerance table.

Tolerances for comparing a kernel with the float64 oracle, in one table.

float64 kernels reorder sums (SIMD) and use their own exp/tanh, so they agree with NumPy to a few
ulp: rtol 1e-10 leaves room for error growth through a 200-step recurrence. float32 results are
compared with the oracle run in float64 on the same (float32-representable) inputs.
"""

import numpy as np

TOL = {
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
    np.dtype(np.float32): dict(rtol=2e-4, atol=2e-5),
}


def assert_close(actual, expected, dtype, name):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               err_msg=name, **TOL[np.dtype(dtype)])


def random_model(rng, H, V, dtype, scale=0.1):
    """Random parameters in min-char-rnn's shapes (non-zero biases, so every term is tested)."""
    shapes = ((H, V), (H, H), (V, H), (H, 1), (V, 1))
    return tuple((rng.standard_normal(s) * scale).astype(dtype) for s in shapes)


def random_chunk(rng, T, V):
    return rng.integers(0, V, T), rng.integers(0, V, T)
