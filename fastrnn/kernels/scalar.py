"""Scalar formulas shared by the CPU and CUDA kernels, so the backends cannot drift apart.

``register_jitable`` functions compile into whichever target calls them (``@njit`` or
``@cuda.jit``) with the caller's options. Constants arrive already cast to the array dtype.
"""

from numba.extending import register_jitable

from ..reference import ADAGRAD_EPS, CLIP  # noqa: F401  (the constants live with the oracle)
from .vmath import rsqrt


@register_jitable
def clip(g, bound):
    """min-char-rnn's ``np.clip(g, -5, 5)``."""
    return min(max(g, -bound), bound)


@register_jitable
def tanh_backward(h, dh, one):
    """Gradient through ``h = tanh(a)``: ``(1 - h^2) * dh``."""
    return (one - h * h) * dh


@register_jitable
def adagrad_memory(m, g):
    """``m += g * g``."""
    return m + g * g


@register_jitable
def adagrad_weight(w, g, m, lr, eps):
    """``w += -lr * g / sqrt(m + eps)`` with the already-updated memory m."""
    return w + (-lr * g) * rsqrt(m + eps)
