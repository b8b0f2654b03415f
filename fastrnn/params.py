"""The parameter set: min-char-rnn's arrays, seeded initialisation, Adagrad memory."""

import numpy as np

from .validate import FLOAT_DTYPES


def init_params(hidden_size, vocab_size, seed=0, dtype=np.float64):
    """(Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1)): weights N(0,1)*0.01, biases 0.

    Drawn from ``np.random.default_rng(seed)`` in float64, in that order, then cast, so a seed
    gives the same model in either dtype.
    """
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype {dtype} is not supported: use float32 or float64")
    rng = np.random.default_rng(seed)
    H, V = hidden_size, vocab_size
    weights = [rng.standard_normal(shape) * 0.01 for shape in ((H, V), (H, H), (V, H))]
    return tuple(w.astype(dtype) for w in weights) + (np.zeros((H, 1), dtype), np.zeros((V, 1), dtype))


def zeros_like(params):
    """Fresh Adagrad memory (or gradients) shaped like ``params``."""
    return tuple(np.zeros_like(p) for p in params)


def kernel_view(arrays):
    """(Wxh, Whh, Why, bh, by) with the biases as 1-D views: the kernels' layout."""
    Wxh, Whh, Why, bh, by = arrays
    return Wxh, Whh, Why, bh.reshape(-1), by.reshape(-1)
