"""min-char-rnn's functions, same arguments and shapes, backed by fast kernels.

    loss, dWxh, dWhh, dWhy, dbh, dby, h = lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by)
    adagrad([Wxh, Whh, Why, bh, by], [dWxh, ...], [mWxh, ...], learning_rate)   # in place
    ixes = sample(h, seed_ix, n, Wxh, Whh, Why, bh, by, rng=np.random.default_rng(0))

Each takes ``backend="numba"`` (default), ``"numpy"`` (the reference) or ``"cuda"``; arrays may
be float32 or float64 and results keep that dtype. min-char-rnn's ``(H, 1)`` columns exist only
here, at the boundary: inside, these are one stream of the package's one model path.
"""

import numpy as np

from . import optim, reference, validate
from .backends import get_backend
from .spec import Spec

_ADAGRAD = optim.get("adagrad")
CHUNK_NUMBERS = 2  # numbers a lossFun chunk keeps, in H + V per character: its states and
                   # probabilities, and the backward pass's work (measured: 2.02 on numba)


def init_params(hidden_size, vocab_size, seed=0, dtype=np.float64):
    """min-char-rnn's parameters (Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1)): weights
    N(0,1)*0.01, biases 0, as the model initialises them (``Spec.init``), as separate arrays."""
    dtype = validate.float_dtype(dtype)
    hidden_size = validate.positive("hidden_size", hidden_size, int)
    w = Spec("rnn", vocab_size, hidden_size).init(seed, dtype)  # (Spec checks vocab_size)
    rnn = w.layers[0]
    return (rnn.Wxh.copy(), rnn.Whh.copy(), w.Why.copy(), rnn.bh.reshape(-1, 1).copy(),
            w.by.reshape(-1, 1).copy())


def _state(h):
    """An (H, 1) column as the one-stream state (L=1, S=1, B=1, H) (a view)."""
    return h.reshape(1, 1, 1, -1)


def lossFun(inputs, targets, hprev, Wxh, Whh, Why, bh, by, backend="numba"):
    """Forward and backward over one chunk, as min-char-rnn's ``lossFun``.

    inputs, targets: T character ids (list or integer array); hprev: (H, 1).
    Returns (loss, dWxh, dWhh, dWhy, dbh, dby, h_last): the loss summed over the chunk,
    gradients clipped to [-5, 5] in the parameters' shapes, and the last hidden state (H, 1).
    """
    H, V, dtype = validate.minchar_params(Wxh, Whh, Why, bh, by)
    validate.hidden("hprev", hprev, H, dtype)
    inputs = validate.indices("inputs", inputs, V)
    targets = validate.indices("targets", targets, V)
    if len(inputs) != len(targets):
        raise ValueError(f"inputs has {len(inputs)} ids but targets has {len(targets)}")
    validate.large_fits(len(inputs) * CHUNK_NUMBERS * (H + V) * dtype.itemsize,  # (about)
                        f"a chunk of {len(inputs):,} characters")
    kern = get_backend(backend)
    w = reference.weights(Wxh, Whh, Why, bh, by)
    x, y = inputs.reshape(1, -1), targets.reshape(1, -1)
    loss, hs, ps = kern.forward(w, x, y, _state(hprev))
    spec = reference.spec_of(w)  # the returned gradients are views of one buffer, which
    g = spec.view(np.empty(spec.size, dtype))  # backward overwrites whole
    kern.backward(w, x, y, hs, ps, g)
    rnn = g.layers[0]
    return (loss, rnn.Wxh, rnn.Whh, g.Why, rnn.bh.reshape(np.shape(bh)),
            g.by.reshape(np.shape(by)), hs[0, -1, 0, 0].reshape(H, 1).copy())


def adagrad(params, grads, mems, learning_rate, backend="numba"):
    """Adagrad in place over matching lists: ``m += g*g; w += -lr * g / sqrt(m + 1e-8)``."""
    params, grads, mems = list(params), list(grads), list(mems)
    if not len(params) == len(grads) == len(mems):
        raise ValueError(f"adagrad needs as many gradients and memories as parameters, got "
                         f"{len(params)} parameters, {len(grads)} gradients, {len(mems)} memories")
    lr = validate.positive("learning_rate", learning_rate)
    kern = get_backend(backend)
    flat, dtype = [], None  # (one dtype, the first parameter's: lr is checked in it)
    for k, (w, g, m) in enumerate(zip(params, grads, mems)):
        w = validate.float_array(f"params[{k}]", w, dtype)
        dtype = w.dtype
        validate.float_array(f"grads[{k}]", g, w.dtype)
        validate.float_array(f"mems[{k}]", m, w.dtype)
        if not g.shape == m.shape == w.shape:
            raise ValueError(f"params[{k}] has shape {w.shape} but its gradient has {g.shape} "
                             f"and its memory {m.shape}")
        for name, a in ((f"params[{k}]", w), (f"mems[{k}]", m)):
            if not a.flags.writeable:
                raise ValueError(f"{name} is read-only; adagrad updates it in place")
        if not g.flags.writeable:  # (only read; the kernels are compiled for writable arrays)
            g = g.copy()
        # One array given for two of a parameter's (a memory as its gradient) went NaN in
        # silence, the backends disagreeing. (A parameter's three arrays only, 0.2 us a pair:
        # every pair of all the arrays took 35 us, in a call that takes about 40.)
        for a, b, a_name, b_name in ((w, g, "params", "grads"), (w, m, "params", "mems"),
                                     (g, m, "grads", "mems")):
            if np.may_share_memory(a, b):
                raise ValueError(f"{a_name}[{k}] and {b_name}[{k}] share memory: adagrad updates "
                                 f"params[{k}] and mems[{k}] in place from grads[{k}], each an "
                                 f"array of its own")
        flat.append((w.reshape(-1), g.reshape(-1), m.reshape(-1)))
    if flat and not 1e-30 < lr < 1e30:  # (0 or infinite in the parameters' dtype? 6 us)
        lr = validate.rate("learning_rate", lr, flat[0][0].dtype)
    for w, g, m in flat:
        kern.update(_ADAGRAD, w, g, [m], lr, 0, 0)  # (clip 0: lossFun clipped g already)


def sample(h, seed_ix, n, Wxh, Whh, Why, bh, by, rng=None, temperature=1.0, greedy=False,
           backend="numba"):
    """n character ids drawn after ``seed_ix`` from hidden state h (H, 1), as min-char-rnn's sample.

    rng: a ``np.random.Generator`` (default: a fresh, unseeded one). One uniform per character is
    drawn from it outside the kernels, so every backend gives the same ids for the same seed.
    temperature divides the logits; greedy takes the most likely character (with a temperature
    other than 1, which would change nothing: refused). h is not modified.
    """
    H, V, dtype = validate.minchar_params(Wxh, Whh, Why, bh, by)
    validate.hidden("h", h, H, dtype)
    given = temperature  # (as given, for the message)
    seed_ix, n, temperature, greedy, rng = validate.sampling(seed_ix, n, V, temperature,
                                                             greedy, rng)
    validate.greedy_alone(greedy, [f"temperature={given!s}"] if temperature != 1 else [])
    for name, a in zip(("h",) + validate.MINCHAR_NAMES, (h, Wxh, Whh, Why, bh, by)):
        if not np.isfinite(a).all():  # (before drawing: a refused call leaves rng as it was)
            raise ValueError(f"{name} holds NaN or infinite values: there is nothing to sample "
                             f"from")
    uniforms = rng.random(n)
    ixes = np.empty(n, np.int64)
    w, state = reference.weights(Wxh, Whh, Why, bh, by), _state(h).copy()
    greedy = greedy or reference.overflows(w, state, temperature)  # T -> 0: greedy
    get_backend(backend).sample(w, state, seed_ix, uniforms, temperature, greedy, ixes)
    return ixes.tolist()
