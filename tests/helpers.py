"""Test helpers: random problems, and comparison with the tolerance table of ``fastrnn.config``."""

import json

import numpy as np

from fastrnn.config import TOLERANCES as TOL
from fastrnn.reference import spec_of
from fastrnn.spec import Spec

NAMES = ("Wxh", "Whh", "bh", "Why", "by")  # min-char-rnn's model, in spec order


def rewrite_meta(path, change):
    """Edit a checkpoint file in place: ``change(meta, arrays)`` on its metadata (a dict) and
    its named arrays, then write them back as they were stored (format 5's run record, held
    apart from the metadata, in ``meta["run"]`` for ``change``)."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    apart = "run" in arrays
    if apart:
        meta["run"] = json.loads(arrays["run"].tobytes())
    change(meta, arrays)
    if apart and "run" in meta:
        arrays["run"] = np.frombuffer(json.dumps(meta.pop("run")).encode(), np.uint8)
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


def loss_history(losses, cap):
    """What ``metrics.LossHistory`` holds for these per-iteration losses with at most ``cap``
    whole entries, written plainly: (entries, stride, entry sizes). The stride is the least
    power of two that makes len // stride at most ``cap``; whole entries of ``stride`` losses
    come first, then one entry for each binary digit of the rest, largest first; an entry is
    the mean of its two halves' entries, down to single losses."""
    def mean(block):  # (a + b) / 2, level by level
        block = list(block)
        while len(block) > 1:
            block = [(a + b) / 2 for a, b in zip(block[0::2], block[1::2])]
        return block[0]

    n, stride = len(losses), 1
    while n // stride > cap:
        stride *= 2
    sizes = [stride] * (n // stride) + [b for b in (stride >> k for k in range(1, 64))
                                        if b and n % stride & b]
    entries, start = [], 0
    for size in sizes:
        entries.append(mean(losses[start:start + size]))
        start += size
    return np.array(entries), stride, sizes
