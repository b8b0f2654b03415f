"""Test helpers: random problems, and comparison with the tolerance table of ``fastrnn.config``."""

import json

import numpy as np

from fastrnn.config import TOLERANCES as TOL
from fastrnn.reference import spec_of
from fastrnn.spec import Spec

NAMES = ("Wxh", "Whh", "bh", "Why", "by")  # min-char-rnn's model, in spec order


def rewrite_meta(path, change):
    """Edit a checkpoint file in place: ``change(meta, arrays)`` on its metadata (a dict) and
    its named arrays, then write them back as they were stored."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta, arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def assert_close(actual, expected, dtype, name):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               err_msg=name, **TOL[np.dtype(dtype)])


def assert_weights_close(actual, expected, dtype, prefix=""):
    """Every named tensor of two Weights, each checked with a message naming it."""
    spec = spec_of(actual)
    for (name, a), e in zip(spec.named(actual).items(), spec.arrays(expected)):
        assert_close(a, e, dtype, prefix + name)


def random_weights(rng, H, V, dtype, scale=0.1, num_layers=1, cell="rnn"):
    """Random parameters (non-zero biases, so every term is tested), drawn in float64."""
    spec = Spec(cell, V, H, num_layers)
    w = spec.zeros(dtype)
    w.flat[...] = rng.standard_normal(spec.size) * scale
    return w


def as64(w):
    """A float64 copy of Weights."""
    return spec_of(w).view(w.flat.astype(np.float64))


def random_chunk(rng, T, V, B=1):
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
