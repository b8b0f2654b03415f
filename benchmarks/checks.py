"""The benchmark suites' checks against the oracle before timing, at the project's tolerances
(``fastrnn.config.TOLERANCES``, the table the tests use: ``assert_close`` is the tests' own),
each output under its own name."""

import numpy as np
from threadpoolctl import threadpool_limits

from fastrnn import reference
from tests.helpers import assert_close


def check_first_update(kern, spec, w, optimizer, state, data, lr, T, threads):
    """One chunk of ``kern.train`` (a backend) on copies of ``w`` (Weights) and ``state``
    (L, S, B, H), from zero optimizer state, against ``reference.train`` of the same chunk in
    float64: the position, the loss, the stream state, every named parameter and every
    optimizer state array (each under its name).

    One chunk, because then every parameter moves from the same weights. In float32 a second
    chunk is no longer a rounding-level comparison: a gradient that is near zero (within
    float32 rounding, a few 1e-5) makes a first step of quite another size (Adagrad's
    lr g / sqrt(g^2 + 1e-8), Adam's lr m / (sqrt(v) + eps), both about lr sign(g)), and the
    second chunk's gradients follow those weights (measured: Whh elements 0.19 apart after two
    float32 chunks at H = 512, lr 0.1, where every element is within tolerance after one)."""
    dtype = w.flat.dtype
    trained, after, losses = spec.copy(w), state.copy(), np.empty(1)
    moments = [spec.zeros(dtype) for _ in optimizer.states]
    with threadpool_limits(1, user_api="blas"):
        position = kern.train(trained, spec.zeros(dtype), optimizer, moments, data, 0, after,
                              lr, T, 0, losses, threads)
    oracle = spec.view(w.flat.astype(np.float64))
    oracle_moments = [spec.zeros(np.float64) for _ in optimizer.states]
    expected, expected_position, expected_state = reference.train(
        oracle, optimizer, oracle_moments, data, 0, state.astype(np.float64), lr, T, 1)
    assert position == expected_position, f"position {position}, oracle {expected_position}"
    assert_close(losses, expected, dtype, "loss after one chunk")
    assert_close(after, expected_state, dtype, "state after one chunk")
    for (name, a), e in zip(spec.named(trained).items(), spec.arrays(oracle)):
        assert_close(a, e, dtype, f"{name} after one chunk")
    for label, m, e in zip(optimizer.states, moments, oracle_moments):
        assert_close(m.flat, e.flat, dtype, f"{optimizer.name} {label} after one chunk")
