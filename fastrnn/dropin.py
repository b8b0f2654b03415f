"""min-char-rnn's functions, same arguments and shapes, backed by fast kernels.

    loss, dWxh, dWhh, dWhy, dbh, dby, h = lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    adagrad([Wxh, Whh, Why, bh, by], [dWxh, ...], [mWxh, ...], learning_rate)   # in place
    ixes = sample(h, seed_ix, n, Wxh, Whh, Why, bh, by, rng=np.random.default_rng(0))

Each takes ``backend="numba"`` (default) or ``"numpy"`` (the reference); arrays may be float32 or
float64 and results keep that dtype.
"""

import threading

import numpy as np

from . import validate
from .backends import get_backend, sample_workspace, workspace
from .params import kernel_view

_local = threading.local()


def _cached(key, make):
    """Per-thread scratch buffers, reused between calls of the same size."""
    cache = getattr(_local, "buffers", None)
    if cache is None or len(cache) > 16:
        cache = _local.buffers = {}
    buf = cache.get(key)
    if buf is None:
        buf = cache[key] = make()
    return buf


def lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by, backend="numba"):
    """Forward and backward over one chunk, as min-char-rnn's ``lossFun``.

    inputs, targets: T character ids (list or integer array); hprev: (H, 1).
    Returns (loss, dWxh, dWhh, dWhy, dbh, dby, h_last): the loss summed over the chunk,
    gradients clipped to [-5, 5] in the parameters' shapes, and the last hidden state (H, 1).
    """
    H, V, dtype = validate.params(Wxh, Whh, Why, bh, by)
    validate.hidden("hprev", hprev, H, dtype)
    inputs = validate.indices("inputs", inputs, V)
    targets = validate.indices("targets", targets, V)
    if len(inputs) != len(targets):
        raise ValueError(f"inputs has {len(inputs)} ids but targets has {len(targets)}")
    kern = get_backend(backend)
    T = len(inputs)
    hs, ps, dys, dhs, dh_next = _cached(("chunk", T, H, V, dtype), lambda: workspace(T, H, V, dtype))
    params = kernel_view((Wxh, Whh, Why, bh, by))
    grads = (np.empty_like(Wxh), np.empty_like(Whh), np.empty_like(Why), np.empty_like(bh),
             np.empty_like(by))
    loss = kern.forward(inputs, targets, hprev.reshape(-1), params, hs, ps)
    kern.backward(inputs, targets, hs, ps, params, kernel_view(grads), (dys, dhs, dh_next))
    return (loss, *grads, hs[T].reshape(H, 1).copy())


def adagrad(params, grads, mems, learning_rate, backend="numba"):
    """Adagrad in place over matching lists: ``m += g*g; w += -lr * g / sqrt(m + 1e-8)``."""
    params, grads, mems = list(params), list(grads), list(mems)
    if not len(params) == len(grads) == len(mems):
        raise ValueError(f"adagrad needs as many gradients and memories as parameters, got "
                         f"{len(params)} parameters, {len(grads)} gradients, {len(mems)} memories")
    lr = validate.positive("learning_rate", learning_rate)
    kern = get_backend(backend)
    flat = []
    for k, (w, g, m) in enumerate(zip(params, grads, mems)):
        w = validate.float_array(f"params[{k}]", w)
        validate.float_array(f"grads[{k}]", g, w.dtype)
        validate.float_array(f"mems[{k}]", m, w.dtype)
        if not g.shape == m.shape == w.shape:
            raise ValueError(f"params[{k}] has shape {w.shape} but its gradient has {g.shape} "
                             f"and its memory {m.shape}")
        for name, a in ((f"params[{k}]", w), (f"mems[{k}]", m)):
            if not a.flags.writeable:
                raise ValueError(f"{name} is read-only; adagrad updates it in place")
        flat.append((w.reshape(-1), g.reshape(-1), m.reshape(-1)))
    for w, g, m in flat:
        kern.adagrad_update(w, g, m, lr)


def sample(h, seed_ix, n, Wxh, Whh, Why, bh, by, rng=None, temperature=1.0, greedy=False,
           backend="numba"):
    """n character ids drawn after ``seed_ix`` from hidden state h (H, 1), as min-char-rnn's sample.

    rng: a ``np.random.Generator`` (default: a fresh, unseeded one). One uniform per character is
    drawn from it outside the kernels, so every backend gives the same ids for the same seed.
    temperature divides the logits; greedy takes the most likely character. h is not modified.
    """
    H, V, dtype = validate.params(Wxh, Whh, Why, bh, by)
    validate.hidden("h", h, H, dtype)
    if isinstance(seed_ix, bool) or not isinstance(seed_ix, (int, np.integer)) or not 0 <= seed_ix < V:
        raise ValueError(f"seed_ix must be a character id in [0, {V}), got {seed_ix!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    temperature = validate.positive("temperature", temperature)
    rng = np.random.default_rng() if rng is None else rng
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    uniforms = rng.random(int(n))
    ixes = np.empty(int(n), np.int64)
    get_backend(backend).sample(h.reshape(-1).copy(), int(seed_ix), uniforms,
                                kernel_view((Wxh, Whh, Why, bh, by)), temperature, bool(greedy),
                                ixes, sample_workspace(H, V, dtype))
    return ixes.tolist()
